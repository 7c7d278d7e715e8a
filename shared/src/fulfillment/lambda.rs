//! One Lambda, two triggers: the events table's stream and the `GET /checkout/complete` route.
//! The payload says which: a stream batch has `Records`, anything else is an API Gateway
//! request. Built on public types only (aws_lambda_events, lambda_http's `LambdaRequest`).

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, LambdaEvent, Request, Response};
use serde::Deserialize;

use super::{Fulfil, FulfillmentApp};

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Trigger {
    Stream(StreamEvent),
    Http(Box<LambdaRequest>),
}

/// Handles one invocation and answers in the shape its trigger expects.
pub async fn dispatch<F: Fulfil>(
    app: &FulfillmentApp<F>,
    event: LambdaEvent<Trigger>,
) -> Result<serde_json::Value, lambda_http::Error> {
    let deadline = i64::try_from(event.context.deadline / 1000).ok();
    match event.payload {
        Trigger::Stream(batch) => Ok(serde_json::to_value(
            app.handle_stream(batch, deadline).await,
        )?),
        Trigger::Http(request) => {
            let request: Request = (*request).into();
            Ok(serde_json::to_value(api_gateway_response(
                app.handle_landing(request, deadline).await,
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
