//! `POST /webhooks/stripe` through the real handler and aws-sdk-dynamodb against moto.

use std::sync::Arc;

use base64::Engine;
use checkout_core::{
    config::{Secret, TableName},
    ids::EventId,
    store::{DynamoDb, EventStore},
    stripe::{EventType, StripeMode},
    webhook::{self, WebhookConfig, WebhookReceiver, WebhookSecrets},
};
use integration_tests::*;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

fn config(table: &TableName) -> WebhookConfig {
    WebhookConfig {
        secrets: WebhookSecrets::parse(&format!("whsec_rolled_out_secret,{WEBHOOK_SECRET}"))
            .unwrap(),
        tolerance_secs: webhook::DEFAULT_TOLERANCE_SECS,
        events_table: table.clone(),
        retention_days: 30,
        mode: StripeMode::Test,
    }
}

async fn setup() -> (DynamoDb, TableName, WebhookReceiver) {
    let client = dynamodb().await;
    let table = events_table(&client).await;
    let receiver = WebhookReceiver::new(config(&table), client.clone());
    (client, table, receiver)
}

fn json_body(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body()).expect("JSON body")
}

fn completed(id: &str) -> String {
    event_json(
        id,
        "checkout.session.completed",
        json!({"id": "cs_test_a1", "object": "checkout.session", "payment_status": "paid", "customer_details": {"email": "jenny@example.com"}}),
    )
}

#[tokio::test]
async fn a_signed_event_is_stored_with_what_downstream_needs() {
    let (client, table, receiver) = setup().await;
    let body = completed("evt_stored_once");

    let response = webhook::handle(&receiver, signed_webhook(&body)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        json_body(&response),
        json!({"event_id": "evt_stored_once", "duplicate": false})
    );
    let id: EventId = "evt_stored_once".parse().unwrap();
    let record = EventStore::new(table, client)
        .get(&id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(record.kind, EventType::CheckoutSessionCompleted);
    assert_eq!(record.object_id.as_deref(), Some("cs_test_a1"));
    assert_eq!(record.object_type.as_deref(), Some("checkout.session"));
    assert_eq!(record.account, None);
    assert_eq!(record.expires_at - record.received_at, 30 * 86_400);
    let object: Value = serde_json::from_str(record.object.as_deref().unwrap()).unwrap();
    assert_eq!(object["payment_status"], "paid");
}

#[tokio::test]
async fn a_duplicate_delivery_answers_200_and_writes_nothing() {
    let (client, table, receiver) = setup().await;
    let body = completed("evt_sent_three_times");
    let store = EventStore::new(table.clone(), client.clone());
    let id: EventId = "evt_sent_three_times".parse().unwrap();

    let first = webhook::handle(&receiver, signed_webhook(&body)).await;
    let stored = store.get(&id).await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = webhook::handle(&receiver, signed_webhook(&body)).await;
    let third = webhook::handle(&receiver, signed_webhook(&body)).await;

    assert_eq!(json_body(&first)["duplicate"], false);
    for response in [&second, &third] {
        assert_eq!(response.status(), 200);
        assert_eq!(json_body(response)["duplicate"], true);
    }
    assert_eq!(item_count(&client, &table).await, 1);
    assert_eq!(
        store.get(&id).await.unwrap().unwrap(),
        stored,
        "the first record is untouched"
    );
}

#[tokio::test]
async fn twenty_concurrent_deliveries_of_one_event_store_one_record() {
    let (client, table, receiver) = setup().await;
    let receiver = Arc::new(receiver);
    let body = completed("evt_delivered_concurrently");

    let deliveries = (0..20).map(|_| {
        let receiver = receiver.clone();
        let request = signed_webhook(&body);
        tokio::spawn(async move { webhook::handle(&receiver, request).await })
    });
    let responses = futures_join_all(deliveries).await;

    assert!(responses.iter().all(|r| r.status() == 200));
    let new = responses
        .iter()
        .filter(|r| json_body(r)["duplicate"] == false)
        .count();
    assert_eq!(new, 1, "exactly one delivery stores the event");
    assert_eq!(item_count(&client, &table).await, 1);
}

async fn futures_join_all<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn connect_events_keep_their_account_and_unknown_types_are_stored() {
    let (client, table, receiver) = setup().await;
    let mut event: Value = serde_json::from_str(&completed("evt_connect")).unwrap();
    event["account"] = json!("acct_1Connected");
    let unknown = event_json(
        "evt_unknown_type",
        "customer.tax_id.created",
        json!({"id": "txi_1", "object": "tax_id"}),
    );
    let balance = event_json(
        "evt_no_object_id",
        "balance.available",
        json!({"object": "balance", "available": []}),
    );

    for body in [event.to_string(), unknown, balance] {
        let response = webhook::handle(&receiver, signed_webhook(&body)).await;
        assert_eq!(
            response.status(),
            200,
            "{}",
            String::from_utf8_lossy(response.body())
        );
    }

    let store = EventStore::new(table, client);
    let connect = store
        .get(&"evt_connect".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connect.account.unwrap().as_str(), "acct_1Connected");
    let unknown = store
        .get(&"evt_unknown_type".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        unknown.kind,
        EventType::Other("customer.tax_id.created".into())
    );
    let balance = store
        .get(&"evt_no_object_id".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (balance.object_id, balance.object_type.as_deref()),
        (None, Some("balance"))
    );
}

#[tokio::test]
async fn an_object_too_large_for_dynamodb_is_stored_without_it() {
    let (client, table, receiver) = setup().await;
    let padding = "x".repeat(500 * 1024);
    let body = event_json(
        "evt_huge",
        "checkout.session.completed",
        json!({"id": "cs_big", "object": "checkout.session", "metadata": {"note": padding}}),
    );

    let response = webhook::handle(&receiver, signed_webhook(&body)).await;

    assert_eq!(response.status(), 200);
    let record = EventStore::new(table, client)
        .get(&"evt_huge".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.object, None);
    assert_eq!(
        record.object_id.as_deref(),
        Some("cs_big"),
        "consumers can still fetch it from Stripe"
    );
}

#[tokio::test]
async fn api_gateway_base64_bodies_are_verified_over_the_raw_bytes() {
    let (client, table, receiver) = setup().await;
    let body = completed("evt_base64_body");
    let signature = webhook::sign(&Secret::new(WEBHOOK_SECRET), unix_now(), body.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
    let apigw_event = json!({
        "version": "2.0", "routeKey": "POST /webhooks/stripe", "rawPath": "/webhooks/stripe", "rawQueryString": "",
        "headers": {"content-type": "application/json", "stripe-signature": signature, "host": "abc.execute-api.eu-west-1.amazonaws.com"},
        "requestContext": {"accountId": "123456789012", "apiId": "abc", "domainName": "abc.execute-api.eu-west-1.amazonaws.com", "domainPrefix": "abc",
            "http": {"method": "POST", "path": "/webhooks/stripe", "protocol": "HTTP/1.1", "sourceIp": "3.18.12.63", "userAgent": "Stripe/1.0"},
            "requestId": "id", "routeKey": "POST /webhooks/stripe", "stage": "$default", "time": "22/Nov/2026:16:24:00 +0000", "timeEpoch": 1795000000000u64},
        "body": encoded, "isBase64Encoded": true
    });

    let request =
        lambda_http::request::from_str(&apigw_event.to_string()).expect("API Gateway v2 event");
    let response = webhook::handle(&receiver, request).await;

    assert_eq!(
        response.status(),
        200,
        "{}",
        String::from_utf8_lossy(response.body())
    );
    assert_eq!(item_count(&client, &table).await, 1);
}

#[tokio::test]
async fn bad_requests_get_a_clear_400_and_store_nothing() {
    let (client, table, receiver) = setup().await;
    let body = completed("evt_bad_input");
    let now = unix_now();
    let secret = Secret::new(WEBHOOK_SECRET);
    let good = webhook::sign(&secret, now, body.as_bytes());
    let forged = webhook::sign(&Secret::new("whsec_attacker"), now, body.as_bytes());
    let replayed = webhook::sign(&secret, now - 3600, body.as_bytes());
    let from_the_future = webhook::sign(&secret, now + 3600, body.as_bytes());
    let v0_only = good.replace("v1=", "v0=");
    let malformed_json = "{\"id\": \"evt_x\",";
    let missing_type = {
        let mut event: Value = serde_json::from_str(&body).unwrap();
        event.as_object_mut().unwrap().remove("type");
        event.to_string()
    };
    let tampered = body.replace("paid", "unpaid");
    let bad_id = body.replace("evt_bad_input", "not_an_event");
    let sign_now = |b: &str| webhook::sign(&secret, now, b.as_bytes());
    let oversized = format!("{{\"pad\":\"{}\"}}", "x".repeat(webhook::MAX_BODY_BYTES));
    // Under 1 MiB, but a stored item would pass DynamoDB's 400 KB (or the by-object index's
    // 2 KB key) through a field other than `data.object`: refused, never a 503 for ever.
    let with = |pointer: &str, value: String| {
        let mut event: Value = serde_json::from_str(&body).unwrap();
        *event.pointer_mut(pointer).unwrap() = value.into();
        event.to_string()
    };
    let long_type = with("/type", format!("checkout.{}", "x".repeat(400 * 1024)));
    let long_version = with("/api_version", "2025-03-31.".repeat(40_000));
    let long_object_id = with("/data/object/id", format!("cs_{}", "a".repeat(3000)));

    let cases: Vec<(&str, Option<String>, &str, u16, &str)> = vec![
        ("missing signature", None, &body, 400, "signature_missing"),
        (
            "forged signature",
            Some(forged),
            &body,
            400,
            "signature_mismatch",
        ),
        (
            "tampered body",
            Some(good.clone()),
            &tampered,
            400,
            "signature_mismatch",
        ),
        (
            "replayed an hour later",
            Some(replayed),
            &body,
            400,
            "signature_timestamp_out_of_tolerance",
        ),
        (
            "timestamp in the future",
            Some(from_the_future),
            &body,
            400,
            "signature_timestamp_out_of_tolerance",
        ),
        ("v0 only", Some(v0_only), &body, 400, "signature_malformed"),
        (
            "garbage header",
            Some("nonsense".into()),
            &body,
            400,
            "signature_malformed",
        ),
        (
            "malformed JSON",
            Some(sign_now(malformed_json)),
            malformed_json,
            400,
            "invalid_event",
        ),
        (
            "missing type",
            Some(sign_now(&missing_type)),
            &missing_type,
            400,
            "invalid_event",
        ),
        (
            "not an event id",
            Some(sign_now(&bad_id)),
            &bad_id,
            400,
            "invalid_event",
        ),
        ("empty body", Some(sign_now("")), "", 400, "invalid_event"),
        (
            "a 400 KB type",
            Some(sign_now(&long_type)),
            &long_type,
            400,
            "invalid_event",
        ),
        (
            "a 440 KB api_version",
            Some(sign_now(&long_version)),
            &long_version,
            400,
            "invalid_event",
        ),
        (
            "a 3 KB object id",
            Some(sign_now(&long_object_id)),
            &long_object_id,
            400,
            "invalid_event",
        ),
        (
            "over 1 MiB",
            Some(sign_now(&oversized)),
            &oversized,
            413,
            "payload_too_large",
        ),
    ];

    for (name, signature, body, status, code) in cases {
        let response =
            webhook::handle(&receiver, webhook_request(signature.as_deref(), body)).await;
        assert_eq!(response.status(), status, "{name}");
        let error = &json_body(&response)["error"];
        assert_eq!(error["code"], code, "{name}: {error}");
        assert!(!error["message"].as_str().unwrap().is_empty(), "{name}");
        assert!(
            !error.to_string().contains(WEBHOOK_SECRET),
            "{name}: secrets never echoed"
        );
    }
    let get = http::Request::builder()
        .method("GET")
        .uri("/webhooks/stripe")
        .body(Body::Empty)
        .unwrap();
    let not_post = webhook::handle(&receiver, get).await;
    assert_eq!(not_post.status(), 405);
    assert_eq!(json_body(&not_post)["error"]["code"], "method_not_allowed");
    assert_eq!(not_post.headers()["allow"], "POST");
    assert_eq!(
        item_count(&client, &table).await,
        0,
        "nothing refused was stored"
    );
}

/// Regression: `data.object.id == ""` keyed the by-object index with an empty string, which
/// DynamoDB refuses, so a correctly signed event was answered 503 for ever (Stripe retrying
/// it for days). It is refused once, with 400 `invalid_event`, and nothing is stored.
#[tokio::test]
async fn an_empty_object_id_is_a_400_not_a_503_for_ever() {
    let (client, table, receiver) = setup().await;
    let body = event_json(
        "evt_empty_object_id",
        "checkout.session.completed",
        json!({"id": "", "object": "checkout.session"}),
    );

    let response = webhook::handle(&receiver, signed_webhook(&body)).await;

    assert_eq!(response.status(), 400);
    let error = &json_body(&response)["error"];
    assert_eq!(error["code"], "invalid_event", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("data.object.id is empty"),
        "{error}"
    );
    assert_eq!(item_count(&client, &table).await, 0);
}

#[tokio::test]
async fn a_storage_failure_is_a_5xx_so_stripe_retries() {
    let client = dynamodb().await;
    let missing_table: TableName = unique_table("never-created");
    let receiver = WebhookReceiver::new(config(&missing_table), client);

    let response = webhook::handle(&receiver, signed_webhook(&completed("evt_no_table"))).await;

    assert_eq!(response.status(), 503);
    assert_eq!(json_body(&response)["error"]["code"], "storage_unavailable");
    assert!(
        !String::from_utf8_lossy(response.body()).contains(missing_table.as_str()),
        "internals stay in logs"
    );
}

#[tokio::test]
async fn dynamodb_unreachable_is_a_5xx_and_nothing_is_acknowledged() {
    let client = dynamodb().await;
    let table = events_table(&client).await;
    // A port nothing listens on: connections are refused, as when DynamoDB is unreachable.
    let unreachable = DynamoDb::from_conf(
        client
            .config()
            .to_builder()
            .endpoint_url("http://127.0.0.1:9")
            .build(),
    );
    let receiver = WebhookReceiver::new(config(&table), unreachable);

    let response = webhook::handle(&receiver, signed_webhook(&completed("evt_unreachable"))).await;

    assert_eq!(response.status(), 503);
    assert_eq!(item_count(&client, &table).await, 0);
    let redelivery = WebhookReceiver::new(config(&table), client.clone());
    let retried = webhook::handle(&redelivery, signed_webhook(&completed("evt_unreachable"))).await;
    assert_eq!(
        json_body(&retried)["duplicate"],
        false,
        "Stripe's retry stores it"
    );
}

/// An event as Stripe's EventBridge destination puts it on a partner bus.
fn event_bridge_envelope(source: &str, detail: &str) -> Value {
    json!({
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "checkout.session.completed", "source": source,
        "account": "111122223333", "time": "2026-12-01T21:22:52Z", "region": "eu-west-1",
        "resources": [], "detail": serde_json::from_str::<Value>(detail).unwrap()
    })
}

#[tokio::test]
async fn eventbridge_events_from_stripe_are_stored_once_without_a_signature() {
    let (client, table, receiver) = setup().await;
    let envelope = event_bridge_envelope(
        "aws.partner/stripe.com/ed_test_61Q/checkout",
        &completed("evt_bridge"),
    );
    let invoke = |payload: Value| {
        checkout_core::lambda::dispatch_webhook(
            &receiver,
            lambda_http::LambdaEvent::new(payload, lambda_http::Context::default()),
        )
    };

    let answer = invoke(envelope.clone()).await.expect("stored");
    assert_eq!(
        answer,
        json!({"event_id": "evt_bridge", "duplicate": false})
    );
    let again = invoke(envelope).await.expect("a redelivery is fine");
    assert_eq!(again["duplicate"], true);
    let id: EventId = "evt_bridge".parse().unwrap();
    let record = EventStore::new(table.clone(), client.clone())
        .get(&id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(record.kind, EventType::CheckoutSessionCompleted);
    assert_eq!(item_count(&client, &table).await, 1);

    // Refused, and nothing stored: another source, or a detail that is not a Stripe event.
    for bad in [
        event_bridge_envelope("aws.partner/evil.example/x", &completed("evt_forged")),
        event_bridge_envelope("aws.partner/stripe.com/ed_1/x", r#"{"not": "an event"}"#),
    ] {
        assert!(invoke(bad).await.is_err(), "fails the invocation");
    }
    assert_eq!(item_count(&client, &table).await, 1);

    // The same function still serves API Gateway: a signed delivery through the entry point.
    let body = completed("evt_through_api");
    let signature = webhook::sign(&Secret::new(WEBHOOK_SECRET), unix_now(), body.as_bytes());
    let mut request = api_gateway_v2_event("POST", "/webhooks/stripe", "", None);
    request["body"] = body.clone().into();
    request["headers"]["content-type"] = "application/json".into();
    request["headers"]["stripe-signature"] = signature.into();
    let answer = invoke(request).await.unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(item_count(&client, &table).await, 2);
}
