//! The one place where errors become HTTP answers, as JSON `{"error":{"code","message"}}`.

use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::checkout::CheckoutError;
use crate::fulfillment::{FulfillmentError, LandingError};
use crate::recovery::RecoveryError;
use crate::store::StoreError;
use crate::stripe::{ErrorKind, StripeError};
use crate::webhook::{SignatureError, WebhookError};

/// An error a handler answers with: its status and a stable, machine-readable code.
pub trait ApiError: std::error::Error {
    fn status(&self) -> StatusCode;
    fn code(&self) -> &'static str;
    /// The request field at fault, when there is one.
    fn param(&self) -> Option<&str> {
        None
    }
}

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    // Text, not bytes: API Gateway then passes it through rather than base64-encoding it.
    let text = serde_json::to_string(body).expect("response bodies serialize");
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn error(err: &dyn ApiError) -> Response<Body> {
    #[derive(Serialize)]
    struct Detail<'a> {
        code: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        param: Option<&'a str>,
        message: String,
    }
    #[derive(Serialize)]
    struct Envelope<'a> {
        error: Detail<'a>,
    }
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(code = err.code(), error = %err, "request failed");
    } else {
        tracing::warn!(code = err.code(), error = %err, "request refused");
    }
    // Internal details (table names, AWS or Stripe error text) stay in the logs.
    let message = match status {
        StatusCode::BAD_GATEWAY => {
            "the payment provider failed or refused the request; retry later".to_string()
        }
        s if s.is_server_error() => "temporarily unavailable, retry later".to_string(),
        _ => err.to_string(),
    };
    let error = Detail {
        code: err.code(),
        param: err.param(),
        message,
    };
    json(status, &Envelope { error })
}

/// The answer for a route that exists but not for this method.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    #[derive(Debug, thiserror::Error)]
    #[error("method not allowed; use {0}")]
    struct MethodNotAllowed(&'static str);
    impl ApiError for MethodNotAllowed {
        fn status(&self) -> StatusCode {
            StatusCode::METHOD_NOT_ALLOWED
        }
        fn code(&self) -> &'static str {
            "method_not_allowed"
        }
    }
    let mut response = error(&MethodNotAllowed(allow));
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

impl ApiError for WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Signature(_) | Self::Event(_) => StatusCode::BAD_REQUEST,
            Self::Store(StoreError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(StoreError::Encoding(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "payload_too_large",
            Self::Signature(SignatureError::MissingHeader) => "signature_missing",
            Self::Signature(SignatureError::OutsideTolerance { .. }) => {
                "signature_timestamp_out_of_tolerance"
            }
            Self::Signature(SignatureError::Mismatch) => "signature_mismatch",
            Self::Signature(SignatureError::MalformedHeader(_) | SignatureError::NoV1Signature) => {
                "signature_malformed"
            }
            Self::Event(_) => "invalid_event",
            Self::Store(_) => "storage_unavailable",
        }
    }
}

/// The answer for a body over `limit`, for servers that stop reading before the handler runs.
pub fn payload_too_large(limit: usize) -> Response<Body> {
    error(&crate::webhook::WebhookError::TooLarge { limit })
}

/// The answer for a path the bundle does not serve.
pub fn not_found() -> Response<Body> {
    #[derive(Debug, thiserror::Error)]
    #[error("no such route")]
    struct NotFound;
    impl ApiError for NotFound {
        fn status(&self) -> StatusCode {
            StatusCode::NOT_FOUND
        }
        fn code(&self) -> &'static str {
            "not_found"
        }
    }
    error(&NotFound)
}

impl ApiError for CheckoutError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::IdempotencyConflict => StatusCode::CONFLICT,
            // Stripe overloaded or out of reach: worth retrying. Anything else Stripe refused
            // is a gateway error (a misconfigured key, a Stripe fault).
            Self::Stripe(StripeError::Timeout(_) | StripeError::Network(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Stripe(err) if err.kind() == Some(ErrorKind::RateLimit) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Stripe(_) => StatusCode::BAD_GATEWAY,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooLarge { .. } => "payload_too_large",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::Stripe(_) => "stripe_unavailable",
            Self::Store(_) => "storage_unavailable",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::Invalid(invalid) => Some(&invalid.field),
            _ => None,
        }
    }
}

/// The answer for a route whose configuration is missing (local stack without Stripe keys).
pub fn not_configured(variable: &'static str) -> Response<Body> {
    #[derive(Debug, thiserror::Error)]
    #[error("not configured: set {0}")]
    struct NotConfigured(&'static str);
    impl ApiError for NotConfigured {
        fn status(&self) -> StatusCode {
            StatusCode::SERVICE_UNAVAILABLE
        }
        fn code(&self) -> &'static str {
            "not_configured"
        }
    }
    error(&NotConfigured(variable))
}

impl ApiError for LandingError {
    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidSessionId(_) => StatusCode::BAD_REQUEST,
            Self::UnknownSession => StatusCode::NOT_FOUND,
            Self::Fulfillment(FulfillmentError::Stripe(
                StripeError::Timeout(_) | StripeError::Network(_),
            )) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Fulfillment(FulfillmentError::Stripe(err))
                if err.kind() == Some(ErrorKind::RateLimit) =>
            {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Fulfillment(FulfillmentError::Stripe(_)) => StatusCode::BAD_GATEWAY,
            Self::Fulfillment(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidSessionId(_) => "invalid_request",
            Self::UnknownSession => "not_found",
            Self::Fulfillment(FulfillmentError::Stripe(_)) => "stripe_unavailable",
            Self::Fulfillment(_) => "fulfillment_unavailable",
        }
    }

    fn param(&self) -> Option<&str> {
        matches!(self, Self::InvalidSessionId(_)).then_some("session_id")
    }
}

impl ApiError for RecoveryError {
    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidToken(_) => StatusCode::BAD_REQUEST,
            Self::Stripe(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidToken(_) => "invalid_token",
            Self::Stripe(_) => "stripe_unavailable",
            _ => "recovery_unavailable",
        }
    }

    fn param(&self) -> Option<&str> {
        matches!(self, Self::InvalidToken(_)).then_some("token")
    }
}
