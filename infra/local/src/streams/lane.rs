//! One function's position on one shard, and the event source mapping's decisions over it:
//! which records form the next batch, and what a handler's answer does to the checkpoint.
//! Plain state, no AWS calls, so every rule is tested without moto.
//!
//! The rules, from AWS's Lambda developer guide ("Configuring partial batch response with
//! DynamoDB and Lambda", "Retain discarded records for a DynamoDB event source"):
//! * a batch with no failures moves the checkpoint past its last record;
//! * `batchItemFailures` (with `ReportBatchItemFailures`) checkpoints before the failed record
//!   with the lowest sequence number and retries from it; an empty, null or unknown
//!   `itemIdentifier` makes the whole batch a failure;
//! * a function error (here: the handler panicked) with `BisectBatchOnFunctionError` splits
//!   the batch in two, each half tried in turn; splitting does not consume the retry quota;
//! * after `MaximumRetryAttempts` retries, or once a record is older than
//!   `MaximumRecordAgeInSeconds`, the records are discarded to the on-failure destination and
//!   the shard moves on.

use std::cmp::Ordering;
use std::collections::VecDeque;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use chrono::{DateTime, Utc};

use super::filter;
use super::mapping::Mapping;

/// What one invocation came back with.
#[derive(Debug)]
pub enum Outcome {
    Response(DynamoDbEventResponse),
    /// The invocation failed as a whole (Lambda: a function error).
    FunctionError(String),
}

/// Why records were discarded, in the on-failure record's `requestContext.condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Self::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// Records discarded: what the on-failure destination is told.
#[derive(Debug)]
pub struct GivenUp {
    pub records: Vec<EventRecord>,
    pub condition: Condition,
    pub invocations: u32,
    /// The last invocation's function error, if that is how it failed.
    pub function_error: Option<String>,
}

/// A batch to invoke, or one a bisect left for later.
#[derive(Debug, Clone)]
pub struct Batch {
    pub records: Vec<EventRecord>,
    retries: u32,
    invocations: u32,
}

#[derive(Debug)]
enum Entry {
    Deliver(Box<EventRecord>),
    /// Filtered out: processed without an invocation.
    Skip(String),
}

#[derive(Debug, Default)]
pub struct Lane {
    /// The last sequence number fully processed.
    checkpoint: Option<String>,
    /// The last sequence number read, so a re-read (a reopened iterator) is not queued twice.
    read_through: Option<String>,
    queue: VecDeque<Entry>,
    /// The batch being tried, then the halves a bisect left, in stream order.
    work: VecDeque<Batch>,
    /// When the oldest queued deliverable record arrived here (batching window).
    gathering_since: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

/// Numeric order of sequence numbers (decimal strings of up to 40 digits).
pub fn sequence_order(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

pub fn sequence(record: &EventRecord) -> &str {
    record.change.sequence_number.as_deref().unwrap_or_default()
}

impl Lane {
    pub fn new(checkpoint: Option<String>) -> Self {
        Self {
            read_through: checkpoint.clone(),
            checkpoint,
            ..Self::default()
        }
    }

    pub fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }

    /// Where a reopened iterator resumes: after everything read so far.
    pub fn read_through(&self) -> Option<&str> {
        self.read_through.as_deref()
    }

    /// Nothing read is left to deliver.
    pub fn is_idle(&self) -> bool {
        self.work.is_empty() && self.queue.is_empty()
    }

    /// Whether to read more: not beyond a batch ahead of what is being delivered.
    pub fn wants_records(&self, mapping: &Mapping) -> bool {
        self.work.is_empty() && self.deliverable() < mapping.batch_size
    }

    fn deliverable(&self) -> usize {
        self.queue
            .iter()
            .filter(|e| matches!(e, Entry::Deliver(_)))
            .count()
    }

    /// Queues records read from the shard, dropping what was read before and what the
    /// mapping's filters do not deliver.
    pub fn read(&mut self, mapping: &Mapping, records: Vec<EventRecord>, now: DateTime<Utc>) {
        for record in records {
            let seq = sequence(&record).to_string();
            if self
                .read_through
                .as_deref()
                .is_some_and(|read| sequence_order(&seq, read) != Ordering::Greater)
            {
                continue;
            }
            self.read_through = Some(seq.clone());
            let json = serde_json::to_value(&record).unwrap_or_default();
            if filter::delivered(&mapping.filters, &json) {
                self.gathering_since.get_or_insert(now);
                self.queue.push_back(Entry::Deliver(Box::new(record)));
            } else {
                self.queue.push_back(Entry::Skip(seq));
            }
        }
    }

    /// The next batch to invoke, if any, and the records discarded on the way for their age.
    pub fn next(&mut self, mapping: &Mapping, now: DateTime<Utc>) -> (Option<Batch>, Vec<GivenUp>) {
        let mut given_up = Vec::new();
        loop {
            if self.work.is_empty() && !self.take_batch(mapping, now) {
                return (None, given_up);
            }
            let batch = self.work.front_mut().expect("a batch is in work");
            let expired = batch
                .records
                .iter()
                .take_while(|r| too_old(mapping, r, now))
                .count();
            if expired > 0 {
                let records: Vec<EventRecord> = batch.records.drain(..expired).collect();
                self.checkpoint = records.last().map(|r| sequence(r).to_string());
                given_up.push(GivenUp {
                    records,
                    condition: Condition::RecordAgeExceeded,
                    invocations: batch.invocations,
                    function_error: None,
                });
            }
            if batch.records.is_empty() {
                self.work.pop_front();
                continue;
            }
            return (Some(batch.clone()), given_up);
        }
    }

    /// Moves up to a batch of queued records into work; false when none is due.
    fn take_batch(&mut self, mapping: &Mapping, now: DateTime<Utc>) -> bool {
        while let Some(Entry::Skip(seq)) = self.queue.front() {
            self.checkpoint = Some(seq.clone());
            self.queue.pop_front();
        }
        let full = self.deliverable() >= mapping.batch_size;
        let waited = self.gathering_since.is_some_and(|since| {
            (now - since).to_std().unwrap_or_default() >= mapping.batching_window
        });
        if self.queue.is_empty() || !(full || waited) {
            return false;
        }
        // Skips after the last record taken stay queued: they move the checkpoint later.
        let take = self.deliverable().min(mapping.batch_size);
        let mut records = Vec::with_capacity(take);
        while records.len() < take {
            match self.queue.pop_front() {
                Some(Entry::Deliver(record)) => records.push(*record),
                // Covered by the checkpoint of the delivered record after it.
                Some(Entry::Skip(_)) => {}
                None => break,
            }
        }
        self.gathering_since = (self.deliverable() > 0).then_some(now);
        self.work.push_back(Batch {
            records,
            retries: 0,
            invocations: 0,
        });
        true
    }

    /// Applies an invocation's outcome to the batch `next` returned. `retry` says whether
    /// records are being tried again (the caller pauses), `given_up` what was discarded.
    pub fn settle(&mut self, mapping: &Mapping, outcome: Outcome) -> Settled {
        let Some(batch) = self.work.front_mut() else {
            return Settled::default();
        };
        batch.invocations += 1;
        let failed_from = match outcome {
            Outcome::FunctionError(error) => Err(error),
            Outcome::Response(_) if !mapping.report_item_failures => Ok(None),
            Outcome::Response(response) => first_failure(&batch.records, &response),
        };
        match failed_from {
            Ok(None) => {
                self.checkpoint = batch.records.last().map(|r| sequence(r).to_string());
                self.work.pop_front();
                self.last_error = None;
                Settled::default()
            }
            Ok(Some(index)) => {
                if index > 0 {
                    self.checkpoint = Some(sequence(&batch.records[index - 1]).to_string());
                    batch.records.drain(..index);
                }
                self.last_error = None;
                self.retry_or_give_up(mapping)
            }
            Err(error) => {
                self.last_error = Some(error);
                if mapping.bisect_on_error && batch.records.len() > 1 {
                    let second = batch.records.split_off(batch.records.len().div_ceil(2));
                    let half = Batch {
                        records: second,
                        ..batch.clone()
                    };
                    self.work.insert(1, half);
                    return Settled {
                        retry: true,
                        given_up: None,
                    };
                }
                self.retry_or_give_up(mapping)
            }
        }
    }

    fn retry_or_give_up(&mut self, mapping: &Mapping) -> Settled {
        let batch = self.work.front_mut().expect("a batch is in work");
        batch.retries += 1;
        if mapping.max_retries.is_none_or(|max| batch.retries <= max) {
            return Settled {
                retry: true,
                given_up: None,
            };
        }
        let batch = self.work.pop_front().expect("a batch is in work");
        self.checkpoint = batch.records.last().map(|r| sequence(r).to_string());
        Settled {
            retry: false,
            given_up: Some(GivenUp {
                records: batch.records,
                condition: Condition::RetryAttemptsExhausted,
                invocations: batch.invocations,
                function_error: self.last_error.take(),
            }),
        }
    }
}

#[derive(Debug, Default)]
pub struct Settled {
    pub retry: bool,
    pub given_up: Option<GivenUp>,
}

fn too_old(mapping: &Mapping, record: &EventRecord, now: DateTime<Utc>) -> bool {
    mapping.max_record_age.is_some_and(|max| {
        (now - record.change.approximate_creation_date_time)
            .to_std()
            .is_ok_and(|age| age > max)
    })
}

/// The index of the failed record with the lowest sequence number; `Err` when the response
/// makes the whole batch a failure.
fn first_failure(
    records: &[EventRecord],
    response: &DynamoDbEventResponse,
) -> Result<Option<usize>, String> {
    let mut first: Option<usize> = None;
    for failure in &response.batch_item_failures {
        let id = failure.item_identifier.as_deref().unwrap_or_default();
        let Some(index) = records
            .iter()
            .position(|r| !id.is_empty() && sequence(r) == id)
        else {
            return Err(format!(
                "batchItemFailures names {id:?}, not a record of the batch"
            ));
        };
        first = Some(first.map_or(index, |f| f.min(index)));
    }
    Ok(first)
}

#[cfg(test)]
mod tests;
