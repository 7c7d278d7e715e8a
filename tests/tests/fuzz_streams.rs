//! Fuzzing the events table's stream consumers: [`CASES`] (100,000) generated batches of
//! DynamoDB stream records through fulfillment's and recovery's stream handlers (the
//! `StreamAndHttp::stream` each function's `lambda::dispatch` calls), some as the JSON
//! payload Lambda delivers, through `lambda::dispatch` itself, against moto and a fake Stripe
//! that knows no session or PaymentIntent.
//!
//! The mix, one to three records a batch: images that are any DynamoDB item; stored events
//! with fields removed or replaced (type, ids, account, object, times, the pending and
//! outcome attributes), hostile object ids; valid events under another event name than
//! `INSERT`, or of a type the consumer does not take; as JSON payloads, records whose
//! `NewImage`, attribute values (`{"N": "abc"}`, `{"B": "!"}`, unknown types), event name or
//! sequence number are broken.
//!
//! What the handlers document (`lambda::inserted_event`): a record that is not an `INSERT`,
//! not a stored event (its image does not deserialize) or not of a type the consumer takes is
//! skipped: logged, acknowledged, not retried. Invariants: no panic; a skipped record is
//! never reported in `batchItemFailures` (every failure names a record of the batch that is a
//! stored event of a consumed type); nothing is fulfilled or emailed (no order, no recovery
//! claim, no email from this process, no Stripe creation). A JSON payload that does not
//! deserialize is an invocation error (the runtime's), never a panic.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord as StreamRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use checkout_core::lambda::{self, StreamAndHttp, Trigger};
use checkout_core::store::{EventRecord, FULFILLMENT_EVENTS, RECOVERY_EVENTS};
use checkout_core::stripe::EventType;
use integration_tests::fuzz::{self, CASES, Mutation};
use integration_tests::*;
use lambda_http::{Context, LambdaEvent};
use proptest::prelude::*;
use serde_json::{Value, json};

const FULFILLMENT_CASES: u32 = CASES / 2;
const RECOVERY_CASES: u32 = CASES - FULFILLMENT_CASES;

/// The attributes of a stored event the cases break.
const RECORD_FIELDS: &[&str] = &[
    "/event_id",
    "/type",
    "/object_id",
    "/object_type",
    "/account",
    "/created",
    "/livemode",
    "/api_version",
    "/object",
    "/received_at",
    "/expires_at",
    "/pending_fulfillment",
    "/pending_recovery",
    "/outcome_fulfillment",
    "/outcome_recovery",
    "/attempts_fulfillment",
    "/attempts_recovery",
];

/// Fields of a record in Lambda's JSON payload the cases break.
const PAYLOAD_FIELDS: &[&str] = &[
    "/Records/0/eventName",
    "/Records/0/eventID",
    "/Records/0/eventSource",
    "/Records/0/dynamodb",
    "/Records/0/dynamodb/NewImage",
    "/Records/0/dynamodb/NewImage/type",
    "/Records/0/dynamodb/NewImage/event_id",
    "/Records/0/dynamodb/NewImage/object_id",
    "/Records/0/dynamodb/NewImage/created",
    "/Records/0/dynamodb/NewImage/livemode",
    "/Records/0/dynamodb/SequenceNumber",
    "/Records/0/dynamodb/Keys",
    "/Records/0/dynamodb/OldImage",
    "/Records/0/userIdentity",
    "/Records/1",
];

/// The types fulfillment takes (`FULFILLMENT_EVENTS`), and some it does not.
const FULFILLMENT_KINDS: (&[&str], &[&str]) = (
    &[
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "payment_intent.succeeded",
        "payment_intent.processing",
        "payment_intent.payment_failed",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.closed",
    ],
    &[
        "invoice.payment_failed",
        "invoice.paid",
        "customer.created",
        "customer.subscription.updated",
        "checkout.session.completed.v2",
        "Checkout.Session.Completed",
    ],
);

/// The types recovery takes (`RECOVERY_EVENTS`), and some it does not.
const RECOVERY_KINDS: (&[&str], &[&str]) = (
    &[
        "checkout.session.expired",
        "checkout.session.async_payment_failed",
        "checkout.session.completed",
        "invoice.payment_failed",
        "invoice.payment_action_required",
        "payment_intent.processing",
        "payment_intent.payment_failed",
    ],
    &[
        "checkout.session.async_payment_succeeded",
        "payment_intent.succeeded",
        "charge.refunded",
        "invoice.paid",
        "customer.created",
        "checkout.session.expired ",
    ],
);

const EVENT_NAMES: &[&str] = &["INSERT", "MODIFY", "REMOVE", "", "insert", "INSERT "];

/// A DynamoDB attribute value as Lambda's JSON spells it, valid or not.
fn attribute_json() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::sample::select(vec![
            json!({"N": "abc"}), json!({"N": "1e400"}), json!({"N": ""}), json!({"N": 1}),
            json!({"N": "99999999999999999999999999999999999999999"}), json!({"S": 1}),
            json!({"S": null}), json!({"B": "!!"}), json!({"B": "QUJD"}), json!({"BOOL": "yes"}),
            json!({"NULL": false}), json!({"NS": ["x"]}), json!({"SS": []}), json!({"BS": ["!"]}),
            json!({"M": {"a": {"Q": 1}}}), json!({"L": [{"S": 1}]}), json!({}),
            json!({"S": "a", "N": "1"}), json!({"X": "y"}), json!("plain"), json!(null), json!([]),
        ]),
        1 => fuzz::hostile_string().prop_map(|s| json!({"S": s})),
        1 => fuzz::json_value(),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum RecordCase {
    /// Any DynamoDB item (from any JSON object) as the image.
    AnyImage { name: &'static str, image: Value },
    /// A stored event of `kind` whose object id is `object_id`, after `mutations`.
    Stored {
        name: &'static str,
        kind: String,
        object_id: String,
        account: bool,
        mutations: Vec<(&'static str, Mutation)>,
    },
}

fn stored(
    name: impl Strategy<Value = &'static str>,
    kind: impl Strategy<Value = String>,
) -> impl Strategy<Value = RecordCase> {
    (
        name,
        kind,
        fuzz::hostile_string(),
        prop::bool::weighted(0.2),
        prop::collection::vec(fuzz::mutation(RECORD_FIELDS), 0..3),
    )
        .prop_map(
            |(name, kind, object_id, account, mutations)| RecordCase::Stored {
                name,
                kind,
                object_id,
                account,
                mutations,
            },
        )
}

/// Weights out of 100: the consumer acts on (and so reaches DynamoDB and Stripe for) the
/// last kind only; the others are skipped, which is what is fuzzed most.
fn record_case(
    kinds: (&'static [&'static str], &'static [&'static str]),
) -> impl Strategy<Value = RecordCase> {
    let (consumed, ignored) = kinds;
    let any_kind = || prop::sample::select([consumed, ignored].concat()).prop_map(str::to_string);
    prop_oneof![
        40 => (prop::sample::select(EVENT_NAMES), fuzz::json_value())
            .prop_map(|(name, image)| RecordCase::AnyImage { name, image }),
        35 => stored(prop::sample::select(&EVENT_NAMES[1..]), any_kind()),
        24 => stored(
            Just("INSERT"),
            prop_oneof![
                3 => prop::sample::select(ignored).prop_map(str::to_string),
                1 => fuzz::hostile_string(),
            ],
        ),
        1 => stored(Just("INSERT"), prop::sample::select(consumed).prop_map(str::to_string)),
    ]
}

#[derive(Debug, Clone)]
enum Case {
    /// A batch handed to the handler as Lambda's runtime would after deserializing it.
    Batch(Vec<RecordCase>),
    /// The batch as Lambda's JSON payload, broken, through `lambda::dispatch`.
    Payload {
        records: Vec<RecordCase>,
        mutations: Vec<(&'static str, Mutation)>,
        attributes: Vec<(&'static str, Value)>,
    },
}

fn case(kinds: (&'static [&'static str], &'static [&'static str])) -> impl Strategy<Value = Case> {
    let records = move || prop::collection::vec(record_case(kinds), 1..4);
    prop_oneof![
        4 => records().prop_map(Case::Batch),
        1 => (
            records(),
            prop::collection::vec(fuzz::mutation(PAYLOAD_FIELDS), 0..3),
            prop::collection::vec(
                (
                    prop::sample::select(&[
                        "/Records/0/dynamodb/NewImage/type",
                        "/Records/0/dynamodb/NewImage/event_id",
                        "/Records/0/dynamodb/NewImage/created",
                        "/Records/0/dynamodb/NewImage/livemode",
                        "/Records/0/dynamodb/NewImage/object",
                        "/Records/0/dynamodb/NewImage/extra",
                    ][..]),
                    attribute_json(),
                ),
                0..3,
            ),
        )
            .prop_map(|(records, mutations, attributes)| Case::Payload {
                records,
                mutations,
                attributes,
            }),
    ]
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A stored event as the webhook writes it, built once.
fn stored_image() -> &'static Value {
    static IMAGE: OnceLock<Value> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let stored = stored_event(
            "evt_fuzz",
            "checkout.session.completed",
            json!({"id": "cs_test_fuzz", "object": "checkout.session"}),
            None,
        );
        serde_json::to_value(&stored).expect("a stored event")
    })
}

fn record(case: &RecordCase, sequence: usize) -> StreamRecord {
    let (name, image) = match case {
        RecordCase::AnyImage { name, image } => {
            let image = match image {
                Value::Object(_) => image.clone(),
                other => json!({ "type": other }),
            };
            (*name, image)
        }
        RecordCase::Stored {
            name,
            kind,
            object_id,
            account,
            mutations,
        } => {
            let id = format!(
                "evt_fuzz{}x{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let mut image = stored_image().clone();
            image["event_id"] = id.into();
            if *account {
                image["account"] = "acct_1Merchant".into();
            }
            // Put past the webhook's checks: the stream delivers whatever the table holds.
            image["type"] = kind.clone().into();
            image["object_id"] = object_id.clone().into();
            image["object"] = json!({"id": object_id, "object": "checkout.session"})
                .to_string()
                .into();
            fuzz::mutate(&mut image, mutations);
            (*name, image)
        }
    };
    let mut out = StreamRecord::default();
    out.event_name = name.into();
    out.event_id = format!("{sequence}");
    out.aws_region = "us-east-1".into();
    out.change.sequence_number = Some(format!("{}", 1000 + sequence));
    out.change.new_image = serde_dynamo::to_item(image).unwrap_or_default();
    out
}

fn batch(records: &[RecordCase]) -> StreamEvent {
    let mut batch = StreamEvent::default();
    batch.records = records
        .iter()
        .enumerate()
        .map(|(i, r)| record(r, i))
        .collect();
    batch
}

/// The sequence numbers of the records `consumed` would act on: `INSERT`s of a stored event
/// of a type it takes. Every other record is skipped.
fn acted_on(batch: &StreamEvent, consumed: &[EventType]) -> Vec<String> {
    batch
        .records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .filter(|r| {
            serde_dynamo::from_item::<_, EventRecord>(r.change.new_image.clone())
                .is_ok_and(|event| consumed.contains(&event.kind))
        })
        .filter_map(|r| r.change.sequence_number.clone())
        .collect()
}

/// Only records acted on may be reported failed; each failure names one.
fn check_failures(response: &DynamoDbEventResponse, acted_on: &[String]) -> Result<(), String> {
    for failure in &response.batch_item_failures {
        match &failure.item_identifier {
            Some(id) if acted_on.contains(id) => {}
            other => {
                return Err(format!(
                    "a skipped record reported failed: {other:?} (acted on: {acted_on:?})"
                ));
            }
        }
    }
    Ok(())
}

/// Runs `case` through `app`'s stream trigger.
async fn run<A: StreamAndHttp>(
    app: &A,
    case: &Case,
    consumed: &[EventType],
) -> Result<(), TestCaseError> {
    match case {
        Case::Batch(records) => {
            let batch = batch(records);
            let acted_on = acted_on(&batch, consumed);
            let response = app.stream(batch, None).await;
            check_failures(&response, &acted_on).map_err(TestCaseError::fail)
        }
        Case::Payload {
            records,
            mutations,
            attributes,
        } => {
            let mut payload = serde_json::to_value(batch(records)).expect("a batch");
            fuzz::mutate(&mut payload, mutations);
            let attributes: Vec<_> = attributes
                .iter()
                .map(|(pointer, value)| (*pointer, Mutation::Replace(value.clone())))
                .collect();
            fuzz::mutate(&mut payload, &attributes);
            let Ok(trigger) = serde_json::from_value::<Trigger>(payload) else {
                // Not a batch Lambda delivers: the runtime reports the invocation failed.
                return Ok(());
            };
            let Trigger::Stream(batch) = trigger else {
                return Err(TestCaseError::fail("a batch read as an HTTP request"));
            };
            let acted_on = acted_on(&batch, consumed);
            let out = lambda::dispatch(
                app,
                LambdaEvent::new(Trigger::Stream(batch), Context::default()),
            )
            .await
            .map_err(|e| TestCaseError::fail(format!("dispatch failed: {e}")))?;
            let response: DynamoDbEventResponse = serde_json::from_value(out.clone())
                .map_err(|e| TestCaseError::fail(format!("not a batch response ({e}): {out}")))?;
            check_failures(&response, &acted_on).map_err(TestCaseError::fail)
        }
    }
}

/// No Stripe creation: the consumers only read Stripe, and only for events they act on.
async fn stripe_created_nothing(stripe: &wiremock::MockServer) -> bool {
    stripe
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .all(|r| r.method.as_str() == "GET")
}

/// The kinds the cases take as consumed are the consumer's, and the others are not.
fn assert_kinds(kinds: (&[&str], &[&str]), consumed: &[EventType]) {
    let parse = |k: &&str| serde_json::from_value::<EventType>(json!(k)).expect("a type");
    let mut listed: Vec<EventType> = kinds.0.iter().map(parse).collect();
    let mut want = consumed.to_vec();
    listed.sort_by_key(|k| k.to_string());
    want.sort_by_key(|k| k.to_string());
    assert_eq!(listed, want);
    assert!(!kinds.1.iter().map(parse).any(|k| consumed.contains(&k)));
}

#[test]
fn any_stream_batch_to_fulfillment() {
    assert_kinds(FULFILLMENT_KINDS, FULFILLMENT_EVENTS);
    let rt = fuzz::runtime();
    let h = rt.block_on(integration_tests::fulfillment::Harness::new());

    proptest!(fuzz::config(FULFILLMENT_CASES), |(case in case(FULFILLMENT_KINDS))| {
        rt.block_on(run(&*h.app, &case, FULFILLMENT_EVENTS))?;
    });

    rt.block_on(async {
        assert_eq!(
            fuzz::count_items(&h.dynamodb, &h.orders).await,
            0,
            "no order recorded, so none fulfilled"
        );
        assert_eq!(fuzz::emails_sent_here().await, 0, "no confirmation sent");
        assert!(stripe_created_nothing(&h.stripe).await, "Stripe only read");
    });
}

#[test]
fn any_stream_batch_to_recovery() {
    assert_kinds(RECOVERY_KINDS, RECOVERY_EVENTS);
    let rt = fuzz::runtime();
    let h = rt.block_on(integration_tests::recovery::Harness::new());

    proptest!(fuzz::config(RECOVERY_CASES), |(case in case(RECOVERY_KINDS))| {
        rt.block_on(run(&*h.recovery, &case, RECOVERY_EVENTS))?;
    });

    rt.block_on(async {
        assert_eq!(
            fuzz::count_items(&h.dynamodb, &h.table).await,
            0,
            "no address claimed or recorded"
        );
        assert_eq!(fuzz::emails_sent_here().await, 0, "no recovery email sent");
        assert!(
            h.sent().await.is_empty(),
            "nothing to the harness's shopper"
        );
        assert!(stripe_created_nothing(&h.stripe).await, "Stripe only read");
    });
}
