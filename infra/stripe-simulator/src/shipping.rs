//! Shipping rates: the account's catalog of them (what `shipping_options[N][shipping_rate]`
//! names), `GET /v1/shipping_rates/{id}` in Stripe's shape, and the expanded rate of a
//! session's `shipping_cost`. Kept simple: every rate is a fixed amount, made with the
//! catalog, on every account.

use checkout_core::money::Currency;
use serde_json::{Value, json};

use crate::api::{ApiError, missing};
use crate::{CATALOG_CREATED, Simulator};

/// One shipping rate of the simulated account.
#[derive(Debug, Clone)]
pub struct CatalogShippingRate {
    pub id: String,
    pub display_name: String,
    pub amount: i64,
    pub currency: Currency,
    /// The delivery estimate in business days, fewest and most (`delivery_estimate`).
    pub business_days: Option<(u32, u32)>,
}

/// The demo shop's rates: standard (4.90, 3–5 business days) and express (12.00, 1–2).
#[must_use]
pub fn demo_shipping_rates() -> Vec<CatalogShippingRate> {
    [
        ("shr_standard", "Standard shipping", 490, (3, 5)),
        ("shr_express", "Express shipping", 1200, (1, 2)),
    ]
    .into_iter()
    .map(|(id, name, amount, days)| CatalogShippingRate {
        id: id.into(),
        display_name: name.into(),
        amount,
        currency: "eur".parse().expect("a currency code"),
        business_days: Some(days),
    })
    .collect()
}

impl CatalogShippingRate {
    /// The rate as Stripe returns it: every key of its `shipping_rate` fixture.
    pub(crate) fn json(&self) -> Value {
        let bound = |value: u32| json!({"unit": "business_day", "value": value});
        json!({
            "id": self.id,
            "object": "shipping_rate",
            "active": true,
            "created": CATALOG_CREATED,
            "delivery_estimate": self.business_days.map(|(least, most)| json!({
                "minimum": bound(least),
                "maximum": bound(most),
            })),
            "display_name": self.display_name,
            "fixed_amount": {"amount": self.amount, "currency": self.currency},
            "livemode": false,
            "metadata": {},
            // Tax is added on top, as the simulator's automatic tax computes it.
            "tax_behavior": "exclusive",
            // Stripe's tax code for shipping.
            "tax_code": "txcd_92010001",
            "type": "fixed_amount",
        })
    }

    /// How the hosted page shows the estimate: `3–5 business days`.
    pub(crate) fn estimate(&self) -> Option<String> {
        self.business_days
            .map(|(least, most)| format!("{least}–{most} business days"))
    }
}

impl Simulator {
    pub(crate) fn shipping_rate(&self, id: &str) -> Option<&CatalogShippingRate> {
        self.config.shipping_rates.iter().find(|r| r.id == id)
    }

    /// `GET /v1/shipping_rates/{id}`.
    pub(crate) fn shipping_rate_json(&self, id: &str) -> Result<Value, ApiError> {
        self.shipping_rate(id)
            .map(CatalogShippingRate::json)
            .ok_or_else(|| missing("shipping_rate", id))
    }
}
