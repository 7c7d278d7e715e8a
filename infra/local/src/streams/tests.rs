//! The poller against moto (`AWS_ENDPOINT_URL`, which `make test` always sets): functions
//! keep their own positions and retries, a discarded batch is written down, and a restart
//! resumes after the last record each function finished.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::{AttributeValue, StreamViewType};
use checkout_core::store::tables::{self, TableSpec};
use serde_json::Value;

use super::*;

const TABLE: TableSpec = TableSpec {
    partition_key: "id",
    sort_key: None,
    stream: Some(StreamViewType::NewImage),
    ttl_attribute: None,
    indexes: &[],
};

/// (item id, sequence number) of every record delivered, in order.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

async fn clients() -> (DynamoDb, Streams) {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|url| url.starts_with("http://127.0.0.1")),
        "AWS_ENDPOINT_URL must point at a loopback moto server: run the tests with `make test`"
    );
    let sdk = checkout_core::aws::sdk_config().await;
    (DynamoDb::new(&sdk), Streams::new(&sdk))
}

async fn new_table(dynamodb: &DynamoDb) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let table = format!("stream-poller-{}-{nanos}", std::process::id());
    tables::ensure(dynamodb, &table, &TABLE).await.unwrap();
    table
}

async fn put(dynamodb: &DynamoDb, table: &str, ids: &[&str]) {
    for id in ids {
        dynamodb
            .put_item()
            .table_name(table)
            .item("id", AttributeValue::S((*id).to_string()))
            .send()
            .await
            .unwrap();
    }
}

/// A function that records what it is given and fails `fails` (item id) `times` times.
fn function(name: &str, max_retries: u32, seen: &Seen, fails: Option<(&str, u32)>) -> Function {
    let mut mapping = Mapping::lambda_defaults(name);
    mapping.batch_size = 10;
    mapping.report_item_failures = true;
    mapping.bisect_on_error = true;
    mapping.max_retries = Some(max_retries);
    mapping.retry_pause = Duration::from_millis(10);
    // Moto's ApproximateCreationDateTime must read as now, or every record would age out.
    mapping.max_record_age = Some(Duration::from_secs(60));
    let seen = seen.clone();
    let fails = fails.map(|(id, times)| (id.to_string(), Arc::new(Mutex::new(times))));
    let handler: Consumer = Box::new(move |batch: StreamEvent| {
        let seen = seen.clone();
        let fails = fails.clone();
        Box::pin(async move {
            let mut response = DynamoDbEventResponse::default();
            for record in batch.records {
                let json = serde_json::to_value(&record).unwrap();
                let id = json["dynamodb"]["NewImage"]["id"]["S"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let seq = record.change.sequence_number.clone().unwrap();
                seen.lock().unwrap().push((id.clone(), seq.clone()));
                if let Some((failing, left)) = &fails {
                    let mut left = left.lock().unwrap();
                    if *failing == id && *left > 0 {
                        *left -= 1;
                        let mut failure = DynamoDbBatchItemFailure::default();
                        failure.item_identifier = Some(seq);
                        response.batch_item_failures.push(failure);
                    }
                }
            }
            response
        })
    });
    Function { mapping, handler }
}

fn ids(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect()
}

fn saved(path: &std::path::Path) -> BTreeMap<String, BTreeMap<String, String>> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| serde_json::from_value(v["positions"].clone()).ok())
        .unwrap_or_default()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_retry_alone_and_a_restart_resumes_after_the_last_processed_record() {
    let (dynamodb, streams) = clients().await;
    let table = new_table(&dynamodb).await;
    put(&dynamodb, &table, &["a", "b", "c", "d"]).await;
    let files = || Files {
        positions: test_path("stream-positions.json"),
        failures: test_path("stream-failures.jsonl"),
    };
    let first = files();
    let (positions, failures) = (first.positions.clone(), first.failures.clone());

    let (steady, flaky, broken) = (Seen::default(), Seen::default(), Seen::default());
    let follower = tokio::spawn(follow(
        dynamodb.clone(),
        streams.clone(),
        table.clone(),
        vec![
            function("Steady", 2, &steady, None),
            function("Flaky", 2, &flaky, Some(("b", 2))),
            function("Broken", 1, &broken, Some(("c", u32::MAX))),
        ],
        first,
    ));
    let last = || steady.lock().unwrap().last().map(|(_, seq)| seq.clone());
    until("every function to checkpoint the last record", || {
        let saved = saved(&positions);
        steady.lock().unwrap().len() == 4
            && ["Steady", "Flaky", "Broken"]
                .iter()
                .all(|f| saved.get(*f).and_then(|s| s.values().next()).cloned() == last())
    })
    .await;
    follower.abort();
    let _ = follower.await;

    // A retry for one function is never a re-delivery to another.
    assert_eq!(ids(&steady), ["a", "b", "c", "d"]);
    // Flaky: the batch, then twice from its failed record on.
    assert_eq!(
        ids(&flaky),
        ["a", "b", "c", "d", "b", "c", "d", "b", "c", "d"]
    );
    // Broken: the batch, one retry from "c", then given up.
    assert_eq!(ids(&broken), ["a", "b", "c", "d", "c", "d"]);
    let lines: Vec<Value> = std::fs::read_to_string(&failures)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let [line] = lines.as_slice() else {
        panic!("{lines:?}")
    };
    assert_eq!(line["requestContext"]["functionArn"], "Broken");
    assert_eq!(
        line["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(line["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(line["DDBStreamBatchInfo"]["batchSize"], 2);
    assert_eq!(
        line["DDBStreamBatchInfo"]["endSequenceNumber"],
        last().unwrap().as_str()
    );

    // Restart: only what was written since is delivered, to each function.
    put(&dynamodb, &table, &["e", "f"]).await;
    let (steady, flaky, broken) = (Seen::default(), Seen::default(), Seen::default());
    let follower = tokio::spawn(follow(
        dynamodb.clone(),
        streams.clone(),
        table.clone(),
        vec![
            function("Steady", 2, &steady, None),
            function("Flaky", 2, &flaky, None),
            function("Broken", 1, &broken, None),
        ],
        Files {
            positions: positions.clone(),
            failures: failures.clone(),
        },
    ));
    until("the new records", || {
        [&steady, &flaky, &broken]
            .iter()
            .all(|s| s.lock().unwrap().len() >= 2)
    })
    .await;
    // Time for a wrong re-delivery to show.
    tokio::time::sleep(Duration::from_millis(600)).await;
    follower.abort();
    let _ = follower.await;
    for seen in [&steady, &flaky, &broken] {
        assert_eq!(ids(seen), ["e", "f"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_position_no_longer_on_the_shard_reads_from_trim_horizon() {
    let (dynamodb, streams) = clients().await;
    let table = new_table(&dynamodb).await;
    put(&dynamodb, &table, &["a", "b"]).await;
    let arn = dynamodb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .and_then(|t| t.latest_stream_arn)
        .unwrap();
    let shards = describe(&streams, &arn).await.unwrap();
    let path = test_path("stream-positions.json");
    // Before the shard's first sequence number: trimmed away, as after 24 h in DynamoDB.
    Positions::load(path.clone(), &arn)
        .save("Steady", &shards[0].id, "1")
        .unwrap();
    let steady = Seen::default();
    let follower = tokio::spawn(follow(
        dynamodb,
        streams,
        table,
        vec![function("Steady", 2, &steady, None)],
        Files {
            positions: path,
            failures: test_path("stream-failures.jsonl"),
        },
    ));
    until("the shard's records", || steady.lock().unwrap().len() >= 2).await;
    follower.abort();
    let _ = follower.await;
    assert_eq!(ids(&steady), ["a", "b"]);
}
