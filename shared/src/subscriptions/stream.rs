//! The subscriptions function's trigger: the events table's stream (NEW_IMAGE), as Lambda
//! delivers it, failures reported per record. Every event handled here, from the stream or
//! re-driven by the reconciler, ends with its outcome recorded on the event.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use tracing::Instrument;

use super::state::InvoiceOutcome;
use super::{Subscriptions, SubscriptionsError};
use crate::access::Entitle;
use crate::ids::{AccountId, SessionId, SubscriptionId};
use crate::lambda;
use crate::metrics::{self, Unit};
use crate::store::{
    Consumer, EventOutcome, EventRecord, Handled, InvoiceStatus, SUBSCRIPTION_EVENTS,
};
use crate::stripe::{CheckoutSession, EventType, Mode};

/// The event types this handler acts on: the SAM template's stream filter lists exactly
/// these (tests/tests/template.rs).
pub const STREAM_EVENTS: &[EventType] = SUBSCRIPTION_EVENTS;

/// The longest one record can take: two Stripe calls (the object, the subscription), each
/// up to three attempts of `STRIPE_TIMEOUT_SECS` with backoff, plus DynamoDB and the
/// `Entitle` call. A record is only started with this much time left.
pub const RECORD_TIME_BUDGET_SECS: i64 = 60;

/// Handles one batch; `deadline` is the invocation's deadline in unix seconds when known.
pub async fn handle<E: Entitle>(
    subscriptions: &Subscriptions<E>,
    batch: StreamEvent,
    deadline: Option<i64>,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    let mut out_of_time = false;
    for record in batch.records {
        let sequence = record.change.sequence_number.clone();
        out_of_time |=
            deadline.is_some_and(|d| d - subscriptions.clock.now() < RECORD_TIME_BUDGET_SECS);
        if out_of_time {
            lambda::retry_later(&mut response, sequence);
            continue;
        }
        let Some(event) = lambda::inserted_event(record, STREAM_EVENTS) else {
            continue;
        };
        if let Err(err) = handle_event(subscriptions, &event, deadline).await {
            tracing::warn!(error = %err, sequence = sequence.as_deref(), "stream record will be retried");
            lambda::retry_later(&mut response, sequence);
        }
    }
    response
}

/// Acts on one stored event and records the outcome on it: the stream's path and the
/// reconciler's re-drive, the same code.
///
/// # Errors
/// The event is not finished and its trigger should retry it.
pub async fn handle_event<E: Entitle>(
    subscriptions: &Subscriptions<E>,
    event: &EventRecord,
    deadline: Option<i64>,
) -> Result<EventOutcome, SubscriptionsError> {
    let span = tracing::info_span!("stripe_event", event_id = %event.event_id, event_type = %event.kind, account = event.account.as_ref().map(AccountId::as_str));
    async {
        let result = act(subscriptions, event, deadline).await;
        let result = match result {
            // Stripe does not know it: acknowledged (the stream cannot heal it), left
            // unfinished for the reconciler's re-drive with backoff.
            Err(SubscriptionsError::NotFound(what)) => {
                tracing::error!(what, "not found at Stripe; left for the reconciler");
                metrics::emit("SubscriptionsNotFound", 1.0, Unit::Count, &[]);
                Ok(Handled::Unresolved {
                    reason: "not_found",
                    error: format!("{what} not found at Stripe"),
                })
            }
            other => other,
        };
        let outcome =
            EventOutcome::of(&result, SubscriptionsError::code, subscriptions.clock.now());
        subscriptions
            .events
            .settle(event, Consumer::Subscriptions, &outcome)
            .await;
        result.map(|_| outcome)
    }
    .instrument(span)
    .await
}

async fn act<E: Entitle>(
    subscriptions: &Subscriptions<E>,
    event: &EventRecord,
    deadline: Option<i64>,
) -> Result<Handled, SubscriptionsError> {
    let account = event.account.as_ref();
    let object = event.object.as_deref();
    let object_id = event.object_id.as_deref();
    match &event.kind {
        EventType::SubscriptionCreated
        | EventType::SubscriptionUpdated
        | EventType::SubscriptionDeleted
        | EventType::SubscriptionPaused
        | EventType::SubscriptionResumed => {
            let Some(subscription) = subscriptions
                .subscription(object, object_id, account)
                .await?
            else {
                return Ok(Handled::Skipped("malformed_object_id"));
            };
            let written = subscriptions
                .apply(&subscription, account, event.created)
                .await?;
            subscriptions
                .sync_access(&subscription.id, deadline)
                .await?;
            Ok(if written {
                Handled::Done
            } else {
                Handled::Skipped("older_than_stored")
            })
        }
        EventType::InvoicePaid
        | EventType::InvoicePaymentFailed
        | EventType::InvoicePaymentActionRequired => {
            let Some(invoice) = subscriptions.invoice(object, object_id, account).await? else {
                return Ok(Handled::Skipped("malformed_object_id"));
            };
            let status = match event.kind {
                EventType::InvoicePaid => InvoiceStatus::Paid,
                EventType::InvoicePaymentFailed => InvoiceStatus::PaymentFailed,
                _ => InvoiceStatus::ActionRequired,
            };
            let outcome = subscriptions
                .record_invoice(&invoice, status, account, event.created)
                .await?;
            if let Some(id) = invoice.subscription_id() {
                subscriptions.sync_access(&id, deadline).await?;
            }
            Ok(match outcome {
                InvoiceOutcome::Recorded => Handled::Done,
                InvoiceOutcome::Duplicate => Handled::Skipped("already_recorded"),
                InvoiceOutcome::NotASubscription => Handled::Skipped("not_a_subscription_invoice"),
            })
        }
        EventType::CheckoutSessionCompleted => {
            // Only to remember which session (and merchant reference) made the subscription.
            let session = match object.and_then(|o| serde_json::from_str::<CheckoutSession>(o).ok())
            {
                Some(session) => session,
                None => {
                    let Some(id) = object_id.and_then(|id| id.parse::<SessionId>().ok()) else {
                        return Ok(Handled::Skipped("malformed_object_id"));
                    };
                    subscriptions
                        .stripe
                        .retrieve_checkout_session(&id, account)
                        .await
                        .map_err(super::not_found_as(&id))?
                }
            };
            let Some(id) = session
                .subscription
                .as_deref()
                .and_then(|s| s.parse::<SubscriptionId>().ok())
                .filter(|_| session.mode == Mode::Subscription)
            else {
                return Ok(Handled::Skipped("not_a_subscription"));
            };
            link(
                subscriptions,
                &id,
                account,
                &session.id,
                session.client_reference_id.as_deref(),
            )
            .await?;
            Ok(Handled::Done)
        }
        _ => Ok(Handled::Skipped("not_a_subscription_event")),
    }
}

async fn link<E: Entitle>(
    subscriptions: &Subscriptions<E>,
    id: &SubscriptionId,
    account: Option<&AccountId>,
    session: &SessionId,
    client_reference_id: Option<&str>,
) -> Result<(), SubscriptionsError> {
    subscriptions
        .store
        .link_session(
            id,
            account,
            session,
            client_reference_id,
            subscriptions.clock.now(),
        )
        .await?;
    Ok(())
}
