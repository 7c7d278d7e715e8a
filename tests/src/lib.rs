//! Support for the cross-function tests: real AWS SDK clients pointed at the moto server that
//! `make test` starts, a fresh table per test so tests run in parallel, and signed requests.

#![recursion_limit = "256"]

pub mod checkout;
pub mod fulfillment;
pub mod fuzz;
pub mod recovery;
pub mod simulator;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord as StreamRecord};
use checkout_core::{
    aws,
    config::{Secret, TableName},
    mail::EmailAddress,
    store::{DynamoDb, EventRecord, tables},
    stripe::Event,
    webhook,
};
use lambda_http::{Body, Request};

/// The system time, as the handlers read it.
#[must_use]
pub fn unix_now() -> i64 {
    checkout_core::clock::Clock::system().now()
}

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
    format!("{prefix}-{}-{n}-{}", std::process::id(), unix_now())
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
#[must_use]
pub fn signed_webhook(body: &str) -> Request {
    let header = webhook::sign(&Secret::new(WEBHOOK_SECRET), unix_now(), body.as_bytes());
    webhook_request(Some(&header), body)
}

#[must_use]
pub fn webhook_request(signature: Option<&str>, body: &str) -> Request {
    webhook_request_bytes(signature.map(str::as_bytes), body)
}

/// A `POST /webhooks/stripe` request of any bytes; a signature that is not a valid header
/// value is left out, as no HTTP client could send it.
#[must_use]
pub fn webhook_request_bytes(signature: Option<&[u8]>, body: impl Into<Body>) -> Request {
    let mut request = http::Request::builder()
        .method("POST")
        .uri("/webhooks/stripe")
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request");
    if let Some(value) = signature.and_then(|s| http::HeaderValue::from_bytes(s).ok()) {
        request.headers_mut().insert("stripe-signature", value);
    }
    request
}

/// A Stripe event body as Stripe sends it.
#[must_use]
pub fn event_json(id: &str, kind: &str, object: serde_json::Value) -> String {
    serde_json::json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": unix_now() - 5,
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
#[must_use]
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
#[must_use]
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Records `session` as create-session does, so the consumers know it was created here (a
/// connected account's session they did not create is another integration's).
pub async fn created_here(
    client: &DynamoDb,
    table: &TableName,
    session: &str,
    account: Option<&str>,
) {
    checkout_core::store::SessionStore::new(table.clone(), client.clone())
        .record(&checkout_core::store::SessionRecord {
            session_id: session.parse().expect("a session id"),
            account: account.map(|a| a.parse().expect("an account id")),
            customer: None,
            customer_email: None,
            mode: checkout_core::stripe::Mode::Payment,
            items: vec![],
            created_at: unix_now(),
            expires_at: unix_now() + 3600,
        })
        .await
        .expect("record the session");
}

pub async fn requests_table(client: &DynamoDb) -> TableName {
    let name = unique_table("requests");
    tables::ensure(client, name.as_str(), &tables::REQUESTS)
        .await
        .expect("create requests table");
    name
}

pub async fn subscriptions_table(client: &DynamoDb) -> TableName {
    let name = unique_table("subscriptions");
    tables::ensure(client, name.as_str(), &tables::SUBSCRIPTIONS)
        .await
        .expect("create subscriptions table");
    name
}

pub async fn access_table(client: &DynamoDb) -> TableName {
    let name = unique_table("access");
    tables::ensure(client, name.as_str(), &tables::ACCESS)
        .await
        .expect("create access table");
    name
}

pub async fn stock_table(client: &DynamoDb) -> TableName {
    let name = unique_table("stock");
    tables::ensure(client, name.as_str(), &tables::STOCK)
        .await
        .expect("create stock table");
    name
}

pub async fn orders_table(client: &DynamoDb) -> TableName {
    let name = unique_table("orders");
    tables::ensure(client, name.as_str(), &tables::ORDERS)
        .await
        .expect("create orders table");
    name
}

/// An SES client like the bundle's (its HTTP client, timeouts and retries) aimed at another
/// endpoint: a fault stand-in on loopback.
pub async fn ses_at(endpoint: &str, operation_timeout: Duration) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::config::Builder::from(&aws::sdk_config().await)
        .endpoint_url(endpoint)
        .timeout_config(
            aws_sdk_sesv2::config::timeout::TimeoutConfig::builder()
                .operation_timeout(operation_timeout)
                .build(),
        )
        .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

pub async fn ses() -> aws_sdk_sesv2::Client {
    dynamodb().await; // same loopback check
    aws_sdk_sesv2::Client::new(&aws::sdk_config().await)
}

pub async fn ssm() -> aws_sdk_ssm::Client {
    dynamodb().await; // same loopback check
    aws_sdk_ssm::Client::new(&aws::sdk_config().await)
}

/// A sender moto (like SES) accepts: identities must be verified first.
pub async fn verified_sender(ses: &aws_sdk_sesv2::Client) -> EmailAddress {
    let address: EmailAddress = format!("{}@shop.example", unique_table("sender"))
        .parse()
        .unwrap();
    ses.create_email_identity()
        .email_identity(address.as_str())
        .send()
        .await
        .expect("create identity");
    address
}

/// An address no other test sends to.
#[must_use]
pub fn unique_recipient(name: &str) -> EmailAddress {
    format!("{name}.{}@example.com", unique_table("to"))
        .parse()
        .unwrap()
}

/// An email moto's SES accepted.
#[derive(Debug, serde::Deserialize)]
pub struct SentEmail {
    pub source: String,
    pub destinations: serde_json::Value,
    pub raw: Option<String>,
}

/// The decoded parts of a sent email (MIME transfer encodings undone).
pub struct ParsedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub headers: Vec<(String, String)>,
}

impl SentEmail {
    #[must_use]
    pub fn parsed(&self) -> ParsedEmail {
        let raw = self.raw.as_deref().expect("a raw MIME message");
        let message = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .expect("MIME");
        ParsedEmail {
            subject: message.subject().unwrap_or_default().to_string(),
            text: message.body_text(0).unwrap_or_default().into_owned(),
            html: message.body_html(0).unwrap_or_default().into_owned(),
            headers: message
                .headers_raw()
                .map(|(name, value)| (name.to_string(), value.trim().to_string()))
                .collect(),
        }
    }
}

/// The emails sent to `recipient`, read from the moto launcher's outbox view.
pub async fn outbox(recipient: &EmailAddress) -> Vec<SentEmail> {
    use http_body_util::BodyExt;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client
        .get(format!("{endpoint}/_outbox").parse().unwrap())
        .await
        .expect("outbox");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let all: Vec<SentEmail> = serde_json::from_slice(&body).expect("outbox JSON");
    all.into_iter()
        .filter(|m| m.destinations.to_string().contains(recipient.as_str()))
        .collect()
}

/// A Stripe event as the webhook stores it.
#[must_use]
pub fn stored_event(
    id: &str,
    kind: &str,
    object: serde_json::Value,
    account: Option<&str>,
) -> EventRecord {
    let mut event: serde_json::Value = serde_json::from_str(&event_json(id, kind, object)).unwrap();
    if let Some(account) = account {
        event["account"] = account.into();
    }
    let event = Event::parse(event.to_string().as_bytes()).expect("event");
    EventRecord::new(&event, unix_now(), 86_400)
}

/// A batch of stream records as Lambda delivers them from the events table (NEW_IMAGE).
#[must_use]
pub fn stream_batch(records: &[EventRecord]) -> StreamEvent {
    let mut batch = StreamEvent::default();
    for (i, record) in records.iter().enumerate() {
        let mut out = StreamRecord::default();
        out.event_name = "INSERT".into();
        out.event_id = format!("{i}");
        out.aws_region = "us-east-1".into();
        out.change.sequence_number = Some(format!("{}", 1000 + i));
        out.change.new_image = serde_dynamo::to_item(record).expect("item");
        batch.records.push(out);
    }
    batch
}

/// An API Gateway HTTP API (payload format 2.0) event, as Lambda delivers it to a function.
/// `query` is the raw query string (one `key=value` pair at most, as the bundle's routes take).
#[must_use]
pub fn api_gateway_v2_event(
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
) -> serde_json::Value {
    let host = "abc123.execute-api.eu-west-1.amazonaws.com";
    let route = format!("{method} {path}");
    let mut event = serde_json::json!({
        "version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": query,
        "headers": {"host": host}, "isBase64Encoded": false,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": host, "domainPrefix": "abc123",
            "requestId": "req-1", "routeKey": route, "stage": "$default",
            "time": "23/Nov/2026:14:00:00 +0000", "timeEpoch": 1_795_442_400_000_i64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "test"}
        }
    });
    if let Some((key, value)) = query.split_once('=') {
        event["queryStringParameters"] = serde_json::json!({ key: value });
    }
    if let Some(body) = body {
        event["body"] = body.into();
        event["headers"]["content-type"] = "application/x-www-form-urlencoded".into();
    }
    event
}
