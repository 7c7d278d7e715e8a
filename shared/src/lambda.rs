//! One Lambda, two triggers: a DynamoDB stream and HTTP routes. fulfillment (events stream +
//! landing page) and recovery (events stream + unsubscribe) are each one function. The
//! payload says which trigger fired: a stream batch has `Records`, anything else is an API
//! Gateway request. create-session, with HTTP routes only, goes through [`dispatch_http`] for
//! the same payload check. Built on public types only (aws_lambda_events, lambda_http's
//! `LambdaRequest`); lambda_http's own adapter is internal.

use std::future::Future;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::event::dynamodb::EventRecord as StreamRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, LambdaEvent, Request, Response};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use base64::Engine as _;

use crate::http::ApiError;
use crate::store::EventRecord;
use crate::stripe::EventType;

/// A DynamoDB stream batch, for functions with no other trigger (subscriptions).
pub use aws_lambda_events::event::dynamodb::Event as StreamEvent;

/// The invocation's deadline in unix seconds; `None` for a hand-built context (zero).
#[must_use]
pub fn deadline(context: &lambda_http::lambda_runtime::Context) -> Option<i64> {
    i64::try_from(context.deadline / 1000)
        .ok()
        .filter(|d| *d > 0)
}

pub enum Trigger {
    Stream(StreamEvent),
    Http(Box<LambdaRequest>),
}

/// By hand rather than `#[serde(untagged)]`: an untagged enum buffers the payload in serde's
/// private `Content`, and lambda_http's request types do not deserialize from it, so every
/// API Gateway payload failed. Reading a `Value` first also names the real error.
impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("Records").is_some() {
            serde_json::from_value(value)
                .map(Trigger::Stream)
                .map_err(|e| D::Error::custom(format!("DynamoDB stream batch: {e}")))
        } else {
            serde_json::from_value(value)
                .map(|request| Trigger::Http(Box::new(request)))
                .map_err(|e| D::Error::custom(format!("API Gateway request: {e}")))
        }
    }
}

/// A function with a stream trigger and HTTP routes.
pub trait StreamAndHttp: Sync {
    /// `deadline`: the invocation's deadline in unix seconds.
    fn stream(
        &self,
        batch: StreamEvent,
        deadline: Option<i64>,
    ) -> impl Future<Output = DynamoDbEventResponse> + Send;
    fn http(
        &self,
        request: Request,
        deadline: Option<i64>,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// The stored event in a stream record, when it is one a consumer of `kinds` acts on: an
/// INSERT (TTL deletions and outcome updates carry nothing new) of an item this bundle wrote.
#[must_use]
pub fn inserted_event(record: StreamRecord, kinds: &[EventType]) -> Option<EventRecord> {
    if record.event_name != "INSERT" {
        return None;
    }
    match serde_dynamo::from_item::<_, EventRecord>(record.change.new_image) {
        Ok(event) => kinds.contains(&event.kind).then_some(event),
        Err(err) => {
            // Not an event this bundle wrote: retrying cannot help.
            tracing::error!(error = %err, "stream record is not a stored event; skipped");
            None
        }
    }
}

/// The webhook function: HTTP from API Gateway and, when the template's optional rule is on,
/// Stripe events from an EventBridge partner bus.
pub trait HttpAndEventBridge: Sync {
    fn http(&self, request: Request) -> impl Future<Output = Response<Body>> + Send;
    /// `Err` fails the invocation, so EventBridge retries it.
    fn event_bridge(
        &self,
        envelope: serde_json::Value,
    ) -> impl Future<Output = Result<serde_json::Value, lambda_http::Error>> + Send;
}

/// Handles one webhook invocation: an EventBridge event has `detail-type` and `source`;
/// anything else is an API Gateway request.
///
/// # Errors
/// The EventBridge event was not stored, or an answer cannot be serialized.
pub async fn dispatch_webhook<A: HttpAndEventBridge>(
    app: &A,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_http::Error> {
    let payload = event.payload;
    if payload.get("detail-type").is_some() && payload.get("source").is_some() {
        return app.event_bridge(payload).await;
    }
    let request: LambdaRequest =
        serde_json::from_value(payload).map_err(|e| format!("API Gateway request: {e}"))?;
    answer_http(request, |request| app.http(request)).await
}

/// Handles one invocation of a function with HTTP routes only (create-session). Rather than
/// `lambda_http::run`, whose conversion panics on the payloads [`check_request`] refuses: the
/// runtime would report the panic as a failed invocation, which API Gateway answers `500`.
///
/// # Errors
/// The payload is not an API Gateway request, or the answer cannot be serialized.
pub async fn dispatch_http<F, Fut>(
    handle: F,
    event: LambdaEvent<LambdaRequest>,
) -> Result<serde_json::Value, lambda_http::Error>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    answer_http(event.payload, handle).await
}

/// `handle`'s answer to `request` in API Gateway's shape, or `400 malformed_request` without
/// calling it.
async fn answer_http<F, Fut>(
    request: LambdaRequest,
    handle: F,
) -> Result<serde_json::Value, lambda_http::Error>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let response = match into_request(request) {
        Ok(request) => handle(request).await,
        Err(malformed) => crate::http::error(&malformed),
    };
    Ok(serde_json::to_value(api_gateway_response(response))?)
}

/// An API Gateway payload lambda_http cannot turn into a request: its conversion unwraps the
/// URL it builds from the Host header, the stage and `rawPath`, the `http::Uri` it adds the
/// raw query string to, and the base64 decoding of the body, so any of these would panic
/// the function (and, in debug builds, a non-ASCII host trips the ASCII-only IDNA backend's
/// assertion). API Gateway never sends such a payload; anything else that does is answered
/// `400 malformed_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a request API Gateway sends: {0}")]
pub struct MalformedRequest(pub &'static str);

impl ApiError for MalformedRequest {
    fn status(&self) -> http::StatusCode {
        http::StatusCode::BAD_REQUEST
    }
    fn code(&self) -> &'static str {
        "malformed_request"
    }
}

/// Checks, with fallible calls, each step lambda_http 1.3's `into_api_gateway_v2_request`
/// takes with an infallible one (the same host, scheme, stage and path rules), so that
/// `LambdaRequest -> Request` cannot panic on what passes.
///
/// # Errors
/// The step that would have panicked.
pub fn check_request(request: &LambdaRequest) -> Result<(), MalformedRequest> {
    let LambdaRequest::ApiGatewayV2(ag) = request else {
        return Ok(());
    };
    if ag.is_base64_encoded
        && let Some(body) = &ag.body
        && base64::engine::general_purpose::STANDARD
            .decode(body)
            .is_err()
    {
        return Err(MalformedRequest(
            "isBase64Encoded, but the body is not base64",
        ));
    }
    let raw_path = ag.raw_path.as_deref().unwrap_or_default();
    // Joined to the host, a path that does not start with `/` would be read as part of it.
    if !raw_path.is_empty() && !raw_path.starts_with('/') {
        return Err(MalformedRequest("rawPath does not start with /"));
    }
    let path = match ag.request_context.stage.as_deref() {
        _ if std::env::var_os("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_some() => {
            raw_path.to_string()
        }
        None | Some("$default") => raw_path.to_string(),
        Some(stage) if raw_path.starts_with(&format!("/{stage}/")) => raw_path.to_string(),
        Some(stage) => format!("/{stage}{raw_path}"),
    };
    let host = ag
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or(ag.request_context.domain_name.as_deref());
    let uri = match host {
        None => url::Url::parse(&format!("http://localhost{path}"))
            .map_err(|_| MalformedRequest("rawPath is not a URL path"))?
            .path()
            .to_string(),
        Some(host) => {
            // Percent-decoded, a `%` could make the host non-ASCII, which the IDNA backend
            // (ASCII only) is not built for.
            if !host.is_ascii() || host.contains('%') {
                return Err(MalformedRequest("the host is not an ASCII host name"));
            }
            let scheme = ag
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("https");
            let mut chars = scheme.chars();
            let is_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if !is_scheme {
                return Err(MalformedRequest("X-Forwarded-Proto is not a URL scheme"));
            }
            url::Url::parse(&format!("{scheme}://{host}{path}"))
                .map_err(|_| MalformedRequest("the host and path are not a URL"))?
                .to_string()
        }
    };
    let mut uri = uri;
    if let Some(query) = ag.raw_query_string.as_deref()
        && !query.is_empty()
    {
        uri.push('?');
        uri.push_str(query);
    }
    http::Uri::try_from(uri)
        .map(drop)
        .map_err(|_| MalformedRequest("the path and rawQueryString are not a URI"))
}

/// The request lambda_http makes of `request`, or why it cannot make one.
fn into_request(request: LambdaRequest) -> Result<Request, MalformedRequest> {
    check_request(&request).map(|()| request.into())
}

/// Reports one stream record as failed (`ReportBatchItemFailures`): Lambda retries from it.
pub fn retry_later(response: &mut DynamoDbEventResponse, sequence: Option<String>) {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = sequence;
    response.batch_item_failures.push(failure);
}

/// Handles one invocation and answers in the shape its trigger expects.
///
/// # Errors
/// Only when the answer cannot be serialized, which the runtime reports as a failed
/// invocation.
pub async fn dispatch<A: StreamAndHttp>(
    app: &A,
    event: LambdaEvent<Trigger>,
) -> Result<serde_json::Value, lambda_http::Error> {
    let deadline = deadline(&event.context);
    match event.payload {
        Trigger::Stream(batch) => Ok(serde_json::to_value(app.stream(batch, deadline).await)?),
        Trigger::Http(request) => {
            answer_http(*request, |request| app.http(request, deadline)).await
        }
    }
}

fn api_gateway_response(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.is_base64_encoded = matches!(body, Body::Binary(_));
    out.headers = parts.headers;
    out.body = match body {
        Body::Empty => None,
        other => Some(other),
    };
    out
}
