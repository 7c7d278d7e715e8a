//! `GET /payments/complete?payment_intent=pi_…`: what the Payment Element's `return_url` page
//! shows, as Stripe's guide has it read the PaymentIntent's status. Like the Checkout landing
//! page, it runs the exactly-once fulfilment when the payment has succeeded, so a customer who
//! is there gets the order even when the webhook is late.
//!
//! Only PaymentIntents the bundle fulfils (marked `checkout_lambda_fulfil`) are answered; any
//! other id is `404`, and an id Stripe does not know is remembered for a minute, so a loop of
//! random ids costs one Stripe call per id, not one per request.

use std::collections::HashMap;
use std::sync::Mutex;

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::{Fulfil, Fulfillment, FulfillmentError, Outcome, is_standalone};
use crate::access::Entitle;
use crate::http::{self as api, ApiError};
use crate::ids::{AccountId, PaymentIntentId};
use crate::money::Currency;

/// How long a PaymentIntent Stripe does not know (or that is not the bundle's) is answered
/// `404` without asking Stripe again.
const NEGATIVE_TTL_SECS: i64 = 60;
/// Bounds the negative cache of one warm Lambda.
const MAX_REMEMBERED: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum PaymentLandingError {
    #[error("{param}: {message}")]
    Invalid {
        param: &'static str,
        message: &'static str,
    },
    #[error("no such payment")]
    Unknown,
    #[error(transparent)]
    Fulfillment(FulfillmentError),
}

impl ApiError for PaymentLandingError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unknown => StatusCode::NOT_FOUND,
            Self::Fulfillment(FulfillmentError::Stripe(err)) => err.status(),
            Self::Fulfillment(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_request",
            Self::Unknown => "not_found",
            Self::Fulfillment(FulfillmentError::Stripe(err)) => err.code(),
            Self::Fulfillment(_) => "fulfillment_unavailable",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::Invalid { param, .. } => Some(param),
            _ => None,
        }
    }
}

impl From<FulfillmentError> for PaymentLandingError {
    fn from(err: FulfillmentError) -> Self {
        match err {
            FulfillmentError::NotFound(_) => Self::Unknown,
            other => Self::Fulfillment(other),
        }
    }
}

/// What the return page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentPage {
    pub payment_intent: PaymentIntentId,
    /// The PaymentIntent's status: `succeeded`, `processing`, `requires_payment_method`,
    /// `requires_action`, …
    pub status: String,
    /// The order's, once there is one: `fulfilled`, `awaiting_payment`, `payment_failed`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_status: Option<&'static str>,
    pub amount: i64,
    pub currency: Currency,
    /// The customer may pay again (the attempt failed): show the payment form once more.
    pub retry: bool,
}

/// The negative cache, kept for the process's life.
#[derive(Debug, Default)]
pub struct UnknownPayments(Mutex<HashMap<(Option<AccountId>, PaymentIntentId), i64>>);

impl UnknownPayments {
    fn known_unknown(&self, key: &(Option<AccountId>, PaymentIntentId), now: i64) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|at| now - at < NEGATIVE_TTL_SECS)
    }

    fn remember(&self, key: (Option<AccountId>, PaymentIntentId), now: i64) {
        let mut map = self.lock();
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, at| now - *at < NEGATIVE_TTL_SECS);
            if map.len() >= MAX_REMEMBERED {
                map.clear();
            }
        }
        map.insert(key, now);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(Option<AccountId>, PaymentIntentId), i64>> {
        // Plain data: a panic while holding the lock leaves nothing half-written.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub async fn handle<F: Fulfil, E: Entitle>(
    fulfillment: &Fulfillment<F, E>,
    unknown: &UnknownPayments,
    request: Request,
    deadline: Option<i64>,
) -> Response<Body> {
    if request.method() != Method::GET {
        return api::method_not_allowed("GET");
    }
    match page(fulfillment, unknown, &request, deadline).await {
        Ok(page) => api::json(StatusCode::OK, &page),
        Err(err) => api::error(&err),
    }
}

async fn page<F: Fulfil, E: Entitle>(
    fulfillment: &Fulfillment<F, E>,
    unknown: &UnknownPayments,
    request: &Request,
    deadline: Option<i64>,
) -> Result<PaymentPage, PaymentLandingError> {
    let query = request.uri().query().unwrap_or_default().as_bytes();
    let param = |name: &str| {
        form_urlencoded::parse(query)
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let id: PaymentIntentId = param("payment_intent")
        .ok_or(PaymentLandingError::Invalid {
            param: "payment_intent",
            message: "missing",
        })?
        .parse()
        .map_err(|_| PaymentLandingError::Invalid {
            param: "payment_intent",
            message: "not a PaymentIntent id (pi_…)",
        })?;
    let account = param("account")
        .map(|a| a.parse::<AccountId>())
        .transpose()
        .map_err(|_| PaymentLandingError::Invalid {
            param: "account",
            message: "not a connected account id (acct_…)",
        })?;
    let now = fulfillment.clock().now();
    let key = (account.clone(), id.clone());
    if unknown.known_unknown(&key, now) {
        return Err(PaymentLandingError::Unknown);
    }
    let intent = match fulfillment.payment_intent(&id, account.as_ref()).await {
        Err(FulfillmentError::NotFound(_)) => {
            unknown.remember(key, now);
            return Err(PaymentLandingError::Unknown);
        }
        other => other?,
    };
    // Not the bundle's: an invoice's, a Checkout Session's, another integration's.
    if !is_standalone(&intent) {
        unknown.remember(key, now);
        return Err(PaymentLandingError::Unknown);
    }
    let lease = fulfillment.lease_until(now, deadline);
    let order = match intent.status.as_str() {
        "succeeded" => {
            fulfillment
                .fulfill_payment_intent(intent.clone(), account.as_ref(), lease, now)
                .await?
        }
        _ => None,
    };
    let order_status = match order {
        Some(Outcome::Fulfilled(order)) => Some(order.status()),
        Some(Outcome::AwaitingPayment) => Some("awaiting_payment"),
        Some(Outcome::PaymentFailed) => Some("payment_failed"),
        Some(Outcome::InProgressElsewhere) => Some("processing"),
        None => fulfillment
            .orders()
            .get(id.as_str())
            .await
            .map_err(FulfillmentError::from)?
            .map(|order| order.status()),
    };
    Ok(PaymentPage {
        retry: intent.status == "requires_payment_method" && intent.latest_charge.is_some(),
        payment_intent: intent.id,
        status: intent.status,
        order_status,
        amount: intent.amount,
        currency: intent.currency,
    })
}
