//! Reads the events table's DynamoDB stream the way Lambda's event source mapping does and
//! hands each batch to the stream handlers as `aws_lambda_events` records, so the local flow
//! is the production flow. Records a handler reports as failed are delivered again, from the
//! first failure, after a pause (Lambda's retry), up to a bound.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::Client as Streams;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use checkout_core::store::DynamoDb;

const POLL_EVERY: Duration = Duration::from_millis(200);
const MAX_RETRIES: u32 = 5;

/// A consumer of stream batches, like one Lambda function with an event source mapping.
pub type Consumer = Box<
    dyn Fn(StreamEvent) -> Pin<Box<dyn Future<Output = DynamoDbEventResponse> + Send>>
        + Send
        + Sync,
>;

pub async fn follow(dynamodb: DynamoDb, streams: Streams, table: String, consumers: Vec<Consumer>) {
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
    let mut iterators: HashMap<String, String> = HashMap::new();
    let mut pending: Vec<(Vec<EventRecord>, u32)> = Vec::new();
    loop {
        if let Err(err) = discover_shards(&streams, &arn, &mut iterators).await {
            tracing::warn!(error = %err, "describe stream failed");
        }
        let mut batch = Vec::new();
        for (shard, iterator) in iterators.iter_mut() {
            match streams
                .get_records()
                .shard_iterator(iterator.as_str())
                .send()
                .await
            {
                Ok(out) => {
                    batch.extend(
                        out.records
                            .unwrap_or_default()
                            .into_iter()
                            .map(|r| lambda_record(r, &arn)),
                    );
                    if let Some(next) = out.next_shard_iterator {
                        *iterator = next;
                    }
                }
                Err(err) => {
                    tracing::warn!(shard, error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(&err), "get records failed");
                }
            }
        }
        if !batch.is_empty() {
            pending.push((batch, 0));
        }
        let mut retry = Vec::new();
        for (records, attempt) in pending.drain(..) {
            for consumer in &consumers {
                let mut event = StreamEvent::default();
                event.records = records.clone();
                let response = consumer(event).await;
                let failed: Vec<&String> = response
                    .batch_item_failures
                    .iter()
                    .filter_map(|f| f.item_identifier.as_ref())
                    .collect();
                if let Some(first) = records.iter().position(|r| {
                    r.change
                        .sequence_number
                        .as_ref()
                        .is_some_and(|s| failed.contains(&s))
                }) {
                    if attempt < MAX_RETRIES {
                        retry.push((records[first..].to_vec(), attempt + 1));
                    } else {
                        tracing::error!(
                            records = records.len() - first,
                            "giving up on stream records after retries (Lambda would send them to the on-failure destination)"
                        );
                    }
                }
            }
        }
        pending = retry;
        tokio::time::sleep(if pending.is_empty() {
            POLL_EVERY
        } else {
            Duration::from_secs(1)
        })
        .await;
    }
}

async fn discover_shards(
    streams: &Streams,
    arn: &str,
    iterators: &mut HashMap<String, String>,
) -> Result<(), String> {
    let description = streams
        .describe_stream()
        .stream_arn(arn)
        .send()
        .await
        .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?;
    for shard in description
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default()
    {
        let Some(id) = shard.shard_id else { continue };
        if iterators.contains_key(&id) {
            continue;
        }
        let iterator = streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(&id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?;
        if let Some(iterator) = iterator.shard_iterator {
            iterators.insert(id, iterator);
        }
    }
    Ok(())
}

/// The record as Lambda would deliver it.
fn lambda_record(record: Record, arn: &str) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id.unwrap_or_default();
    out.event_name = record
        .event_name
        .map(|n| n.as_str().to_string())
        .unwrap_or_default();
    out.event_source = Some("aws:dynamodb".into());
    out.event_source_arn = Some(arn.to_string());
    out.aws_region = record.aws_region.unwrap_or_default();
    if let Some(change) = record.dynamodb {
        out.change.sequence_number = change.sequence_number;
        out.change.new_image = change.new_image.unwrap_or_default().into();
        out.change.keys = change.keys.unwrap_or_default().into();
    }
    out
}
