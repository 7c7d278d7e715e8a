//! The returning customer of `make dev` and the cards customers pay with. The simulator starts
//! with one customer who bought before ([`DEMO_CUSTOMER`], on the platform account) and saved
//! a Visa card for later (`allow_redisplay: "always"`), so the Payment Element flow for
//! existing customers can show a saved card offline. Cards carry every key of Stripe's
//! `payment_method` fixture at the pinned version.

use serde_json::{Value, json};

use crate::objects::Objects;
use crate::subscriptions::customer_json;
use crate::{CATALOG_CREATED, random_suffix};

/// The demo shop's returning customer, made when the simulator starts.
pub const DEMO_CUSTOMER: &str = "cus_demo_returning";

/// The card [`DEMO_CUSTOMER`] saved, shown by the Payment Element stand-in.
pub const DEMO_PAYMENT_METHOD: &str = "pm_demo_visa";

/// What varies between the simulator's cards; every one is a Visa ending 4242.
pub(crate) struct Card<'a> {
    pub id: &'a str,
    pub customer: Option<&'a str>,
    pub email: &'a Value,
    pub name: &'a Value,
    /// `always` (shown again to the customer), `limited` or `unspecified`.
    pub allow_redisplay: &'a str,
    pub exp: (i64, i64),
    pub fingerprint: &'a str,
    pub created: i64,
}

pub(crate) fn payment_method_json(card: &Card<'_>) -> Value {
    json!({
        "id": card.id,
        "object": "payment_method",
        "allow_redisplay": card.allow_redisplay,
        "billing_details": {
            "address": {"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null},
            "email": card.email,
            "name": card.name,
            "phone": null,
        },
        "card": {
            "brand": "visa",
            "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
            "country": "US",
            "display_brand": "visa",
            "exp_month": card.exp.0,
            "exp_year": card.exp.1,
            "fingerprint": card.fingerprint,
            "funding": "credit",
            "generated_from": null,
            "last4": "4242",
            "networks": {"available": ["visa"], "preferred": null},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": true},
            "wallet": null,
        },
        "created": card.created,
        "customer": card.customer,
        "livemode": false,
        "metadata": {},
        "type": "card",
    })
}

/// A card typed into the Payment Element: not attached to anyone until a payment that saves
/// it succeeds.
pub(crate) fn new_card(email: &Value, name: &Value, now: i64) -> Value {
    payment_method_json(&Card {
        id: &format!("pm_{}", random_suffix(24)),
        customer: None,
        email,
        name,
        allow_redisplay: "unspecified",
        exp: (12, 2034),
        fingerprint: &random_suffix(16),
        created: now,
    })
}

/// The returning customer and their saved card, on the platform account. Fixed values
/// (created with the catalog) so answers are the same run to run.
pub(crate) fn seed(objects: &mut Objects) {
    let (email, name) = (json!("returning@example.com"), json!("Robin Returning"));
    let mut customer = customer_json(DEMO_CUSTOMER, &email, &name, CATALOG_CREATED);
    customer["preferred_locales"] = json!(["en"]);
    customer["invoice_prefix"] = "DEMORET".into();
    objects.insert(None, customer);
    objects.insert(
        None,
        payment_method_json(&Card {
            id: DEMO_PAYMENT_METHOD,
            customer: Some(DEMO_CUSTOMER),
            email: &email,
            name: &name,
            allow_redisplay: "always",
            exp: (12, 2030),
            fingerprint: "SimDemoVisa4242x",
            created: CATALOG_CREATED,
        }),
    );
}
