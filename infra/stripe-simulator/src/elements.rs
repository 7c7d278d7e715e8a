//! The Payment Element stand-in, `/elements/pay`: where Stripe.js would mount the element
//! with a PaymentIntent's client secret (and a customer session's, for a returning customer)
//! and confirm with a `return_url`. The page shows the amount, the customer's saved cards
//! when the customer session allows it, a new-card option, and one button per outcome
//! (`#pay`, `#pay-delayed-success`, `#pay-delayed-failure`, `#pay-decline`). Each confirms
//! and sends the customer to the `return_url` with the query Stripe adds
//! (`payment_intent`, `payment_intent_client_secret`, `redirect_status`).
//!
//! Kept simple: every outcome redirects, a decline too (Stripe.js would show the error in the
//! element instead; the return page then reads the PaymentIntent as after any failure).

use std::sync::Arc;

use checkout_core::money::{Currency, Money};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::customer_sessions::StoredCustomerSession;
use crate::pages::redirect;
use crate::payment_attempts::{Confirm, Paying};
use crate::{Answer, Simulator, unix_now};

#[derive(Serialize)]
struct CardView {
    id: String,
    brand: String,
    last4: String,
    exp_month: String,
    exp_year: String,
}

/// What the page acts on: the PaymentIntent, where to return, and what the customer session
/// (when one for the PaymentIntent's customer is given) lets the element do.
struct Element {
    account: Option<String>,
    intent: Value,
    return_url: String,
    session_secret: String,
    /// The saved cards the element shows (none without a serving customer session).
    saved: Vec<Value>,
    /// Why a customer session given was not used, for the developer.
    session_ignored: Option<&'static str>,
    can_save: bool,
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The `return_url` with Stripe's query appended (`?` or `&`), before any fragment.
fn returning(return_url: &str, intent: &Value, redirect_status: &str) -> String {
    let (base, fragment) = match return_url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (return_url, None),
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("payment_intent", intent["id"].as_str().unwrap_or_default())
        .append_pair(
            "payment_intent_client_secret",
            intent["client_secret"].as_str().unwrap_or_default(),
        )
        .append_pair("redirect_status", redirect_status)
        .finish();
    let separator = match base.rfind('?') {
        None => "?",
        Some(_) if base.ends_with('?') || base.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut url = format!("{base}{separator}{query}");
    if let Some(fragment) = fragment {
        url.push('#');
        url.push_str(fragment);
    }
    url
}

fn card_view(pm: &Value) -> CardView {
    let card = &pm["card"];
    let brand = card["display_brand"].as_str().unwrap_or("card");
    let mut letters = brand.chars();
    CardView {
        id: pm["id"].as_str().unwrap_or_default().to_string(),
        // `visa` reads `Visa`, as the element shows it.
        brand: letters
            .next()
            .map(|first| first.to_uppercase().chain(letters).collect())
            .unwrap_or_default(),
        last4: card["last4"].as_str().unwrap_or_default().to_string(),
        exp_month: card["exp_month"].to_string(),
        exp_year: card["exp_year"].to_string(),
    }
}

impl Simulator {
    /// Reads the page's parameters (the query of `GET`, the form of `POST`); a 400 page if
    /// the client secret names no PaymentIntent or the `return_url` is not an absolute URL.
    fn element(&self, pairs: &[(String, String)]) -> Result<Element, Box<Answer>> {
        let secret = field(pairs, "client_secret").unwrap_or_default();
        let Some((account, intent)) = self.element_intent_by_secret(secret) else {
            return Err(Box::new(self.message(
                StatusCode::BAD_REQUEST,
                "No such PaymentIntent",
                "The client_secret names no PaymentIntent made with POST /v1/payment_intents.",
            )));
        };
        let return_url = field(pairs, "return_url").unwrap_or_default();
        if !(return_url.starts_with("http://") || return_url.starts_with("https://")) {
            return Err(Box::new(self.message(
                StatusCode::BAD_REQUEST,
                "return_url required",
                "confirmPayment needs a return_url: an absolute http(s) URL.",
            )));
        }
        let session_secret = field(pairs, "customer_session_client_secret").unwrap_or_default();
        let state = self.lock();
        let session: Option<&StoredCustomerSession> = state.customer_sessions.get(session_secret);
        let serving =
            session.filter(|s| s.serves(account.as_deref(), &intent["customer"], unix_now()));
        let session_ignored = match (session_secret.is_empty(), session, serving) {
            (true, _, _) | (false, Some(_), Some(_)) => None,
            (false, None, _) => Some("no such customer session"),
            (false, Some(_), None) => Some(
                "the customer session is expired, is not for the PaymentIntent's customer and account, or does not enable the payment element",
            ),
        };
        let saved = serving
            .filter(|s| s.feature_enabled("payment_method_redisplay"))
            .map(|s| {
                let filters = s.redisplay_filters();
                state
                    .objects
                    .all("payment_method")
                    .into_iter()
                    .filter(|pm| {
                        pm.account == account && pm.object["customer"] == intent["customer"]
                    })
                    .filter(|pm| {
                        filters
                            .iter()
                            .any(|f| pm.object["allow_redisplay"] == f.as_str())
                    })
                    .take(s.redisplay_limit())
                    .map(|pm| pm.object.clone())
                    .collect()
            })
            .unwrap_or_default();
        let can_save = serving.is_some_and(|s| s.feature_enabled("payment_method_save"));
        drop(state);
        Ok(Element {
            account,
            intent,
            return_url: return_url.to_string(),
            session_secret: session_secret.to_string(),
            saved,
            session_ignored,
            can_save,
        })
    }

    /// `GET /elements/pay`: the element, or the PaymentIntent's state once it is paid.
    pub(crate) fn element_page(&self, query: &[(String, String)]) -> Answer {
        let element = match self.element(query) {
            Ok(element) => element,
            Err(answer) => return *answer,
        };
        let intent = &element.intent;
        let amount = intent["amount"].as_i64().unwrap_or_default();
        let currency: Option<Currency> = intent["currency"].as_str().and_then(|c| c.parse().ok());
        let amount = Money {
            amount,
            currency: currency.as_ref(),
        };
        let saved: Vec<CardView> = element.saved.iter().map(card_view).collect();
        self.render(
            StatusCode::OK,
            "elements.html",
            json!({
                "id": intent["id"],
                "account": element.account,
                "status": intent["status"],
                "amount": amount.to_string(),
                "description": intent["description"],
                "customer": intent["customer"],
                "error": intent["last_payment_error"]["message"],
                "saved": saved,
                "can_save": element.can_save && intent["customer"].is_string(),
                "session_ignored": element.session_ignored,
                "client_secret": intent["client_secret"],
                "customer_session_client_secret": element.session_secret,
                "return_url": element.return_url,
            }),
        )
    }

    /// `POST /elements/pay`: confirms with the card chosen and the outcome of the button
    /// pressed, then sends the customer to the `return_url`.
    pub(crate) fn element_confirm(self: &Arc<Self>, form: &[(String, String)]) -> Answer {
        let element = match self.element(form) {
            Ok(element) => element,
            Err(answer) => return *answer,
        };
        let outcome = match field(form, "outcome") {
            Some("succeed") => Confirm::Succeed,
            Some("delayed_success") => Confirm::DelayedSuccess,
            Some("delayed_failure") => Confirm::DelayedFailure,
            Some("decline") => Confirm::Decline,
            _ => {
                return self.message(
                    StatusCode::BAD_REQUEST,
                    "Unknown outcome",
                    "succeed, delayed_success, delayed_failure or decline",
                );
            }
        };
        let paying = match field(form, "payment_method") {
            None | Some("new") => Paying::New {
                save: element.can_save && field(form, "save").is_some(),
            },
            Some(pm) if element.saved.iter().any(|s| s["id"] == pm) => Paying::Saved(pm.into()),
            Some(pm) => {
                return self.message(
                    StatusCode::BAD_REQUEST,
                    "Card not offered",
                    &format!("{pm} is not one of the saved cards this element shows."),
                );
            }
        };
        let id = element.intent["id"].as_str().unwrap_or_default();
        match self.attempt(id, outcome, &paying) {
            Ok(attempt) => redirect(&returning(
                &element.return_url,
                &element.intent,
                attempt.redirect_status,
            )),
            Err(error) => self.message(StatusCode::BAD_REQUEST, "Refused", &error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_return_url_keeps_its_query_and_fragment() {
        let intent = json!({"id": "pi_1", "client_secret": "pi_1_secret_x"});
        let query = "payment_intent=pi_1&payment_intent_client_secret=pi_1_secret_x&redirect_status=succeeded";
        for (url, expected) in [
            (
                "http://shop.test/done",
                format!("http://shop.test/done?{query}"),
            ),
            (
                "http://shop.test/done?order=7",
                format!("http://shop.test/done?order=7&{query}"),
            ),
            (
                "http://shop.test/done?",
                format!("http://shop.test/done?{query}"),
            ),
            (
                "http://shop.test/done#top",
                format!("http://shop.test/done?{query}#top"),
            ),
        ] {
            assert_eq!(returning(url, &intent, "succeeded"), expected, "{url}");
        }
    }
}
