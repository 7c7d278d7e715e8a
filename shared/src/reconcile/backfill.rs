//! Backfill: the events Stripe could not deliver (an outage longer than its retries, a
//! webhook secret rolled in Stripe but not here) are read from Stripe's event list and
//! stored as if delivered.

use super::{PassOptions, PassReport, ReconcileError, Reconciler};
use crate::ids::AccountId;
use crate::store::{Consumer, EventRecord, Recorded};
use crate::stripe::{EventType, Form};

/// Stripe's largest page.
const PAGE_SIZE: u32 = 100;

impl Reconciler {
    pub(super) async fn backfill(
        &self,
        options: &PassOptions,
        report: &mut PassReport,
    ) -> Result<(), ReconcileError> {
        let accounts: Vec<Option<&AccountId>> = match &options.account {
            Some(account) => vec![Some(account)],
            None => std::iter::once(None)
                .chain(self.config.accounts.iter().map(Some))
                .collect(),
        };
        for account in accounts {
            if report.out_of_time {
                break;
            }
            self.backfill_account(account, options, report).await?;
        }
        Ok(())
    }

    /// One account's events since its checkpoint. The checkpoint moves to the pass's start
    /// only once every page is stored: Stripe lists newest first, so a pass cut short reads
    /// the same window again next time (storing is idempotent) rather than skip its tail.
    async fn backfill_account(
        &self,
        account: Option<&AccountId>,
        options: &PassOptions,
        report: &mut PassReport,
    ) -> Result<(), ReconcileError> {
        let name = checkpoint_name(account);
        let started = self.clock.now();
        let since = match options.since_secs {
            Some(secs) => started - secs,
            None => match self.checkpoints.get(&name).await? {
                Some(until) => until - self.config.overlap_secs,
                None => started - self.config.first_lookback_secs,
            },
        };
        let mut starting_after: Option<String> = None;
        loop {
            if self.out_of_time(options.deadline) {
                report.out_of_time = true;
                return Ok(());
            }
            let mut query = Form::new();
            for kind in acted_on() {
                query.push("types[]", kind);
            }
            query.push("created[gte]", since).push("limit", PAGE_SIZE);
            query.push_opt("starting_after", starting_after.as_ref());
            let page = self.stripe.list_events(&query, account).await?;
            for mut event in page.data {
                report.listed += 1;
                // Listed on a connected account, an event may not name it: it is that account's.
                if event.account.is_none() {
                    event.account = account.cloned();
                }
                starting_after = Some(event.id.to_string());
                let record = EventRecord::new(&event, self.clock.now(), self.config.retention_secs);
                if self.events.record_once(&record).await? == Recorded::New {
                    report.backfilled += 1;
                    tracing::info!(event_id = %event.id, event_type = %event.kind, account = account.map(AccountId::as_str), "event backfilled from Stripe's list");
                }
            }
            if !page.has_more || starting_after.is_none() {
                break;
            }
        }
        self.checkpoints
            .advance(&name, started, self.clock.now())
            .await?;
        Ok(())
    }
}

fn checkpoint_name(account: Option<&AccountId>) -> String {
    format!("backfill:{}", account.map_or("platform", AccountId::as_str))
}

/// Every type a consumer acts on, once each.
fn acted_on() -> Vec<&'static EventType> {
    let mut kinds: Vec<&'static EventType> = Vec::new();
    for consumer in Consumer::ALL {
        for kind in consumer.events() {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    kinds
}
