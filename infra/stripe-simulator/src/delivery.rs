//! Webhook delivery as Stripe does it: each event signed with the endpoint secret
//! (`Stripe-Signature: t=…,v1=…`), POSTed to the bundle's webhook route, retried with backoff
//! until a 2xx. On request, every event is sent twice, or the events of one action in reverse,
//! or none is sent at all (a webhook outage: the events are only in `GET /v1/events`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{Client as HyperClient, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::{Simulator, random_suffix, unix_now};

pub(crate) type Client = HyperClient<HttpConnector, Full<Bytes>>;

/// Plain HTTP: the bundle's route is on loopback in dev and tests.
pub(crate) fn client() -> Client {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

/// How to misbehave, like `stripe trigger` and real Stripe sometimes do.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Delivery {
    pub duplicate: bool,
    pub out_of_order: bool,
    /// Record the events but never POST them, for the reconciler to backfill.
    pub withhold: bool,
}

const ATTEMPTS: u32 = 6;

/// One event to send: its type, its object as it is at that moment and, for `*.updated`
/// events, the fields that changed with their values before (`data.previous_attributes`).
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub kind: &'static str,
    pub object: Value,
    pub previous: Option<Value>,
}

impl From<(&'static str, Value)> for Outgoing {
    fn from((kind, object): (&'static str, Value)) -> Self {
        Self {
            kind,
            object,
            previous: None,
        }
    }
}

impl Outgoing {
    pub fn updated(kind: &'static str, before: &Value, after: Value) -> Self {
        Self {
            kind,
            previous: Some(crate::objects::previous_attributes(before, &after)),
            object: after,
        }
    }
}

impl Simulator {
    /// Records the events (for `GET /v1/events`) and delivers them in the background, one
    /// after the other, in order unless asked otherwise; delivers nothing when withheld.
    pub(crate) fn send_events(
        self: &Arc<Self>,
        account: Option<&str>,
        events: Vec<Outgoing>,
        delivery: Delivery,
    ) {
        let mut built: Vec<Value> = events
            .into_iter()
            .map(
                |Outgoing {
                     kind,
                     object,
                     previous,
                 }| {
                    let mut event = json!({
                        "id": format!("evt_{}", random_suffix(24)),
                        "object": "event",
                        "api_version": checkout_core::stripe::API_VERSION,
                        "created": unix_now(),
                        "livemode": false,
                        "pending_webhooks": 1,
                        "request": {"id": null, "idempotency_key": null},
                        "type": kind,
                        "data": {"object": object},
                    });
                    if let Some(account) = account {
                        event["account"] = account.into();
                    }
                    if let Some(previous) = previous {
                        event["data"]["previous_attributes"] = previous;
                    }
                    event
                },
            )
            .collect();
        {
            let mut state = self.lock();
            for event in &built {
                state
                    .events
                    .push((account.map(str::to_string), event.clone()));
            }
        }
        if delivery.withhold {
            for event in &built {
                tracing::info!(
                    event_id = event["id"].as_str().unwrap_or_default(),
                    event_type = event["type"].as_str().unwrap_or_default(),
                    "webhook withheld; the event is only in GET /v1/events"
                );
            }
            return;
        }
        if delivery.out_of_order {
            built.reverse();
        }
        let copies = if delivery.duplicate { 2 } else { 1 };
        let simulator = self.clone();
        tokio::spawn(async move {
            for event in built {
                for _ in 0..copies {
                    simulator.deliver(&event).await;
                }
            }
        });
    }

    async fn deliver(&self, event: &Value) {
        let body = event.to_string();
        let id = event["id"].as_str().unwrap_or_default();
        let kind = event["type"].as_str().unwrap_or_default();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
            }
            let signature = checkout_core::webhook::sign(
                &self.config.webhook_secret,
                unix_now(),
                body.as_bytes(),
            );
            let request = http::Request::post(&self.config.webhook_url)
                .header(
                    http::header::CONTENT_TYPE,
                    "application/json; charset=utf-8",
                )
                .header("stripe-signature", signature)
                .header(
                    http::header::USER_AGENT,
                    "Stripe/1.0 (+https://stripe.com/docs/webhooks) simulator",
                )
                .body(Full::new(Bytes::from(body.clone())))
                .expect("a valid request");
            match self.delivery.request(request).await {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(
                        event_id = id,
                        event_type = kind,
                        attempt,
                        "webhook delivered"
                    );
                    return;
                }
                Ok(response) => {
                    tracing::warn!(
                        event_id = id,
                        event_type = kind,
                        status = response.status().as_u16(),
                        "webhook refused; retrying"
                    );
                }
                Err(err) => {
                    tracing::warn!(event_id = id, event_type = kind, error = %err, "webhook not delivered; retrying");
                }
            }
        }
        tracing::error!(
            event_id = id,
            event_type = kind,
            "webhook given up after {ATTEMPTS} attempts"
        );
    }
}
