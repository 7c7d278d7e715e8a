//! The recovery function's stream trigger: each inserted event of `STREAM_EVENTS`, routed to
//! the abandoned-cart email, the payment-failed notice or the purchase record, each record
//! started only with time left for its worst case.

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord as StreamRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use tracing::Instrument;

use super::{RECORD_TIME_BUDGET_SECS, Recovery, RecoveryError, STREAM_EVENTS};
use crate::ids::{AccountId, SessionId};
use crate::lambda;
use crate::mail::Mailer;
use crate::store::EventRecord;
use crate::stripe::{CheckoutSession, EventType};

impl<M: Mailer> Recovery<M> {
    /// One stream batch; `deadline` is the invocation's, in unix seconds, when known.
    pub(super) async fn handle_batch(
        &self,
        batch: StreamEvent,
        deadline: Option<i64>,
    ) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        let mut out_of_time = false;
        for record in batch.records {
            let sequence = record.change.sequence_number.clone();
            // A timeout between claim and mark would lose the email (at-most-once): a record
            // is only started with time for its worst case left; the rest are retried.
            out_of_time |= deadline.is_some_and(|d| d - self.clock.now() < RECORD_TIME_BUDGET_SECS);
            if out_of_time {
                lambda::retry_later(&mut response, sequence);
                continue;
            }
            if let Err(err) = self.process(record).await {
                tracing::warn!(error = %err, sequence = sequence.as_deref(), "stream record will be retried");
                lambda::retry_later(&mut response, sequence);
            }
        }
        response
    }

    async fn process(&self, record: StreamRecord) -> Result<(), RecoveryError> {
        if record.event_name != "INSERT" {
            return Ok(());
        }
        let Ok(event) = serde_dynamo::from_item::<_, EventRecord>(record.change.new_image) else {
            tracing::error!("stream record is not a stored event; skipped");
            return Ok(());
        };
        if !STREAM_EVENTS.contains(&event.kind) {
            return Ok(());
        }
        let span = tracing::info_span!("stripe_event", event_id = %event.event_id, event_type = %event.kind, account = event.account.as_ref().map(AccountId::as_str));
        async {
            let Some(session) = self.session_of(&event).await? else {
                return Ok(());
            };
            let now = self.clock.now();
            match event.kind {
                EventType::CheckoutSessionExpired => self
                    .session_expired(&session, event.account.as_ref(), now)
                    .await
                    .map(drop),
                EventType::CheckoutSessionAsyncPaymentFailed => {
                    self.payment_failed(&session, now).await.map(drop)
                }
                _ => self.session_completed(&session, event.created, now).await,
            }
        }
        .instrument(span)
        .await
    }

    /// The session in the event: as stored, or from Stripe when it was too large to store
    /// (or stored in a shape this version does not read).
    async fn session_of(
        &self,
        event: &EventRecord,
    ) -> Result<Option<CheckoutSession>, RecoveryError> {
        if let Some(stored) = event.object.as_deref() {
            match serde_json::from_str::<CheckoutSession>(stored) {
                Ok(session) => return Ok(Some(session)),
                Err(err) => {
                    tracing::warn!(error = %err, "stored session unreadable; retrieving it from Stripe");
                }
            }
        }
        let Some(id) = event
            .object_id
            .as_deref()
            .and_then(|id| id.parse::<SessionId>().ok())
        else {
            tracing::error!("event without a checkout session id; skipped");
            return Ok(None);
        };
        match self
            .stripe
            .retrieve_checkout_session(&id, event.account.as_ref())
            .await
        {
            Ok(session) => Ok(Some(session)),
            Err(err) if err.is_not_found() => {
                tracing::warn!(session_id = %id, "session unknown to Stripe; skipped");
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }
}
