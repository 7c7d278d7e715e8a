//! CORS for merchant sites: exact-match allowed origins. A browser request from any other
//! origin is refused outright (403), which also stops cross-site form posts.

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Response};

#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
}

/// What to do with a request, given its `Origin`.
pub enum Verdict {
    /// No `Origin`: not a browser's cross-origin request (server to server, curl).
    NoOrigin,
    Allowed(HeaderValue),
    Refused,
}

impl Cors {
    #[must_use]
    pub fn new(origins: Vec<String>) -> Self {
        Self {
            origins: origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_string())
                .collect(),
        }
    }

    pub fn check(&self, headers: &HeaderMap) -> Verdict {
        match headers.get(header::ORIGIN) {
            None => Verdict::NoOrigin,
            Some(origin)
                if self
                    .origins
                    .iter()
                    .any(|o| o.as_bytes() == origin.as_bytes()) =>
            {
                Verdict::Allowed(origin.clone())
            }
            Some(_) => Verdict::Refused,
        }
    }

    /// Adds the headers that let the allowed origin read the answer.
    pub fn decorate(&self, verdict: &Verdict, response: &mut Response<Body>) {
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        if let Verdict::Allowed(origin) = verdict {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("Location"),
            );
        }
    }

    /// The answer to a preflight `OPTIONS`.
    pub fn preflight(&self, headers: &HeaderMap) -> Response<Body> {
        let verdict = self.check(headers);
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = match verdict {
            Verdict::Allowed(_) => StatusCode::NO_CONTENT,
            _ => StatusCode::FORBIDDEN,
        };
        if matches!(verdict, Verdict::Allowed(_)) {
            let h = response.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(Method::POST.as_str()),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, idempotency-key"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        self.decorate(&verdict, &mut response);
        response
    }
}
