//! The events Lambda would deliver, as JSON: API Gateway HTTP API (payload 2.0) requests, a
//! DynamoDB stream batch, an EventBridge schedule, and the Stripe event fixtures inside them.

use checkout_core::store::EventRecord;
use checkout_core::stripe::Event;
use serde_json::{Value, json};

/// An API Gateway HTTP API (payload 2.0) event, as Lambda delivers it.
pub fn api_gateway_v2(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Value {
    let host = "abc123.execute-api.us-east-1.amazonaws.com";
    let route = format!("{method} {path}");
    let mut all_headers = serde_json::Map::new();
    all_headers.insert("host".into(), json!(host));
    all_headers.insert("x-forwarded-proto".into(), json!("https"));
    for (name, value) in headers {
        all_headers.insert((*name).to_string(), json!(value));
    }
    let mut event = json!({
        "version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": query,
        "headers": all_headers, "isBase64Encoded": false,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": host, "domainPrefix": "abc123",
            "requestId": "bench-request", "routeKey": route, "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1_767_225_600_000_i64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "bench-lambda"}
        }
    });
    if let Some((key, value)) = query.split_once('=') {
        event["queryStringParameters"] = json!({ key: value });
    }
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    event
}

pub fn session_object(id: &str, now: i64) -> Value {
    json!({
        "id": id, "object": "checkout.session", "mode": "payment", "status": "complete",
        "payment_status": "paid", "ui_mode": "hosted", "created": now - 60, "expires_at": now + 86_340,
        "amount_subtotal": 1500, "amount_total": 1500, "currency": "eur", "livemode": false,
        "customer_details": {"email": "jenny@example.com", "name": "Jenny Rosen"},
        "payment_intent": "pi_3BenchLambdaEmulator", "metadata": {},
    })
}

pub fn stripe_event(id: &str, object: &Value, now: i64) -> String {
    json!({
        "id": id, "object": "event", "api_version": "2025-03-31.basil", "created": now - 5,
        "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "checkout.session.completed", "data": {"object": object}
    })
    .to_string()
}

/// The stored event the subscriptions row's stream record carries (the moto row stores it
/// first, as the webhook would have, so recording its outcome finds it).
///
/// # Errors
/// The fixture is not an event (a bug).
pub fn subscriptions_event(row: &str, now: i64) -> Result<EventRecord, String> {
    let body = stripe_event(
        &format!("evt_1Bench{row}stream"),
        &session_object(&format!("cs_test_bench{row}stream"), now),
        now,
    );
    let event = Event::parse(body.as_bytes()).map_err(|e| e.to_string())?;
    Ok(EventRecord::new(&event, now, 30 * 86_400))
}

/// A DynamoDB stream batch (NEW_IMAGE) of one INSERT, as Lambda delivers it.
pub fn stream_batch(record: &EventRecord) -> Result<Value, String> {
    let image: serde_dynamo::Item = serde_dynamo::to_item(record).map_err(|e| e.to_string())?;
    let image = serde_json::to_value(image).map_err(|e| e.to_string())?;
    Ok(json!({"Records": [{
        "eventID": "c81e728d9d4c2f636f067f89cc14862c",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_767_225_600,
            "Keys": {"event_id": {"S": record.event_id.as_str()}},
            "NewImage": image,
            "SequenceNumber": "111100000000012345678901",
            "SizeBytes": 1024,
            "StreamViewType": "NEW_IMAGE"
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/bench-EventsTable/stream/2026-01-01T00:00:00.000"
    }]}))
}

/// What EventBridge delivers for a schedule (the reconcile function reads no field of it).
pub fn scheduled_event(now: i64) -> Value {
    json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": format!("{now}"), "region": "us-east-1",
        "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/bench-reconcile"],
        "detail": {}
    })
}
