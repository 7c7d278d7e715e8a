//! The transport under every call: one request, retried with exponential backoff and full
//! jitter on network errors, 409, 429 and 5xx (honouring `Stripe-Should-Retry` and
//! `Retry-After`), never on other 4xx, with the same `Idempotency-Key` on every attempt.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::de::DeserializeOwned;

use super::{
    API_VERSION, Form, MAX_RESPONSE_BYTES, RequestOptions, StripeClient, StripeError, error,
};

impl StripeClient {
    pub(super) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &Form,
        options: RequestOptions<'_>,
    ) -> Result<T, StripeError> {
        let mut attempt = 0;
        loop {
            let outcome = self.attempt(&method, path, params, options).await;
            let retry = match &outcome {
                Ok(_) => false,
                Err(Attempt::Answered { should_retry, .. }) => *should_retry,
                Err(Attempt::Failed(_)) => true,
            };
            if !retry || attempt >= self.config.max_retries {
                return match outcome {
                    Ok(body) => serde_json::from_slice(&body)
                        .map_err(|e| StripeError::Decode(e.to_string())),
                    Err(Attempt::Answered { error, .. } | Attempt::Failed(error)) => Err(error),
                };
            }
            let delay = self.backoff(attempt, &outcome);
            tracing::warn!(
                path,
                attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "retrying Stripe request"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Full jitter over an exponential ceiling; a `Retry-After` from Stripe raises the floor.
    fn backoff(&self, attempt: u32, outcome: &Result<Bytes, Attempt>) -> Duration {
        let ceiling = self
            .config
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.config.max_backoff);
        let jittered = ceiling.mul_f64(0.5 + fastrand::f64() / 2.0);
        match outcome {
            Err(Attempt::Answered {
                retry_after: Some(after),
                ..
            }) => jittered.max((*after).min(self.config.max_backoff)),
            _ => jittered,
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        params: &Form,
        options: RequestOptions<'_>,
    ) -> Result<Bytes, Attempt> {
        let encoded = params.encode();
        let (uri, body) = if method == Method::GET {
            let sep = if encoded.is_empty() { "" } else { "?" };
            (
                format!("{}{path}{sep}{encoded}", self.config.api_base),
                String::new(),
            )
        } else {
            (format!("{}{path}", self.config.api_base), encoded)
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.config.secret_key.expose()),
            )
            .header("Stripe-Version", API_VERSION)
            .header(
                header::USER_AGENT,
                concat!("stripe-checkout-lambda/", env!("CARGO_PKG_VERSION")),
            );
        if method == Method::POST {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        if let Some(account) = options.account {
            request = request.header("Stripe-Account", account.as_str());
        }
        if let Some(key) = options.idempotency_key {
            request = request.header("Idempotency-Key", key.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Attempt::Failed(StripeError::Network(e.to_string())))?;

        let timeout = self.config.timeout;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| StripeError::Network(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| StripeError::Network(e.to_string()))?
                .to_bytes();
            Ok::<_, StripeError>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return Err(Attempt::Failed(StripeError::Timeout(timeout))),
            Ok(Err(error)) => return Err(Attempt::Failed(error)),
            Ok(Ok(answer)) => answer,
        };
        if parts.status.is_success() {
            return Ok(body);
        }
        let header_str = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let should_retry = match header_str("stripe-should-retry").as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => {
                matches!(
                    parts.status,
                    StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS
                ) || parts.status.is_server_error()
            }
        };
        let retry_after = header_str("retry-after")
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs);
        let error = error::from_response(parts.status.as_u16(), &body, header_str("request-id"));
        Err(Attempt::Answered {
            error,
            should_retry,
            retry_after,
        })
    }
}

/// How one attempt ended, when it did not succeed.
enum Attempt {
    Answered {
        error: StripeError,
        should_retry: bool,
        retry_after: Option<Duration>,
    },
    Failed(StripeError),
}
