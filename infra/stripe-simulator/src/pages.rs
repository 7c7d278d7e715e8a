//! The pages a customer sees: the hosted checkout page at each session's URL (pay, pay with a
//! delayed method, let it expire), the recovery link of an expired session, and an index of
//! sessions for the developer (the Payment Element stand-in is in `elements`). Rendered with
//! minijinja, HTML auto-escaped.

use std::sync::Arc;

use bytes::Bytes;
use checkout_core::stripe::{
    Consent, CustomerDetails, Mode, PaymentStatus, PromotionsConsent, SessionStatus,
};
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde::Serialize;
use serde_json::Value;

use checkout_core::money::Money;

use crate::checkout_form::{self, Collected};
use crate::delivery::{Delivery, Outgoing};
use crate::sessions::{Expand, first_rate};
use crate::{Answer, Simulator, State, StoredSession, random_suffix, tax, unix_now};

pub(crate) fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("../templates/layout.html")),
        ("pay.html", include_str!("../templates/pay.html")),
        ("expired.html", include_str!("../templates/expired.html")),
        ("index.html", include_str!("../templates/index.html")),
        ("message.html", include_str!("../templates/message.html")),
        ("billing.html", include_str!("../templates/billing.html")),
        ("invoice.html", include_str!("../templates/invoice.html")),
        ("elements.html", include_str!("../templates/elements.html")),
    ] {
        env.add_template(name, source)
            .expect("simulator templates parse");
    }
    // The one stylesheet of the pages a customer sees, the bundle's own (layout.html).
    env.add_global(
        "pages_css",
        minijinja::Value::from_safe_string(checkout_core::pages::PAGES_CSS.to_string()),
    );
    env
}

#[derive(Serialize)]
struct ItemView {
    /// The line's index in `line_items` (`quantity_<index>` on the page).
    index: usize,
    name: String,
    quantity: u64,
    amount: String,
    /// The range of an adjustable quantity.
    minimum: Option<u64>,
    maximum: Option<u64>,
}

#[derive(Serialize)]
struct SessionView {
    id: String,
    account: Option<String>,
    status: &'static str,
    payment_status: &'static str,
    total: String,
    email: Option<String>,
    collects_consent: bool,
    recovery_url: Option<String>,
    recovered_from: Option<String>,
    cancel_url: Option<String>,
    /// A subscription-mode session: the page says Subscribe and offers no delayed method.
    subscription: bool,
    items: Vec<ItemView>,
}

fn view(stored: &StoredSession) -> SessionView {
    let s = &stored.session;
    let currency = s.currency.as_ref();
    SessionView {
        id: s.id.to_string(),
        account: stored.account.clone(),
        status: match s.status {
            Some(SessionStatus::Open) | None => "open",
            Some(SessionStatus::Complete) => "complete",
            Some(SessionStatus::Expired) => "expired",
        },
        payment_status: match s.payment_status {
            PaymentStatus::Paid => "paid",
            PaymentStatus::Unpaid => "unpaid",
            PaymentStatus::NoPaymentRequired => "no_payment_required",
        },
        total: Money {
            amount: s.amount_total.unwrap_or_default(),
            currency,
        }
        .to_string(),
        email: s
            .customer_details
            .as_ref()
            .and_then(|d| d.email.clone())
            .or_else(|| s.customer_email.clone()),
        collects_consent: stored.collects_consent,
        recovery_url: s
            .after_expiration
            .as_ref()
            .and_then(|a| a.recovery.as_ref())
            .and_then(|r| r.url.clone()),
        recovered_from: s.recovered_from.as_ref().map(ToString::to_string),
        cancel_url: stored.cancel_url.clone(),
        subscription: s.mode == Mode::Subscription,
        items: stored
            .items
            .iter()
            .enumerate()
            .map(|(index, i)| {
                let range = stored.options.adjustable.get(index).copied().flatten();
                ItemView {
                    index,
                    name: i.description.clone().unwrap_or_default(),
                    quantity: i.quantity.unwrap_or(1),
                    amount: Money::new(i.amount_total, &i.currency).to_string(),
                    minimum: range.map(|r| r.minimum),
                    maximum: range.map(|r| r.maximum),
                }
            })
            .collect(),
    }
}

fn html(status: StatusCode, body: String) -> Answer {
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

pub(crate) fn redirect(location: &str) -> Answer {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Where the customer lands after paying: the success URL (hosted) or return URL (embedded)
/// with `{CHECKOUT_SESSION_ID}` filled in, as Stripe does.
fn landing(stored: &StoredSession) -> Option<String> {
    let template = stored.success_url.as_ref().or(stored.return_url.as_ref())?;
    Some(template.replace("{CHECKOUT_SESSION_ID}", stored.session.id.as_str()))
}

impl Simulator {
    pub(crate) fn render(&self, status: StatusCode, name: &str, context: Value) -> Answer {
        match self
            .pages
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(context))))
        {
            Ok(body) => html(status, body),
            Err(err) => html(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("template error: {err}").replace('<', "&lt;"),
            ),
        }
    }

    pub(crate) fn message(&self, status: StatusCode, title: &str, text: &str) -> Answer {
        self.render(
            status,
            "message.html",
            serde_json::json!({"title": title, "text": text}),
        )
    }

    pub(crate) fn page(self: &Arc<Self>, request: &http::Request<Bytes>) -> Answer {
        let segments: Vec<&str> = request.uri().path().trim_matches('/').split('/').collect();
        let query: Vec<(String, String)> =
            form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let form: Vec<(String, String)> = form_urlencoded::parse(request.body())
            .into_owned()
            .collect();
        match (request.method(), segments.as_slice()) {
            (&Method::GET, [""]) => {
                let sessions: Vec<SessionView> =
                    self.lock().sessions.values().rev().map(view).collect();
                self.render(
                    StatusCode::OK,
                    "index.html",
                    serde_json::json!({"sessions": sessions}),
                )
            }
            (&Method::GET, ["c", "pay", id]) => match self.stored(id) {
                None => self.message(StatusCode::NOT_FOUND, "Not found", "No such session."),
                Some(stored) => self.pay_page(StatusCode::OK, &stored, None, &[], None),
            },
            (&Method::POST, ["c", "pay", id]) => self.act(id, &form, None),
            (&Method::POST, ["c", "pay", id, "settle"]) => self.settle(id, &form),
            (&Method::GET, ["r", id]) => self.recover(id),
            (&Method::GET, ["dev", "billing"]) => self.billing_page(&query),
            (&Method::POST, ["dev", "billing"]) => self.billing_action(&form),
            (&Method::GET, ["i", id]) => self.invoice_page(id),
            (&Method::POST, ["i", id]) => self.invoice_pay(id),
            (&Method::GET, ["elements", "checkout"]) => self.custom_checkout_page(&query),
            (&Method::POST, ["elements", "checkout"]) => self.custom_checkout_act(&form),
            (&Method::GET, ["elements", "pay"]) => self.element_page(&query),
            (&Method::POST, ["elements", "pay"]) => self.element_confirm(&form),
            _ => self.message(StatusCode::NOT_FOUND, "Not found", "No such page."),
        }
    }

    pub(crate) fn stored(&self, id: &str) -> Option<StoredSession> {
        self.lock().sessions.get(id).cloned()
    }

    /// The payment form of a session (its state once closed): the hosted page's, and the
    /// custom checkout's (`client_secret` given: it posts to `/elements/checkout`). `values`
    /// refill the form after `error`.
    pub(crate) fn pay_page(
        &self,
        status: StatusCode,
        stored: &StoredSession,
        client_secret: Option<&str>,
        values: &[(String, String)],
        error: Option<&str>,
    ) -> Answer {
        if stored.session.status == Some(SessionStatus::Expired) {
            return self.render(
                status,
                "expired.html",
                serde_json::json!({"session": view(stored)}),
            );
        }
        let action = match client_secret {
            Some(_) => "/elements/checkout".to_string(),
            None => format!("/c/pay/{}", stored.session.id),
        };
        let values: std::collections::BTreeMap<&str, &str> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.render(
            status,
            "pay.html",
            serde_json::json!({
                "session": view(stored),
                "form": checkout_form::view(stored, &self.config),
                "action": action,
                "client_secret": client_secret,
                "values": values,
                "error": error,
            }),
        )
    }

    /// Pay, pay with a delayed method, or let the session expire. `client_secret`: the form
    /// came from the custom checkout page, where an error shows it again.
    pub(crate) fn act(
        self: &Arc<Self>,
        id: &str,
        form: &[(String, String)],
        client_secret: Option<&str>,
    ) -> Answer {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let checked = |name: &str| field(name).is_some_and(|v| v == "on");
        let delivery = Delivery {
            duplicate: checked("duplicate"),
            out_of_order: checked("out_of_order"),
            withhold: checked("withhold"),
        };
        let action = field("action").unwrap_or_default();
        let email = field("email");
        let paying = action == "pay" || action == "pay-delayed";
        if action == "pay-delayed"
            && self
                .stored(id)
                .is_some_and(|s| s.session.mode == Mode::Subscription)
        {
            return self.message(
                StatusCode::BAD_REQUEST,
                "Not offered",
                "The simulator's delayed payment methods are for payment-mode sessions.",
            );
        }
        // What the session asks beyond the email, checked before anything changes; a
        // refusal shows the form again with what was entered.
        let mut collected: Option<Collected> = None;
        if let Some(current) = self
            .stored(id)
            .filter(|s| paying && s.session.status == Some(SessionStatus::Open))
        {
            let checked = if email.as_deref().is_some_and(|e| e.contains('@')) {
                checkout_form::collect(&current, form, &self.config)
            } else {
                Err("Enter an email address to pay.".to_string())
            };
            match checked {
                Ok(c) => collected = Some(c),
                Err(why) => {
                    return self.pay_page(
                        StatusCode::BAD_REQUEST,
                        &current,
                        client_secret,
                        form,
                        Some(&why),
                    );
                }
            }
        }
        if action != "expire" && !email.as_deref().is_some_and(|e| e.contains('@')) {
            return self.message(
                StatusCode::BAD_REQUEST,
                "Email required",
                "Enter an email address to pay.",
            );
        }
        let now = unix_now();
        let mut state = self.lock();
        let State {
            sessions, objects, ..
        } = &mut *state;
        let Some(stored) = sessions.get_mut(id) else {
            return self.message(StatusCode::NOT_FOUND, "Not found", "No such session.");
        };
        if stored.session.status != Some(SessionStatus::Open) {
            return self.message(
                StatusCode::CONFLICT,
                "Session closed",
                "This session is no longer open.",
            );
        }
        stored.withhold_webhooks = delivery.withhold;
        let session = &mut stored.session;
        session.customer_details = Some(CustomerDetails {
            email,
            name: field("name"),
            ..CustomerDetails::default()
        });
        if stored.collects_consent {
            session.consent = Some(Consent {
                promotions: Some(if checked("consent") {
                    PromotionsConsent::OptIn
                } else {
                    PromotionsConsent::OptOut
                }),
                terms_of_service: None,
            });
        }
        let mut events: Vec<Outgoing> = Vec::new();
        match action.as_str() {
            "pay" | "pay-delayed" => {
                if let Some(collected) = collected {
                    checkout_form::apply(stored, collected, &self.config);
                }
                let session = &mut stored.session;
                session.status = Some(SessionStatus::Complete);
                if session.mode == Mode::Payment {
                    session.payment_intent = format!("pi_{}", random_suffix(24)).parse().ok();
                }
                session.payment_status = if action == "pay" {
                    PaymentStatus::Paid
                } else {
                    PaymentStatus::Unpaid
                };
                match stored.session.mode {
                    // Stripe's order: the subscription and its first invoice's payment, then
                    // the session, which now names the subscription and the customer.
                    Mode::Subscription => events.extend(self.subscribe(objects, stored, now)),
                    _ if action == "pay" => self.charge_session(objects, stored, now),
                    _ => {}
                }
                events.push(
                    (
                        "checkout.session.completed",
                        self.session_json(stored, Expand::NONE),
                    )
                        .into(),
                );
                if action == "pay-delayed" {
                    match field("delayed_outcome").as_deref() {
                        Some("succeeded") => {
                            stored.session.payment_status = PaymentStatus::Paid;
                            self.charge_session(objects, stored, now);
                            events.push(
                                (
                                    "checkout.session.async_payment_succeeded",
                                    self.session_json(stored, Expand::NONE),
                                )
                                    .into(),
                            );
                        }
                        Some("failed") => events.push(
                            (
                                "checkout.session.async_payment_failed",
                                self.session_json(stored, Expand::NONE),
                            )
                                .into(),
                        ),
                        _ => {}
                    }
                }
            }
            "expire" => events.push(self.expire(stored, now)),
            _ => {
                return self.message(
                    StatusCode::BAD_REQUEST,
                    "Unknown action",
                    "Choose pay, pay with a delayed method, or let it expire.",
                );
            }
        }
        let stored = stored.clone();
        drop(state);
        self.send_events(stored.account.as_deref(), events, delivery);
        if action == "expire" {
            return self.render(
                StatusCode::OK,
                "expired.html",
                serde_json::json!({"session": view(&stored)}),
            );
        }
        match landing(&stored) {
            Some(url) => redirect(&url),
            None => self.message(StatusCode::OK, "Paid", "Payment complete."),
        }
    }

    /// Ends a delayed payment: `async_payment_succeeded` or `async_payment_failed`, withheld
    /// like the payment's own events if "Don't send webhooks" was checked when paying.
    fn settle(self: &Arc<Self>, id: &str, form: &[(String, String)]) -> Answer {
        let outcome = form
            .iter()
            .find(|(k, _)| k == "outcome")
            .map(|(_, v)| v.as_str());
        let mut state = self.lock();
        let State {
            sessions, objects, ..
        } = &mut *state;
        let Some(stored) = sessions.get_mut(id) else {
            return self.message(StatusCode::NOT_FOUND, "Not found", "No such session.");
        };
        let pending = stored.session.status == Some(SessionStatus::Complete)
            && stored.session.payment_status == PaymentStatus::Unpaid;
        if !pending {
            return self.message(
                StatusCode::CONFLICT,
                "Nothing to settle",
                "This session has no delayed payment pending.",
            );
        }
        let kind = match outcome {
            Some("succeeded") => {
                stored.session.payment_status = PaymentStatus::Paid;
                self.charge_session(objects, stored, unix_now());
                "checkout.session.async_payment_succeeded"
            }
            Some("failed") => "checkout.session.async_payment_failed",
            _ => {
                return self.message(
                    StatusCode::BAD_REQUEST,
                    "Unknown outcome",
                    "succeeded or failed",
                );
            }
        };
        let event = (kind, self.session_json(stored, Expand::NONE)).into();
        let stored = stored.clone();
        drop(state);
        let delivery = Delivery {
            withhold: stored.withhold_webhooks,
            ..Delivery::default()
        };
        self.send_events(stored.account.as_deref(), vec![event], delivery);
        match landing(&stored) {
            Some(url) => redirect(&url),
            None => self.message(StatusCode::OK, "Settled", kind),
        }
    }

    /// The recovery URL of an expired session: a new session with the same cart, its
    /// `recovered_from` pointing at the expired one, as Stripe's recovery links do.
    fn recover(&self, id: &str) -> Answer {
        let now = unix_now();
        let mut state = self.lock();
        let Some(original) = state.sessions.get(id).cloned() else {
            return self.message(StatusCode::NOT_FOUND, "Not found", "No such session.");
        };
        let link_expiry = original
            .session
            .after_expiration
            .as_ref()
            .and_then(|a| a.recovery.as_ref())
            .and_then(|r| r.url.as_ref().and(r.expires_at));
        if original.session.status != Some(SessionStatus::Expired)
            || link_expiry.is_none_or(|t| t <= now)
        {
            return self.message(
                StatusCode::GONE,
                "Link expired",
                "This recovery link is no longer valid.",
            );
        }
        let new_id = format!("cs_test_{}", random_suffix(40));
        let mut recovered = original.clone();
        let session = &mut recovered.session;
        session.id = new_id.parse().expect("cs_ id");
        session.url = Some(format!("{}/c/pay/{new_id}", self.config.public_url));
        session.created = Some(now);
        session.expires_at = now + 86_400;
        session.status = Some(SessionStatus::Open);
        session.payment_status = PaymentStatus::Unpaid;
        session.payment_intent = None;
        session.customer_email = original
            .session
            .customer_details
            .as_ref()
            .and_then(|d| d.email.clone());
        session.customer_details = None;
        session.consent = None;
        session.collected_information = None;
        session.shipping_cost = first_rate(&recovered.options);
        session.recovered_from = Some(original.session.id);
        if let Some(recovery) = session
            .after_expiration
            .as_mut()
            .and_then(|a| a.recovery.as_mut())
        {
            recovery.url = None;
            recovery.expires_at = None;
        }
        for item in &mut recovered.items {
            item.id = format!("li_{}", random_suffix(24));
        }
        recovered.withhold_webhooks = false;
        for field in &mut recovered.options.custom_fields {
            field.value = None;
        }
        tax::recompute(&mut recovered, &self.config);
        let url = recovered.session.url.clone().unwrap_or_default();
        state.sessions.insert(new_id, recovered);
        redirect(&url)
    }
}
