//! The simulator's billing against Stripe's own shapes: requests go through the same entry
//! points as HTTP ones (`api`, `page`), events are read where `GET /v1/events` reads them, and
//! every object is checked key by key against Stripe's basil fixtures
//! (the copy in `shared/tests/fixtures/stripe/basil`: a missing file fails the test).

mod billing;
mod charges;
mod elements;
mod payment_attempts;
mod payment_intents;
mod renewals;

use std::sync::Arc;

use bytes::Bytes;
use checkout_core::config::Secret;
use http::StatusCode;
use serde_json::Value;

use crate::{Answer, Simulator, SimulatorConfig, demo_catalog, demo_shipping_rates};

const KEY: &str = "sk_test_unit";
const PUBLIC_URL: &str = "http://simulator.test";

fn simulator() -> Arc<Simulator> {
    Simulator::new(SimulatorConfig {
        api_key: Secret::new(KEY),
        public_url: PUBLIC_URL.into(),
        // Nothing listens there: deliveries fail in the background, events are recorded.
        webhook_url: "http://127.0.0.1:9/webhooks/stripe".into(),
        webhook_secret: Secret::new("whsec_unit"),
        catalog: demo_catalog(),
        shipping_rates: demo_shipping_rates(),
    })
}

/// One API request, as the bundle's client sends it.
fn api(
    sim: &Arc<Simulator>,
    method: &str,
    path: &str,
    body: &str,
    account: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {KEY}"));
    if let Some(account) = account {
        request = request.header("stripe-account", account);
    }
    let response = sim.api(&request.body(Bytes::from(body.to_string())).unwrap());
    let value = serde_json::from_slice(response.body()).unwrap();
    (response.status(), value)
}

fn get(sim: &Arc<Simulator>, path: &str, account: Option<&str>) -> Value {
    let (status, value) = api(sim, "GET", path, "", account);
    assert_eq!(status, StatusCode::OK, "GET {path}: {value}");
    value
}

/// A browser's request to one of the simulator's pages.
fn page(sim: &Arc<Simulator>, method: &str, path: &str, body: &str) -> Answer {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    sim.page(&request)
}

fn text(answer: &Answer) -> String {
    String::from_utf8_lossy(answer.body()).into_owned()
}

/// The form create-session sends, for these prices.
fn session_form(mode: &str, prices: &[&str]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (i, price) in prices.iter().enumerate() {
        form.append_pair(&format!("line_items[{i}][price]"), price)
            .append_pair(&format!("line_items[{i}][quantity]"), "1");
    }
    form.append_pair("mode", mode)
        .append_pair("ui_mode", "hosted")
        .append_pair(
            "success_url",
            "http://shop.test/thanks?session_id={CHECKOUT_SESSION_ID}",
        )
        .finish()
}

fn new_session(sim: &Arc<Simulator>, mode: &str, prices: &[&str], account: Option<&str>) -> String {
    let (status, session) = api(
        sim,
        "POST",
        "/v1/checkout/sessions",
        &session_form(mode, prices),
        account,
    );
    assert_eq!(status, StatusCode::OK, "{session}");
    session["id"].as_str().unwrap().to_string()
}

/// The hosted page's Pay, webhooks withheld (the events are recorded all the same).
fn pay(sim: &Arc<Simulator>, session: &str) {
    let answer = page(
        sim,
        "POST",
        &format!("/c/pay/{session}"),
        "email=ada%40example.com&name=Ada&action=pay&withhold=on",
    );
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{}", text(&answer));
}

fn event_count(sim: &Simulator) -> usize {
    sim.lock().events.len()
}

/// The events recorded since `from`, oldest first.
fn events_since(sim: &Simulator, from: usize) -> Vec<Value> {
    sim.lock().events[from..]
        .iter()
        .map(|(_, e)| e.clone())
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", types(events)))
}

/// Stripe's basil fixture of an object, from the copy in the repository
/// (`shared/tests/fixtures/stripe`, with its source); a missing file fails the test.
fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../shared/tests/fixtures/stripe/basil/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("Stripe's basil fixture {path}: {e}"));
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every key of the fixture is in the object, nested objects too (and the first element of
/// lists both have). A null on either side stands for an object Stripe may leave out.
/// `metadata` holds the merchant's own keys, not Stripe's shape: only the key itself counts.
fn missing_keys(fixture: &Value, actual: &Value, at: &str, missing: &mut Vec<String>) {
    match (fixture, actual) {
        (Value::Object(expected), Value::Object(got)) => {
            for (key, value) in expected {
                match got.get(key) {
                    None => missing.push(format!("{at}.{key}")),
                    Some(_) if key == "metadata" => {}
                    Some(inner) => missing_keys(value, inner, &format!("{at}.{key}"), missing),
                }
            }
        }
        (Value::Array(expected), Value::Array(got)) => {
            if let (Some(e), Some(g)) = (expected.first(), got.first()) {
                missing_keys(e, g, &format!("{at}[0]"), missing);
            }
        }
        _ => {}
    }
}

#[track_caller]
fn assert_fixture_keys(name: &str, actual: &Value) {
    let mut missing = Vec::new();
    missing_keys(&fixture(name), actual, name, &mut missing);
    assert!(
        missing.is_empty(),
        "keys of {name}.json missing: {missing:?}"
    );
}

#[test]
fn the_key_check_finds_nested_and_listed_keys() {
    let expected = serde_json::json!({"a": 1, "b": {"c": null}, "d": [{"e": 1}], "f": {"g": 1}, "metadata": {"order_id": "1"}});
    let got = serde_json::json!({"a": 2, "b": {}, "d": [{}], "f": null, "metadata": {}});
    let mut missing = Vec::new();
    missing_keys(&expected, &got, "x", &mut missing);
    assert_eq!(missing, ["x.b.c", "x.d[0].e"]);
}
