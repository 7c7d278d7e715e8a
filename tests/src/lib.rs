//! Support for the cross-function tests: real AWS SDK clients pointed at the moto server that
//! `make test` starts, a fresh table per test so tests run in parallel, and signed requests.

use std::sync::atomic::{AtomicU32, Ordering};

use checkout_core::{
    aws,
    config::{Secret, TableName},
    store::{DynamoDb, tables},
    webhook,
};
use lambda_http::{Body, Request};

pub const WEBHOOK_SECRET: &str = "whsec_integration_test_secret";

/// A client for the DynamoDB-protocol server in `AWS_ENDPOINT_URL`. Refuses to run without
/// it so a test can never touch a real AWS account.
pub async fn dynamodb() -> DynamoDb {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|url| url.starts_with("http://127.0.0.1")),
        "AWS_ENDPOINT_URL must point at a loopback moto server: run the tests with `make test`"
    );
    DynamoDb::new(&aws::sdk_config().await)
}

/// A table name no other test uses.
pub fn unique_table(prefix: &str) -> TableName {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}-{}-{n}-{}",
        std::process::id(),
        webhook::unix_now()
    )
    .parse()
    .expect("valid table name")
}

pub async fn events_table(client: &DynamoDb) -> TableName {
    let name = unique_table("events");
    tables::ensure(client, name.as_str(), &tables::EVENTS)
        .await
        .expect("create events table");
    name
}

pub async fn item_count(client: &DynamoDb, table: &TableName) -> i32 {
    client
        .scan()
        .table_name(table.as_str())
        .consistent_read(true)
        .send()
        .await
        .expect("scan")
        .count
}

/// A `POST /webhooks/stripe` request signed now with the test secret.
pub fn signed_webhook(body: &str) -> Request {
    let header = webhook::sign(
        &Secret::new(WEBHOOK_SECRET),
        webhook::unix_now(),
        body.as_bytes(),
    );
    webhook_request(Some(&header), body)
}

pub fn webhook_request(signature: Option<&str>, body: &str) -> Request {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri("/webhooks/stripe")
        .header("content-type", "application/json");
    if let Some(signature) = signature {
        builder = builder.header("stripe-signature", signature);
    }
    builder.body(Body::from(body)).expect("request")
}

/// A Stripe event body as Stripe sends it.
pub fn event_json(id: &str, kind: &str, object: serde_json::Value) -> String {
    serde_json::json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": webhook::unix_now() - 5,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind,
        "data": {"object": object}
    })
    .to_string()
}

pub async fn sessions_table(client: &DynamoDb) -> TableName {
    let name = unique_table("sessions");
    tables::ensure(client, name.as_str(), &tables::SESSIONS)
        .await
        .expect("create sessions table");
    name
}

/// A `POST /checkout/sessions` request with the given content type and extra headers.
pub fn checkout_request(content_type: &str, body: &str, headers: &[(&str, &str)]) -> Request {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri("/checkout/sessions")
        .header("content-type", content_type);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body)).expect("request")
}

/// The form pairs of a request Stripe received, decoded, in order.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}
