//! `POST /checkout/sessions` (and its CORS preflight): the handler the Lambda and the local
//! stack both run.

use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};

use super::cors::Verdict;
use super::{CheckoutError, CreateSessionRequest, InvalidField, RequestUiMode, SessionCreator};
use crate::http::{self as api, PayloadTooLarge};
use crate::stripe::{IdempotencyKey, StripeError};

/// A cart of 100 items with metadata is a few KB; anything far larger is not a cart.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const KEY_NAMESPACE: &str = "create-session";

pub async fn handle(creator: &SessionCreator, request: Request) -> Response<Body> {
    let cors = &creator.config().cors;
    if request.method() == Method::OPTIONS {
        return cors.preflight(request.headers());
    }
    if request.method() != Method::POST {
        return api::method_not_allowed("POST, OPTIONS");
    }
    let verdict = cors.check(request.headers());
    let mut response = match verdict {
        Verdict::Refused => api::error(&CheckoutError::OriginNotAllowed),
        _ => create(creator, &request)
            .await
            .unwrap_or_else(|err| api::error(&err)),
    };
    cors.decorate(&verdict, &mut response);
    response
}

async fn create(
    creator: &SessionCreator,
    request: &Request,
) -> Result<Response<Body>, CheckoutError> {
    let body: &[u8] = request.body().as_ref();
    PayloadTooLarge::check(body, MAX_BODY_BYTES)?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let limits = &creator.config().limits;
    let (parsed, is_form) = match content_type.as_deref() {
        Some("application/json") => (CreateSessionRequest::from_json(body, limits)?, false),
        Some("application/x-www-form-urlencoded") => {
            (CreateSessionRequest::from_form(body, limits)?, true)
        }
        _ => return Err(CheckoutError::UnsupportedMediaType),
    };
    if is_form && parsed.ui_mode == RequestUiMode::Embedded {
        return Err(InvalidField::new(
            "ui_mode",
            "a form post redirects, so it can only use hosted Checkout",
        )
        .into());
    }
    let key = match request.headers().get("idempotency-key") {
        None => IdempotencyKey::generate(KEY_NAMESPACE),
        Some(value) => value
            .to_str()
            .map_err(|_| "not ASCII".to_string())
            .and_then(|v| IdempotencyKey::from_caller(KEY_NAMESPACE, v))
            .map_err(|message| InvalidField::new("Idempotency-Key", message))?,
    };

    let created = creator.create(parsed, key, creator.clock().now()).await?;
    if is_form {
        let url = created.url.as_deref().unwrap_or_default();
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::SEE_OTHER;
        let location = HeaderValue::from_str(url)
            .map_err(|e| CheckoutError::Stripe(StripeError::Decode(e.to_string())))?;
        response.headers_mut().insert(header::LOCATION, location);
        return Ok(response);
    }
    Ok(api::json(StatusCode::CREATED, &created))
}
