//! What the property tests ("fuzzing the public surfaces", `tests/tests/fuzz_*.rs`) share:
//! their configuration, the one runtime every case blocks on, hostile strings, JSON values
//! and header values, JSON mutations, the error shape every refusal must have, and a paged
//! item count.
//!
//! Each surface runs [`CASES`] cases in `make test`. Most cases are refused before any
//! DynamoDB or Stripe call, so 100,000 of them take seconds; the few that reach storage are
//! what the invariants about storage are checked on.

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

use crate::{DynamoDb, TableName};

/// Cases per fuzzed surface (the total across a file's properties).
pub const CASES: u32 = 100_000;

/// `cases` cases, no failure persistence (a failure prints its minimal input instead of
/// writing a regressions file into the tree), and proptest's fast generator (XorShift: the
/// default ChaCha was an eighth of a debug run's time).
#[must_use]
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..Config::default()
    }
}

/// The runtime every case's handler runs on, built once: servers started on it (wiremock)
/// keep running between cases on its worker threads.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Strings meant to break things: empty, control and bidi characters, emoji, quotes,
/// injection, near Stripe ids, very long, and anything printable or Unicode.
pub fn hostile_string() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "",
            " ",
            "\0",
            "\t\r\n",
            "\u{202e}evil",
            "\u{feff}",
            "💥🦀",
            "é",
            "null",
            "true",
            "0",
            "-1",
            "\"",
            "\\",
            "'; DROP TABLE events; --",
            "<script>alert(1)</script>",
            "../../etc/passwd",
            "%00%ff",
            "evt_",
            "cs_",
            "acct_",
            "cus_",
            "price_",
            "evt_\u{e9}",
            "cs_test_\u{0}",
        ])
        .prop_map(str::to_string),
        5 => seeded_text(24),
        1 => (0usize..4096, prop::sample::select(vec!["a", "é", "💥", "_", "0"]))
            .prop_map(|(n, unit)| unit.repeat(n)),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep, with hostile strings and keys.
pub fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((hostile_string(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// What to do to one field of a JSON document.
#[derive(Debug, Clone)]
pub enum Mutation {
    Remove,
    Replace(Value),
}

/// A mutation of one of `pointers` (JSON pointers into the document).
pub fn mutation(pointers: &'static [&'static str]) -> BoxedStrategy<(&'static str, Mutation)> {
    (
        prop::sample::select(pointers),
        prop_oneof![
            1 => Just(Mutation::Remove),
            3 => json_value().prop_map(Mutation::Replace),
        ],
    )
        .boxed()
}

/// Applies `mutations` in order; a pointer whose parent is gone (or not an object) is left.
pub fn mutate(document: &mut Value, mutations: &[(&str, Mutation)]) {
    for (pointer, mutation) in mutations {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        let Some(Value::Object(parent)) = document.pointer_mut(parent) else {
            continue;
        };
        match mutation {
            Mutation::Remove => {
                parent.remove(key);
            }
            Mutation::Replace(value) => {
                parent.insert(key.to_string(), value.clone());
            }
        }
    }
}

/// `0..=max` bytes from a seeded generator: one seed per value instead of a strategy per
/// byte keeps a hundred thousand cases quick in a debug build (shrinking shortens them).
pub fn seeded_bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    (0..=max, any::<u64>())
        .prop_map(|(len, seed)| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..len).map(|_| rng.u8(..)).collect()
        })
        .boxed()
}

/// Up to `max` characters, printable ASCII or any Unicode scalar value, seeded.
pub fn seeded_text(max: usize) -> BoxedStrategy<String> {
    (0..=max, any::<u64>(), any::<bool>())
        .prop_map(|(len, seed, ascii)| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..len)
                .map(|_| {
                    if ascii {
                        char::from(rng.u8(b' '..=b'~'))
                    } else {
                        rng.char(..)
                    }
                })
                .collect()
        })
        .boxed()
}

/// Bytes for a header value: arbitrary (most are not valid header values and are left out of
/// the request), printable, or hostile text.
pub fn header_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        seeded_bytes(48),
        seeded_text(48).prop_map(String::into_bytes),
        hostile_string().prop_map(String::into_bytes),
    ]
    .boxed()
}

/// Arbitrary bytes for a body, mostly short.
pub fn body_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![4 => seeded_bytes(256), 1 => seeded_bytes(4096)].boxed()
}

/// Checks that `body` is the documented error `{"error":{"code","message"[,"param"]}}` with a
/// code among `codes`, and returns the code.
///
/// # Errors
/// What is wrong with it, for the property's failure message.
pub fn documented_error(body: &[u8], codes: &[&str]) -> Result<String, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("an error body that is not JSON ({e}): {body:?}"))?;
    let error = value
        .get("error")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("no error object: {value}"))?;
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no code: {value}"))?;
    if !codes.contains(&code) {
        return Err(format!(
            "undocumented code {code:?} (documented: {codes:?}): {value}"
        ));
    }
    match error.get("message").and_then(Value::as_str) {
        Some(message) if !message.is_empty() => {}
        _ => return Err(format!("no message: {value}")),
    }
    if error
        .keys()
        .any(|k| !["code", "message", "param"].contains(&k.as_str()))
        || error.get("param").is_some_and(|p| !p.is_string())
        || value.as_object().is_some_and(|o| o.len() != 1)
    {
        return Err(format!("not the documented error shape: {value}"));
    }
    Ok(code.to_string())
}

/// Every item of `table`, counted across pages (a scan page stops at 1 MB).
pub async fn count_items(client: &DynamoDb, table: &TableName) -> usize {
    let mut count = 0;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table.as_str())
            .consistent_read(true)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        count += usize::try_from(page.count).expect("a count");
        start = page.last_evaluated_key.filter(|key| !key.is_empty());
        if start.is_none() {
            return count;
        }
    }
}

/// The emails moto's SES accepted from any sender this process verified
/// (`verified_sender`: `sender-<pid>-…`), whoever they went to.
pub async fn emails_sent_here() -> usize {
    use http_body_util::BodyExt;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client
        .get(format!("{endpoint}/_outbox").parse().expect("a URI"))
        .await
        .expect("outbox");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("outbox")
        .to_bytes();
    let all: Vec<crate::SentEmail> = serde_json::from_slice(&body).expect("outbox JSON");
    let sender = format!("sender-{}-", std::process::id());
    all.iter().filter(|m| m.source.contains(&sender)).count()
}
