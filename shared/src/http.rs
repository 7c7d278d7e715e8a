//! The one place where errors become HTTP answers, as JSON `{"error":{"code","message"}}`.

use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::store::StoreError;
use crate::webhook::{SignatureError, WebhookError};

/// An error a handler answers with: its status and a stable, machine-readable code.
pub trait ApiError: std::error::Error {
    fn status(&self) -> StatusCode;
    fn code(&self) -> &'static str;
}

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    let mut response = Response::new(Body::from(bytes));
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
    let message = if status.is_server_error() {
        // Internal details (table names, AWS error text) stay in the logs.
        "temporarily unavailable, retry later".to_string()
    } else {
        err.to_string()
    };
    json(
        status,
        &Envelope {
            error: Detail {
                code: err.code(),
                message,
            },
        },
    )
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
