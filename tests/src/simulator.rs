//! The Stripe simulator in a test: started on a loopback port with the demo catalog, its
//! webhooks received by a fake endpoint and verified with the bundle's own verifier.

use std::sync::Arc;
use std::time::Duration;

use checkout_core::{
    config::Secret,
    ids::SessionId,
    stripe::{Form, StripeClient, StripeConfig},
    webhook::{DEFAULT_TOLERANCE_SECS, Verifier, WebhookSecrets},
};
use serde_json::Value;
use stripe_simulator::{Simulator, SimulatorConfig, demo_catalog, demo_shipping_rates};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::unix_now;

pub const KEY: &str = "sk_test_simulator_contract";
pub const WHSEC: &str = "whsec_simulator_contract";

pub struct Harness {
    pub url: String,
    pub endpoint: MockServer,
    pub _simulator: Arc<Simulator>,
}

impl Harness {
    pub async fn start() -> Self {
        let endpoint = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/webhooks/stripe"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&endpoint)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let simulator = Simulator::new(SimulatorConfig {
            api_key: Secret::new(KEY),
            public_url: url.clone(),
            webhook_url: format!("{}/webhooks/stripe", endpoint.uri()),
            webhook_secret: Secret::new(WHSEC),
            catalog: demo_catalog(),
            shipping_rates: demo_shipping_rates(),
        });
        tokio::spawn(simulator.clone().serve(listener));
        Self {
            url,
            endpoint,
            _simulator: simulator,
        }
    }

    #[must_use]
    pub fn client(&self, key: &str) -> StripeClient {
        StripeClient::new(StripeConfig {
            secret_key: Secret::new(key),
            api_base: self.url.clone(),
            timeout: Duration::from_secs(2),
            max_retries: 0,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(10),
        })
    }

    /// What create-session sends for a hosted session with consent and recovery.
    #[must_use]
    pub fn session_form(items: &[(&str, u64)]) -> Form {
        let mut form = Form::new();
        for (i, (price, quantity)) in items.iter().enumerate() {
            form.push(format!("line_items[{i}][price]"), price)
                .push(format!("line_items[{i}][quantity]"), quantity);
        }
        form.push("mode", "payment")
            .push("ui_mode", "hosted")
            .push(
                "success_url",
                "http://shop.test/thanks?session_id={CHECKOUT_SESSION_ID}",
            )
            .push("cancel_url", "http://shop.test/")
            .push("expires_at", unix_now() + 3600)
            .push("consent_collection[promotions]", "auto")
            .push("after_expiration[recovery][enabled]", "true")
            .push("after_expiration[recovery][allow_promotion_codes]", "true")
            .push("metadata[cart]", "c-1");
        form
    }

    /// A customer's action on the hosted page (a form post, as the browser sends it).
    pub async fn act(&self, id: &SessionId, fields: &[(&str, &str)]) -> (u16, Option<String>) {
        self.post_page(&format!("/c/pay/{id}"), fields).await
    }

    /// Settling a delayed payment from the hosted page's "Payment processing" form.
    pub async fn settle(&self, id: &SessionId, outcome: &str) -> (u16, Option<String>) {
        self.post_page(&format!("/c/pay/{id}/settle"), &[("outcome", outcome)])
            .await
    }

    /// A form post to one of the simulator's pages: the status and the `Location`, if any.
    pub async fn post_page(&self, page: &str, fields: &[(&str, &str)]) -> (u16, Option<String>) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = http::Request::post(format!("{}{page}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let (status, headers, _) = call(request).await;
        let location = headers
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (status.as_u16(), location)
    }

    /// The webhooks received so far, each verified with the bundle's own verifier.
    pub async fn webhooks(&self, expected: usize) -> Vec<Value> {
        let verifier = Verifier::new(
            WebhookSecrets::parse(WHSEC).unwrap(),
            DEFAULT_TOLERANCE_SECS,
        );
        for _ in 0..100 {
            let received = self.endpoint.received_requests().await.unwrap_or_default();
            if received.len() >= expected {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let received = self.endpoint.received_requests().await.unwrap();
                return received
                    .iter()
                    .map(|r| {
                        let signature = r.headers.get("stripe-signature").map(|v| v.as_bytes());
                        verifier
                            .verify(signature, &r.body, unix_now())
                            .expect("the bundle's verifier accepts the simulator's signature");
                        serde_json::from_slice(&r.body).unwrap()
                    })
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {expected} webhooks");
    }
}

#[must_use]
pub fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// One plain-HTTP exchange with the simulator, as a browser or `curl` would make it.
pub async fn call(
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> (http::StatusCode, http::HeaderMap, bytes::Bytes) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let (parts, body) = client.request(request).await.unwrap().into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

/// An authorised API GET, answered 200.
pub async fn api_get(base: &str, path_and_query: &str) -> Value {
    let request = http::Request::get(format!("{base}{path_and_query}"))
        .header("authorization", format!("Bearer {KEY}"))
        .body(http_body_util::Full::default())
        .unwrap();
    let (status, _, body) = call(request).await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}
