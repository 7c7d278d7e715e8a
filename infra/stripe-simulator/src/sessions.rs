//! Checkout Sessions: `POST /v1/checkout/sessions` (the cart, the options of
//! `session_options`), `GET` one or a list, `POST …/{id}/expire`, and the session object as
//! Stripe answers it at the pinned version: every key of Stripe's basil fixture, plus the
//! keys Stripe adds only when they apply (`return_url` of an embedded or custom session,
//! `tax_id_collection`, `optional_items`, the expanded `line_items`).

use std::collections::BTreeMap;
use std::sync::Arc;

use checkout_core::stripe::{
    AfterExpiration, CheckoutSession, LineItem, Mode, PaymentStatus, Price, Recovery,
    SessionStatus, ShippingCost, ShippingRateRef, UiMode,
};
use http::StatusCode;
use serde_json::{Value, json};

use crate::api::{ApiError, Pairs, bad_request, missing, page, param};
use crate::delivery::{Delivery, Outgoing};
use crate::params::unknown_parameter;
use crate::session_options::{Cart, Echo, KNOWN, SessionOptions};
use crate::{CatalogPrice, Simulator, StoredSession, random_suffix, tax, unix_now};

/// How long a recovery link stays valid, as on Stripe.
const RECOVERY_LINK_SECS: i64 = 30 * 86_400;

/// What `expand[]` asks of a session (in the query of a GET, the form of a POST).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Expand {
    pub line_items: bool,
    pub breakdown: bool,
    pub shipping_rate: bool,
}

impl Expand {
    pub const NONE: Self = Self {
        line_items: false,
        breakdown: false,
        shipping_rate: false,
    };

    pub fn of(pairs: &Pairs) -> Self {
        let asks = |what: &str| {
            pairs
                .iter()
                .any(|(k, v)| k.starts_with("expand[") && v == what)
        };
        Self {
            line_items: asks("line_items"),
            breakdown: asks("total_details.breakdown"),
            shipping_rate: asks("shipping_cost.shipping_rate"),
        }
    }
}

/// A line item of `quantity` of a catalog price, its amounts before tax.
pub(crate) fn line_item(price: &CatalogPrice, quantity: u64) -> LineItem {
    let amount = price
        .unit_amount
        .saturating_mul(i64::try_from(quantity).unwrap_or(i64::MAX));
    LineItem {
        id: format!("li_{}", random_suffix(24)),
        description: Some(price.name.clone()),
        quantity: Some(quantity),
        amount_subtotal: amount,
        amount_total: amount,
        amount_tax: 0,
        amount_discount: 0,
        currency: price.currency.clone(),
        price: Some(Price {
            id: price.price.parse().expect("catalog ids are price_ ids"),
            product: Some(price.product.clone().into()),
            unit_amount: Some(price.unit_amount),
            currency: price.currency.clone(),
            kind: Some(price.kind().into()),
            active: Some(true),
        }),
    }
}

/// Stripe's refusal of a cart whose prices do not fit the session's mode.
fn mode_mismatch(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: None,
        message: message.into(),
        param: Some("line_items".into()),
    }
}

impl Simulator {
    pub(crate) fn session(
        &self,
        id: &str,
        account: Option<&str>,
    ) -> Result<StoredSession, ApiError> {
        self.lock()
            .sessions
            .get(id)
            .filter(|s| s.account.as_deref() == account)
            .cloned()
            .ok_or_else(|| missing("checkout.session", id))
    }

    /// The session as Stripe returns it, with what `expand` asks.
    pub(crate) fn session_json(&self, stored: &StoredSession, expand: Expand) -> Value {
        let session = &stored.session;
        let mut value = serde_json::to_value(session).expect("a session serialises");
        value["object"] = "checkout.session".into();
        value["livemode"] = false.into();
        value["success_url"] = stored.success_url.clone().into();
        value["cancel_url"] = stored.cancel_url.clone().into();
        value["invoice"] = stored.invoice.clone().into();
        let fields = value.as_object_mut().expect("an object");
        // At basil the shipping details are in `collected_information` only.
        fields.remove("shipping_details");
        if stored.return_url.is_some() {
            fields.insert("return_url".into(), stored.return_url.clone().into());
        } else {
            fields.remove("return_url");
        }
        if expand.line_items {
            let items = stored
                .items
                .iter()
                .map(|i| self.item_json(i, false))
                .collect();
            let url = format!("/v1/checkout/sessions/{}/line_items", session.id);
            let first = page(items, &Vec::new(), &url).expect("the first page always exists");
            fields.insert("line_items".into(), first);
        } else {
            fields.remove("line_items");
        }
        if let Some(details) = value["customer_details"].as_object_mut() {
            details.insert("tax_exempt".into(), "none".into());
        }
        if let Some(totals) = value["total_details"].as_object_mut() {
            totals.remove("breakdown");
            if expand.breakdown {
                totals.insert("breakdown".into(), tax::breakdown(stored));
            }
        }
        if expand.shipping_rate
            && let Some(rate) = session
                .shipping_cost
                .as_ref()
                .and_then(|c| c.shipping_rate.as_ref())
                .and_then(|r| self.shipping_rate(r.id()))
        {
            value["shipping_cost"]["shipping_rate"] = rate.json();
        }
        let payment = session.mode == Mode::Payment;
        for (key, fixed) in [
            ("adaptive_pricing", Value::Null),
            ("currency_conversion", Value::Null),
            ("discounts", Value::Null),
            ("payment_link", Value::Null),
            ("payment_method_configuration_details", Value::Null),
            ("payment_method_options", json!({})),
            ("payment_method_types", json!(["card"])),
            ("permissions", Value::Null),
            ("setup_intent", Value::Null),
            (
                "customer_creation",
                (payment && session.customer.is_none())
                    .then_some("if_required")
                    .into(),
            ),
            (
                "payment_method_collection",
                (session.mode == Mode::Subscription)
                    .then_some("always")
                    .into(),
            ),
        ] {
            value[key] = fixed;
        }
        stored.options.echo(
            &mut value,
            &Echo {
                mode: session.mode,
                complete: session.status == Some(SessionStatus::Complete),
                has_customer: session.customer.is_some(),
                collects_promotions: stored.collects_consent,
                config: &self.config,
            },
        );
        value
    }

    pub(crate) fn item_json(&self, item: &LineItem, expand_product: bool) -> Value {
        let mut value = serde_json::to_value(item).expect("a line item serialises");
        value["object"] = "item".into();
        if let Some(price) = &item.price {
            value["price"]["object"] = "price".into();
            if let Some(c) = self.catalog_price(price.id.as_str()) {
                value["price"] = c.json();
                if expand_product {
                    value["price"]["product"] =
                        json!({"id": c.product, "object": "product", "name": c.name});
                }
            }
        }
        value
    }

    pub(crate) fn catalog_price(&self, id: &str) -> Option<&CatalogPrice> {
        self.config.catalog.iter().find(|c| c.price == id)
    }

    fn cart(&self, form: &Pairs) -> Result<Vec<LineItem>, ApiError> {
        let mut items = Vec::new();
        for i in 0.. {
            let Some(price_id) = param(form, &format!("line_items[{i}][price]")) else {
                break;
            };
            let Some(price) = self.catalog_price(price_id) else {
                return Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    code: Some("resource_missing"),
                    message: format!("No such price: '{price_id}'"),
                    param: Some(format!("line_items[{i}][price]")),
                });
            };
            let quantity: u64 = param(form, &format!("line_items[{i}][quantity]"))
                .unwrap_or("1")
                .parse()
                .map_err(|_| {
                    bad_request("Invalid integer", &format!("line_items[{i}][quantity]"))
                })?;
            // As Stripe refuses it, so a test cannot pass on a cart Stripe would reject.
            if quantity == 0 {
                return Err(bad_request(
                    "This value must be greater than or equal to 1.",
                    &format!("line_items[{i}][quantity]"),
                ));
            }
            items.push(line_item(price, quantity));
        }
        if items.is_empty() {
            return Err(bad_request(
                "line_items is required in payment mode",
                "line_items",
            ));
        }
        Ok(items)
    }

    pub(crate) fn create_session(
        &self,
        form: &Pairs,
        account: Option<&str>,
    ) -> Result<Value, ApiError> {
        if let Some(unknown) = unknown_parameter(form, KNOWN) {
            return Err(unknown);
        }
        let mode: Mode = serde_json::from_value(param(form, "mode").unwrap_or_default().into())
            .map_err(|_| bad_request("mode must be payment, subscription or setup", "mode"))?;
        let items = self.cart(form)?;
        let recurring = items.iter().any(|i| {
            i.price
                .as_ref()
                .is_some_and(|p| p.kind.as_deref() == Some("recurring"))
        });
        match mode {
            Mode::Subscription if !recurring => {
                return Err(mode_mismatch(
                    "You must provide at least one recurring price in `subscription` mode when using prices.",
                ));
            }
            Mode::Payment if recurring => {
                return Err(mode_mismatch(
                    "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.",
                ));
            }
            _ => {}
        }
        let ui_mode = match param(form, "ui_mode").unwrap_or("hosted") {
            "hosted" => UiMode::Hosted,
            "embedded" => UiMode::Embedded,
            "custom" => UiMode::Custom,
            _ => {
                return Err(bad_request(
                    "Invalid ui_mode: must be one of custom, embedded, hosted",
                    "ui_mode",
                ));
            }
        };
        let success_url = param(form, "success_url").map(str::to_string);
        let return_url = param(form, "return_url").map(str::to_string);
        match ui_mode {
            UiMode::Hosted if success_url.is_none() => {
                return Err(bad_request(
                    "success_url is required for hosted sessions",
                    "success_url",
                ));
            }
            UiMode::Embedded | UiMode::Custom if return_url.is_none() => {
                return Err(bad_request(
                    "return_url is required when ui_mode is embedded or custom",
                    "return_url",
                ));
            }
            _ => {}
        }
        let now = unix_now();
        let expires_at = match param(form, "expires_at").map(str::parse::<i64>) {
            None => now + 86_400,
            Some(Ok(t)) if (now + 1800 - 60..=now + 86_400 + 60).contains(&t) => t,
            Some(_) => {
                return Err(bad_request(
                    "expires_at must be 30 minutes to 24 hours from now",
                    "expires_at",
                ));
            }
        };
        let currency = items[0].currency.clone();
        let quantities: Vec<u64> = items.iter().map(|i| i.quantity.unwrap_or(1)).collect();
        let cart = Cart {
            mode,
            currency: &currency,
            quantities: &quantities,
        };
        let options = SessionOptions::parse(form, &cart, &self.config)?;
        let recovery =
            (param(form, "after_expiration[recovery][enabled]") == Some("true")).then(|| {
                Recovery {
                    enabled: true,
                    url: None,
                    expires_at: None,
                    allow_promotion_codes: param(
                        form,
                        "after_expiration[recovery][allow_promotion_codes]",
                    ) == Some("true"),
                }
            });
        let metadata: BTreeMap<String, String> = form
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix("metadata[")?.strip_suffix(']')?.to_string(),
                    v.clone(),
                ))
            })
            .collect();
        let id = format!("cs_test_{}", random_suffix(40));
        let session = CheckoutSession {
            id: id.parse().expect("cs_ id"),
            url: (ui_mode == UiMode::Hosted)
                .then(|| format!("{}/c/pay/{id}", self.config.public_url)),
            client_secret: (ui_mode != UiMode::Hosted)
                .then(|| format!("{id}_secret_{}", random_suffix(24))),
            expires_at,
            created: Some(now),
            mode,
            ui_mode: Some(ui_mode),
            status: Some(SessionStatus::Open),
            payment_status: PaymentStatus::Unpaid,
            customer: param(form, "customer").and_then(|c| c.parse().ok()),
            customer_email: param(form, "customer_email").map(str::to_string),
            customer_details: None,
            amount_subtotal: None,
            amount_total: None,
            currency: Some(currency),
            locale: param(form, "locale").map(str::to_string),
            payment_intent: None,
            subscription: None,
            client_reference_id: param(form, "client_reference_id").map(str::to_string),
            consent: None,
            after_expiration: recovery.map(|r| AfterExpiration { recovery: Some(r) }),
            recovered_from: None,
            metadata,
            line_items: None,
            collected_information: None,
            shipping_details: None,
            shipping_cost: first_rate(&options),
            total_details: None,
            custom_fields: Vec::new(),
        };
        let mut stored = StoredSession {
            account: account.map(str::to_string),
            session,
            items,
            success_url,
            cancel_url: param(form, "cancel_url").map(str::to_string),
            return_url,
            collects_consent: param(form, "consent_collection[promotions]") == Some("auto"),
            options,
            withhold_webhooks: false,
            application_fee_amount: param(form, "payment_intent_data[application_fee_amount]")
                .and_then(|a| a.parse().ok()),
            application_fee_percent: param(form, "subscription_data[application_fee_percent]")
                .and_then(|p| p.parse().ok()),
            invoice: None,
        };
        tax::recompute(&mut stored, &self.config);
        let value = self.session_json(&stored, Expand::of(form));
        self.lock().sessions.insert(id, stored);
        Ok(value)
    }

    pub(crate) fn list_sessions(
        &self,
        query: &Pairs,
        account: Option<&str>,
    ) -> Result<Value, ApiError> {
        let payment_intent = param(query, "payment_intent");
        let sessions: Vec<StoredSession> = self
            .lock()
            .sessions
            .values()
            .filter(|s| s.account.as_deref() == account)
            .filter(|s| {
                payment_intent.is_none_or(|pi| {
                    s.session
                        .payment_intent
                        .as_ref()
                        .is_some_and(|p| p.as_str() == pi)
                })
            })
            .cloned()
            .collect();
        let all = sessions
            .iter()
            .map(|s| self.session_json(s, Expand::NONE))
            .collect();
        page(all, query, "/v1/checkout/sessions")
    }

    /// Expires an open session, as the page's "Let it expire" and `POST …/expire` do: its
    /// recovery link (when enabled) is made, and the event to send is returned.
    pub(crate) fn expire(&self, stored: &mut StoredSession, now: i64) -> Outgoing {
        let session = &mut stored.session;
        session.status = Some(SessionStatus::Expired);
        if let Some(recovery) = session
            .after_expiration
            .as_mut()
            .and_then(|a| a.recovery.as_mut())
            .filter(|r| r.enabled)
        {
            recovery.url = Some(format!("{}/r/{}", self.config.public_url, session.id));
            recovery.expires_at = Some(now + RECOVERY_LINK_SECS);
        }
        (
            "checkout.session.expired",
            self.session_json(stored, Expand::NONE),
        )
            .into()
    }

    /// `POST /v1/checkout/sessions/{id}/expire`: Stripe refuses a session that is not open.
    pub(crate) fn expire_session(
        self: &Arc<Self>,
        id: &str,
        form: &Pairs,
        account: Option<&str>,
    ) -> Result<Value, ApiError> {
        if let Some(unknown) = unknown_parameter(form, &["expand[#]"]) {
            return Err(unknown);
        }
        let mut state = self.lock();
        let stored = state
            .sessions
            .get_mut(id)
            .filter(|s| s.account.as_deref() == account)
            .ok_or_else(|| missing("checkout.session", id))?;
        if stored.session.status != Some(SessionStatus::Open) {
            let status = match stored.session.status {
                Some(SessionStatus::Complete) => "complete",
                _ => "expired",
            };
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                code: None,
                message: format!(
                    "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of `{status}`."
                ),
                param: None,
            });
        }
        let event = self.expire(stored, unix_now());
        let value = self.session_json(stored, Expand::of(form));
        let account = stored.account.clone();
        drop(state);
        self.send_events(account.as_deref(), vec![event], Delivery::default());
        Ok(value)
    }
}

/// `shipping_cost` of a new session: Stripe preselects the first shipping option.
pub(crate) fn first_rate(options: &SessionOptions) -> Option<ShippingCost> {
    options.shipping_rates.first().map(|id| ShippingCost {
        amount_subtotal: 0,
        amount_tax: 0,
        amount_total: 0,
        shipping_rate: Some(ShippingRateRef::Id(id.clone())),
    })
}
