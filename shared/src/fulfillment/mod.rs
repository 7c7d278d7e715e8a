//! `fulfill_checkout(session_id)`, as Stripe's fulfilment guide specifies it: safe to call
//! many times and concurrently for one session (webhook stream, success landing page), fulfils
//! only paid sessions, records the state of every order.
//!
//! - `config`: what the function reads at cold start.
//! - `order`: what an order is, from a session or a PaymentIntent, and the `Fulfil` seam.
//! - `service`: the exactly-once flow over the orders table (claim, fulfil, complete).
//! - `confirmation`: the default `Fulfil`, one order-confirmation email.
//! - `refunds`: refunds and disputes move a fulfilled order on, and a full refund or a lost
//!   dispute revokes its access.
//! - `stream` and `landing`: the function's two triggers.

mod config;
mod confirmation;
mod landing;
mod order;
mod payment_landing;
mod refunds;
mod service;
mod standalone;
mod stream;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_http::{Body, Request, Response};

pub use config::FulfillmentConfig;
pub use confirmation::{ConfirmationConfig, ConfirmationEmail};
pub use landing::{LandingError, LandingPage, handle as handle_landing};
pub use order::{Fulfil, FulfilError, Fulfilled, Order};
pub use payment_landing::{
    PaymentLandingError, PaymentPage, UnknownPayments, handle as handle_payment_landing,
};
pub use service::{Fulfillment, Outcome, is_standalone};
pub use stream::{
    RECORD_TIME_BUDGET_SECS, RetryLater, STREAM_EVENTS, handle as handle_stream, handle_event,
};

use crate::access::{Entitle, EntitleError};
use crate::clock::Clock;
use crate::mail::MailError;
use crate::stock::StockError;
use crate::store::{DynamoDb, SessionStore, StoreError};
use crate::stripe::StripeError;

#[derive(Debug, thiserror::Error)]
pub enum FulfillmentError {
    /// The session or PaymentIntent does not exist (on this account): permanent.
    #[error("{0} was not found at Stripe")]
    NotFound(String),
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("fulfilment failed: {0}")]
    Fulfil(#[from] FulfilError),
    #[error("entitlement failed: {0}")]
    Entitle(#[from] EntitleError),
    #[error(transparent)]
    Stock(#[from] StockError),
}

impl From<MailError> for FulfilError {
    fn from(err: MailError) -> Self {
        Self(err.to_string())
    }
}

/// The Payment Element's return page's route; the other one is `GET /checkout/complete`.
pub const PAYMENT_LANDING_PATH: &str = "/payments/complete";

/// Everything the fulfillment function serves, built once at cold start.
pub struct FulfillmentApp<F, E> {
    pub fulfillment: Fulfillment<F, E>,
    pub sessions: SessionStore,
    /// PaymentIntents the return page answered 404 for, remembered for a minute.
    pub unknown_payments: UnknownPayments,
}

impl<F: Fulfil, E: Entitle> FulfillmentApp<F, E> {
    #[must_use]
    pub fn new(config: FulfillmentConfig, dynamodb: DynamoDb, fulfiller: F, entitle: E) -> Self {
        Self {
            sessions: SessionStore::new(config.sessions_table.clone(), dynamodb.clone()),
            fulfillment: Fulfillment::new(config, dynamodb, fulfiller, entitle),
            unknown_payments: UnknownPayments::default(),
        }
    }

    /// The same app reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.fulfillment = self.fulfillment.with_clock(clock);
        self
    }
}

impl<F: Fulfil, E: Entitle> crate::lambda::StreamAndHttp for FulfillmentApp<F, E> {
    async fn stream(&self, batch: StreamEvent, deadline: Option<i64>) -> DynamoDbEventResponse {
        stream::handle(&self.fulfillment, batch, deadline).await
    }

    /// `GET /checkout/complete` and `GET /payments/complete`, the function's routes.
    async fn http(&self, request: Request, deadline: Option<i64>) -> Response<Body> {
        if request.uri().path() == PAYMENT_LANDING_PATH {
            return payment_landing::handle(
                &self.fulfillment,
                &self.unknown_payments,
                request,
                deadline,
            )
            .await;
        }
        landing::handle(&self.fulfillment, &self.sessions, request, deadline).await
    }
}
