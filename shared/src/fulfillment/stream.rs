//! The fulfillment function's trigger: the events table's stream (NEW_IMAGE), as Lambda
//! delivers it. Each record is one stored Stripe event; failures are reported per record
//! (`ReportBatchItemFailures`) so one bad record neither blocks nor repeats the others.

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord as StreamRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use tracing::Instrument;

use super::{Fulfil, Fulfillment, FulfillmentError, Outcome};
use crate::ids::{AccountId, PaymentIntentId, SessionId};
use crate::lambda;
use crate::store::{EventRecord, StoreError};
use crate::stripe::{EventType, PaymentIntent};

/// A record to retry (transient error, or another invocation holds the order).
#[derive(Debug, thiserror::Error)]
enum Retry {
    #[error(transparent)]
    Failed(#[from] FulfillmentError),
    #[error("another invocation is fulfilling this order")]
    Busy,
}

impl From<StoreError> for Retry {
    fn from(err: StoreError) -> Self {
        Self::Failed(err.into())
    }
}

/// Handles one batch; `deadline` is the invocation's deadline in unix seconds when known.
pub async fn handle<F: Fulfil>(
    fulfillment: &Fulfillment<F>,
    batch: StreamEvent,
    deadline: Option<i64>,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in batch.records {
        let sequence = record.change.sequence_number.clone();
        if let Err(err) = process(fulfillment, record, deadline).await {
            tracing::warn!(error = %err, sequence = sequence.as_deref(), "stream record will be retried");
            lambda::retry_later(&mut response, sequence);
        }
    }
    response
}

/// The event types this handler acts on: the SAM template's stream filter lists exactly
/// these (tests/tests/template.rs), so Lambda is not invoked for the others.
pub const STREAM_EVENTS: &[EventType] = &[
    EventType::CheckoutSessionCompleted,
    EventType::CheckoutSessionAsyncPaymentSucceeded,
    EventType::CheckoutSessionAsyncPaymentFailed,
    EventType::PaymentIntentSucceeded,
    EventType::PaymentIntentProcessing,
    EventType::PaymentIntentPaymentFailed,
];

async fn process<F: Fulfil>(
    fulfillment: &Fulfillment<F>,
    record: StreamRecord,
    deadline: Option<i64>,
) -> Result<(), Retry> {
    // TTL deletions and updates carry nothing new: only inserted events are acted on.
    if record.event_name != "INSERT" {
        return Ok(());
    }
    let event: EventRecord = match serde_dynamo::from_item(record.change.new_image) {
        Ok(event) => event,
        Err(err) => {
            // Not an event this bundle wrote: retrying cannot help.
            tracing::error!(error = %err, "stream record is not a stored event; skipped");
            return Ok(());
        }
    };
    if !STREAM_EVENTS.contains(&event.kind) {
        return Ok(());
    }
    let span = tracing::info_span!("stripe_event", event_id = %event.event_id, event_type = %event.kind, account = event.account.as_ref().map(AccountId::as_str));
    act(fulfillment, &event, deadline).instrument(span).await
}

async fn act<F: Fulfil>(
    fulfillment: &Fulfillment<F>,
    event: &EventRecord,
    deadline: Option<i64>,
) -> Result<(), Retry> {
    let now = fulfillment.clock().now();
    let lease_until = fulfillment.lease_until(now, deadline);
    let account = event.account.as_ref();
    match event.kind {
        EventType::CheckoutSessionCompleted | EventType::CheckoutSessionAsyncPaymentSucceeded => {
            let Some(session_id) = object_id::<SessionId>(event) else {
                return Ok(());
            };
            match fulfillment
                .fulfill_checkout(&session_id, account, lease_until, now)
                .await
            {
                Ok(Outcome::InProgressElsewhere) => Err(Retry::Busy),
                Ok(_) => Ok(()),
                Err(FulfillmentError::NotFound(what)) => {
                    fulfillment
                        .record_failed(
                            session_id.as_str(),
                            account,
                            format!("{what} not found at Stripe"),
                            now,
                        )
                        .await?;
                    Ok(())
                }
                Err(err) => Err(err.into()),
            }
        }
        EventType::CheckoutSessionAsyncPaymentFailed => {
            let Some(session_id) = object_id::<SessionId>(event) else {
                return Ok(());
            };
            fulfillment
                .record_payment_failed(session_id.as_str(), account, now)
                .await?;
            Ok(())
        }
        EventType::PaymentIntentSucceeded => {
            let Some(intent) = payment_intent(fulfillment, event).await? else {
                return Ok(());
            };
            let id = intent.id.clone();
            match fulfillment
                .fulfill_payment_intent(intent, account, lease_until, now)
                .await
            {
                Ok(Some(Outcome::InProgressElsewhere)) => Err(Retry::Busy),
                Ok(_) => Ok(()),
                Err(FulfillmentError::NotFound(what)) => {
                    fulfillment
                        .record_failed(
                            id.as_str(),
                            account,
                            format!("{what} not found at Stripe"),
                            now,
                        )
                        .await?;
                    Ok(())
                }
                Err(err) => Err(err.into()),
            }
        }
        EventType::PaymentIntentProcessing | EventType::PaymentIntentPaymentFailed => {
            let Some(id) = object_id::<PaymentIntentId>(event) else {
                return Ok(());
            };
            // Payments of Checkout Sessions are followed through the session's own events.
            if fulfillment
                .stripe()
                .session_for_payment_intent(&id, account)
                .await
                .map_err(FulfillmentError::from)?
                .is_some()
            {
                return Ok(());
            }
            if event.kind == EventType::PaymentIntentProcessing {
                fulfillment
                    .record_awaiting_payment(id.as_str(), account, now)
                    .await?;
            } else {
                fulfillment
                    .record_payment_failed(id.as_str(), account, now)
                    .await?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
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
async fn payment_intent<F: Fulfil>(
    fulfillment: &Fulfillment<F>,
    event: &EventRecord,
) -> Result<Option<PaymentIntent>, Retry> {
    if let Some(object) = &event.object
        && let Ok(intent) = serde_json::from_str::<PaymentIntent>(object)
    {
        return Ok(Some(intent));
    }
    let Some(id) = object_id::<PaymentIntentId>(event) else {
        return Ok(None);
    };
    match fulfillment
        .payment_intent(&id, event.account.as_ref())
        .await
    {
        Ok(intent) => Ok(Some(intent)),
        Err(FulfillmentError::NotFound(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}
