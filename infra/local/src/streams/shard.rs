//! One function reading one shard, as one event source mapping does: its own iterator, its
//! own checkpoint, its own retries, so a function that fails never holds back or repeats
//! records for another. The decisions are the lane's; this file makes the AWS calls, invokes
//! the handler and saves the checkpoint.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{
    Event as StreamEvent, EventRecord, StreamViewType, UserIdentity,
};
use aws_sdk_dynamodbstreams::Client as Streams;
use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use chrono::Utc;

use super::failures::Failures;
use super::lane::{Lane, Outcome, sequence_order};
use super::mapping::StartingPosition;
use super::positions::Positions;
use super::{Consumer, Function};

/// Lambda polls each shard four times a second.
const POLL_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct ShardInfo {
    pub id: String,
    pub parent: Option<String>,
    pub starting_sequence: Option<String>,
}

/// Where an iterator is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Open {
    After(String),
    TrimHorizon,
    Latest,
}

pub struct Reader {
    pub function: Arc<Function>,
    pub shard: ShardInfo,
    pub stream_arn: String,
    pub streams: Streams,
    pub positions: Arc<Positions>,
    pub failures: Arc<Failures>,
}

impl Reader {
    pub async fn run(self) {
        let mapping = &self.function.mapping;
        let name = mapping.function.as_str();
        let shard = self.shard.id.as_str();
        let (checkpoint, first_open) = self.start();
        let mut lane = Lane::new(checkpoint);
        let mut saved = lane.checkpoint().map(str::to_string);
        let mut open = Some(first_open.clone());
        let mut iterator: Option<String> = None;
        let mut closed = false;
        loop {
            if !closed && lane.wants_records(mapping) {
                if let Some(at) = open.take() {
                    match self.iterator(&at).await {
                        Ok(opened) => iterator = Some(opened),
                        Err(err) => {
                            let trimmed = err.trimmed;
                            tracing::warn!(function = name, shard, at = ?at, error = err.message, "cannot open the shard");
                            open = Some(if trimmed { Open::TrimHorizon } else { at });
                            tokio::time::sleep(POLL_EVERY).await;
                            continue;
                        }
                    }
                }
                if let Some(current) = iterator.take() {
                    match self
                        .streams
                        .get_records()
                        .shard_iterator(current)
                        .send()
                        .await
                    {
                        Ok(out) => {
                            let records = out.records.unwrap_or_default();
                            let records = records
                                .into_iter()
                                .map(|r| lambda_record(r, &self.stream_arn))
                                .collect();
                            lane.read(mapping, records, Utc::now());
                            iterator = out.next_shard_iterator;
                            closed = iterator.is_none();
                        }
                        Err(err) => {
                            let trimmed = err
                                .as_service_error()
                                .is_some_and(|e| e.is_trimmed_data_access_exception());
                            tracing::warn!(function = name, shard, error = %DisplayErrorContext(&err), "get records failed; reopening the shard");
                            // Past what was read, unless that has been trimmed away.
                            open = Some(match lane.read_through() {
                                _ if trimmed => Open::TrimHorizon,
                                Some(seq) => Open::After(seq.to_string()),
                                None => first_open.clone(),
                            });
                        }
                    }
                }
            }
            let (batch, given_up) = lane.next(mapping, Utc::now());
            for records in &given_up {
                self.failures
                    .record(mapping, &self.stream_arn, shard, records);
            }
            self.save(&lane, &mut saved);
            if let Some(batch) = batch {
                let outcome = invoke(&self.function.handler, batch.records).await;
                if let Outcome::FunctionError(error) = &outcome {
                    tracing::warn!(
                        function = name,
                        shard,
                        error,
                        "stream invocation failed (a function error)"
                    );
                }
                let settled = lane.settle(mapping, outcome);
                if let Some(records) = &settled.given_up {
                    self.failures
                        .record(mapping, &self.stream_arn, shard, records);
                }
                self.save(&lane, &mut saved);
                if settled.retry {
                    tokio::time::sleep(mapping.retry_pause).await;
                }
                continue;
            }
            if closed && lane.is_idle() {
                tracing::info!(function = name, shard, "shard closed and read to its end");
                return;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// The saved checkpoint, if still on the shard, and where to open it.
    fn start(&self) -> (Option<String>, Open) {
        let name = self.function.mapping.function.as_str();
        let shard = self.shard.id.as_str();
        match self.positions.get(name, shard) {
            Some(seq)
                if self
                    .shard
                    .starting_sequence
                    .as_deref()
                    .is_some_and(|start| sequence_order(&seq, start).is_lt()) =>
            {
                tracing::warn!(
                    function = name,
                    shard,
                    checkpoint = seq,
                    "the saved position has been trimmed from the shard; reading from TRIM_HORIZON"
                );
                (None, Open::TrimHorizon)
            }
            Some(seq) => {
                tracing::info!(function = name, shard, after = seq, file = %self.positions.path().display(), "resuming the stream after the saved position");
                (Some(seq.clone()), Open::After(seq))
            }
            // A shard that appeared since this function last read the stream: from its start.
            None if self.positions.knows(name) => (None, Open::TrimHorizon),
            None => match self.function.mapping.starting_position {
                StartingPosition::TrimHorizon => (None, Open::TrimHorizon),
                StartingPosition::Latest => (None, Open::Latest),
            },
        }
    }

    async fn iterator(&self, at: &Open) -> Result<String, OpenError> {
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(&self.shard.id);
        let request = match at {
            Open::After(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            Open::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Open::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
        };
        match request.send().await {
            Ok(out) => out.shard_iterator.ok_or_else(|| OpenError {
                trimmed: false,
                message: "no shard iterator in the answer".into(),
            }),
            Err(err) => Err(OpenError {
                // Also an unknown sequence number: read what the shard still has.
                trimmed: err.as_service_error().is_some_and(|e| {
                    e.is_trimmed_data_access_exception()
                        || e.meta().code() == Some("ValidationException")
                }),
                message: DisplayErrorContext(&err).to_string(),
            }),
        }
    }

    fn save(&self, lane: &Lane, saved: &mut Option<String>) {
        let Some(checkpoint) = lane.checkpoint() else {
            return;
        };
        if saved.as_deref() == Some(checkpoint) {
            return;
        }
        let function = self.function.mapping.function.as_str();
        if let Err(err) = self.positions.save(function, &self.shard.id, checkpoint) {
            tracing::warn!(function, file = %self.positions.path().display(), error = %err, "cannot save the stream position; a restart will re-read from the last saved one");
        }
        *saved = Some(checkpoint.to_string());
    }
}

struct OpenError {
    trimmed: bool,
    message: String,
}

/// Aborts the invocation when the reader is stopped mid-way, as a crash would end it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One invocation. On its own task so a panicking handler is a function error, as an
/// unhandled error is in Lambda, rather than the end of the poller.
async fn invoke(handler: &Consumer, records: Vec<EventRecord>) -> Outcome {
    let mut event = StreamEvent::default();
    event.records = records;
    let mut task = AbortOnDrop(tokio::spawn(handler(event)));
    match (&mut task.0).await {
        Ok(response) => Outcome::Response(response),
        Err(err) => Outcome::FunctionError(match err.try_into_panic() {
            Ok(panic) => panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the handler panicked".into()),
            Err(err) => err.to_string(),
        }),
    }
}

/// The record as Lambda would deliver it.
pub fn lambda_record(record: Record, arn: &str) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id.unwrap_or_default();
    out.event_name = record
        .event_name
        .map(|n| n.as_str().to_string())
        .unwrap_or_default();
    out.event_version = record.event_version;
    out.event_source = Some("aws:dynamodb".into());
    out.event_source_arn = Some(arn.to_string());
    out.aws_region = record.aws_region.unwrap_or_default();
    out.user_identity = record.user_identity.map(|identity| {
        let mut user = UserIdentity::default();
        user.type_ = identity.r#type.unwrap_or_default();
        user.principal_id = identity.principal_id.unwrap_or_default();
        user
    });
    if let Some(change) = record.dynamodb {
        if let Some(created) = change.approximate_creation_date_time {
            // MaximumRecordAgeInSeconds is measured from here.
            out.change.approximate_creation_date_time =
                chrono::DateTime::from_timestamp(created.secs(), created.subsec_nanos())
                    .unwrap_or_default();
        }
        out.change.sequence_number = change.sequence_number;
        out.change.size_bytes = change.size_bytes.unwrap_or_default();
        out.change.stream_view_type = change.stream_view_type.and_then(|v| match v.as_str() {
            "NEW_IMAGE" => Some(StreamViewType::NewImage),
            "OLD_IMAGE" => Some(StreamViewType::OldImage),
            "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
            "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
            _ => None,
        });
        out.change.keys = change.keys.unwrap_or_default().into();
        out.change.new_image = change.new_image.unwrap_or_default().into();
        out.change.old_image = change.old_image.unwrap_or_default().into();
    }
    out
}
