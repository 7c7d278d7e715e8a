//! How errors become HTTP answers, as JSON `{"error":{"code","param","message"}}`.
//!
//! This module knows no domain: each module's error type implements [`ApiError`] beside its
//! definition (its status and stable code), and handlers answer with [`error`].

use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Response};
use serde::Serialize;

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

/// A body over a handler's size limit, refused before it is parsed. The message gives the
/// limit as the README does (64 KB, 1 MiB) and in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body is over the {} limit ({limit} bytes)", human_size(*limit))]
pub struct PayloadTooLarge {
    pub limit: usize,
}

fn human_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1024 * 1024 && b % (1024 * 1024) == 0 => format!("{} MiB", b / (1024 * 1024)),
        b if b >= 1024 && b % 1024 == 0 => format!("{} KB", b / 1024),
        b => format!("{b}-byte"),
    }
}

impl PayloadTooLarge {
    /// # Errors
    /// When `body` is longer than `limit`.
    pub fn check(body: &[u8], limit: usize) -> Result<(), Self> {
        if body.len() > limit {
            Err(Self { limit })
        } else {
            Ok(())
        }
    }
}

impl ApiError for PayloadTooLarge {
    fn status(&self) -> StatusCode {
        StatusCode::PAYLOAD_TOO_LARGE
    }
    fn code(&self) -> &'static str {
        "payload_too_large"
    }
}

/// The answer for a body over `limit`, for servers that stop reading before the handler runs.
#[must_use]
pub fn payload_too_large(limit: usize) -> Response<Body> {
    error(&PayloadTooLarge { limit })
}

/// The answer for a request whose body could not be read (bad chunked encoding, a dropped
/// connection): the client's error, not a size.
#[must_use]
pub fn unreadable_body() -> Response<Body> {
    #[derive(Debug, thiserror::Error)]
    #[error("the request body could not be read")]
    struct Unreadable;
    impl ApiError for Unreadable {
        fn status(&self) -> StatusCode {
            StatusCode::BAD_REQUEST
        }
        fn code(&self) -> &'static str {
            "unreadable_body"
        }
    }
    error(&Unreadable)
}

/// The answer for a path the bundle does not serve.
#[must_use]
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

/// The answer for a route whose configuration is missing (local stack without Stripe keys).
#[must_use]
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
