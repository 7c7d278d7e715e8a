//! `POST /checkout/sessions` and `POST /payments` (and their CORS preflights): the handler the
//! create-session Lambda and the local stack both run. Each request is first told apart as a
//! server or a browser call (`callers`), and a caller's `Idempotency-Key` is honoured across
//! real retries (`replay`).

use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};

use super::cors::Verdict;
use super::replay::{Prior, Replay};
use super::{
    CheckoutError, CreateSessionRequest, CreatedPayment, CreatedSession, InvalidField,
    PaymentRequest, RequestUiMode, SessionCreator,
};
use crate::http::{self as api, ApiError, PayloadTooLarge};
use crate::stripe::{IdempotencyKey, StripeError};

/// A cart of 100 items with metadata is a few KB; anything far larger is not a cart.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const KEY_NAMESPACE: &str = "create-session";
const PAYMENTS_NAMESPACE: &str = "payments";

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
        _ => {
            let path = request.uri().path();
            let result = if path == PAYMENTS_PATH {
                pay(creator, &request).await
            } else if let Some(id) = super::expire::expire_target(path) {
                super::expire::expire(creator, &request, id).await
            } else {
                create(creator, &request).await
            };
            result.unwrap_or_else(|err| api::error(&err))
        }
    };
    cors.decorate(&verdict, &mut response);
    response
}

/// `POST /payments` (the create-session function serves both routes).
pub const PAYMENTS_PATH: &str = "/payments";

fn content_type(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
}

/// A body that is a JSON object or array, whatever its declared type.
fn looks_like_json(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// The caller's `Idempotency-Key`, checked.
fn caller_key(request: &Request) -> Result<Option<String>, CheckoutError> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| InvalidField::new("Idempotency-Key", "not ASCII"))?;
    // The same check Stripe's key gets, so a key accepted here is accepted there.
    IdempotencyKey::from_caller("check", key)
        .map_err(|message| InvalidField::new("Idempotency-Key", message))?;
    Ok(Some(key.to_string()))
}

/// The Stripe key for this request and, when the caller gave a key, its replay record.
fn keys<'a>(
    creator: &'a SessionCreator,
    request: &Request,
    namespace: &str,
    account: Option<&crate::ids::AccountId>,
) -> Result<(IdempotencyKey, Option<Replay<'a>>), CheckoutError> {
    Ok(match caller_key(request)? {
        None => (IdempotencyKey::generate(namespace), None),
        Some(key) => (
            IdempotencyKey::from_caller(namespace, &key)
                .map_err(|message| InvalidField::new("Idempotency-Key", message))?,
            Some(Replay::new(
                &creator.requests,
                namespace,
                account,
                &key,
                request.body().as_ref(),
            )),
        ),
    })
}

/// When the request repeats one already answered, that answer; else the time to create as of.
async fn first_time<T: serde::de::DeserializeOwned>(
    replay: Option<&Replay<'_>>,
    now: i64,
) -> Result<Result<i64, T>, CheckoutError> {
    let Some(replay) = replay else {
        return Ok(Ok(now));
    };
    match replay.begin(now).await? {
        Prior::Create { first_at } => Ok(Ok(first_at)),
        Prior::Answered(answer) => serde_json::from_str(&answer)
            .map(Err)
            .map_err(|e| CheckoutError::Stripe(StripeError::Decode(e.to_string()))),
    }
}

/// A request refused with a 4xx after its `Idempotency-Key` was recorded (a token's
/// `client_reference_id` contradicted, an account not in `CONNECT_ACCOUNTS`, a price Stripe
/// refuses) created nothing: its record is released, so the caller's corrected retry with
/// the same key is answered, not refused as `idempotency_conflict`.
async fn released_when_refused<T>(
    replay: Option<&Replay<'_>>,
    result: Result<T, CheckoutError>,
) -> Result<T, CheckoutError> {
    if let (Err(err), Some(replay)) = (&result, replay)
        && err.status().is_client_error()
    {
        replay.release().await;
    }
    result
}

async fn create(
    creator: &SessionCreator,
    request: &Request,
) -> Result<Response<Body>, CheckoutError> {
    let caller = creator.callers().identify(request.headers())?;
    let body: &[u8] = request.body().as_ref();
    PayloadTooLarge::check(body, MAX_BODY_BYTES)?;
    let limits = &creator.config().limits;
    let (parsed, is_form) = match content_type(request).as_deref() {
        Some("application/json") => (CreateSessionRequest::from_json(body, limits)?, false),
        _ if looks_like_json(body) => return Err(CheckoutError::JsonWithoutJsonType),
        Some("application/x-www-form-urlencoded") => {
            (CreateSessionRequest::from_form(body, limits)?, true)
        }
        _ => return Err(CheckoutError::UnsupportedMediaType),
    };
    if is_form && parsed.ui_mode != RequestUiMode::Hosted {
        return Err(InvalidField::new(
            "ui_mode",
            "a form post redirects, so it can only use hosted Checkout",
        )
        .into());
    }
    let now = creator.clock().now();
    let customer = creator.callers().customer(
        caller,
        parsed.customer.as_ref(),
        parsed.customer_token.as_deref(),
        now,
    )?;
    let (key, replay) = keys(creator, request, KEY_NAMESPACE, parsed.account.as_ref())?;
    let created = match first_time::<CreatedSession>(replay.as_ref(), now).await? {
        Err(answered) => answered,
        Ok(first_at) => {
            let created = released_when_refused(
                replay.as_ref(),
                creator.create(parsed, customer, key, first_at).await,
            )
            .await?;
            if let Some(replay) = &replay {
                replay
                    .finish(&serde_json::to_string(&created).expect("serializes"))
                    .await?;
            }
            created
        }
    };
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

async fn pay(creator: &SessionCreator, request: &Request) -> Result<Response<Body>, CheckoutError> {
    let caller = creator.callers().identify(request.headers())?;
    let body: &[u8] = request.body().as_ref();
    PayloadTooLarge::check(body, MAX_BODY_BYTES)?;
    if content_type(request).as_deref() != Some("application/json") {
        return Err(if looks_like_json(body) {
            CheckoutError::JsonWithoutJsonType
        } else {
            CheckoutError::UnsupportedMediaType
        });
    }
    let parsed = PaymentRequest::from_json(body, &creator.config().limits)?;
    let now = creator.clock().now();
    let customer = creator.callers().customer(
        caller,
        parsed.customer.as_ref(),
        parsed.customer_token.as_deref(),
        now,
    )?;
    let (key, replay) = keys(
        creator,
        request,
        PAYMENTS_NAMESPACE,
        parsed.account.as_ref(),
    )?;
    let created = match first_time::<CreatedPayment>(replay.as_ref(), now).await? {
        Err(answered) => answered,
        Ok(first_at) => {
            let created = released_when_refused(
                replay.as_ref(),
                creator
                    .create_payment(&parsed, customer.as_ref(), &key, first_at)
                    .await,
            )
            .await?;
            if let Some(replay) = &replay {
                replay
                    .finish(&serde_json::to_string(&created).expect("serializes"))
                    .await?;
            }
            created
        }
    };
    Ok(api::json(StatusCode::CREATED, &created))
}
