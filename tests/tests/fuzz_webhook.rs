//! Fuzzing `POST /webhooks/stripe`: [`CASES`] (100,000) generated `Stripe-Signature` headers
//! and bodies through the real handler (`webhook::handle`, what the Lambda runs) against
//! moto, one events table for the whole property.
//!
//! The mix: arbitrary headers and bodies; well-formed headers with wrong signatures; many
//! `v1=` entries with or without the right one; correct signatures outside the tolerance;
//! correctly signed events whose JSON is hostile (fields missing, of the wrong type, empty,
//! huge or Unicode ids, long `type` and `api_version`); bodies over 1 MiB; valid events.
//!
//! Invariants: no panic; every status is one docs/api.md documents for the webhook, and every
//! 4xx/5xx body is the documented error with a documented code; nothing refused is stored
//! (the table holds exactly the events answered `200 {"duplicate": false}`); a correctly
//! signed valid event is answered 200 and is stored. DynamoDB being up, no case is a 5xx.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use checkout_core::{
    config::Secret,
    ids::EventId,
    store::EventStore,
    stripe::StripeMode,
    webhook::{self, WebhookConfig, WebhookReceiver, WebhookSecrets},
};
use integration_tests::fuzz::{self, CASES, Mutation};
use integration_tests::*;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Cases of the one property below: the webhook's whole budget.
const WEBHOOK_CASES: u32 = CASES;

/// The codes docs/api.md documents for the webhook, by status.
fn documented(status: u16) -> Option<&'static [&'static str]> {
    Some(match status {
        400 => &[
            "signature_missing",
            "signature_malformed",
            "signature_mismatch",
            "signature_timestamp_out_of_tolerance",
            "invalid_event",
        ],
        405 => &["method_not_allowed"],
        413 => &["payload_too_large"],
        503 => &["storage_unavailable"],
        _ => return None,
    })
}

/// The fields of an event body the hostile cases break.
const EVENT_FIELDS: &[&str] = &[
    "/id",
    "/type",
    "/created",
    "/livemode",
    "/api_version",
    "/account",
    "/data",
    "/data/object",
    "/data/object/id",
    "/data/object/object",
    "/request",
];

const KINDS: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.expired",
    "payment_intent.succeeded",
    "invoice.paid",
    "charge.refunded",
    "customer.tax_id.created",
];

#[derive(Debug, Clone)]
enum Case {
    /// Arbitrary bytes for the header (none at all sometimes) and the body.
    Random {
        header: Option<Vec<u8>>,
        body: Vec<u8>,
    },
    /// `t=<now>,v1=<random hex>` (and `v0=` noise entries) over a valid event.
    WrongSignature {
        v1: Vec<Vec<u8>>,
        noise: Vec<&'static str>,
    },
    /// `wrong` v1 entries, and the right one at `right_at` (or not at all).
    ManyV1 {
        wrong: Vec<Vec<u8>>,
        right_at: Option<usize>,
    },
    /// Correctly signed `offset` seconds away from now, beyond the tolerance.
    Stale { offset: i64 },
    /// A correctly signed event after `mutations`.
    SignedHostile {
        kind: &'static str,
        object_id: String,
        mutations: Vec<(&'static str, Mutation)>,
    },
    /// A correctly signed body over 1 MiB.
    Oversized,
    /// A correctly signed valid event.
    Valid { kind: &'static str },
}

/// Weights out of 1,000: the hostile and valid cases (a few hundred) are those that reach
/// DynamoDB; the rest are refused before it.
fn case() -> impl Strategy<Value = Case> {
    prop_oneof![
        445 => (proptest::option::of(fuzz::header_bytes()), fuzz::body_bytes())
            .prop_map(|(header, body)| Case::Random { header, body }),
        250 => (
            prop::collection::vec(tag(), 1..4),
            prop::collection::vec(prop::sample::select(vec!["", "abc", "=", "==", "t=1", "v1=zz", "deadbeef"]), 0..3),
        )
            .prop_map(|(v1, noise)| Case::WrongSignature { v1, noise }),
        120 => (prop::collection::vec(tag(), 0..40), proptest::option::weighted(0.02, 0usize..41))
            .prop_map(|(wrong, right_at)| Case::ManyV1 { wrong, right_at }),
        150 => prop_oneof![
            301i64..10_000_000,
            -10_000_000i64..-301,
            Just(i64::MIN / 2),
            Just(i64::MAX / 2),
        ]
        .prop_map(|offset| Case::Stale { offset }),
        30 => (
            prop::sample::select(KINDS),
            fuzz::hostile_string(),
            prop::collection::vec(fuzz::mutation(EVENT_FIELDS), 0..4),
        )
            .prop_map(|(kind, object_id, mutations)| Case::SignedHostile {
                kind,
                object_id,
                mutations,
            }),
        1 => Just(Case::Oversized),
        4 => prop::sample::select(KINDS).prop_map(|kind| Case::Valid { kind }),
    ]
}

/// 32 random bytes: a v1 tag that is not the signature.
fn tag() -> BoxedStrategy<Vec<u8>> {
    any::<u64>()
        .prop_map(|seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..32).map(|_| rng.u8(..)).collect()
        })
        .boxed()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn valid_event(kind: &str) -> (String, String) {
    let id = format!(
        "evt_fuzz_{}_{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    );
    let body = event_json(
        &id,
        kind,
        json!({"id": "cs_test_fuzz", "object": "checkout.session"}),
    );
    (id, body)
}

/// The request for `case`, and whether it must be stored: `Some(id)` when it is a correctly
/// signed valid event.
fn request(case: &Case, secret: &Secret) -> (lambda_http::Request, Option<String>) {
    let now = unix_now();
    let sign = |body: &str| webhook::sign(secret, now, body.as_bytes());
    match case {
        Case::Random { header, body } => {
            (webhook_request_bytes(header.as_deref(), body.clone()), None)
        }
        Case::WrongSignature { v1, noise } => {
            let (_, body) = valid_event("checkout.session.completed");
            let mut header = format!("t={now}");
            for tag in v1 {
                header.push_str(&format!(",v1={}", hex(tag)));
            }
            for entry in noise {
                header.push_str(&format!(",v0={entry}"));
            }
            (webhook_request_bytes(Some(header.as_bytes()), body), None)
        }
        Case::ManyV1 { wrong, right_at } => {
            let (id, body) = valid_event("checkout.session.completed");
            let right = sign(&body);
            let right_tag = right.split_once(",v1=").expect("v1").1.to_string();
            let mut tags: Vec<String> = wrong.iter().map(|tag| hex(tag)).collect();
            let stored = right_at.map(|at| {
                tags.insert(at.min(tags.len()), right_tag);
                id
            });
            let mut header = format!("t={now}");
            for tag in tags {
                header.push_str(&format!(",v1={tag}"));
            }
            (webhook_request_bytes(Some(header.as_bytes()), body), stored)
        }
        Case::Stale { offset } => {
            let (_, body) = valid_event("checkout.session.completed");
            let header = webhook::sign(secret, now.saturating_add(*offset), body.as_bytes());
            (webhook_request_bytes(Some(header.as_bytes()), body), None)
        }
        Case::SignedHostile {
            kind,
            object_id,
            mutations,
        } => {
            let (_, body) = valid_event(kind);
            let mut event: Value = serde_json::from_str(&body).expect("JSON");
            event["data"]["object"]["id"] = object_id.clone().into();
            fuzz::mutate(&mut event, mutations);
            let body = event.to_string();
            (
                webhook_request_bytes(Some(sign(&body).as_bytes()), body),
                None,
            )
        }
        Case::Oversized => {
            // Refused on its size before the signature is looked at.
            let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(webhook::MAX_BODY_BYTES));
            (webhook_request_bytes(Some(sign("").as_bytes()), body), None)
        }
        Case::Valid { kind } => {
            let (id, body) = valid_event(kind);
            (
                webhook_request_bytes(Some(sign(&body).as_bytes()), body),
                Some(id),
            )
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// The status and code (if an error) a case must be answered with, when the case says.
fn expected(case: &Case) -> Option<(u16, &'static str)> {
    match case {
        Case::ManyV1 {
            wrong,
            right_at: None,
        } if wrong.is_empty() => Some((400, "signature_malformed")),
        Case::WrongSignature { .. } | Case::ManyV1 { right_at: None, .. } => {
            Some((400, "signature_mismatch"))
        }
        Case::Stale { .. } => Some((400, "signature_timestamp_out_of_tolerance")),
        Case::Oversized => Some((413, "payload_too_large")),
        Case::ManyV1 { .. } | Case::Valid { .. } => Some((200, "")),
        Case::Random { .. } | Case::SignedHostile { .. } => None,
    }
}

#[test]
fn any_signature_and_body() {
    let rt = fuzz::runtime();
    let (client, table) = rt.block_on(async {
        let client = dynamodb().await;
        let table = events_table(&client).await;
        (client, table)
    });
    let secrets =
        WebhookSecrets::parse(&format!("whsec_rolled_out_secret,{WEBHOOK_SECRET}")).unwrap();
    let receiver = WebhookReceiver::new(
        WebhookConfig {
            secrets,
            tolerance_secs: webhook::DEFAULT_TOLERANCE_SECS,
            events_table: table.clone(),
            retention_days: 30,
            mode: StripeMode::Test,
        },
        client.clone(),
    );
    let store = EventStore::new(table.clone(), client.clone());
    let secret = Secret::new(WEBHOOK_SECRET);
    // The events answered `200 {"duplicate": false}`: all the table may hold.
    let stored = Mutex::new(0usize);

    proptest!(fuzz::config(WEBHOOK_CASES), |(case in case())| {
        let (request, must_store) = request(&case, &secret);
        let response = rt.block_on(webhook::handle(&receiver, request));
        let status = response.status().as_u16();
        let body: &[u8] = response.body().as_ref();
        prop_assert!(status == 200 || documented(status).is_some(), "undocumented {status}");
        prop_assert!(status < 500, "DynamoDB is up: {status} {:?}", String::from_utf8_lossy(body));
        let code = match documented(status) {
            Some(codes) => fuzz::documented_error(body, codes).map_err(TestCaseError::fail)?,
            None => String::new(),
        };
        if let Some((want_status, want_code)) = expected(&case) {
            prop_assert_eq!((status, code.as_str()), (want_status, want_code));
        }
        if status == 200 {
            let receipt: Value = serde_json::from_slice(body).expect("a JSON receipt");
            let new = receipt["duplicate"] == false && receipt.get("ignored").is_none();
            if new {
                let mut stored = stored.lock().unwrap();
                *stored += 1;
                // Checked as it grows: the table holds exactly what was acknowledged, so no
                // refused case has written anything.
                if (*stored).is_multiple_of(250) {
                    prop_assert_eq!(rt.block_on(fuzz::count_items(&client, &table)), *stored);
                }
            }
            if let Some(id) = must_store {
                prop_assert!(new, "a valid event is new: {receipt}");
                let id: EventId = id.parse().unwrap();
                prop_assert!(rt.block_on(store.get(&id)).unwrap().is_some(), "stored");
            }
        }
    });

    assert_eq!(
        rt.block_on(fuzz::count_items(&client, &table)),
        *stored.lock().unwrap(),
        "the table holds exactly the events acknowledged as new"
    );
}
