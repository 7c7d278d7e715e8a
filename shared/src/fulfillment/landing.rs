//! `GET /checkout/complete?session_id=cs_…`: the success URL's landing page. It runs
//! `fulfill_checkout` so a customer who is there gets their order at once, even when the
//! webhook is late, and reports the order's status as JSON.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::{Fulfil, Fulfillment, FulfillmentError, Outcome};
use crate::access::Entitle;
use crate::http::{self as api, ApiError};
use crate::ids::{AccountId, SessionId};
use crate::money::Currency;
use crate::store::{FulfillmentState, OrderLine, SessionStore, StoreError};
use crate::stripe::PaymentStatus;

#[derive(Debug, thiserror::Error)]
pub enum LandingError {
    #[error("session_id: {0}")]
    InvalidSessionId(&'static str),
    #[error("no such Checkout Session")]
    UnknownSession,
    #[error(transparent)]
    Fulfillment(FulfillmentError),
}

/// A Stripe that is overloaded or out of reach is worth retrying (503), as is DynamoDB or a
/// failed `Fulfil`; anything else Stripe refused is a gateway error (502).
impl ApiError for LandingError {
    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidSessionId(_) => StatusCode::BAD_REQUEST,
            Self::UnknownSession => StatusCode::NOT_FOUND,
            Self::Fulfillment(FulfillmentError::Stripe(err)) => err.status(),
            Self::Fulfillment(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidSessionId(_) => "invalid_request",
            Self::UnknownSession => "not_found",
            Self::Fulfillment(FulfillmentError::Stripe(err)) => err.code(),
            Self::Fulfillment(_) => "fulfillment_unavailable",
        }
    }

    fn param(&self) -> Option<&str> {
        matches!(self, Self::InvalidSessionId(_)).then_some("session_id")
    }
}

impl From<FulfillmentError> for LandingError {
    fn from(err: FulfillmentError) -> Self {
        match err {
            FulfillmentError::NotFound(_) => Self::UnknownSession,
            other => Self::Fulfillment(other),
        }
    }
}

impl From<StoreError> for LandingError {
    fn from(err: StoreError) -> Self {
        Self::Fulfillment(err.into())
    }
}

/// What the landing page reports.
#[derive(Debug, Serialize)]
pub struct LandingPage {
    pub session_id: SessionId,
    /// `fulfilled`, `awaiting_payment`, `processing` or `payment_failed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<PaymentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_items: Option<Vec<OrderLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_total: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
}

/// Whether the session is one this bundle may ask Stripe about, and on which account: it
/// created it (the sessions table), or already has its order, or has stored a verified event
/// about it (a session Stripe made from a recovery link, whose `completed` event, carrying
/// `recovered_from`, is stored before Stripe redirects the customer). `None` for any other
/// id, found with DynamoDB reads only, so a loop of made-up ids cannot spend the merchant's
/// Stripe rate limit.
async fn known_session<F: Fulfil, E: Entitle>(
    fulfillment: &Fulfillment<F, E>,
    sessions: &SessionStore,
    id: &SessionId,
) -> Result<Option<Option<AccountId>>, StoreError> {
    if let Some(record) = sessions.get(id).await? {
        return Ok(Some(record.account));
    }
    if let Some(order) = fulfillment.orders().get(id.as_str()).await? {
        return Ok(Some(order.account));
    }
    Ok(fulfillment
        .events()
        .for_object(id.as_str())
        .await?
        .into_iter()
        .next()
        .map(|event| event.account))
}

pub async fn handle<F: Fulfil, E: Entitle>(
    fulfillment: &Fulfillment<F, E>,
    sessions: &SessionStore,
    request: Request,
    deadline: Option<i64>,
) -> Response<Body> {
    if request.method() != Method::GET {
        return api::method_not_allowed("GET");
    }
    match page(fulfillment, sessions, &request, deadline).await {
        Ok(page) => api::json(StatusCode::OK, &page),
        Err(err) => api::error(&err),
    }
}

async fn page<F: Fulfil, E: Entitle>(
    fulfillment: &Fulfillment<F, E>,
    sessions: &SessionStore,
    request: &Request,
    deadline: Option<i64>,
) -> Result<LandingPage, LandingError> {
    let raw = form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "session_id")
        .map(|(_, value)| value.into_owned())
        .ok_or(LandingError::InvalidSessionId("missing"))?;
    let session_id: SessionId = raw
        .parse()
        .map_err(|_| LandingError::InvalidSessionId("not a Checkout Session id (cs_…)"))?;
    let account = known_session(fulfillment, sessions, &session_id)
        .await?
        .ok_or(LandingError::UnknownSession)?;
    let now = fulfillment.clock().now();
    let outcome = fulfillment
        .fulfill_checkout(
            &session_id,
            account.as_ref(),
            fulfillment.lease_until(now, deadline),
            now,
        )
        .await?;
    let mut page = LandingPage {
        session_id,
        status: "processing",
        payment_status: None,
        line_items: None,
        amount_total: None,
        currency: None,
    };
    match outcome {
        Outcome::Fulfilled(order) => {
            debug_assert!(matches!(order.state, FulfillmentState::Fulfilled { .. }));
            let order = *order;
            // Refunded, disputed, … once the payment moved on after fulfilment.
            page.status = order.status();
            page.payment_status = order.payment_status;
            if let Some(details) = order.details {
                page.amount_total = Some(details.amount_total);
                page.currency = details.currency;
                page.line_items = Some(details.line_items);
            }
        }
        Outcome::AwaitingPayment => {
            page.status = "awaiting_payment";
            page.payment_status = Some(PaymentStatus::Unpaid);
        }
        Outcome::PaymentFailed => page.status = "payment_failed",
        Outcome::InProgressElsewhere => {}
    }
    Ok(page)
}
