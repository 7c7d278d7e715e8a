//! Stripe's error JSON (`{"error":{"type","code","message","param"}}`) as a typed error.

use http::StatusCode;
use serde::Deserialize;

use crate::http::ApiError;

/// Stripe's error `type`s, plus the HTTP-level cases it does not type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Idempotency,
    Authentication,
    Permission,
    RateLimit,
    Card,
    Api,
}

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("Stripe answered {status} ({kind:?}): {message}")]
    Api {
        kind: ErrorKind,
        status: u16,
        code: Option<String>,
        /// The request parameter Stripe blames, e.g. `line_items[0][price]`.
        param: Option<String>,
        message: String,
        request_id: Option<String>,
    },
    #[error("Stripe did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("Stripe could not be reached: {0}")]
    Network(String),
    #[error("Stripe's answer could not be read: {0}")]
    Decode(String),
}

impl StripeError {
    #[must_use]
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Api { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }

    /// Stripe overloaded or out of reach: the same request may succeed later.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Network(_))
            || self.kind() == Some(ErrorKind::RateLimit)
    }
}

/// What a caller of the bundle sees when Stripe failed it: worth retrying (503) when Stripe is
/// overloaded or out of reach; otherwise a gateway error (502), since anything else Stripe
/// refused is the bundle's or its configuration's fault (a wrong key, a Stripe fault).
impl ApiError for StripeError {
    fn status(&self) -> StatusCode {
        if self.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_GATEWAY
        }
    }

    fn code(&self) -> &'static str {
        "stripe_unavailable"
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: Body,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
    param: Option<String>,
}

pub(super) fn from_response(status: u16, body: &[u8], request_id: Option<String>) -> StripeError {
    let parsed = serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.error);
    let kind = match parsed.as_ref().and_then(|b| b.kind.as_deref()) {
        Some("card_error") => ErrorKind::Card,
        Some("idempotency_error") => ErrorKind::Idempotency,
        Some("invalid_request_error") if status == 401 => ErrorKind::Authentication,
        Some("invalid_request_error") if status == 403 => ErrorKind::Permission,
        Some("invalid_request_error") => ErrorKind::InvalidRequest,
        _ => match status {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            429 => ErrorKind::RateLimit,
            400..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::Api,
        },
    };
    let kind = if status == 429 {
        ErrorKind::RateLimit
    } else {
        kind
    };
    let (code, message, param) = match parsed {
        Some(b) => (b.code, b.message, b.param),
        None => (None, None, None),
    };
    StripeError::Api {
        kind,
        status,
        code,
        param,
        message: message.unwrap_or_else(|| format!("HTTP {status} without a Stripe error body")),
        request_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_stripe_error_types() {
        let cases = [
            (
                400,
                r#"{"error":{"type":"invalid_request_error","message":"No such price: 'price_x'","param":"line_items[0][price]","code":"resource_missing"}}"#,
                ErrorKind::InvalidRequest,
            ),
            (
                400,
                r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}"#,
                ErrorKind::Idempotency,
            ),
            (
                401,
                r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}"#,
                ErrorKind::Authentication,
            ),
            (
                402,
                r#"{"error":{"type":"card_error","code":"card_declined","message":"Your card was declined."}}"#,
                ErrorKind::Card,
            ),
            (
                429,
                r#"{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests"}}"#,
                ErrorKind::RateLimit,
            ),
            (
                500,
                r#"{"error":{"type":"api_error","message":"Something went wrong"}}"#,
                ErrorKind::Api,
            ),
            (502, "<html>bad gateway</html>", ErrorKind::Api),
        ];
        for (status, body, expected) in cases {
            let err = from_response(status, body.as_bytes(), Some("req_1".into()));
            assert_eq!(err.kind(), Some(expected), "{body}");
        }
        let err = from_response(400, cases_param().as_bytes(), None);
        let StripeError::Api { param, code, .. } = err else {
            panic!()
        };
        assert_eq!(param.as_deref(), Some("line_items[0][price]"));
        assert_eq!(code.as_deref(), Some("resource_missing"));
    }

    fn cases_param() -> String {
        r#"{"error":{"type":"invalid_request_error","message":"No such price","param":"line_items[0][price]","code":"resource_missing"}}"#.into()
    }
}
