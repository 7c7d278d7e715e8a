//! The stand-in for Stripe.js's custom checkout (Checkout Sessions with Elements, a session
//! of `ui_mode=custom`): `GET /elements/checkout?client_secret=…` renders the hosted page's
//! payment form for the session whose client secret it is, and its `POST` (the same fields,
//! the client secret among them) pays as the hosted page does, then sends the customer to
//! the session's `return_url` with `{CHECKOUT_SESSION_ID}` filled in, as `checkout.confirm()`
//! does.

use std::sync::Arc;

use checkout_core::stripe::UiMode;
use http::StatusCode;

use crate::{Answer, Simulator, StoredSession};

impl Simulator {
    /// The custom-mode session of a client secret, or the page saying why there is none.
    fn custom_session(&self, pairs: &[(String, String)]) -> Result<StoredSession, Box<Answer>> {
        let secret = pairs
            .iter()
            .find(|(k, _)| k == "client_secret")
            .map(|(_, v)| v.trim())
            .unwrap_or_default();
        self.lock()
            .sessions
            .values()
            .find(|s| {
                s.session.ui_mode == Some(UiMode::Custom)
                    && !secret.is_empty()
                    && s.session.client_secret.as_deref() == Some(secret)
            })
            .cloned()
            .ok_or_else(|| {
                Box::new(self.message(
                    StatusCode::BAD_REQUEST,
                    "No such Checkout Session",
                    "The client_secret names no Checkout Session of ui_mode=custom.",
                ))
            })
    }

    /// `GET /elements/checkout`: the payment form, or the session's state once it is closed.
    pub(crate) fn custom_checkout_page(&self, query: &[(String, String)]) -> Answer {
        match self.custom_session(query) {
            Ok(stored) => {
                let secret = stored.session.client_secret.clone();
                self.pay_page(StatusCode::OK, &stored, secret.as_deref(), &[], None)
            }
            Err(answer) => *answer,
        }
    }

    /// `POST /elements/checkout`: what the hosted page's form does.
    pub(crate) fn custom_checkout_act(self: &Arc<Self>, form: &[(String, String)]) -> Answer {
        match self.custom_session(form) {
            Ok(stored) => {
                let secret = stored.session.client_secret.clone();
                self.act(stored.session.id.as_str(), form, secret.as_deref())
            }
            Err(answer) => *answer,
        }
    }
}
