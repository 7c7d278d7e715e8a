//! Nothing lost: the pass that makes every event Stripe sent reach its outcome, or counts it.
//!
//! Each pass, within the invocation's time:
//! - `backfill`: lists Stripe's events of the types the bundle acts on since a stored
//!   checkpoint (minus an overlap), on the platform and every connected account, and stores
//!   each through the webhook's own conditional put. A new one flows down the stream like any
//!   delivery; a known one writes nothing.
//! - `redrive`: every event a consumer has not finished `RECONCILE_GRACE_SECS` after it was
//!   received is handed to that consumer's own handler (the function the stream calls), with
//!   backoff, up to `RECONCILE_MAX_ATTEMPTS`; then it is left `failed` and counted.
//! - metrics (EMF): backfilled, re-driven, unresolved and the oldest unresolved age per
//!   consumer, which the template alarms on every period.
//!
//! This module sits above the domain modules it drives (fulfillment, recovery); nothing
//! imports it but the functions that run it.

mod backfill;
mod consumers;
mod explain;
mod redrive;

pub use consumers::{Consumers, ConsumersConfig, Drive, Handlers};
pub use explain::{ExplainConfig, Explainer};

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::Clock;
use crate::config::{self, ConfigError, Source, TableName};
use crate::ids::AccountId;
use crate::metrics::{self, Unit};
use crate::store::{CheckpointStore, Consumer, DynamoDb, EventStore, StoreError};
use crate::stripe::{StripeClient, StripeConfig, StripeError};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    pub stripe: StripeConfig,
    pub events_table: TableName,
    pub reconcile_table: TableName,
    /// Connected accounts whose events are backfilled too (`CONNECT_ACCOUNTS`).
    pub accounts: Vec<AccountId>,
    /// How long after receipt an unfinished event is left to the stream before a re-drive.
    pub grace_secs: i64,
    /// How far before the checkpoint each backfill starts again.
    pub overlap_secs: i64,
    /// How far back the first backfill of an account reads.
    pub first_lookback_secs: i64,
    /// Attempts (the stream's and the reconciler's) after which an event is left `failed`.
    pub max_attempts: u32,
    pub retention_secs: i64,
}

impl ReconcileConfig {
    /// # Errors
    /// A missing or invalid variable, named.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let retention_days: i64 = config::parsed_or(env, "EVENT_RETENTION_DAYS", 30)?;
        Ok(Self {
            stripe: StripeConfig::from_env(env)?,
            events_table: TableName::from_env(env, "EVENTS_TABLE")?,
            reconcile_table: TableName::from_env(env, "RECONCILE_TABLE")?,
            accounts: config::list(env, "CONNECT_ACCOUNTS")?,
            grace_secs: config::parsed_or(env, "RECONCILE_GRACE_SECS", 600)?,
            overlap_secs: config::parsed_or(env, "RECONCILE_OVERLAP_SECS", 3600)?,
            first_lookback_secs: config::parsed_or(
                env,
                "RECONCILE_FIRST_LOOKBACK_SECS",
                72 * 3600,
            )?,
            max_attempts: config::parsed_or(env, "RECONCILE_MAX_ATTEMPTS", 30)?,
            retention_secs: retention_days * 86_400,
        })
    }
}

/// What one pass is asked to do (`ops reconcile --since 72h --account acct_…`).
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Backfill this far back instead of from the checkpoint.
    pub since_secs: Option<i64>,
    /// Backfill this account only (the platform is `None` in `accounts`).
    pub account: Option<AccountId>,
    /// The invocation's deadline, unix seconds.
    pub deadline: Option<i64>,
}

/// What one consumer's unfinished events looked like in a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsumerReport {
    /// Handed to the consumer again.
    pub redriven: u32,
    /// Finished by this pass's re-drive.
    pub resolved: u32,
    /// Still unfinished past the grace period after the pass.
    pub unresolved: u32,
    /// Of those, past `max_attempts`: no longer re-driven, an operator's to look at.
    pub given_up: u32,
    /// Of those, received over an hour ago (the alarm's metric).
    pub over_an_hour: u32,
    pub oldest_unresolved_age_secs: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Events read from Stripe's lists.
    pub listed: u32,
    /// Of those, new to the events table.
    pub backfilled: u32,
    pub consumers: BTreeMap<&'static str, ConsumerReport>,
    /// The pass stopped for lack of time; the next one goes on.
    pub out_of_time: bool,
    /// Why the backfill stopped early (Stripe or DynamoDB failing); the re-drive still ran,
    /// and the next pass reads the same window again from the unmoved checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill_error: Option<String>,
}

/// The longest one step of a pass can take (a Stripe page, or one re-drive): a step is only
/// started with this much time left.
pub const STEP_TIME_BUDGET_SECS: i64 = 60;

pub struct Reconciler {
    config: ReconcileConfig,
    stripe: StripeClient,
    events: EventStore,
    checkpoints: CheckpointStore,
    clock: Clock,
}

impl Reconciler {
    #[must_use]
    pub fn new(config: ReconcileConfig, dynamodb: DynamoDb) -> Self {
        Self {
            stripe: StripeClient::new(config.stripe.clone()),
            events: EventStore::new(config.events_table.clone(), dynamodb.clone()),
            checkpoints: CheckpointStore::new(config.reconcile_table.clone(), dynamodb),
            config,
            clock: Clock::system(),
        }
    }

    /// The same reconciler reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    #[must_use]
    pub fn events(&self) -> &EventStore {
        &self.events
    }

    /// One pass: backfill, then re-drive, then metrics. A backfill that fails (Stripe out of
    /// reach) is reported in the pass and counted (`BackfillFailures`), and does not stop the
    /// re-drive of what is already stored.
    ///
    /// # Errors
    /// DynamoDB failed during the scan of unfinished events. A re-drive that fails is not an
    /// error of the pass: it stays unfinished and counted.
    pub async fn pass<D: Drive>(
        &self,
        handlers: &D,
        options: &PassOptions,
    ) -> Result<PassReport, ReconcileError> {
        let mut report = PassReport::default();
        if let Err(err) = self.backfill(options, &mut report).await {
            tracing::warn!(error = %err, "backfill stopped; the next pass reads the same window again");
            metrics::emit("BackfillFailures", 1.0, Unit::Count, &[]);
            report.backfill_error = Some(err.to_string());
        }
        for consumer in Consumer::ALL {
            let consumer_report = self
                .redrive(consumer, handlers, options, &mut report)
                .await?;
            report.consumers.insert(consumer.as_str(), consumer_report);
        }
        emit(&report);
        tracing::info!(
            listed = report.listed,
            backfilled = report.backfilled,
            out_of_time = report.out_of_time,
            consumers = ?report.consumers,
            "reconcile pass done"
        );
        Ok(report)
    }

    fn out_of_time(&self, deadline: Option<i64>) -> bool {
        deadline.is_some_and(|d| d - self.clock.now() < STEP_TIME_BUDGET_SECS)
    }
}

fn emit(report: &PassReport) {
    let count = |value: u32| f64::from(value);
    metrics::emit(
        "EventsBackfilled",
        count(report.backfilled),
        Unit::Count,
        &[],
    );
    for (consumer, r) in &report.consumers {
        let dims = [("Consumer", *consumer)];
        metrics::emit("EventsRedriven", count(r.redriven), Unit::Count, &dims);
        metrics::emit("EventsUnresolved", count(r.unresolved), Unit::Count, &dims);
        metrics::emit("EventsGivenUp", count(r.given_up), Unit::Count, &dims);
        metrics::emit(
            "EventsUnresolvedOverAnHour",
            count(r.over_an_hour),
            Unit::Count,
            &dims,
        );
        #[expect(
            clippy::cast_precision_loss,
            reason = "an age in seconds is far below 2^52"
        )]
        let age = r.oldest_unresolved_age_secs.unwrap_or(0) as f64;
        metrics::emit("OldestUnresolvedAgeSeconds", age, Unit::Seconds, &dims);
    }
}
