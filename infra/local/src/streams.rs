//! Reads the events table's DynamoDB stream the way Lambda's event source mappings do and
//! hands each batch to the stream handlers as `aws_lambda_events` records, so the local flow
//! is the production flow. Each function follows its own mapping from infra/template.yaml
//! (batch size, filters, partial batch responses, bisect, retries, record age, on-failure
//! destination) with its own position per shard, kept across restarts in a file.

mod failures;
mod filter;
mod lane;
mod mapping;
mod positions;
mod shard;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::Client as Streams;
use checkout_core::config;
use checkout_core::store::DynamoDb;
use tokio::task::JoinSet;

use self::failures::Failures;
pub use self::mapping::Mapping;
use self::positions::Positions;
use self::shard::{Reader, ShardInfo};

/// Shards change rarely (DynamoDB rolls them every few hours; moto never does).
const DESCRIBE_EVERY: Duration = Duration::from_secs(10);

/// A function's stream handler.
pub type Consumer = Box<
    dyn Fn(StreamEvent) -> Pin<Box<dyn Future<Output = DynamoDbEventResponse> + Send>>
        + Send
        + Sync,
>;

/// A function subscribed to the events stream, with its event source mapping.
pub struct Function {
    pub mapping: Mapping,
    pub handler: Consumer,
}

impl Function {
    /// `name`'s mapping as infra/template.yaml declares it.
    ///
    /// # Errors
    /// The template has no mapping for it on the events stream, or one the poller cannot
    /// follow faithfully.
    pub fn from_template(name: &str, handler: Consumer) -> Result<Self, String> {
        Ok(Self {
            mapping: Mapping::from_template(name)?,
            handler,
        })
    }
}

/// Where the poller keeps its positions and its discarded batches.
pub struct Files {
    pub positions: PathBuf,
    pub failures: PathBuf,
}

impl Files {
    pub fn from_env(env: &impl config::Source) -> Self {
        let path = |var, default: &str| {
            PathBuf::from(config::optional(env, var).unwrap_or_else(|| default.to_string()))
        };
        Self {
            positions: path("STREAM_CHECKPOINT_FILE", ".local/stream-positions.json"),
            failures: path("STREAM_FAILURES_FILE", ".local/stream-failures.jsonl"),
        }
    }
}

/// Follows the table's stream for every function until the task is dropped, which stops
/// every reader with it.
pub async fn follow(
    dynamodb: DynamoDb,
    streams: Streams,
    table: String,
    functions: Vec<Function>,
    files: Files,
) {
    let arn = match dynamodb.describe_table().table_name(&table).send().await {
        Ok(out) => out.table.and_then(|t| t.latest_stream_arn),
        Err(err) => {
            tracing::error!(table, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "cannot read the table's stream");
            return;
        }
    };
    let Some(arn) = arn else {
        tracing::error!(table, "the table has no stream");
        return;
    };
    let positions = Arc::new(Positions::load(files.positions, &arn));
    let failures = Arc::new(Failures::new(files.failures));
    let functions: Vec<Arc<Function>> = functions
        .into_iter()
        .filter(|f| {
            if !f.mapping.enabled {
                tracing::info!(
                    function = f.mapping.function,
                    "stream mapping disabled in the template"
                );
            }
            f.mapping.enabled
        })
        .map(Arc::new)
        .collect();
    let mut readers = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, (String, String)> = HashMap::new();
    let mut done: HashSet<(String, String)> = HashSet::new();
    loop {
        while let Some(ended) = readers.try_join_next_with_id() {
            match ended {
                Ok((id, ())) => done.extend(running.remove(&id)),
                Err(err) => {
                    // Started again below, from its saved position.
                    let key = running.remove(&err.id());
                    tracing::error!(reader = ?key, error = %err, "a stream reader stopped; restarting it");
                }
            }
        }
        let shards = match describe(&streams, &arn).await {
            Ok(shards) => shards,
            Err(err) => {
                tracing::warn!(error = err, "describe stream failed");
                Vec::new()
            }
        };
        let present: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        for shard in &shards {
            for function in &functions {
                let key = (function.mapping.function.clone(), shard.id.clone());
                let reading = |k: &(String, String)| running.values().any(|r| r == k);
                if done.contains(&key) || reading(&key) {
                    continue;
                }
                // Lambda finishes a parent shard before it reads the children.
                let parent_pending = shard.parent.as_ref().is_some_and(|parent| {
                    let parent_key = (key.0.clone(), parent.clone());
                    present.contains(parent.as_str()) && !done.contains(&parent_key)
                });
                if parent_pending {
                    continue;
                }
                let reader = Reader {
                    function: function.clone(),
                    shard: shard.clone(),
                    stream_arn: arn.clone(),
                    streams: streams.clone(),
                    positions: positions.clone(),
                    failures: failures.clone(),
                };
                let handle = readers.spawn(reader.run());
                running.insert(handle.id(), key);
            }
        }
        tokio::time::sleep(DESCRIBE_EVERY).await;
    }
}

async fn describe(streams: &Streams, arn: &str) -> Result<Vec<ShardInfo>, String> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let description = streams
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?
            .stream_description
            .ok_or("DescribeStream answered without a description")?;
        shards.extend(
            description
                .shards
                .unwrap_or_default()
                .into_iter()
                .filter_map(|shard| {
                    Some(ShardInfo {
                        id: shard.shard_id?,
                        parent: shard.parent_shard_id,
                        starting_sequence: shard
                            .sequence_number_range
                            .and_then(|r| r.starting_sequence_number),
                    })
                }),
        );
        match description.last_evaluated_shard_id {
            Some(last) => start = Some(last),
            None => return Ok(shards),
        }
    }
}

/// A path of its own under the temp directory.
#[cfg(test)]
pub(crate) fn test_path(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir()
        .join(format!("local-stack-{}-{n}", std::process::id()))
        .join(name)
}

#[cfg(test)]
mod tests;
