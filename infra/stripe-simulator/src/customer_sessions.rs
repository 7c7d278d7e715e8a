//! `POST /v1/customer_sessions`: what lets a client-side component act for one customer for
//! 30 minutes. Here only the Payment Element uses it: given with a PaymentIntent of the same
//! customer, it shows the customer's saved cards (when `payment_method_redisplay` is enabled,
//! which on Stripe it is not by default) and offers to save a new one (`payment_method_save`).
//!
//! A customer session has no id on Stripe, so it is kept by its client secret. It is tied to
//! no PaymentIntent: the element page checks the customer matches the PaymentIntent's.

use serde_json::{Value, json};

use crate::api::{ApiError, Pairs, bad_request, param};
use crate::{Simulator, random_suffix, unix_now};

/// How long a customer session's client secret is good for, as on Stripe.
const LIFETIME_SECS: i64 = 30 * 60;

/// The components of Stripe's `customer_session` at the pinned version.
const COMPONENTS: [&str; 3] = ["buy_button", "payment_element", "pricing_table"];

/// A customer session and the account (`Stripe-Account`) it was made under.
#[derive(Debug, Clone)]
pub(crate) struct StoredCustomerSession {
    pub account: Option<String>,
    pub object: Value,
}

impl StoredCustomerSession {
    /// Whether the Payment Element of a PaymentIntent under `account` for `customer` may act
    /// for the customer with it: same account, same customer, not expired, element enabled.
    pub fn serves(&self, account: Option<&str>, customer: &Value, now: i64) -> bool {
        self.account.as_deref() == account
            && customer.is_string()
            && self.object["customer"] == *customer
            && self.object["expires_at"].as_i64().is_some_and(|t| now < t)
            && self.object["components"]["payment_element"]["enabled"] == true
    }

    /// A Payment Element feature's setting (`payment_method_redisplay`…): `enabled` or not.
    pub fn feature_enabled(&self, feature: &str) -> bool {
        self.object["components"]["payment_element"]["features"][feature] == "enabled"
    }

    /// The `allow_redisplay` values of the saved cards the element shows.
    pub fn redisplay_filters(&self) -> Vec<String> {
        self.object["components"]["payment_element"]["features"]
            ["payment_method_allow_redisplay_filters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    /// How many saved cards the element shows at most.
    pub fn redisplay_limit(&self) -> usize {
        self.object["components"]["payment_element"]["features"]["payment_method_redisplay_limit"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(3)
    }
}

/// `enabled` or `disabled`, as Stripe's Payment Element features take them.
fn toggle(form: &Pairs, name: &str) -> Result<Value, ApiError> {
    match param(form, name) {
        None => Ok("disabled".into()),
        Some(v @ ("enabled" | "disabled")) => Ok(v.into()),
        Some(_) => Err(bad_request(
            &format!("Invalid {name}: must be one of enabled or disabled"),
            name,
        )),
    }
}

fn boolean(form: &Pairs, name: &str) -> Result<bool, ApiError> {
    match param(form, name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(bad_request(&format!("Invalid boolean: {other}"), name)),
    }
}

/// `payment_method_allow_redisplay_filters[]` (or `[0]`, `[1]`…); Stripe's default is
/// `always` only, so a card saved without the customer's consent is not shown.
fn filters(form: &Pairs) -> Result<Vec<String>, ApiError> {
    const PREFIX: &str =
        "components[payment_element][features][payment_method_allow_redisplay_filters][";
    let mut listed = Vec::new();
    for (key, value) in form {
        let Some(index) = key.strip_prefix(PREFIX).and_then(|k| k.strip_suffix(']')) else {
            continue;
        };
        if !index.bytes().all(|b| b.is_ascii_digit()) || value.is_empty() {
            continue;
        }
        if !matches!(value.as_str(), "always" | "limited" | "unspecified") {
            return Err(bad_request(
                "Invalid payment_method_allow_redisplay_filters[]: must be one of always, limited or unspecified",
                key,
            ));
        }
        if !listed.contains(value) {
            listed.push(value.clone());
        }
    }
    if listed.is_empty() {
        listed.push("always".into());
    }
    Ok(listed)
}

/// `components[payment_element][features]` as Stripe returns it, every default filled in.
fn element_features(form: &Pairs) -> Result<Value, ApiError> {
    const AT: &str = "components[payment_element][features]";
    let save_usage = match param(form, &format!("{AT}[payment_method_save_usage]")) {
        None => Value::Null,
        Some(v @ ("off_session" | "on_session")) => v.into(),
        Some(_) => {
            return Err(bad_request(
                "Invalid payment_method_save_usage: must be one of off_session or on_session",
                &format!("{AT}[payment_method_save_usage]"),
            ));
        }
    };
    let limit_param = format!("{AT}[payment_method_redisplay_limit]");
    let limit = match param(form, &limit_param).map(str::parse::<i64>) {
        None => 3,
        Some(Ok(n)) if (1..=10).contains(&n) => n,
        Some(_) => {
            return Err(bad_request(
                "payment_method_redisplay_limit must be between 1 and 10",
                &limit_param,
            ));
        }
    };
    Ok(json!({
        "payment_method_allow_redisplay_filters": filters(form)?,
        "payment_method_redisplay": toggle(form, &format!("{AT}[payment_method_redisplay]"))?,
        "payment_method_redisplay_limit": limit,
        "payment_method_remove": toggle(form, &format!("{AT}[payment_method_remove]"))?,
        "payment_method_save": toggle(form, &format!("{AT}[payment_method_save]"))?,
        "payment_method_save_usage": save_usage,
    }))
}

impl Simulator {
    /// `POST /v1/customer_sessions`: `customer` (of this account) and at least one enabled
    /// component; the Payment Element's features default as Stripe's do (all disabled, saved
    /// cards filtered to `allow_redisplay: always`).
    pub(crate) fn create_customer_session(
        &self,
        form: &Pairs,
        account: Option<&str>,
    ) -> Result<Value, ApiError> {
        let customer = param(form, "customer").ok_or_else(|| ApiError {
            status: http::StatusCode::BAD_REQUEST,
            code: Some("parameter_missing"),
            message: "Missing required param: customer.".into(),
            param: Some("customer".into()),
        })?;
        if self
            .lock()
            .objects
            .scoped("customer", customer, account)
            .is_none()
        {
            return Err(crate::payment_intents::no_such_customer(customer));
        }
        let mut components = serde_json::Map::new();
        for name in COMPONENTS {
            let enabled = boolean(form, &format!("components[{name}][enabled]"))?;
            let mut component = json!({"enabled": enabled});
            if name == "payment_element" {
                component["features"] = if enabled {
                    element_features(form)?
                } else {
                    Value::Null
                };
            }
            components.insert(name.into(), component);
        }
        if !components.values().any(|c| c["enabled"] == true) {
            return Err(ApiError {
                status: http::StatusCode::BAD_REQUEST,
                code: Some("parameter_missing"),
                message: "Missing required param: components.".into(),
                param: Some("components".into()),
            });
        }
        let now = unix_now();
        let object = json!({
            "object": "customer_session",
            "client_secret": format!("cuss_secret_{}", random_suffix(48)),
            "components": components,
            "created": now,
            "customer": customer,
            "expires_at": now + LIFETIME_SECS,
            "livemode": false,
        });
        let secret = object["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.lock().customer_sessions.insert(
            secret,
            StoredCustomerSession {
                account: account.map(str::to_string),
                object: object.clone(),
            },
        );
        Ok(object)
    }
}
