//! A small typed Stripe API client over the bundle's one HTTP stack (hyper + rustls/ring).
//!
//! Hand-written rather than async-stripe: the bundle makes a handful of calls, and async-stripe's
//! generated API takes minutes to compile on 2 cores and grows every Lambda binary; its
//! webhook helper is not needed (we verify every `v1` ourselves). What the client guarantees:
//! `Stripe-Version` pinned, `Stripe-Account` for Connect, one `Idempotency-Key` per logical
//! POST kept across retries, and retries with exponential backoff and full jitter on network
//! errors, 409, 429 and 5xx, honouring `Stripe-Should-Retry`, never on other 4xx.

mod billing;
mod config;
mod error;
mod event;
mod form;
mod idempotency;
mod session_details;
mod transport;
mod types;

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

pub use billing::{
    BillingReason, Charge, Customer, Dispute, DisputeStatus, Invoice, InvoiceLine, InvoiceParent,
    Period, Subscription, SubscriptionDetails, SubscriptionItem, SubscriptionStatus,
};
pub use config::{StripeConfig, StripeMode};
pub use error::{ErrorKind, StripeError};
pub use event::{Event, EventData, EventError, EventType, ObjectRef};
pub use form::Form;
pub use idempotency::IdempotencyKey;
pub use types::*;

use crate::ids::{
    AccountId, CustomerId, InvoiceId, PaymentIntentId, PriceId, SessionId, SubscriptionId,
};

/// The API version every request pins, so Stripe's answers keep the shapes in `types`.
pub const API_VERSION: &str = "2025-03-31.basil";
/// Stripe answers are small; this only stops a runaway body.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Per-request options: the connected account, and for POSTs the idempotency key.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOptions<'a> {
    pub account: Option<&'a AccountId>,
    pub idempotency_key: Option<&'a IdempotencyKey>,
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Clone)]
pub struct StripeClient {
    http: Client<Https, Full<Bytes>>,
    config: StripeConfig,
}

impl StripeClient {
    #[must_use]
    pub fn new(config: StripeConfig) -> Self {
        let https = crate::tls::https_connector(None);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Self { http, config }
    }

    /// `POST /v1/checkout/sessions`.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn create_checkout_session(
        &self,
        params: &Form,
        options: RequestOptions<'_>,
    ) -> Result<CheckoutSession, StripeError> {
        self.send(Method::POST, "/v1/checkout/sessions", params, options)
            .await
    }

    /// `POST /v1/checkout/sessions/{id}/expire`: an open session can no longer be paid.
    ///
    /// # Errors
    /// Stripe refused (a session that is not open: 400), or did not answer after the retries.
    pub async fn expire_checkout_session(
        &self,
        id: &SessionId,
        options: RequestOptions<'_>,
    ) -> Result<CheckoutSession, StripeError> {
        self.send(
            Method::POST,
            &format!("/v1/checkout/sessions/{id}/expire"),
            &Form::new(),
            options,
        )
        .await
    }

    /// `GET /v1/checkout/sessions/{id}`, expanding the first page of line items, the
    /// shipping rate chosen and the tax and discount breakdown, so one call tells the order
    /// what was bought, where it goes and what it cost.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn retrieve_checkout_session(
        &self,
        id: &SessionId,
        account: Option<&AccountId>,
    ) -> Result<CheckoutSession, StripeError> {
        let mut query = Form::new();
        query
            .push("expand[]", "line_items")
            .push("expand[]", "shipping_cost.shipping_rate")
            .push("expand[]", "total_details.breakdown");
        let options = RequestOptions {
            account,
            idempotency_key: None,
        };
        self.send(
            Method::GET,
            &format!("/v1/checkout/sessions/{id}"),
            &query,
            options,
        )
        .await
    }

    /// Every line item of a session, following `has_more` with `starting_after`.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn list_line_items(
        &self,
        id: &SessionId,
        account: Option<&AccountId>,
    ) -> Result<Vec<LineItem>, StripeError> {
        let path = format!("/v1/checkout/sessions/{id}/line_items");
        let options = RequestOptions {
            account,
            idempotency_key: None,
        };
        let mut items: Vec<LineItem> = Vec::new();
        loop {
            let mut query = Form::new();
            query
                .push("limit", 100)
                .push("expand[]", "data.price.product");
            query.push_opt("starting_after", items.last().map(|i| i.id.clone()));
            let page: List<LineItem> = self.send(Method::GET, &path, &query, options).await?;
            let done = !page.has_more || page.data.is_empty();
            items.extend(page.data);
            if done {
                return Ok(items);
            }
        }
    }

    /// `GET /v1/payment_intents/{id}`.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn retrieve_payment_intent(
        &self,
        id: &PaymentIntentId,
        account: Option<&AccountId>,
    ) -> Result<PaymentIntent, StripeError> {
        let options = RequestOptions {
            account,
            idempotency_key: None,
        };
        self.send(
            Method::GET,
            &format!("/v1/payment_intents/{id}"),
            &Form::new(),
            options,
        )
        .await
    }

    /// The Checkout Session a PaymentIntent belongs to, if any
    /// (`GET /v1/checkout/sessions?payment_intent=…`).
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn session_for_payment_intent(
        &self,
        id: &PaymentIntentId,
        account: Option<&AccountId>,
    ) -> Result<Option<CheckoutSession>, StripeError> {
        let mut query = Form::new();
        query.push("payment_intent", id).push("limit", 1);
        let options = RequestOptions {
            account,
            idempotency_key: None,
        };
        let page: List<CheckoutSession> = self
            .send(Method::GET, "/v1/checkout/sessions", &query, options)
            .await?;
        Ok(page.data.into_iter().next())
    }

    /// `GET /v1/subscriptions/{id}`: the subscription's current state, for an invoice event
    /// that arrives before any subscription event, or one stored without its object.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn retrieve_subscription(
        &self,
        id: &SubscriptionId,
        account: Option<&AccountId>,
    ) -> Result<Subscription, StripeError> {
        let options = RequestOptions {
            account,
            idempotency_key: None,
        };
        self.send(
            Method::GET,
            &format!("/v1/subscriptions/{id}"),
            &Form::new(),
            options,
        )
        .await
    }

    /// `GET /v1/invoices/{id}`, for an invoice event stored without its object.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn retrieve_invoice(
        &self,
        id: &InvoiceId,
        account: Option<&AccountId>,
    ) -> Result<Invoice, StripeError> {
        let options = RequestOptions {
            account,
            idempotency_key: None,
        };
        self.send(
            Method::GET,
            &format!("/v1/invoices/{id}"),
            &Form::new(),
            options,
        )
        .await
    }

    /// `GET /v1/customers/{id}`: a renewal notice's address and language.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn retrieve_customer(
        &self,
        id: &CustomerId,
        account: Option<&AccountId>,
    ) -> Result<Customer, StripeError> {
        let options = RequestOptions {
            account,
            idempotency_key: None,
        };
        self.send(
            Method::GET,
            &format!("/v1/customers/{id}"),
            &Form::new(),
            options,
        )
        .await
    }

    /// `POST /v1/payment_intents`: a payment for the Payment Element (existing customers).
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn create_payment_intent(
        &self,
        params: &Form,
        options: RequestOptions<'_>,
    ) -> Result<PaymentIntent, StripeError> {
        self.send(Method::POST, "/v1/payment_intents", params, options)
            .await
    }

    /// `POST /v1/customer_sessions`: the Payment Element's access to a customer's saved
    /// payment methods.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn create_customer_session(
        &self,
        params: &Form,
        options: RequestOptions<'_>,
    ) -> Result<CustomerSession, StripeError> {
        self.send(Method::POST, "/v1/customer_sessions", params, options)
            .await
    }

    /// `GET /v1/prices/{id}?expand[]=product`: the server-side source of amounts
    /// (application fees, PaymentIntents) and of the product's name.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn retrieve_price(
        &self,
        id: &PriceId,
        account: Option<&AccountId>,
    ) -> Result<Price, StripeError> {
        let options = RequestOptions {
            account,
            idempotency_key: None,
        };
        let mut query = Form::new();
        query.push("expand[]", "product");
        self.send(Method::GET, &format!("/v1/prices/{id}"), &query, options)
            .await
    }

    /// `POST /v1/promotion_codes`.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn create_promotion_code(
        &self,
        params: &Form,
        options: RequestOptions<'_>,
    ) -> Result<PromotionCode, StripeError> {
        self.send(Method::POST, "/v1/promotion_codes", params, options)
            .await
    }

    /// `GET /v1/events`: one page, for backfilling events a webhook outage missed.
    ///
    /// # Errors
    /// Stripe refused the request, or did not answer after the retries.
    pub async fn list_events(
        &self,
        query: &Form,
        account: Option<&AccountId>,
    ) -> Result<List<Event>, StripeError> {
        let options = RequestOptions {
            account,
            idempotency_key: None,
        };
        self.send(Method::GET, "/v1/events", query, options).await
    }
}
