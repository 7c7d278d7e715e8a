use std::time::Duration;

use aws_lambda_events::event::streams::DynamoDbBatchItemFailure;
use serde_json::json;

use super::*;
use crate::streams::filter::Pattern;

fn mapping() -> Mapping {
    let mut mapping = Mapping::lambda_defaults("FulfillmentFunction");
    mapping.batch_size = 3;
    mapping.report_item_failures = true;
    mapping.bisect_on_error = true;
    mapping.max_retries = Some(2);
    mapping.max_record_age = Some(Duration::from_secs(3600));
    mapping.retry_pause = Duration::ZERO;
    mapping
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn record_at(seq: u64, event_name: &str, created: DateTime<Utc>) -> EventRecord {
    serde_json::from_value(json!({
        "eventID": format!("e{seq}"),
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": created.timestamp(),
            "SequenceNumber": seq.to_string(),
            "SizeBytes": 10,
            "NewImage": {"type": {"S": "checkout.session.completed"}},
        },
    }))
    .unwrap()
}

fn records(seqs: std::ops::RangeInclusive<u64>) -> Vec<EventRecord> {
    seqs.map(|s| record_at(s, "INSERT", now())).collect()
}

fn seqs(records: &[EventRecord]) -> Vec<&str> {
    records.iter().map(sequence).collect()
}

fn ok() -> Outcome {
    Outcome::Response(DynamoDbEventResponse::default())
}

fn failed(ids: &[&str]) -> Outcome {
    let mut response = DynamoDbEventResponse::default();
    for id in ids {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some((*id).to_string());
        response.batch_item_failures.push(failure);
    }
    Outcome::Response(response)
}

fn crash() -> Outcome {
    Outcome::FunctionError("handler panicked".into())
}

/// The sequence numbers of the next batch.
fn next(lane: &mut Lane, mapping: &Mapping) -> Vec<String> {
    let (batch, given_up) = lane.next(mapping, now());
    assert!(given_up.is_empty(), "{given_up:?}");
    batch.map_or_else(Vec::new, |b| {
        seqs(&b.records).into_iter().map(String::from).collect()
    })
}

#[test]
fn a_successful_batch_moves_the_checkpoint_past_it() {
    let mapping = mapping();
    let mut lane = Lane::new(None);
    lane.read(&mapping, records(101..=105), now());
    assert_eq!(next(&mut lane, &mapping), ["101", "102", "103"]);
    assert!(!lane.settle(&mapping, ok()).retry);
    assert_eq!(lane.checkpoint(), Some("103"));
    assert_eq!(next(&mut lane, &mapping), ["104", "105"]);
    lane.settle(&mapping, ok());
    assert_eq!(lane.checkpoint(), Some("105"));
    assert!(next(&mut lane, &mapping).is_empty() && lane.is_idle());
}

#[test]
fn a_partial_failure_retries_from_the_lowest_failed_record_only() {
    let mapping = mapping();
    let mut lane = Lane::new(None);
    lane.read(&mapping, records(101..=103), now());
    next(&mut lane, &mapping);
    let settled = lane.settle(&mapping, failed(&["103", "102"]));
    assert!(settled.retry && settled.given_up.is_none());
    assert_eq!(lane.checkpoint(), Some("101"));
    assert_eq!(next(&mut lane, &mapping), ["102", "103"]);
    lane.settle(&mapping, ok());
    assert_eq!(lane.checkpoint(), Some("103"));
}

#[test]
fn every_record_failed_retries_the_whole_batch_then_gives_it_up() {
    let mapping = mapping();
    let mut lane = Lane::new(Some("100".into()));
    lane.read(&mapping, records(101..=104), now());
    // The first invocation and MaximumRetryAttempts (2) retries, never split.
    for _ in 0..2 {
        assert_eq!(next(&mut lane, &mapping), ["101", "102", "103"]);
        assert!(lane.settle(&mapping, failed(&["101", "102", "103"])).retry);
        assert_eq!(lane.checkpoint(), Some("100"));
    }
    assert_eq!(next(&mut lane, &mapping), ["101", "102", "103"]);
    let settled = lane.settle(&mapping, failed(&["101", "102", "103"]));
    let given_up = settled.given_up.expect("given up");
    assert!(!settled.retry);
    assert_eq!(given_up.condition, Condition::RetryAttemptsExhausted);
    assert_eq!(
        (seqs(&given_up.records), given_up.invocations),
        (vec!["101", "102", "103"], 3)
    );
    // The shard moves on.
    assert_eq!(lane.checkpoint(), Some("103"));
    assert_eq!(next(&mut lane, &mapping), ["104"]);
}

#[test]
fn a_function_error_bisects_and_splitting_does_not_consume_retries() {
    let mut mapping = mapping();
    mapping.batch_size = 4;
    let mut lane = Lane::new(None);
    lane.read(&mapping, records(1..=4), now());
    assert_eq!(next(&mut lane, &mapping), ["1", "2", "3", "4"]);
    assert!(lane.settle(&mapping, crash()).retry);
    assert_eq!(next(&mut lane, &mapping), ["1", "2"]);
    assert!(lane.settle(&mapping, crash()).retry);
    // Record 1 alone: its own first try and two retries, none spent by the splits.
    for _ in 0..2 {
        assert_eq!(next(&mut lane, &mapping), ["1"]);
        assert!(lane.settle(&mapping, crash()).retry);
    }
    assert_eq!(next(&mut lane, &mapping), ["1"]);
    let given_up = lane.settle(&mapping, crash()).given_up.expect("given up");
    assert_eq!(seqs(&given_up.records), ["1"]);
    assert_eq!(given_up.function_error.as_deref(), Some("handler panicked"));
    assert_eq!(given_up.invocations, 5);
    assert_eq!(lane.checkpoint(), Some("1"));
    // Then the rest of the first half, then the second half.
    assert_eq!(next(&mut lane, &mapping), ["2"]);
    lane.settle(&mapping, ok());
    assert_eq!(next(&mut lane, &mapping), ["3", "4"]);
    lane.settle(&mapping, ok());
    assert_eq!(lane.checkpoint(), Some("4"));
}

#[test]
fn without_bisect_a_function_error_retries_the_whole_batch() {
    let mut mapping = mapping();
    mapping.bisect_on_error = false;
    let mut lane = Lane::new(None);
    lane.read(&mapping, records(1..=3), now());
    next(&mut lane, &mapping);
    assert!(lane.settle(&mapping, crash()).retry);
    assert_eq!(next(&mut lane, &mapping), ["1", "2", "3"]);
}

#[test]
fn an_identifier_not_in_the_batch_fails_the_whole_batch() {
    let mapping = mapping();
    for ids in [&["999"][..], &[""][..]] {
        let mut lane = Lane::new(None);
        lane.read(&mapping, records(1..=3), now());
        next(&mut lane, &mapping);
        assert!(lane.settle(&mapping, failed(ids)).retry);
        assert_eq!(next(&mut lane, &mapping), ["1", "2"], "{ids:?} bisects");
        assert_eq!(lane.checkpoint(), None);
    }
}

#[test]
fn without_report_batch_item_failures_a_response_is_a_success() {
    let mut mapping = mapping();
    mapping.report_item_failures = false;
    let mut lane = Lane::new(None);
    lane.read(&mapping, records(1..=3), now());
    next(&mut lane, &mapping);
    assert!(!lane.settle(&mapping, failed(&["2"])).retry);
    assert_eq!(lane.checkpoint(), Some("3"));
}

#[test]
fn unlimited_retries_never_give_up() {
    let mut mapping = mapping();
    mapping.max_retries = None;
    let mut lane = Lane::new(None);
    lane.read(&mapping, records(1..=1), now());
    for _ in 0..100 {
        assert_eq!(next(&mut lane, &mapping), ["1"]);
        let settled = lane.settle(&mapping, failed(&["1"]));
        assert!(settled.retry && settled.given_up.is_none());
    }
}

#[test]
fn records_older_than_the_maximum_age_are_discarded_before_invoking() {
    let mapping = mapping();
    let old = now() - chrono::TimeDelta::hours(2);
    let mut lane = Lane::new(None);
    lane.read(
        &mapping,
        vec![
            record_at(1, "INSERT", old),
            record_at(2, "INSERT", old),
            record_at(3, "INSERT", now()),
        ],
        now(),
    );
    let (batch, given_up) = lane.next(&mapping, now());
    assert_eq!(seqs(&batch.unwrap().records), ["3"]);
    let [given_up] = given_up.as_slice() else {
        panic!("{given_up:?}")
    };
    assert_eq!(given_up.condition, Condition::RecordAgeExceeded);
    assert_eq!(
        (seqs(&given_up.records), given_up.invocations),
        (vec!["1", "2"], 0)
    );
    assert_eq!(lane.checkpoint(), Some("2"));
}

#[test]
fn a_record_that_ages_out_while_retried_is_discarded() {
    let mapping = mapping();
    let mut lane = Lane::new(None);
    lane.read(&mapping, records(1..=2), now());
    next(&mut lane, &mapping);
    lane.settle(&mapping, failed(&["2"]));
    let later = now() + chrono::TimeDelta::hours(2);
    let (batch, given_up) = lane.next(&mapping, later);
    assert!(batch.is_none());
    assert_eq!(seqs(&given_up[0].records), ["2"]);
    assert_eq!(given_up[0].invocations, 1);
    assert_eq!(lane.checkpoint(), Some("2"));
}

#[test]
fn filtered_out_records_are_never_delivered_and_count_as_processed() {
    let mut mapping = mapping();
    mapping.batch_size = 10;
    mapping.filters = vec![Pattern::parse(r#"{"eventName": ["INSERT"]}"#).unwrap()];
    let mut lane = Lane::new(None);
    let names = ["MODIFY", "INSERT", "MODIFY", "INSERT", "MODIFY"];
    let read = names
        .iter()
        .zip(1..)
        .map(|(name, seq)| record_at(seq, name, now()))
        .collect();
    lane.read(&mapping, read, now());
    assert_eq!(next(&mut lane, &mapping), ["2", "4"]);
    assert_eq!(lane.checkpoint(), Some("1"));
    lane.settle(&mapping, ok());
    assert!(next(&mut lane, &mapping).is_empty());
    assert_eq!(lane.checkpoint(), Some("5"));
}

#[test]
fn records_read_again_are_not_queued_twice() {
    let mapping = mapping();
    let mut lane = Lane::new(Some("2".into()));
    lane.read(&mapping, records(1..=3), now());
    lane.read(&mapping, records(3..=4), now());
    assert_eq!(next(&mut lane, &mapping), ["3", "4"]);
    assert_eq!(lane.read_through(), Some("4"));
}

#[test]
fn a_batching_window_waits_for_a_full_batch_or_the_window() {
    let mut mapping = mapping();
    mapping.batching_window = Duration::from_secs(5);
    let mut lane = Lane::new(None);
    lane.read(&mapping, records(1..=1), now());
    assert!(lane.next(&mapping, now()).0.is_none());
    let due = now() + chrono::TimeDelta::seconds(5);
    assert_eq!(seqs(&lane.next(&mapping, due).0.unwrap().records), ["1"]);
    let mut full = Lane::new(None);
    full.read(&mapping, records(1..=3), now());
    assert!(full.next(&mapping, now()).0.is_some());
}

#[test]
fn sequence_numbers_order_as_numbers() {
    assert_eq!(sequence_order("9", "10"), Ordering::Less);
    assert_eq!(sequence_order("0010", "10"), Ordering::Equal);
    assert_eq!(
        sequence_order("1100000000017454423010", "1100000000017454423009"),
        Ordering::Greater
    );
}
