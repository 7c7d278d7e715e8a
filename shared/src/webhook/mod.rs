//! Receiving Stripe webhooks: verify the signature over the raw bytes, parse the event, store
//! it exactly once, and only then acknowledge. No Stripe API call on this path, one DynamoDB
//! write per event: Checkout waits for this answer (up to 10 s) before redirecting the customer.

mod signature;

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

pub use signature::{DEFAULT_TOLERANCE_SECS, SignatureError, Verifier, WebhookSecrets, sign};

use crate::clock::Clock;
use crate::config::{self, ConfigError, Source, TableName};
use crate::http::{self as api, ApiError, PayloadTooLarge};
use crate::ids::EventId;
use crate::metrics::{self, Unit};
use crate::store::{DynamoDb, EventRecord, EventStore, Recorded, StoreError};
use crate::stripe::{Event, EventError, StripeMode};

/// Stripe's partner event sources are `aws.partner/stripe.com/<account id>/<name>`.
pub const EVENT_BRIDGE_SOURCE_PREFIX: &str = "aws.partner/stripe.com";

/// Bodies over this are refused before any work; Stripe events are a few KB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    TooLarge(#[from] PayloadTooLarge),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("an EventBridge event whose source is not Stripe's partner event source")]
    NotFromStripe,
}

impl ApiError for WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(err) => err.status(),
            Self::Signature(_) | Self::Event(_) | Self::NotFromStripe => StatusCode::BAD_REQUEST,
            Self::Store(err) => err.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(err) => err.code(),
            Self::Signature(SignatureError::MissingHeader) => "signature_missing",
            Self::Signature(SignatureError::OutsideTolerance { .. }) => {
                "signature_timestamp_out_of_tolerance"
            }
            Self::Signature(SignatureError::Mismatch) => "signature_mismatch",
            Self::Signature(SignatureError::MalformedHeader(_) | SignatureError::NoV1Signature) => {
                "signature_malformed"
            }
            Self::Event(_) => "invalid_event",
            Self::NotFromStripe => "not_from_stripe",
            Self::Store(err) => err.code(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub secrets: WebhookSecrets,
    pub tolerance_secs: u64,
    pub events_table: TableName,
    pub retention_days: u32,
    /// Events of the other mode are acknowledged and not stored.
    pub mode: StripeMode,
}

impl WebhookConfig {
    /// # Errors
    /// A missing or invalid variable, named.
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
            mode: StripeMode::from_env(env)?,
        })
    }
}

/// What the receiver acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub event_id: EventId,
    pub duplicate: bool,
    /// Why the event was acknowledged without being stored (`livemode`: the other mode's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<&'static str>,
}

pub struct WebhookReceiver {
    verifier: Verifier,
    store: EventStore,
    retention_secs: i64,
    mode: StripeMode,
    clock: Clock,
}

impl WebhookReceiver {
    #[must_use]
    pub fn new(config: WebhookConfig, dynamodb: DynamoDb) -> Self {
        Self {
            verifier: Verifier::new(config.secrets, config.tolerance_secs),
            store: EventStore::new(config.events_table, dynamodb),
            retention_secs: i64::from(config.retention_days) * 86_400,
            mode: config.mode,
            clock: Clock::system(),
        }
    }

    /// The same receiver reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Verifies, parses and stores one delivery; `Ok` means the event is durably stored.
    ///
    /// # Errors
    /// The body is too large, its signature does not hold, it is not an event (4xx), or
    /// DynamoDB failed (5xx, so Stripe retries).
    pub async fn receive(
        &self,
        signature: Option<&[u8]>,
        body: &[u8],
        now: i64,
    ) -> Result<Receipt, WebhookError> {
        PayloadTooLarge::check(body, MAX_BODY_BYTES)?;
        self.verifier.verify(signature, body, now)?;
        self.store_event(body, "webhook", now).await
    }

    /// Stores one event delivered by Amazon EventBridge (Stripe's event destination for a
    /// partner event bus): the rule's pattern pins `source` to Stripe's partner source and
    /// EventBridge is the trusted sender, so there is no signature; the same conditional put
    /// as a webhook delivery.
    ///
    /// # Errors
    /// Not an event from Stripe's partner source, or its `detail` is not a Stripe event
    /// (EventBridge records the failed invocation), or DynamoDB failed (EventBridge retries).
    pub async fn receive_from_event_bridge(
        &self,
        envelope: &serde_json::Value,
    ) -> Result<Receipt, WebhookError> {
        let from_stripe = envelope
            .get("source")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| s.starts_with(EVENT_BRIDGE_SOURCE_PREFIX));
        if !from_stripe {
            return Err(WebhookError::NotFromStripe);
        }
        let detail = envelope
            .get("detail")
            .map(ToString::to_string)
            .unwrap_or_default();
        PayloadTooLarge::check(detail.as_bytes(), MAX_BODY_BYTES)?;
        self.store_event(detail.as_bytes(), "eventbridge", self.clock.now())
            .await
    }

    async fn store_event(
        &self,
        body: &[u8],
        via: &'static str,
        now: i64,
    ) -> Result<Receipt, WebhookError> {
        let event = Event::parse(body)?;
        if event.livemode != self.mode.is_live() {
            tracing::warn!(event_id = %event.id, event_type = %event.kind, account = event.account.as_ref().map(|a| a.as_str()), livemode = event.livemode, via, "event of the other mode acknowledged and not stored");
            metrics::emit("EventsIgnored", 1.0, Unit::Count, &[("Reason", "livemode")]);
            return Ok(Receipt {
                event_id: event.id,
                duplicate: false,
                ignored: Some("livemode"),
            });
        }
        let record = EventRecord::new(&event, now, self.retention_secs);
        let recorded = self.store.record_once(&record).await?;
        let duplicate = recorded == Recorded::Duplicate;
        if duplicate {
            metrics::emit("EventsDuplicate", 1.0, Unit::Count, &[]);
        } else {
            metrics::emit(
                "EventsReceived",
                1.0,
                Unit::Count,
                &[("EventType", event.kind.as_str())],
            );
        }
        tracing::info!(
            event_id = %event.id,
            event_type = %event.kind,
            account = event.account.as_ref().map(|a| a.as_str()),
            object_id = record.object_id.as_deref(),
            object_stored = record.object.is_some(),
            duplicate,
            via,
            "stripe event received"
        );
        Ok(Receipt {
            event_id: event.id,
            duplicate,
            ignored: None,
        })
    }
}

/// `POST /webhooks/stripe`: the HTTP handler the Lambda and the local stack both run.
pub async fn handle(receiver: &WebhookReceiver, request: Request) -> Response<Body> {
    if request.method() != Method::POST {
        return api::method_not_allowed("POST");
    }
    let signature = request
        .headers()
        .get("stripe-signature")
        .map(|v| v.as_bytes());
    // lambda_http has already decoded an API Gateway base64 body: these are the raw bytes
    // Stripe signed.
    let body: &[u8] = request.body().as_ref();
    match receiver
        .receive(signature, body, receiver.clock.now())
        .await
    {
        Ok(receipt) => api::json(StatusCode::OK, &receipt),
        Err(err) => api::error(&err),
    }
}

impl crate::lambda::HttpAndEventBridge for WebhookReceiver {
    async fn http(&self, request: Request) -> Response<Body> {
        handle(self, request).await
    }

    async fn event_bridge(
        &self,
        envelope: serde_json::Value,
    ) -> Result<serde_json::Value, lambda_http::Error> {
        let receipt = self.receive_from_event_bridge(&envelope).await?;
        Ok(serde_json::to_value(receipt)?)
    }
}
