//! The on-failure destination, locally: a discarded batch is logged as an error and written
//! as one JSON line in the shape Lambda sends to the mapping's SQS queue (metadata only, no
//! record contents: docs "Retain discarded records for a DynamoDB event source in Lambda").
//! Nothing is lost by discarding: the events stay pending on the events table and the
//! reconciler re-drives them, as in production.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::lane::{GivenUp, sequence};
use super::mapping::Mapping;

pub struct Failures {
    path: PathBuf,
}

impl Failures {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn record(&self, mapping: &Mapping, stream_arn: &str, shard: &str, given_up: &GivenUp) {
        let document = document(mapping, stream_arn, shard, given_up, Utc::now());
        let info = &document["DDBStreamBatchInfo"];
        tracing::error!(
            function = mapping.function,
            destination = mapping.on_failure.as_deref().unwrap_or("none"),
            condition = given_up.condition.as_str(),
            shard,
            first = info["startSequenceNumber"].as_str(),
            last = info["endSequenceNumber"].as_str(),
            records = given_up.records.len(),
            invocations = given_up.invocations,
            error = given_up.function_error.as_deref(),
            file = %self.path.display(),
            "stream records given up (in AWS: metadata to the on-failure queue); the events stay pending and the reconciler re-drives them"
        );
        if let Err(err) = self.append(&document) {
            tracing::error!(file = %self.path.display(), error = %err, "cannot write the stream failure record; the line above is all there is");
        }
    }

    fn append(&self, document: &Value) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_vec(document).map_err(std::io::Error::other)?;
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?
            .write_all(&line)
    }
}

/// Lambda's invocation record for a discarded DynamoDB batch, plus `destination`: the queue
/// (the template's logical id) it would have gone to.
fn document(
    mapping: &Mapping,
    stream_arn: &str,
    shard: &str,
    given_up: &GivenUp,
    now: DateTime<Utc>,
) -> Value {
    let first = given_up.records.first();
    let last = given_up.records.last();
    let seq = |r: Option<&_>| r.map(sequence).unwrap_or_default().to_string();
    let arrival = |r: Option<&aws_lambda_events::event::dynamodb::EventRecord>| {
        r.map(|r| {
            r.change
                .approximate_creation_date_time
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
    };
    let mut document = json!({
        "requestContext": {
            "requestId": format!("{}:{shard}:{}", mapping.function, seq(last)),
            "functionArn": mapping.function,
            "condition": given_up.condition.as_str(),
            "approximateInvokeCount": given_up.invocations,
        },
        "version": "1.0",
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": seq(first),
            "endSequenceNumber": seq(last),
            "approximateArrivalOfFirstRecord": arrival(first),
            "approximateArrivalOfLastRecord": arrival(last),
            "batchSize": given_up.records.len(),
            "streamArn": stream_arn,
        },
        "destination": mapping.on_failure,
    });
    if given_up.invocations > 0 {
        let mut response = json!({"statusCode": 200, "executedVersion": "$LATEST"});
        if given_up.function_error.is_some() {
            response["functionError"] = json!("Unhandled");
        }
        document["responseContext"] = response;
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::lane::Condition;
    use crate::streams::test_path;

    fn record(seq: &str) -> aws_lambda_events::event::dynamodb::EventRecord {
        serde_json::from_value(json!({
            "eventID": "e", "eventName": "INSERT", "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000, "SequenceNumber": seq, "SizeBytes": 1},
        }))
        .unwrap()
    }

    #[test]
    fn a_discarded_batch_is_one_json_line_of_lambdas_metadata() {
        let path = test_path("stream-failures.jsonl");
        let failures = Failures::new(path.clone());
        let mut mapping = Mapping::lambda_defaults("FulfillmentFunction");
        mapping.on_failure = Some("FulfillmentFailures".into());
        let given_up = GivenUp {
            records: vec![record("101"), record("102")],
            condition: Condition::RetryAttemptsExhausted,
            invocations: 21,
            function_error: None,
        };
        failures.record(&mapping, "arn:stream", "shard-1", &given_up);
        failures.record(&mapping, "arn:stream", "shard-1", &given_up);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        let line = &lines[0];
        assert_eq!(
            line["requestContext"]["condition"],
            "RetryAttemptsExhausted"
        );
        assert_eq!(line["requestContext"]["approximateInvokeCount"], 21);
        assert_eq!(line["responseContext"]["statusCode"], 200);
        assert!(line["responseContext"].get("functionError").is_none());
        let info = &line["DDBStreamBatchInfo"];
        assert_eq!(
            (&info["startSequenceNumber"], &info["endSequenceNumber"]),
            (&json!("101"), &json!("102"))
        );
        assert_eq!(info["batchSize"], 2);
        assert_eq!(info["shardId"], "shard-1");
        assert_eq!(
            info["approximateArrivalOfFirstRecord"],
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(line["destination"], "FulfillmentFailures");
        // Metadata only, like the SQS message: no record contents.
        assert!(!text.contains("INSERT"));
    }

    #[test]
    fn records_too_old_to_invoke_have_no_response() {
        let given_up = GivenUp {
            records: vec![record("7")],
            condition: Condition::RecordAgeExceeded,
            invocations: 0,
            function_error: None,
        };
        let mapping = Mapping::lambda_defaults("RecoveryFunction");
        let document = document(&mapping, "arn", "s", &given_up, Utc::now());
        assert_eq!(document["requestContext"]["condition"], "RecordAgeExceeded");
        assert!(document.get("responseContext").is_none());
    }
}
