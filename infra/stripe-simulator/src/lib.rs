//! A stateful stand-in for the parts of Stripe the bundle uses, so `make dev` and the
//! end-to-end tests run the whole flow offline: the API calls the bundle's Stripe client makes
//! (sessions, line items, prices, PaymentIntents, promotion codes, events), a hosted checkout
//! page where a person pays, pays with a delayed method or lets the session expire, and the
//! signed webhooks Stripe would send for each of those.
//!
//! Dev and test only: it depends on the bundle's crate (to answer in the very types the
//! client parses), never the reverse, so no Lambda binary can contain it.
//!
//! Fidelity where the bundle's correctness depends on it: a bearer key is required,
//! `Stripe-Account` scopes every object to its account, `Idempotency-Key` replays the first
//! answer for the same parameters and refuses different ones, lists page with `limit` and
//! `starting_after`, and `GET /v1/events` filters by `type` (with a `group.*` wildcard),
//! `types[]` and `created` bounds before paging. Everything else is kept simple and says so.
//!
//! Sessions take the Checkout options Stripe takes at the pinned version (shipping address
//! and rates, phone, billing address, tax ids, automatic tax, custom texts and fields, terms
//! of service, invoices, submit type, saving the card, adjustable quantities, optional items)
//! and refuse any other parameter (`session_options`); the hosted page collects what they ask
//! and paying fills the session as Stripe does, taxes and shipping in its totals
//! (`checkout_form`, `tax`). `POST …/expire` expires a session, and `ui_mode=custom` sessions
//! pay on a stand-in for Stripe.js's custom checkout (`custom_checkout`).
//!
//! The Payment Element flow for existing customers is here too: `POST /v1/payment_intents`
//! and `POST /v1/customer_sessions` for a returning customer (one, [`DEMO_CUSTOMER`], exists
//! from the start with a saved card), and a stand-in for the element (`/elements/pay`) that
//! pays at once, with a delayed method that settles either way, or is declined, then returns
//! to the `return_url` as Stripe.js does.
//!
//! Billing follows Stripe's shapes at the pinned version: a subscription-mode session, once
//! paid, leaves a customer, a subscription, its first invoice, the invoice's PaymentIntent and
//! charge; a payment-mode session leaves a charge. The developer's page (`/dev/billing`, and
//! the same actions as methods here) then renews, fails or cancels subscriptions and refunds
//! or disputes charges, sending the events Stripe would.

// `json!` of a whole Stripe object (every fixture key) nests deeper than the default allows.
#![recursion_limit = "256"]

mod api;
mod billing;
mod charges;
mod checkout_form;
mod custom_checkout;
mod custom_fields;
mod customer_sessions;
mod customers;
mod delivery;
mod dev;
mod disputes;
mod elements;
mod invoices;
mod objects;
mod pages;
mod params;
mod payment_attempts;
mod payment_intents;
mod session_options;
mod sessions;
mod shipping;
mod subscriptions;
mod tax;
#[cfg(test)]
mod tests;

pub use customers::{DEMO_CUSTOMER, DEMO_PAYMENT_METHOD};
pub use objects::DevError;
pub use payment_attempts::{Confirm, SETTLE_AFTER};
pub use shipping::{CatalogShippingRate, demo_shipping_rates};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use checkout_core::clock::Clock;
use checkout_core::config::Secret;
use checkout_core::money::Currency;
use checkout_core::stripe::{CheckoutSession, LineItem};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// An answer before it is framed for hyper.
type Answer = Response<Bytes>;

/// The API key the simulator takes in `make dev` (the local stack and `make ops` both use it).
/// Fixed, so the operator's CLI reaches the running simulator; it only listens on loopback.
pub const DEV_API_KEY: &str = "sk_test_simulator_local";

/// What Stripe refuses above (its API caps request bodies well below this).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// One price of the simulated account's catalog.
#[derive(Debug, Clone)]
pub struct CatalogPrice {
    pub price: String,
    pub product: String,
    pub name: String,
    pub unit_amount: i64,
    pub currency: Currency,
    /// The billing interval of a recurring price (`"month"`), `None` for a one-time price.
    pub recurring: Option<&'static str>,
}

/// When the catalog's prices were made: a fixed time, so answers are the same run to run.
const CATALOG_CREATED: i64 = 1_735_689_600;

impl CatalogPrice {
    /// The price as Stripe returns it (`GET /v1/prices/{id}`, line items, subscription items).
    pub(crate) fn json(&self) -> Value {
        serde_json::json!({
            "id": self.price,
            "object": "price",
            "active": true,
            "billing_scheme": "per_unit",
            "created": CATALOG_CREATED,
            "currency": self.currency,
            "custom_unit_amount": null,
            "livemode": false,
            "lookup_key": null,
            "metadata": {},
            "nickname": null,
            "product": self.product,
            "recurring": self.recurring.map(|interval| serde_json::json!({
                "interval": interval,
                "interval_count": 1,
                "meter": null,
                "trial_period_days": null,
                "usage_type": "licensed",
            })),
            "tax_behavior": "unspecified",
            "tiers_mode": null,
            "transform_quantity": null,
            "type": self.kind(),
            "unit_amount": self.unit_amount,
            "unit_amount_decimal": self.unit_amount.to_string(),
        })
    }

    /// Stripe's `type`: `recurring` or `one_time`.
    pub(crate) fn kind(&self) -> &'static str {
        if self.recurring.is_some() {
            "recurring"
        } else {
            "one_time"
        }
    }
}

/// The demo shop's catalog: what the storefront sells in `make dev`.
#[must_use]
pub fn demo_catalog() -> Vec<CatalogPrice> {
    [
        ("price_mug", "prod_mug", "Mug", 1500, None),
        ("price_tea", "prod_tea", "Tea box", 2500, None),
        ("price_poster", "prod_poster", "Poster", 1200, None),
        ("price_plan", "prod_plan", "Pro plan", 900, Some("month")),
    ]
    .into_iter()
    .map(|(price, product, name, amount, recurring)| CatalogPrice {
        price: price.into(),
        product: product.into(),
        name: name.into(),
        unit_amount: amount,
        currency: "eur".parse().expect("a currency code"),
        recurring,
    })
    .collect()
}

#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// The bearer key callers must present (`STRIPE_SECRET_KEY` of the bundle).
    pub api_key: Secret,
    /// Where the simulator is reached, for session and recovery URLs.
    pub public_url: String,
    /// The bundle's webhook route.
    pub webhook_url: String,
    /// The endpoint secret events are signed with (`STRIPE_WEBHOOK_SECRET` of the bundle).
    pub webhook_secret: Secret,
    pub catalog: Vec<CatalogPrice>,
    /// The shipping rates sessions may offer (`shipping_options[N][shipping_rate]`).
    pub shipping_rates: Vec<CatalogShippingRate>,
}

/// A session as the simulator keeps it: the object in the client's own type, plus what
/// Stripe keeps but does not return in the fields the bundle reads.
#[derive(Debug, Clone)]
struct StoredSession {
    account: Option<String>,
    session: CheckoutSession,
    items: Vec<LineItem>,
    success_url: Option<String>,
    cancel_url: Option<String>,
    return_url: Option<String>,
    collects_consent: bool,
    /// The Checkout options beyond the cart, as created (and, once paid, what was collected
    /// for the custom fields).
    options: session_options::SessionOptions,
    /// The hosted page's "Don't send webhooks" choice, kept for settling a delayed payment.
    withhold_webhooks: bool,
    /// `payment_intent_data[application_fee_amount]` (a Connect sale), for its PaymentIntent.
    application_fee_amount: Option<i64>,
    /// `subscription_data[application_fee_percent]`, for its subscription.
    application_fee_percent: Option<f64>,
    /// A paid subscription-mode session's first invoice (`invoice` on Stripe's session).
    invoice: Option<String>,
}

/// An idempotency key's record: the request's parameters and, once it succeeded, its answer
/// (`None` while the first request runs).
#[derive(Debug, Clone)]
struct Replay {
    fingerprint: String,
    answer: Option<(StatusCode, Bytes)>,
}

#[derive(Default)]
struct State {
    sessions: BTreeMap<String, StoredSession>,
    promotion_codes: Vec<(Option<String>, Value)>,
    idempotency: HashMap<(Option<String>, String), Replay>,
    events: Vec<(Option<String>, Value)>,
    /// Customers, subscriptions, invoices and the payments behind them, by id.
    objects: objects::Objects,
    /// The PaymentIntents made with `POST /v1/payment_intents`: the only ones the Payment
    /// Element stand-in confirms (an invoice's is paid through its invoice).
    element_intents: BTreeSet<String>,
    /// Customer sessions, by client secret (they have no id).
    customer_sessions: HashMap<String, customer_sessions::StoredCustomerSession>,
    /// The processing payment attempt of a PaymentIntent, by its id, until it settles.
    pending_attempts: HashMap<String, payment_attempts::Pending>,
}

pub struct Simulator {
    config: SimulatorConfig,
    state: Mutex<State>,
    pages: minijinja::Environment<'static>,
    delivery: delivery::Client,
}

impl Simulator {
    /// A simulator holding the demo returning customer ([`DEMO_CUSTOMER`]) and their saved
    /// card, and nothing else yet.
    #[must_use]
    pub fn new(config: SimulatorConfig) -> Arc<Self> {
        let mut state = State::default();
        customers::seed(&mut state.objects);
        Arc::new(Self {
            config,
            state: Mutex::new(state),
            pages: pages::environment(),
            delivery: delivery::client(),
        })
    }

    pub fn config(&self) -> &SimulatorConfig {
        &self.config
    }

    /// Serves until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let simulator = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let simulator = simulator.clone();
                    async move { Ok::<_, Infallible>(simulator.answer(request).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn answer(self: Arc<Self>, request: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let Ok(body) = Limited::new(body, MAX_BODY_BYTES).collect().await else {
            return stripe_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                None,
                "request too large",
                None,
            )
            .map(Full::new);
        };
        let request = http::Request::from_parts(parts, body.to_bytes());
        let path = request.uri().path().to_string();
        let response = if path.starts_with("/v1/") {
            self.api(&request)
        } else {
            self.page(&request)
        };
        tracing::debug!(method = %request.method(), path, status = response.status().as_u16(), "stripe simulator");
        response.map(Full::new)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A Stripe-shaped error: `{"error": {"type", "code", "message", "param"}}`.
fn stripe_error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Answer {
    let mut error = serde_json::json!({"type": kind, "message": message});
    if let Some(code) = code {
        error["code"] = code.into();
    }
    if let Some(param) = param {
        error["param"] = param.into();
    }
    json(status, &serde_json::json!({ "error": error }))
}

fn json(status: StatusCode, value: &Value) -> Answer {
    let mut response = Response::new(Bytes::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn random_suffix(len: usize) -> String {
    (0..len).map(|_| fastrand::alphanumeric()).collect()
}

fn unix_now() -> i64 {
    Clock::system().now()
}
