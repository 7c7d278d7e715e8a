//! Receiving Stripe webhooks: verify the signature over the raw bytes, parse the event, store
//! it exactly once, and only then acknowledge. No Stripe API call on this path, one DynamoDB
//! write per event: Checkout waits for this answer (up to 10 s) before redirecting the customer.

mod signature;

use std::time::{SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

pub use signature::{DEFAULT_TOLERANCE_SECS, SignatureError, Verifier, WebhookSecrets, sign};

use crate::config::{self, ConfigError, Source, TableName};
use crate::events::{Event, EventError, EventId};
use crate::store::{DynamoDb, EventRecord, EventStore, Recorded, StoreError};

/// Bodies over this are refused before any work; Stripe events are a few KB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the body is over the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub secrets: WebhookSecrets,
    pub tolerance_secs: u64,
    pub events_table: TableName,
    pub retention_days: u32,
}

impl WebhookConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let var = "STRIPE_WEBHOOK_SECRET";
        let secrets = WebhookSecrets::parse(&config::required(env, var)?)
            .map_err(|reason| ConfigError::Invalid { var, reason })?;
        Ok(Self {
            secrets,
            tolerance_secs: config::parsed_or(
                env,
                "STRIPE_WEBHOOK_TOLERANCE_SECS",
                DEFAULT_TOLERANCE_SECS,
            )?,
            events_table: TableName::from_env(env, "EVENTS_TABLE")?,
            retention_days: config::parsed_or(env, "EVENT_RETENTION_DAYS", 30)?,
        })
    }
}

/// What the receiver acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub event_id: EventId,
    pub duplicate: bool,
}

pub struct WebhookReceiver {
    verifier: Verifier,
    store: EventStore,
    retention_secs: i64,
}

impl WebhookReceiver {
    pub fn new(config: WebhookConfig, dynamodb: DynamoDb) -> Self {
        Self {
            verifier: Verifier::new(config.secrets, config.tolerance_secs),
            store: EventStore::new(dynamodb, config.events_table),
            retention_secs: i64::from(config.retention_days) * 86_400,
        }
    }

    pub async fn receive(
        &self,
        signature: Option<&[u8]>,
        body: &[u8],
        now: i64,
    ) -> Result<Receipt, WebhookError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::TooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        self.verifier.verify(signature, body, now)?;
        let event = Event::parse(body)?;
        let record = EventRecord::new(&event, now, self.retention_secs);
        let recorded = self.store.record_once(&record).await?;
        let duplicate = recorded == Recorded::Duplicate;
        tracing::info!(
            event_id = %event.id,
            event_type = %event.kind,
            account = event.account.as_ref().map(|a| a.as_str()),
            object_id = record.object_id.as_deref(),
            object_stored = record.object.is_some(),
            duplicate,
            "stripe event received"
        );
        Ok(Receipt {
            event_id: event.id,
            duplicate,
        })
    }
}

/// `POST /webhooks/stripe`: the HTTP handler the Lambda and the local stack both run.
pub async fn handle(receiver: &WebhookReceiver, request: Request) -> Response<Body> {
    if request.method() != Method::POST {
        return crate::http::method_not_allowed("POST");
    }
    let signature = request
        .headers()
        .get("stripe-signature")
        .map(|v| v.as_bytes());
    // lambda_http has already decoded an API Gateway base64 body: these are the raw bytes
    // Stripe signed.
    let body: &[u8] = request.body().as_ref();
    match receiver.receive(signature, body, unix_now()).await {
        Ok(receipt) => crate::http::json(StatusCode::OK, &receipt),
        Err(err) => crate::http::error(&err),
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
