//! The storm's own HTTP calls (shoppers, webhook deliveries, moto's outbox): one pooled
//! hyper client, every call bounded by a timeout, the answer read whole.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

/// Longer than any answer of the stack's (its Stripe and DynamoDB budgets are seconds).
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer, or why there was none (connection refused while the stack is down, timeout).
pub type Answer = Result<(StatusCode, Bytes), String>;

impl Http {
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(5))
                .build_http(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body.into()))
            .map_err(|e| e.to_string())?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| format!("no answer in {TIMEOUT:?}"))?
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.send(Method::GET, url, &[], Bytes::new()).await
    }

    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            Method::POST,
            url,
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await
    }
}

/// Waits until `url` answers at all (any status), or `within` passes.
///
/// # Errors
/// It never answered.
pub async fn wait_until_up(http: &Http, url: &str, within: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match http.get(url).await {
            Ok(_) => return Ok(()),
            Err(err) if start.elapsed() > within => {
                return Err(format!("{url} not up after {within:?}: {err}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
