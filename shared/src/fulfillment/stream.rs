//! The fulfillment function's trigger: the events table's stream (NEW_IMAGE), as Lambda
//! delivers it. Each record is one stored Stripe event; failures are reported per record
//! (`ReportBatchItemFailures`) so one bad record neither blocks nor repeats the others.
//!
//! Every event handled here, from the stream or re-driven by the reconciler, ends with its
//! outcome recorded on the event (`done`, `skipped`, or `failed` until a later try).

use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use tracing::Instrument;

use super::refunds::Change;
use super::{Fulfil, Fulfillment, FulfillmentError, Outcome, is_standalone};
use crate::access::Entitle;
use crate::ids::{AccountId, PaymentIntentId, SessionId};
use crate::lambda;
use crate::metrics::{self, Unit};
use crate::stock::Released;
use crate::store::{
    Consumer, EventOutcome, EventRecord, FULFILLMENT_EVENTS, FulfillmentState, Handled, StoreError,
};
use crate::stripe::{EventType, PaymentIntent};

/// The event types this handler acts on: the SAM template's stream filter lists exactly
/// these (tests/tests/template.rs), so Lambda is not invoked for the others.
pub const STREAM_EVENTS: &[EventType] = FULFILLMENT_EVENTS;

/// The longest one record can take: up to three Stripe calls (session, line items, or the
/// PaymentIntent's session), each up to three attempts of `STRIPE_TIMEOUT_SECS` (8 s in the
/// template) with backoff, plus DynamoDB and SES. A record is only started with this much
/// time left, so an invocation never times out between `Fulfil` and recording it.
pub const RECORD_TIME_BUDGET_SECS: i64 = 60;

/// An event that is not finished and should be tried again: the stream retries the record,
/// the reconciler the event.
#[derive(Debug, thiserror::Error)]
pub enum RetryLater {
    #[error(transparent)]
    Failed(#[from] FulfillmentError),
    #[error("another invocation is fulfilling this order")]
    Busy,
}

impl RetryLater {
    /// A stable code for the event's recorded outcome and metrics.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Failed(FulfillmentError::NotFound(_)) => "not_found",
            Self::Failed(FulfillmentError::Stripe(_)) => "stripe",
            Self::Failed(FulfillmentError::Store(_)) => "storage",
            Self::Failed(FulfillmentError::Fulfil(_)) => "fulfil",
            Self::Failed(FulfillmentError::Entitle(_)) => "entitle",
            Self::Failed(FulfillmentError::Stock(_)) => "stock",
        }
    }
}

impl From<StoreError> for RetryLater {
    fn from(err: StoreError) -> Self {
        Self::Failed(err.into())
    }
}

/// Handles one batch; `deadline` is the invocation's deadline in unix seconds when known.
pub async fn handle<F: Fulfil, E: Entitle>(
    fulfillment: &Fulfillment<F, E>,
    batch: StreamEvent,
    deadline: Option<i64>,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    let mut out_of_time = false;
    for record in batch.records {
        let sequence = record.change.sequence_number.clone();
        // A timeout between `Fulfil` and `complete` would fulfil twice: a record is only
        // started with time for its worst case left; it and the rest are retried.
        out_of_time |=
            deadline.is_some_and(|d| d - fulfillment.clock().now() < RECORD_TIME_BUDGET_SECS);
        if out_of_time {
            lambda::retry_later(&mut response, sequence);
            continue;
        }
        let Some(event) = lambda::inserted_event(record, STREAM_EVENTS) else {
            continue;
        };
        if let Err(err) = handle_event(fulfillment, &event, deadline).await {
            tracing::warn!(error = %err, sequence = sequence.as_deref(), "stream record will be retried");
            lambda::retry_later(&mut response, sequence);
        }
    }
    response
}

/// Acts on one stored event and records the outcome on it: the stream's path and the
/// reconciler's re-drive, the same code. `Ok` holds the outcome recorded, which may still be
/// unfinished (a Stripe 404 the stream cannot heal).
///
/// # Errors
/// The event is not finished and its trigger should retry it.
pub async fn handle_event<F: Fulfil, E: Entitle>(
    fulfillment: &Fulfillment<F, E>,
    event: &EventRecord,
    deadline: Option<i64>,
) -> Result<EventOutcome, RetryLater> {
    let span = tracing::info_span!("stripe_event", event_id = %event.event_id, event_type = %event.kind, account = event.account.as_ref().map(AccountId::as_str));
    async {
        let result = act(fulfillment, event, deadline).await;
        let outcome = EventOutcome::of(&result, RetryLater::code, fulfillment.clock().now());
        fulfillment
            .events()
            .settle(event, Consumer::Fulfillment, &outcome)
            .await;
        result.map(|_| outcome)
    }
    .instrument(span)
    .await
}

async fn act<F: Fulfil, E: Entitle>(
    fulfillment: &Fulfillment<F, E>,
    event: &EventRecord,
    deadline: Option<i64>,
) -> Result<Handled, RetryLater> {
    let account = event.account.as_ref();
    match event.kind {
        EventType::CheckoutSessionCompleted | EventType::CheckoutSessionAsyncPaymentSucceeded => {
            let Some(session_id) = object_id::<SessionId>(event) else {
                return Ok(Handled::Skipped("malformed_object_id"));
            };
            if fulfillment
                .is_foreign(&session_id, recovered_from(event).as_ref(), account)
                .await?
            {
                return Ok(Handled::Skipped("foreign_session"));
            }
            let session = &session_id;
            let result = fulfil_waiting(
                fulfillment,
                session.as_str(),
                deadline,
                |lease, now| async move {
                    fulfillment
                        .fulfill_checkout(session, account, lease, now)
                        .await
                        .map(Some)
                },
            )
            .await;
            settle_not_found(fulfillment, session_id.as_str(), account, result).await
        }
        EventType::CheckoutSessionAsyncPaymentFailed => {
            let Some(session_id) = object_id::<SessionId>(event) else {
                return Ok(Handled::Skipped("malformed_object_id"));
            };
            if fulfillment
                .is_foreign(&session_id, recovered_from(event).as_ref(), account)
                .await?
            {
                return Ok(Handled::Skipped("foreign_session"));
            }
            fulfillment
                .record_payment_failed(session_id.as_str(), account, fulfillment.clock().now())
                .await?;
            fulfillment.release_stock(&session_id).await?;
            Ok(Handled::Done)
        }
        // An unpaid cart gives its units back: expired (by Stripe, on request, or after a
        // recovery), or its delayed payment failed (above). Only what this bundle reserved
        // is returned, once (`stock`); no Stripe call.
        EventType::CheckoutSessionExpired => {
            let Some(session_id) = object_id::<SessionId>(event) else {
                return Ok(Handled::Skipped("malformed_object_id"));
            };
            Ok(match fulfillment.release_stock(&session_id).await? {
                Released::Returned => Handled::Done,
                Released::AlreadyReleased => Handled::Skipped("stock_already_released"),
                Released::NothingReserved => Handled::Skipped("no_stock_reserved"),
            })
        }
        EventType::PaymentIntentSucceeded => {
            let intent = match payment_intent(fulfillment, event).await {
                Ok(Some(intent)) => intent,
                Ok(None) => return Ok(Handled::Skipped("malformed_object_id")),
                Err(err) => {
                    let id = event.object_id.clone().unwrap_or_default();
                    return settle_not_found(fulfillment, &id, account, Err(err.into())).await;
                }
            };
            let id = intent.id.clone();
            let result = fulfil_waiting(fulfillment, id.as_str(), deadline, |lease, now| {
                fulfillment.fulfill_payment_intent(intent.clone(), account, lease, now)
            })
            .await;
            settle_not_found(fulfillment, id.as_str(), account, result).await
        }
        EventType::PaymentIntentProcessing | EventType::PaymentIntentPaymentFailed => {
            let intent = match payment_intent(fulfillment, event).await {
                Ok(Some(intent)) => intent,
                Ok(None) => return Ok(Handled::Skipped("malformed_object_id")),
                Err(err) => {
                    let id = event.object_id.clone().unwrap_or_default();
                    return settle_not_found(fulfillment, &id, account, Err(err.into())).await;
                }
            };
            if !is_standalone(&intent) {
                return Ok(Handled::Skipped("not_a_standalone_payment_intent"));
            }
            // Payments of Checkout Sessions are followed through the session's own events.
            if fulfillment
                .stripe()
                .session_for_payment_intent(&intent.id, account)
                .await
                .map_err(FulfillmentError::from)?
                .is_some()
            {
                return Ok(Handled::Skipped("checkout_payment_intent"));
            }
            let now = fulfillment.clock().now();
            if event.kind == EventType::PaymentIntentProcessing {
                if fulfillment.config().fulfil_on_processing {
                    let id = intent.id.clone();
                    let result =
                        fulfil_waiting(fulfillment, id.as_str(), deadline, |lease, now| {
                            fulfillment.fulfill_payment_intent(intent.clone(), account, lease, now)
                        })
                        .await;
                    return settle_not_found(fulfillment, id.as_str(), account, result).await;
                }
                fulfillment
                    .record_awaiting_payment(intent.id.as_str(), account, now)
                    .await?;
                return Ok(Handled::Done);
            }
            fulfillment
                .record_payment_failed(intent.id.as_str(), account, now)
                .await?;
            // Fulfilled on `processing` (FULFIL_ON_PROCESSING): the failure takes it back.
            match fulfillment.orders().get(intent.id.as_str()).await? {
                Some(order) if matches!(order.state, FulfillmentState::Fulfilled { .. }) => {
                    fulfillment
                        .apply_after_sale(order, Change::PaymentFailed, event.created, deadline)
                        .await
                }
                _ => Ok(Handled::Done),
            }
        }
        EventType::ChargeRefunded
        | EventType::ChargeDisputeCreated
        | EventType::ChargeDisputeClosed => fulfillment.after_sale(event, deadline).await,
        _ => Ok(Handled::Skipped("not_a_fulfillment_event")),
    }
}

/// Runs `attempt` (`None`: not an order of this bundle's to fulfil); when another
/// invocation holds the order's claim, waits for its lease to run out (a dead holder's lease
/// ends; a live holder finishes first) and tries once more, as long as the wait and a
/// record's worst case fit before the deadline.
async fn fulfil_waiting<F, E, A, Fut>(
    fulfillment: &Fulfillment<F, E>,
    order_id: &str,
    deadline: Option<i64>,
    attempt: A,
) -> Result<Option<Outcome>, RetryLater>
where
    F: Fulfil,
    E: Entitle,
    A: Fn(i64, i64) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Outcome>, FulfillmentError>>,
{
    let mut waited = false;
    loop {
        let now = fulfillment.clock().now();
        match attempt(fulfillment.lease_until(now, deadline), now).await? {
            Some(Outcome::InProgressElsewhere) if !waited => {
                waited = true;
                let Some(FulfillmentState::InProgress {
                    lease_expires_at, ..
                }) = fulfillment.orders().get(order_id).await?.map(|o| o.state)
                else {
                    continue;
                };
                let wait = (lease_expires_at - now + 1).max(0);
                let fits = match deadline {
                    Some(deadline) => now + wait + RECORD_TIME_BUDGET_SECS <= deadline,
                    None => wait <= fulfillment.default_lease_secs(),
                };
                if !fits {
                    return Err(RetryLater::Busy);
                }
                tracing::info!(
                    order_id,
                    wait,
                    "order claimed elsewhere; waiting for its lease"
                );
                fulfillment
                    .clock()
                    .sleep(Duration::from_secs(wait.unsigned_abs()))
                    .await;
            }
            Some(Outcome::InProgressElsewhere) => return Err(RetryLater::Busy),
            outcome => return Ok(outcome),
        }
    }
}

/// A session or PaymentIntent Stripe does not know (a wrong key, test and live mixed,
/// another account): the order is recorded `failed{not_found}`, counted, and the event left
/// unresolved for the reconciler, since the stream's immediate retries cannot heal it.
async fn settle_not_found<F: Fulfil, E: Entitle>(
    fulfillment: &Fulfillment<F, E>,
    order_id: &str,
    account: Option<&AccountId>,
    result: Result<Option<Outcome>, RetryLater>,
) -> Result<Handled, RetryLater> {
    match result {
        Ok(Some(_)) => Ok(Handled::Done),
        // Not an order of its own: a Checkout Session's or an invoice's PaymentIntent.
        Ok(None) => Ok(Handled::Skipped("not_a_standalone_payment_intent")),
        Err(RetryLater::Failed(FulfillmentError::NotFound(what))) => {
            tracing::error!(
                order_id,
                what,
                "not found at Stripe: order recorded failed, left for the reconciler"
            );
            metrics::emit("OrdersNotFound", 1.0, Unit::Count, &[]);
            fulfillment
                .record_failed(
                    order_id,
                    account,
                    format!("{what} not found at Stripe"),
                    fulfillment.clock().now(),
                )
                .await?;
            let err = RetryLater::from(FulfillmentError::NotFound(what));
            Ok(Handled::Unresolved {
                reason: err.code(),
                error: err.to_string(),
            })
        }
        Err(err) => Err(err),
    }
}

/// The session a recovered session came from, as the stored event says.
fn recovered_from(event: &EventRecord) -> Option<SessionId> {
    let object: serde_json::Value = serde_json::from_str(event.object.as_deref()?).ok()?;
    object.get("recovered_from")?.as_str()?.parse().ok()
}

fn object_id<T: std::str::FromStr>(event: &EventRecord) -> Option<T> {
    let id = event.object_id.as_deref()?.parse().ok();
    if id.is_none() {
        tracing::error!("event object id is not of the expected kind; skipped");
    }
    id
}

/// The PaymentIntent of a `payment_intent.*` event: from the stored object, or from Stripe
/// when the object was too large to store.
async fn payment_intent<F: Fulfil, E: Entitle>(
    fulfillment: &Fulfillment<F, E>,
    event: &EventRecord,
) -> Result<Option<PaymentIntent>, FulfillmentError> {
    if let Some(object) = &event.object
        && let Ok(intent) = serde_json::from_str::<PaymentIntent>(object)
    {
        return Ok(Some(intent));
    }
    let Some(id) = object_id::<PaymentIntentId>(event) else {
        return Ok(None);
    };
    fulfillment
        .payment_intent(&id, event.account.as_ref())
        .await
        .map(Some)
}
