//! `POST /v1/payment_intents`, as the Payment Element flow for existing customers makes them:
//! an amount, a currency, optionally the customer (whose saved cards the element may show),
//! and what Stripe takes with them. Unlike the simulator's other routes this one refuses any
//! parameter it does not model, as Stripe refuses unknown ones, so a call that relies on
//! something the simulator would silently ignore fails here instead of in production.
//!
//! The PaymentIntent is kept with the billing objects (account-scoped, `GET
//! /v1/payment_intents/{id}` answers it); its payment attempts are in `payment_attempts`.

use std::collections::BTreeMap;

use checkout_core::money::Currency;
use http::StatusCode;
use serde_json::{Value, json};

use crate::api::{ApiError, Pairs, bad_request, invalid_integer, param};
use crate::charges::{Intent, payment_intent_json};
use crate::{Simulator, random_suffix, unix_now};

/// The parameters modelled, without brackets; `metadata` and `expand` take any key.
const KNOWN: [&str; 7] = [
    "amount",
    "currency",
    "customer",
    "description",
    "receipt_email",
    "setup_future_usage",
    "application_fee_amount",
];
const AUTOMATIC: [&str; 2] = [
    "automatic_payment_methods[enabled]",
    "automatic_payment_methods[allow_redirects]",
];

/// The `expand[]` values taken: fields that are null on a new PaymentIntent.
const EXPANDABLE: [&str; 2] = ["latest_charge", "payment_method"];

/// Stripe's metadata limits.
const METADATA_KEYS: usize = 50;
const METADATA_KEY_CHARS: usize = 40;
const METADATA_VALUE_CHARS: usize = 500;

/// `resource_missing` on the `customer` parameter (a 400, unlike a missing path object).
pub(crate) fn no_such_customer(id: &str) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: Some("resource_missing"),
        message: format!("No such customer: '{id}'"),
        param: Some("customer".into()),
    }
}

fn required(name: &str) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: Some("parameter_missing"),
        message: format!("Missing required param: {name}."),
        param: Some(name.into()),
    }
}

/// The first parameter the route does not take: `Received unknown parameter: x`, naming the
/// top-level parameter when that is what is unknown, the full key under a known hash.
fn unknown_parameter(form: &Pairs) -> Option<ApiError> {
    let unknown = form.iter().find_map(|(key, _)| {
        let top = key.split('[').next().unwrap_or_default();
        let known = match top {
            "metadata" => key == "metadata" || key.ends_with(']'),
            "expand" => key.ends_with(']'),
            "automatic_payment_methods" => AUTOMATIC.contains(&key.as_str()),
            _ => KNOWN.contains(&key.as_str()),
        };
        let named = if KNOWN.contains(&top) || top == "automatic_payment_methods" {
            key.as_str()
        } else {
            top
        };
        (!known).then(|| named.to_string())
    })?;
    Some(ApiError {
        status: StatusCode::BAD_REQUEST,
        code: Some("parameter_unknown"),
        message: format!("Received unknown parameter: {unknown}"),
        param: Some(unknown),
    })
}

/// `metadata[k]=v` within Stripe's limits; an empty value unsets the key, as on Stripe.
fn metadata(form: &Pairs) -> Result<BTreeMap<String, String>, ApiError> {
    let metadata: BTreeMap<String, String> = form
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((key.to_string(), v.clone()))
        })
        .collect();
    let invalid = |message: String| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: None,
        message,
        param: Some("metadata".into()),
    };
    if metadata.len() > METADATA_KEYS {
        return Err(invalid(format!(
            "Metadata can have up to {METADATA_KEYS} keys, but you've set {}.",
            metadata.len()
        )));
    }
    for (key, value) in &metadata {
        if key.chars().count() > METADATA_KEY_CHARS {
            return Err(invalid(format!(
                "Invalid key: {key} must be a string under {METADATA_KEY_CHARS} characters"
            )));
        }
        if value.chars().count() > METADATA_VALUE_CHARS {
            return Err(invalid(format!(
                "Invalid val: {value} must be a string under {METADATA_VALUE_CHARS} characters"
            )));
        }
    }
    Ok(metadata)
}

/// `automatic_payment_methods`: enabled unless refused (the default since 2023-08-16, so at
/// the pinned version); without it, Stripe falls back to cards only.
fn automatic_payment_methods(form: &Pairs) -> Result<Value, ApiError> {
    let enabled = match param(form, AUTOMATIC[0]) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(bad_request(
                &format!("Invalid boolean: {other}"),
                AUTOMATIC[0],
            ));
        }
    };
    let allow_redirects = match param(form, AUTOMATIC[1]) {
        None => "always",
        Some(v @ ("always" | "never")) => v,
        Some(_) => {
            return Err(bad_request(
                "Invalid allow_redirects: must be one of always or never",
                AUTOMATIC[1],
            ));
        }
    };
    Ok(if enabled {
        json!({"enabled": true, "allow_redirects": allow_redirects})
    } else {
        Value::Null
    })
}

/// A non-negative integer parameter; `minimum` is what Stripe's message names.
fn integer(form: &Pairs, name: &str, minimum: i64) -> Result<Option<i64>, ApiError> {
    let Some(raw) = param(form, name) else {
        return Ok(None);
    };
    let n: i64 = raw.parse().map_err(|_| invalid_integer(name, raw))?;
    if n < minimum {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: Some("parameter_invalid_integer"),
            message: format!("This value must be greater than or equal to {minimum}."),
            param: Some(name.into()),
        });
    }
    Ok(Some(n))
}

impl Simulator {
    /// `POST /v1/payment_intents`: a PaymentIntent `requires_payment_method`, its
    /// `client_secret` for the Payment Element.
    pub(crate) fn create_payment_intent(
        &self,
        form: &Pairs,
        account: Option<&str>,
    ) -> Result<Value, ApiError> {
        if let Some(unknown) = unknown_parameter(form) {
            return Err(unknown);
        }
        let amount = integer(form, "amount", 1)?.ok_or_else(|| required("amount"))?;
        let currency: Currency = match param(form, "currency") {
            None => return Err(required("currency")),
            Some(raw) => raw.parse().map_err(|_| ApiError {
                status: StatusCode::BAD_REQUEST,
                code: None,
                message: format!("Invalid currency: {}.", raw.to_ascii_lowercase()),
                param: Some("currency".into()),
            })?,
        };
        let customer = param(form, "customer");
        if let Some(id) = customer
            && self
                .lock()
                .objects
                .scoped("customer", id, account)
                .is_none()
        {
            return Err(no_such_customer(id));
        }
        let application_fee_amount = integer(form, "application_fee_amount", 0)?;
        if application_fee_amount.is_some() && account.is_none() {
            return Err(bad_request(
                "Can only apply an application_fee_amount when the PaymentIntent is attempting a direct payment (using an OAuth key or Stripe-Account header) or destination payment (using `transfer_data[destination]`).",
                "application_fee_amount",
            ));
        }
        let setup_future_usage = match param(form, "setup_future_usage") {
            None => None,
            Some(v @ ("off_session" | "on_session")) => Some(v),
            Some(_) => {
                return Err(bad_request(
                    "Invalid setup_future_usage: must be one of off_session or on_session",
                    "setup_future_usage",
                ));
            }
        };
        let receipt_email = param(form, "receipt_email");
        if let Some(email) = receipt_email.filter(|e| !e.contains('@')) {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                code: Some("email_invalid"),
                message: format!("Invalid email address: {email}"),
                param: Some("receipt_email".into()),
            });
        }
        // What a new PaymentIntent could expand is null until it is paid: nothing to do.
        if let Some((key, value)) = form.iter().find(|(k, v)| {
            k.starts_with("expand[") && !v.is_empty() && !EXPANDABLE.contains(&v.as_str())
        }) {
            return Err(bad_request(
                &format!("The simulator does not expand {value} on a new PaymentIntent"),
                key,
            ));
        }
        let metadata = metadata(form)?;
        let automatic = automatic_payment_methods(form)?;
        let id = format!("pi_{}", random_suffix(24));
        let mut intent = payment_intent_json(&Intent {
            id: &id,
            amount,
            currency: &json!(currency),
            customer: &json!(customer),
            status: "requires_payment_method",
            created: unix_now(),
            description: param(form, "description"),
            application_fee_amount,
        });
        intent["automatic_payment_methods"] = automatic;
        intent["metadata"] = json!(metadata);
        intent["setup_future_usage"] = json!(setup_future_usage);
        intent["receipt_email"] = json!(receipt_email);
        let mut state = self.lock();
        state.objects.insert(account, intent.clone());
        state.element_intents.insert(id);
        Ok(intent)
    }

    /// A PaymentIntent made with `POST /v1/payment_intents`, found by its client secret (as
    /// the Payment Element finds it), whatever its account.
    #[must_use]
    pub fn payment_intent_by_secret(&self, secret: &str) -> Option<Value> {
        self.element_intent_by_secret(secret)
            .map(|(_, intent)| intent)
    }

    /// The PaymentIntent of that client secret and its account.
    pub(crate) fn element_intent_by_secret(&self, secret: &str) -> Option<(Option<String>, Value)> {
        if secret.is_empty() {
            return None;
        }
        let state = self.lock();
        let owned = state
            .objects
            .find("payment_intent", "client_secret", secret)?;
        let id = owned.object["id"].as_str().unwrap_or_default();
        state
            .element_intents
            .contains(id)
            .then(|| (owned.account.clone(), owned.object.clone()))
    }
}
