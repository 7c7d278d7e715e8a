//! Re-drive: an event a consumer has not finished after the grace period goes back through
//! that consumer's own handler, which honours claims and leases like any delivery.

use super::{ConsumerReport, Drive, PassOptions, PassReport, ReconcileError, Reconciler};
use crate::ids::EventId;
use crate::store::{Consumer, EventOutcome, EventRecord};

/// The longest wait between two re-drives of one event.
const MAX_BACKOFF_SECS: i64 = 6 * 3600;

impl Reconciler {
    /// Puts one event back through each of its consumers at once, whatever its attempts and
    /// backoff (`ops redrive`): its pending marks are set again and its attempts reset.
    /// Returns each consumer's result, `Err` holding the error's text.
    ///
    /// # Errors
    /// DynamoDB failed; the event is not stored (`Ok(None)`).
    pub async fn redrive_now<D: Drive>(
        &self,
        id: &EventId,
        handlers: &D,
    ) -> Result<Option<Vec<(Consumer, Result<(), String>)>>, ReconcileError> {
        let Some(event) = self.events.get(id).await? else {
            return Ok(None);
        };
        let mut results = Vec::new();
        for consumer in Consumer::ALL {
            if !consumer.events().contains(&event.kind) {
                continue;
            }
            self.events.mark_pending(&event, consumer).await?;
            let result = handlers.run(consumer, &event, None).await;
            results.push((consumer, result.map(drop)));
        }
        Ok(Some(results))
    }

    pub(super) async fn redrive<D: Drive>(
        &self,
        consumer: Consumer,
        handlers: &D,
        options: &PassOptions,
        report: &mut PassReport,
    ) -> Result<ConsumerReport, ReconcileError> {
        let mut out = ConsumerReport::default();
        let now = self.clock.now();
        let cutoff = now - self.config.grace_secs;
        for kind in consumer.events() {
            let mut start = None;
            loop {
                let page = self.events.pending(consumer, kind, cutoff, start).await?;
                for event in page.events {
                    if self
                        .redrive_one(consumer, &event, handlers, options, report, &mut out)
                        .await
                    {
                        continue;
                    }
                    out.unresolved += 1;
                    let age = now - event.received_at;
                    out.oldest_unresolved_age_secs =
                        Some(out.oldest_unresolved_age_secs.unwrap_or(0).max(age));
                    if age > 3600 {
                        out.over_an_hour += 1;
                    }
                }
                start = page.next;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Re-drives one unfinished event when its backoff allows; `true` when it is finished.
    async fn redrive_one<D: Drive>(
        &self,
        consumer: Consumer,
        event: &EventRecord,
        handlers: &D,
        options: &PassOptions,
        report: &mut PassReport,
        out: &mut ConsumerReport,
    ) -> bool {
        let attempts = event.attempts(consumer);
        if attempts >= self.config.max_attempts {
            out.given_up += 1;
            return false;
        }
        if let Some(EventOutcome::Failed { at, .. }) = event.outcome(consumer)
            && self.clock.now() < at + self.backoff(attempts)
        {
            return false;
        }
        if self.out_of_time(options.deadline) {
            report.out_of_time = true;
            return false;
        }
        out.redriven += 1;
        tracing::info!(event_id = %event.event_id, event_type = %event.kind, consumer = consumer.as_str(), attempts, "re-driving an unfinished event");
        // A handler can succeed and still leave the event unresolved (a Stripe 404).
        let finished = handlers
            .run(consumer, event, options.deadline)
            .await
            .is_ok_and(|outcome| outcome.is_final());
        if finished {
            out.resolved += 1;
        }
        finished
    }

    /// The wait after an event's `attempts`-th failure: the grace period, doubling, capped.
    fn backoff(&self, attempts: u32) -> i64 {
        let doublings = attempts.saturating_sub(1).min(5);
        (self.config.grace_secs << doublings).min(MAX_BACKOFF_SECS)
    }
}
