//! One Lambda, two triggers: a DynamoDB stream and HTTP routes. fulfillment (events stream +
//! landing page) and recovery (events stream + unsubscribe) are each one function. The
//! payload says which trigger fired: a stream batch has `Records`, anything else is an API
//! Gateway request. Built on public types only (aws_lambda_events, lambda_http's
//! `LambdaRequest`); lambda_http's own adapter is internal.

use std::future::Future;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, LambdaEvent, Request, Response};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

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
    // Lambda always sets the deadline; zero (a hand-built context) means unknown.
    let deadline = i64::try_from(event.context.deadline / 1000)
        .ok()
        .filter(|d| *d > 0);
    match event.payload {
        Trigger::Stream(batch) => Ok(serde_json::to_value(app.stream(batch, deadline).await)?),
        Trigger::Http(request) => {
            let request: Request = (*request).into();
            Ok(serde_json::to_value(api_gateway_response(
                app.http(request, deadline).await,
            ))?)
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
