//! The recovery function's stream trigger: each inserted event of `STREAM_EVENTS`, routed to
//! the abandoned-cart email, the payment-failed and renewal notices or the purchase record, each record
//! started only with time left for its worst case.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use tracing::Instrument;

use super::{Decision, RECORD_TIME_BUDGET_SECS, Recovery, RecoveryError, STREAM_EVENTS};
use crate::ids::{AccountId, SessionId};
use crate::lambda;
use crate::mail::Mailer;
use crate::store::{Consumer, EventOutcome, EventRecord, Handled};
use crate::stripe::{CheckoutSession, EventType};

enum SessionOf {
    Found(Box<CheckoutSession>),
    NoId,
    NotFound(SessionId),
}

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
            let Some(event) = lambda::inserted_event(record, STREAM_EVENTS) else {
                continue;
            };
            if let Err(err) = self.handle_event(&event).await {
                tracing::warn!(error = %err, sequence = sequence.as_deref(), "stream record will be retried");
                lambda::retry_later(&mut response, sequence);
            }
        }
        response
    }

    /// Acts on one stored event and records the outcome on it: the stream's path and the
    /// reconciler's re-drive, the same code. `Ok` holds the outcome recorded, which may still
    /// be unfinished (a session Stripe does not know).
    ///
    /// # Errors
    /// The event is not finished and its trigger should retry it.
    pub async fn handle_event(&self, event: &EventRecord) -> Result<EventOutcome, RecoveryError> {
        let span = tracing::info_span!("stripe_event", event_id = %event.event_id, event_type = %event.kind, account = event.account.as_ref().map(AccountId::as_str));
        async {
            let result = self.act(event).await;
            let outcome = EventOutcome::of(&result, RecoveryError::code, self.clock.now());
            self.events
                .settle(event, Consumer::Recovery, &outcome)
                .await;
            result.map(|_| outcome)
        }
        .instrument(span)
        .await
    }

    async fn act(&self, event: &EventRecord) -> Result<Handled, RecoveryError> {
        if matches!(
            event.kind,
            EventType::InvoicePaymentFailed | EventType::InvoicePaymentActionRequired
        ) {
            return self.invoice_notice(event).await;
        }
        if matches!(
            event.kind,
            EventType::PaymentIntentProcessing | EventType::PaymentIntentPaymentFailed
        ) {
            return self.payment_notice(event).await;
        }
        let session = match self.session_of(event).await? {
            SessionOf::Found(session) => session,
            SessionOf::NoId => return Ok(Handled::Skipped("malformed_object_id")),
            // Acknowledged (the stream's retries cannot heal it), left for the reconciler.
            SessionOf::NotFound(id) => {
                return Ok(Handled::Unresolved {
                    reason: "not_found",
                    error: format!("{id} not found at Stripe"),
                });
            }
        };
        if self.is_foreign(&session, event.account.as_ref()).await? {
            return Ok(Handled::Skipped("foreign_session"));
        }
        let now = self.clock.now();
        Ok(match event.kind {
            EventType::CheckoutSessionExpired => {
                match self
                    .session_expired(&session, event.account.as_ref(), now)
                    .await
                {
                    Ok(Decision::Sent { .. }) => Handled::Done,
                    Ok(Decision::Skipped(reason)) => Handled::Skipped(reason.as_str()),
                    // Stripe does not know the session's line items (another key, another
                    // account): as for an unknown session, the stream's immediate retries
                    // cannot heal it, so it is acknowledged and left to the reconciler's
                    // backoff, which gives up in the end.
                    Err(RecoveryError::Stripe(err)) if err.is_not_found() => {
                        tracing::warn!(session_id = %session.id, "line items unknown to Stripe; left for the reconciler");
                        Handled::Unresolved {
                            reason: "not_found",
                            error: format!("{}'s line items not found at Stripe", session.id),
                        }
                    }
                    Err(err) => return Err(err),
                }
            }
            EventType::CheckoutSessionAsyncPaymentFailed => {
                if self
                    .payment_failed(&session, event.account.as_ref(), now)
                    .await?
                {
                    Handled::Done
                } else {
                    Handled::Skipped("no_email_or_already_sent")
                }
            }
            EventType::CheckoutSessionCompleted => {
                self.session_completed(&session, event.created, now).await?;
                Handled::Done
            }
            _ => Handled::Skipped("not_a_recovery_event"),
        })
    }

    /// A connected account's session this bundle did not create (nor recovered from one it
    /// did): another integration's customer, not this bundle's to email.
    async fn is_foreign(
        &self,
        session: &CheckoutSession,
        account: Option<&AccountId>,
    ) -> Result<bool, RecoveryError> {
        if account.is_none() || self.config.foreign_sessions {
            return Ok(false);
        }
        for id in std::iter::once(&session.id).chain(session.recovered_from.as_ref()) {
            if self.sessions.get(id).await?.is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The session in the event: as stored, or from Stripe when it was too large to store
    /// (or stored in a shape this version does not read).
    async fn session_of(&self, event: &EventRecord) -> Result<SessionOf, RecoveryError> {
        if let Some(stored) = event.object.as_deref() {
            match serde_json::from_str::<CheckoutSession>(stored) {
                Ok(session) => return Ok(SessionOf::Found(Box::new(session))),
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
            return Ok(SessionOf::NoId);
        };
        match self
            .stripe
            .retrieve_checkout_session(&id, event.account.as_ref())
            .await
        {
            Ok(session) => Ok(SessionOf::Found(Box::new(session))),
            Err(err) if err.is_not_found() => {
                tracing::warn!(session_id = %id, "session unknown to Stripe; left for the reconciler");
                Ok(SessionOf::NotFound(id))
            }
            Err(err) => Err(err.into()),
        }
    }
}
