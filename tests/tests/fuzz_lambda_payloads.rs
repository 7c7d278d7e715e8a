//! Fuzzing the functions' Lambda entry points with API Gateway HTTP API (payload 2.0)
//! events: [`CASES`] (100,000) generated payloads through `lambda::dispatch_webhook` (the
//! webhook function) and `lambda::dispatch` (fulfillment's and recovery's routes), what each
//! function's `main` hands the runtime's payload to, against moto and a fake Stripe.
//!
//! The mix: well-formed events of each route with fields removed or replaced by hostile JSON,
//! strings put where lambda_http builds a URL or decodes the body (`rawPath`,
//! `rawQueryString`, Host, `X-Forwarded-Proto`, the stage, the body with `isBase64Encoded`),
//! hostile query values, any JSON document as the payload; for the webhook, correctly signed
//! events too, some base64-encoded.
//!
//! Invariants: no panic; a payload that deserializes is answered, in API Gateway's response
//! shape, with a status docs/api.md documents for the route and the documented error body
//! (`400 malformed_request` exactly when lambda_http could not have made a request of it);
//! nothing is stored or sent: the events table holds exactly the events acknowledged as new,
//! fulfillment records no order and recovery no address, and no email leaves. A payload that
//! does not deserialize is an invocation error (the runtime's), never a panic.
//!
//! Also the regression table for the four payloads that used to panic lambda_http's
//! conversion, for every function's routes (create-session's through `lambda::dispatch_http`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use checkout_core::checkout;
use checkout_core::config::Secret;
use checkout_core::lambda::{self, StreamAndHttp, Trigger};
use checkout_core::stripe::StripeMode;
use checkout_core::webhook::{self, WebhookConfig, WebhookReceiver, WebhookSecrets};
use integration_tests::fuzz::{self, CASES, Mutation};
use integration_tests::*;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use proptest::prelude::*;
use serde::Deserialize as _;
use serde_json::{Value, json};

const WEBHOOK_CASES: u32 = CASES * 2 / 5;
const FULFILLMENT_CASES: u32 = CASES * 3 / 10;
const RECOVERY_CASES: u32 = CASES - WEBHOOK_CASES - FULFILLMENT_CASES;

/// Fields of an API Gateway v2 event the cases remove or replace with any JSON.
const EVENT_FIELDS: &[&str] = &[
    "/version",
    "/routeKey",
    "/rawPath",
    "/rawQueryString",
    "/cookies",
    "/headers",
    "/headers/host",
    "/headers/content-type",
    "/headers/stripe-signature",
    "/headers/x-forwarded-proto",
    "/queryStringParameters",
    "/pathParameters",
    "/stageVariables",
    "/body",
    "/isBase64Encoded",
    "/requestContext",
    "/requestContext/stage",
    "/requestContext/domainName",
    "/requestContext/http",
    "/requestContext/http/method",
    "/requestContext/http/path",
    "/requestContext/timeEpoch",
    "/requestContext/authorizer",
];

/// String fields lambda_http builds the request's URL, method and body from.
const STRING_FIELDS: &[&str] = &[
    "/rawPath",
    "/rawQueryString",
    "/headers/host",
    "/headers/x-forwarded-proto",
    "/headers/content-type",
    "/headers/stripe-signature",
    "/headers/cookie",
    "/body",
    "/requestContext/stage",
    "/requestContext/domainName",
    "/requestContext/http/method",
];

/// Strings near the edges of what a URL, a host, a method or base64 accepts.
fn url_string() -> BoxedStrategy<String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "", "/", "//", "/a b", "a", "http://x", "%", "%zz", "%e9", "@", ":", "?", "#", "[::1]",
            "[", "a\u{0}b", "xn--", "xn--zz", "..", "/..", "/webhooks/stripe?x", "localhost:99999",
            "h:ost", "ex ample", "é.example", "EXAMPLE.com.", "a@b", "1.2.3.4:80", "$default",
            "prod", "/prod/x", "GET", "get", "G ET", "POST", "OPTIONS", "https", "ht tp", "1http",
            "a=\"<b>\"", "a={}", "a=|", "a=\\", "a=`", "a=^", "QUJD", "QUJD=", "Q", "====",
            "\u{202e}", "\u{feff}/",
        ])
        .prop_map(str::to_string),
        1 => fuzz::hostile_string(),
        1 => fuzz::seeded_text(40),
        1 => fuzz::seeded_text(12).prop_map(|s| format!("/{s}")),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum Payload {
    /// Any JSON document.
    Any(Value),
    /// The route's event with `query` as its query, then `strings` put and `mutations` made.
    Event {
        query: String,
        /// The webhook's: the body correctly signed (else a wrong signature).
        signed: bool,
        /// The body sent base64-encoded.
        base64: bool,
        strings: Vec<(&'static str, String)>,
        mutations: Vec<(&'static str, Mutation)>,
    },
}

/// `valid_query` is the route's well-formed query, from a fresh id; a case gets it `valid`
/// times in 1,000 (at least once), else a hostile one for `key`.
fn payload(key: &'static str, valid: u32, signed: f64) -> impl Strategy<Value = Payload> {
    let query = prop_oneof![
        valid.max(1) => Just(String::new()),
        1000 => prop_oneof![
            3 => url_string().prop_map(move |v| format!("{key}={v}")),
            1 => fuzz::hostile_string().prop_map(move |v| format!("{key}={v}")),
            1 => url_string(),
        ],
    ];
    prop_oneof![
        1 => fuzz::json_value().prop_map(Payload::Any),
        12 => (
            query,
            prop::bool::weighted(signed),
            prop::bool::weighted(0.2),
            prop::collection::vec((prop::sample::select(STRING_FIELDS), url_string()), 0..3),
            prop::collection::vec(fuzz::mutation(EVENT_FIELDS), 0..3),
        )
            .prop_map(|(query, signed, base64, strings, mutations)| Payload::Event {
                query,
                signed,
                base64,
                strings,
                mutations,
            }),
    ]
}

fn put(event: &mut Value, strings: &[(&'static str, String)], mutations: &[(&str, Mutation)]) {
    let strings: Vec<_> = strings
        .iter()
        .map(|(pointer, s)| (*pointer, Mutation::Replace(Value::String(s.clone()))))
        .collect();
    fuzz::mutate(event, &strings);
    fuzz::mutate(event, mutations);
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn fresh(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The route's event for `payload`; an empty query is the route's valid one.
fn route_event(
    method: &str,
    path: &str,
    valid_query: &dyn Fn() -> String,
    payload: &Payload,
) -> Value {
    match payload {
        Payload::Any(value) => value.clone(),
        Payload::Event {
            query,
            strings,
            mutations,
            ..
        } => {
            let query = if query.is_empty() {
                valid_query()
            } else {
                query.clone()
            };
            let mut event = api_gateway_v2_event(method, path, &query, None);
            put(&mut event, strings, mutations);
            event
        }
    }
}

/// The webhook's event: a new event's body, correctly signed or not, maybe base64-encoded.
/// `Some(id)` when it must be stored: signed, valid and left as it was.
fn webhook_event(payload: &Payload, secret: &Secret) -> (Value, Option<String>) {
    let Payload::Event {
        signed,
        base64,
        strings,
        mutations,
        query,
    } = payload
    else {
        return (
            route_event("POST", "/webhooks/stripe", &String::new, payload),
            None,
        );
    };
    let id = fresh("evt_fuzz");
    let body = event_json(
        &id,
        "checkout.session.completed",
        json!({"id": "cs_test_fuzz", "object": "checkout.session"}),
    );
    let signature = if *signed {
        webhook::sign(secret, unix_now(), body.as_bytes())
    } else {
        format!("t={},v1={}", unix_now(), "0".repeat(64))
    };
    let sent = if *base64 {
        base64::engine::general_purpose::STANDARD.encode(&body)
    } else {
        body
    };
    let mut event = api_gateway_v2_event("POST", "/webhooks/stripe", query, Some(&sent));
    event["headers"]["content-type"] = "application/json".into();
    event["headers"]["stripe-signature"] = signature.into();
    event["isBase64Encoded"] = (*base64).into();
    put(&mut event, strings, mutations);
    let untouched = query.is_empty() && strings.is_empty() && mutations.is_empty();
    (event, (*signed && untouched).then_some(id))
}

/// The status and code of an API Gateway answer, with its body checked against `documented`.
fn answer(
    answer: &Value,
    documented: fn(u16) -> Option<&'static [&'static str]>,
    ok: &[u16],
) -> Result<(u16, String), String> {
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| format!("no status: {answer}"))?;
    let body = answer["body"].as_str().unwrap_or_default();
    if ok.contains(&status) {
        return Ok((status, String::new()));
    }
    let codes = documented(status).ok_or_else(|| format!("undocumented {status}: {body}"))?;
    let code = fuzz::documented_error(body.as_bytes(), codes)?;
    Ok((status, code))
}

/// `400 malformed_request` exactly when lambda_http could not have made a request of it.
/// `unconvertible`: `check_request` refused the payload.
fn malformed_iff_unconvertible(unconvertible: bool, code: &str) -> Result<(), String> {
    if unconvertible == (code == "malformed_request") {
        Ok(())
    } else {
        Err(format!(
            "answered {code:?}, check_request refused it: {unconvertible}"
        ))
    }
}

/// One generated payload through `lambda::dispatch`, as fulfillment's and recovery's `main`
/// hand it over: answered as an HTTP request, with a status and code `documented` lists, and
/// `400 malformed_request` exactly when lambda_http could not have converted it.
fn dispatched<A: StreamAndHttp>(
    app: &A,
    event: &Value,
    documented: fn(u16) -> Option<&'static [&'static str]>,
) -> Result<(), TestCaseError> {
    let Ok(trigger) = Trigger::deserialize(event) else {
        // Not a payload either trigger sends: the runtime reports the invocation failed.
        return Ok(());
    };
    let is_http = matches!(trigger, Trigger::Http(_));
    let out = fuzz::runtime()
        .block_on(lambda::dispatch(
            app,
            LambdaEvent::new(trigger, Context::default()),
        ))
        .map_err(|e| TestCaseError::fail(format!("dispatch failed: {e}")))?;
    prop_assert!(is_http, "an HTTP payload: {}", out);
    let (_, code) = answer(&out, documented, &[]).map_err(TestCaseError::fail)?;
    let refused =
        unconvertible(event).ok_or_else(|| TestCaseError::fail("answered, not a request?"))?;
    malformed_iff_unconvertible(refused, &code).map_err(TestCaseError::fail)
}

/// Whether lambda_http could not make a request of `payload` (`None`: not a request).
fn unconvertible(payload: &Value) -> Option<bool> {
    let request = LambdaRequest::deserialize(payload).ok()?;
    Some(lambda::check_request(&request).is_err())
}

fn webhook_documented(status: u16) -> Option<&'static [&'static str]> {
    Some(match status {
        400 => &[
            "malformed_request",
            "signature_missing",
            "signature_malformed",
            "signature_mismatch",
            "signature_timestamp_out_of_tolerance",
            "invalid_event",
        ],
        405 => &["method_not_allowed"],
        413 => &["payload_too_large"],
        _ => return None,
    })
}

fn fulfillment_documented(status: u16) -> Option<&'static [&'static str]> {
    Some(match status {
        400 => &["malformed_request", "invalid_request"],
        404 => &["not_found"],
        405 => &["method_not_allowed"],
        502 => &["stripe_unavailable"],
        503 => &["stripe_unavailable", "fulfillment_unavailable"],
        _ => return None,
    })
}

fn recovery_documented(status: u16) -> Option<&'static [&'static str]> {
    Some(match status {
        400 => &["malformed_request", "invalid_token"],
        405 => &["method_not_allowed"],
        _ => return None,
    })
}

fn receiver(
    client: &checkout_core::store::DynamoDb,
    table: &checkout_core::config::TableName,
) -> WebhookReceiver {
    WebhookReceiver::new(
        WebhookConfig {
            secrets: WebhookSecrets::parse(WEBHOOK_SECRET).unwrap(),
            tolerance_secs: webhook::DEFAULT_TOLERANCE_SECS,
            events_table: table.clone(),
            retention_days: 30,
            mode: StripeMode::Test,
        },
        client.clone(),
    )
}

#[test]
fn any_payload_to_the_webhook() {
    let rt = fuzz::runtime();
    let (client, table) = rt.block_on(async {
        let client = dynamodb().await;
        let table = events_table(&client).await;
        (client, table)
    });
    let receiver = receiver(&client, &table);
    let secret = Secret::new(WEBHOOK_SECRET);
    let stored = Mutex::new(0usize);

    proptest!(fuzz::config(WEBHOOK_CASES), |(payload in payload("x", 500, 0.03))| {
        let (event, must_store) = webhook_event(&payload, &secret);
        let refused = unconvertible(&event);
        let result = rt.block_on(lambda::dispatch_webhook(
            &receiver,
            LambdaEvent::new(event, Context::default()),
        ));
        let Ok(out) = result else {
            // Not an API Gateway request: the runtime reports the invocation failed.
            prop_assert!(refused.is_none(), "{result:?}");
            prop_assert!(must_store.is_none());
            return Ok(());
        };
        let (status, code) = answer(&out, webhook_documented, &[200]).map_err(TestCaseError::fail)?;
        let refused = refused.ok_or_else(|| TestCaseError::fail("answered, not a request?"))?;
        malformed_iff_unconvertible(refused, &code).map_err(TestCaseError::fail)?;
        if status == 200 {
            let receipt: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
            if receipt["duplicate"] == false {
                let mut stored = stored.lock().unwrap();
                *stored += 1;
                if (*stored).is_multiple_of(100) {
                    prop_assert_eq!(rt.block_on(fuzz::count_items(&client, &table)), *stored);
                }
            }
        }
        if must_store.is_some() {
            prop_assert_eq!(status, 200, "a signed valid event: {}", out);
        }
    });

    let stored = *stored.lock().unwrap();
    assert_eq!(
        rt.block_on(fuzz::count_items(&client, &table)),
        stored,
        "the table holds exactly the events acknowledged as new"
    );
    assert!(stored > 0, "signed events were stored");
}

#[test]
fn any_payload_to_fulfillment() {
    let rt = fuzz::runtime();
    let h = rt.block_on(integration_tests::fulfillment::Harness::new());
    let cases = Mutex::new(0usize);
    let strategy = prop_oneof![
        payload("session_id", 10, 0.0).prop_map(|p| ("/checkout/complete", p)),
        payload("payment_intent", 20, 0.0).prop_map(|p| ("/payments/complete", p)),
    ];

    proptest!(fuzz::config(FULFILLMENT_CASES), |((path, payload) in strategy)| {
        let valid = || {
            if path == "/checkout/complete" {
                format!("session_id={}", fresh("cs_test_fuzz"))
            } else {
                format!("payment_intent={}", fresh("pi_fuzz"))
            }
        };
        let event = route_event("GET", path, &valid, &payload);
        dispatched(&*h.app, &event, fulfillment_documented)?;
        let mut cases = cases.lock().unwrap();
        *cases += 1;
        if (*cases).is_multiple_of(2_000) {
            prop_assert_eq!(rt.block_on(fuzz::count_items(&h.dynamodb, &h.orders)), 0, "no order");
        }
    });

    rt.block_on(async {
        assert_eq!(
            fuzz::count_items(&h.dynamodb, &h.orders).await,
            0,
            "no order"
        );
        assert_eq!(fuzz::emails_sent_here().await, 0, "no email");
        let stripe = h.stripe.received_requests().await.unwrap_or_default();
        assert!(
            stripe.iter().all(|r| r.method.as_str() == "GET"),
            "Stripe was only read"
        );
    });
}

#[test]
fn any_payload_to_recovery() {
    let rt = fuzz::runtime();
    let h = rt.block_on(integration_tests::recovery::Harness::new());
    let strategy = (
        prop::sample::select(vec!["GET", "POST"]),
        payload("token", 0, 0.0),
    );

    proptest!(fuzz::config(RECOVERY_CASES), |((method, payload) in strategy)| {
        let event = route_event(method, "/recovery/unsubscribe", &String::new, &payload);
        dispatched(&*h.recovery, &event, recovery_documented)?;
    });

    rt.block_on(async {
        assert_eq!(
            fuzz::count_items(&h.dynamodb, &h.table).await,
            0,
            "no address recorded"
        );
        assert_eq!(fuzz::emails_sent_here().await, 0, "no email");
        assert!(
            h.stripe
                .received_requests()
                .await
                .unwrap_or_default()
                .is_empty(),
            "Stripe not asked"
        );
    });
}

/// The four payloads that panicked lambda_http's conversion, each a well-formed event of the
/// route with one field broken.
fn used_to_panic(
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
) -> Vec<(&'static str, Value)> {
    let valid = || api_gateway_v2_event(method, path, query, body);
    let mut base64 = valid();
    base64["isBase64Encoded"] = true.into();
    base64["body"] = "not base64 at all!".into();
    let mut host = valid();
    host["headers"]["host"] = "bad host.example".into();
    let mut raw_query = valid();
    raw_query["rawQueryString"] = r#"a="<b>""#.into();
    let mut raw_path = valid();
    raw_path["rawPath"] = path.trim_start_matches('/').into();
    vec![
        ("isBase64Encoded with a body that is not base64", base64),
        ("a Host header with a space", host),
        ("a rawQueryString that is not a URI query", raw_query),
        ("a rawPath without its leading /", raw_path),
    ]
}

fn assert_malformed(case: &str, answer: &Value) {
    assert_eq!(answer["statusCode"], 400, "{case}: {answer}");
    let body = answer["body"].as_str().expect("a body");
    let code = fuzz::documented_error(body.as_bytes(), &["malformed_request"])
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(code, "malformed_request", "{case}");
}

/// Regression (found by fuzzing): these panicked in lambda_http's conversion (it unwraps the
/// base64 decoding, the URL it builds from Host and `rawPath`, the URI it adds the raw query
/// to) until `check_request` answered them `400 malformed_request`, in every function that
/// takes API Gateway payloads through `lambda::dispatch`, `dispatch_webhook` or
/// `dispatch_http` (create-session, which used `lambda_http::run` until then). Nothing is
/// stored, sent or asked of Stripe.
#[tokio::test]
async fn payloads_that_used_to_panic_are_400_malformed_request() {
    let client = dynamodb().await;
    let table = events_table(&client).await;
    let receiver = receiver(&client, &table);
    let body = event_json(
        "evt_used_to_panic",
        "checkout.session.completed",
        json!({"id": "cs_test_a1", "object": "checkout.session"}),
    );
    let mut webhook = used_to_panic("POST", "/webhooks/stripe", "", Some(&body));
    let header = webhook::sign(&Secret::new(WEBHOOK_SECRET), unix_now(), body.as_bytes());
    for (_, payload) in &mut webhook {
        payload["headers"]["stripe-signature"] = header.clone().into();
        payload["headers"]["content-type"] = "application/json".into();
    }
    for (case, payload) in webhook {
        let answer =
            lambda::dispatch_webhook(&receiver, LambdaEvent::new(payload, Context::default()))
                .await
                .unwrap_or_else(|e| panic!("webhook, {case}: {e}"));
        assert_malformed(&format!("webhook, {case}"), &answer);
    }
    assert_eq!(
        fuzz::count_items(&client, &table).await,
        0,
        "no event stored"
    );

    let f = integration_tests::fulfillment::Harness::new().await;
    let r = integration_tests::recovery::Harness::new().await;
    let routes = [
        ("GET", "/checkout/complete", "session_id=cs_test_a1"),
        ("GET", "/payments/complete", "payment_intent=pi_a1"),
        ("GET", "/recovery/unsubscribe", "token=abc.def"),
        ("POST", "/recovery/unsubscribe", "token=abc.def"),
    ];
    for (method, path, query) in routes {
        for (case, payload) in used_to_panic(method, path, query, None) {
            let trigger: Trigger = serde_json::from_value(payload).unwrap();
            let event = LambdaEvent::new(trigger, Context::default());
            let answer = if path.starts_with("/recovery") {
                lambda::dispatch(&*r.recovery, event).await
            } else {
                lambda::dispatch(&*f.app, event).await
            }
            .unwrap_or_else(|e| panic!("{method} {path}, {case}: {e}"));
            assert_malformed(&format!("{method} {path}, {case}"), &answer);
        }
    }
    assert_eq!(f.stripe_calls().await, 0, "Stripe not asked");
    assert_eq!(
        fuzz::count_items(&f.dynamodb, &f.orders).await,
        0,
        "no order"
    );
    assert!(
        r.stripe
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(r.sent().await.len(), 0, "no email");

    let c = integration_tests::checkout::Harness::new().await;
    let creator = c.creator(c.config());
    let body = r#"{"items":[{"price":"price_1","quantity":1}]}"#;
    for path in ["/checkout/sessions", "/payments"] {
        for (case, mut payload) in used_to_panic("POST", path, "", Some(body)) {
            payload["headers"]["content-type"] = "application/json".into();
            payload["headers"]["origin"] = integration_tests::checkout::SHOP.into();
            let request: LambdaRequest = serde_json::from_value(payload).unwrap();
            let event = LambdaEvent::new(request, Context::default());
            let answer =
                lambda::dispatch_http(|request| checkout::handle(&creator, request), event)
                    .await
                    .unwrap_or_else(|e| panic!("POST {path}, {case}: {e}"));
            assert_malformed(&format!("POST {path}, {case}"), &answer);
        }
    }
    assert!(c.stripe_requests().await.is_empty(), "Stripe not asked");
    assert_eq!(
        fuzz::count_items(&c.dynamodb, &c.requests).await,
        0,
        "no Idempotency-Key held"
    );
    assert_eq!(
        fuzz::count_items(&c.dynamodb, &c.table).await,
        0,
        "no session"
    );
}
