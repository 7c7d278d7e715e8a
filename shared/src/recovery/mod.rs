//! Abandoned-cart recovery, as Stripe's guide describes it: on `checkout.session.expired`,
//! email the session's recovery URL, only to customers who opted in to promotions, once per
//! session and once per address per cooldown window, never after they unsubscribed or bought.
//!
//! Exactly-once shape: check (cheap reads) -> fetch what the email needs from Stripe ->
//! claim (one DynamoDB transaction over the session and the address) -> create the promotion
//! code -> send through SES -> mark sent. A failed send releases the claim so the stream's
//! retry can send. A process that dies after the claim and before marking is not retried:
//! recovery email is at-most-once, because a missed marketing email costs less than a
//! duplicate one (spam complaints hurt the sender's reputation for every later email).

mod unsubscribe;

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

pub use unsubscribe::{
    InvalidToken, token as unsubscribe_token, verify as verify_unsubscribe_token,
};

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord as StreamRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use tracing::Instrument;

use crate::config::{self, ConfigError, Secret, Source, TableName};
use crate::events::{AccountId, EventType};
use crate::fulfillment::display_amount;
use crate::http as api;
use crate::ids::SessionId;
use crate::mail::{EmailAddress, MailConfig, MailError, Mailer, SesMailer, Templates};
use crate::metrics::{self, Unit};
use crate::store::{DynamoDb, EventRecord, RecoveryClaim, RecoveryStore, SkipReason, StoreError};
use crate::stripe::{
    CheckoutSession, Form, IdempotencyKey, PromotionsConsent, Recovery as RecoveryLink,
    RequestOptions, StripeClient, StripeConfig, StripeError,
};
use crate::webhook::unix_now;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("template: {0}")]
    Template(String),
    #[error(transparent)]
    InvalidToken(#[from] InvalidToken),
}

#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    pub stripe: StripeConfig,
    pub recovery_table: TableName,
    pub mail: MailConfig,
    /// The sender's postal address, required in marketing email (CAN-SPAM).
    pub postal_address: String,
    pub cooldown_secs: i64,
    /// A Stripe coupon to make one single-use promotion code per email from, when the
    /// session allowed promotion codes.
    pub coupon: Option<String>,
    pub unsubscribe_secret: Secret,
    /// The bundle's public base URL (API Gateway), for unsubscribe links.
    pub public_base_url: String,
    /// Where the payment-failed email sends the customer to order again.
    pub shop_url: Option<String>,
}

impl RecoveryConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let var = "UNSUBSCRIBE_SECRET";
        let secret = config::required(env, var)?;
        if secret.len() < 32 {
            return Err(ConfigError::Invalid {
                var,
                reason: "at least 32 characters of random data".into(),
            });
        }
        let var = "PUBLIC_BASE_URL";
        let public_base_url = config::required(env, var)?;
        if !public_base_url.starts_with("https://") && !public_base_url.starts_with("http://") {
            return Err(ConfigError::Invalid {
                var,
                reason: "an absolute http(s) URL".into(),
            });
        }
        let hours: i64 = config::parsed_or(env, "RECOVERY_COOLDOWN_HOURS", 24)?;
        Ok(Self {
            stripe: StripeConfig::from_env(env)?,
            recovery_table: TableName::from_env(env, "RECOVERY_TABLE")?,
            mail: MailConfig::from_env(env)?,
            postal_address: config::required(env, "MERCHANT_POSTAL_ADDRESS")?,
            cooldown_secs: hours * 3600,
            coupon: config::optional(env, "RECOVERY_COUPON"),
            unsubscribe_secret: Secret::new(secret),
            public_base_url: public_base_url.trim_end_matches('/').to_string(),
            shop_url: config::optional(env, "MERCHANT_SHOP_URL"),
        })
    }
}

/// The longest one record can take: two Stripe calls (line items, promotion code), each up to
/// three attempts of `STRIPE_TIMEOUT_SECS` (8 s in the template) with backoff, plus DynamoDB
/// and SES. The template's timeout leaves room for several records above this.
pub const RECORD_TIME_BUDGET_SECS: i64 = 60;

/// What happened to one expired session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Sent { message_id: String },
    Skipped(SkipReason),
}

pub struct Recovery<M> {
    config: RecoveryConfig,
    stripe: StripeClient,
    store: RecoveryStore,
    mailer: M,
    templates: Templates,
}

impl Recovery<SesMailer> {
    pub fn from_env(
        env: &impl Source,
        dynamodb: DynamoDb,
        ses: aws_sdk_sesv2::Client,
    ) -> Result<Self, ConfigError> {
        let config = RecoveryConfig::from_env(env)?;
        let mailer = SesMailer::new(ses, config.mail.clone());
        Ok(Self::new(
            config,
            dynamodb,
            mailer,
            Templates::from_env(env)?,
        ))
    }
}

#[derive(Serialize)]
struct RecoveryContext<'a> {
    merchant_name: &'a str,
    postal_address: &'a str,
    customer_name: Option<&'a str>,
    recovery_url: &'a str,
    unsubscribe_url: String,
    promotion_code: Option<&'a str>,
    items: Vec<ItemLine>,
}

#[derive(Serialize)]
struct ItemLine {
    description: String,
    quantity: u64,
    amount_display: String,
}

#[derive(Serialize)]
struct FailureContext<'a> {
    merchant_name: &'a str,
    postal_address: &'a str,
    shop_url: Option<&'a str>,
}

/// `fr`, `fr-CA` -> French; everything else English.
fn language(locale: Option<&str>) -> &'static str {
    match locale {
        Some(l) if l == "fr" || l.starts_with("fr-") => "fr",
        _ => "en",
    }
}

impl<M: Mailer> Recovery<M> {
    pub fn new(
        config: RecoveryConfig,
        dynamodb: DynamoDb,
        mailer: M,
        templates: Templates,
    ) -> Self {
        Self {
            stripe: StripeClient::new(config.stripe.clone()),
            store: RecoveryStore::new(dynamodb, config.recovery_table.clone()),
            config,
            mailer,
            templates,
        }
    }

    pub fn store(&self) -> &RecoveryStore {
        &self.store
    }

    pub fn unsubscribe_url(&self, address: &EmailAddress) -> String {
        format!(
            "{}/recovery/unsubscribe?token={}",
            self.config.public_base_url,
            unsubscribe_token(&self.config.unsubscribe_secret, &address.hashed())
        )
    }

    /// `checkout.session.expired`.
    pub async fn session_expired(
        &self,
        session: &CheckoutSession,
        account: Option<&AccountId>,
        now: i64,
    ) -> Result<Decision, RecoveryError> {
        let decision = self.decide_and_send(session, account, now).await?;
        match &decision {
            Decision::Sent { .. } => metrics::emit("RecoveryEmailsSent", 1.0, Unit::Count, &[]),
            Decision::Skipped(reason) => {
                tracing::info!(session_id = %session.id, reason = reason.as_str(), "no recovery email");
                metrics::emit(
                    "RecoveryEmailsSkipped",
                    1.0,
                    Unit::Count,
                    &[("Reason", reason.as_str())],
                );
            }
        }
        Ok(decision)
    }

    async fn decide_and_send(
        &self,
        session: &CheckoutSession,
        account: Option<&AccountId>,
        now: i64,
    ) -> Result<Decision, RecoveryError> {
        use SkipReason::*;
        let details = session.customer_details.clone().unwrap_or_default();
        let Some(to) = details
            .email
            .as_deref()
            .and_then(|e| e.parse::<EmailAddress>().ok())
        else {
            return Ok(Decision::Skipped(NoEmail));
        };
        let Some(link) = session
            .after_expiration
            .as_ref()
            .and_then(|a| a.recovery.as_ref())
            .filter(|r| r.url.is_some())
        else {
            return Ok(Decision::Skipped(NoRecoveryUrl));
        };
        if link.expires_at.is_some_and(|t| t <= now) {
            return Ok(Decision::Skipped(RecoveryUrlExpired));
        }
        if session.consent.as_ref().and_then(|c| c.promotions) != Some(PromotionsConsent::OptIn) {
            return Ok(Decision::Skipped(NoConsent));
        }
        let address_hash = to.hashed();
        let owner = IdempotencyKey::generate("recovery");
        let claim = RecoveryClaim {
            session: &session.id,
            address_hash: &address_hash,
            owner: owner.as_str(),
            session_created: session.created.unwrap_or(0),
            cooldown_secs: self.config.cooldown_secs,
            now,
        };
        if let Some(reason) = self.store.precheck(&claim).await? {
            return Ok(Decision::Skipped(reason));
        }
        let items = self.stripe.list_line_items(&session.id, account).await?;
        if let Err(reason) = self.store.claim(&claim).await? {
            return Ok(Decision::Skipped(reason));
        }
        match self
            .send_recovery(session, link, account, &to, &items)
            .await
        {
            Ok((message_id, code)) => {
                self.store
                    .mark_sent(
                        &session.id,
                        owner.as_str(),
                        &message_id,
                        code.as_deref(),
                        now,
                    )
                    .await?;
                tracing::info!(session_id = %session.id, recipient = address_hash, message_id, "recovery email sent");
                Ok(Decision::Sent { message_id })
            }
            // SES may have sent it: keep the claim, so the retry finds it and sends nothing.
            Err(err @ RecoveryError::Mail(MailError::Unknown(_))) => {
                tracing::warn!(session_id = %session.id, error = %err, "recovery email outcome unknown; not resent");
                Err(err)
            }
            Err(err) => {
                self.store
                    .release(&session.id, &address_hash, owner.as_str())
                    .await?;
                Err(err)
            }
        }
    }

    /// `link`: the session's `after_expiration.recovery`, with its URL.
    async fn send_recovery(
        &self,
        session: &CheckoutSession,
        link: &RecoveryLink,
        account: Option<&AccountId>,
        to: &EmailAddress,
        items: &[crate::stripe::LineItem],
    ) -> Result<(String, Option<String>), RecoveryError> {
        let code = match (&self.config.coupon, link.allow_promotion_codes) {
            (Some(coupon), true) => {
                Some(self.promotion_code(coupon, session, link, account).await?)
            }
            _ => None,
        };
        let unsubscribe_url = self.unsubscribe_url(to);
        let context = RecoveryContext {
            merchant_name: &self.config.mail.from_name,
            postal_address: &self.config.postal_address,
            customer_name: session
                .customer_details
                .as_ref()
                .and_then(|d| d.name.as_deref()),
            recovery_url: link.url.as_deref().unwrap_or_default(),
            unsubscribe_url: unsubscribe_url.clone(),
            promotion_code: code.as_deref(),
            items: items
                .iter()
                .map(|item| ItemLine {
                    description: item.description.clone().unwrap_or_default(),
                    quantity: item.quantity.unwrap_or(1),
                    amount_display: display_amount(item.amount_total, &item.currency),
                })
                .collect(),
        };
        let kind = format!("recovery.{}", language(session.locale.as_deref()));
        let mut email = self
            .templates
            .render(&kind, to.clone(), context)
            .map_err(|e| RecoveryError::Template(e.to_string()))?;
        email
            .headers
            .push(("List-Unsubscribe", format!("<{unsubscribe_url}>")));
        email
            .headers
            .push(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into()));
        Ok((self.mailer.send(&email).await?, code))
    }

    /// One single-use code per recovered session; the idempotency key makes a retry reuse it.
    async fn promotion_code(
        &self,
        coupon: &str,
        session: &CheckoutSession,
        link: &RecoveryLink,
        account: Option<&AccountId>,
    ) -> Result<String, RecoveryError> {
        let mut form = Form::new();
        form.push("coupon", coupon).push("max_redemptions", 1);
        form.push_opt("customer", session.customer.as_ref());
        form.push_opt("expires_at", link.expires_at);
        form.push("metadata[recovery_for_session]", &session.id);
        let key = IdempotencyKey::derived("recovery-promotion-code", session.id.as_str());
        let options = RequestOptions {
            account,
            idempotency_key: Some(&key),
        };
        Ok(self
            .stripe
            .create_promotion_code(&form, options)
            .await?
            .code)
    }

    /// `checkout.session.async_payment_failed`: a transactional notice (no consent needed),
    /// once per session.
    pub async fn payment_failed(
        &self,
        session: &CheckoutSession,
        now: i64,
    ) -> Result<bool, RecoveryError> {
        let email_of = |s: &CheckoutSession| {
            s.customer_details
                .as_ref()
                .and_then(|d| d.email.clone())
                .or_else(|| s.customer_email.clone())
        };
        let Some(to) = email_of(session).and_then(|e| e.parse::<EmailAddress>().ok()) else {
            return Ok(false);
        };
        let owner = IdempotencyKey::generate("payment-failed");
        if !self
            .store
            .claim_failure_notice(&session.id, owner.as_str(), now)
            .await?
        {
            return Ok(false);
        }
        let context = FailureContext {
            merchant_name: &self.config.mail.from_name,
            postal_address: &self.config.postal_address,
            shop_url: self.config.shop_url.as_deref(),
        };
        let kind = format!("payment_failed.{}", language(session.locale.as_deref()));
        let sent = async {
            let email = self
                .templates
                .render(&kind, to.clone(), context)
                .map_err(|e| RecoveryError::Template(e.to_string()))?;
            Ok::<_, RecoveryError>(self.mailer.send(&email).await?)
        }
        .await;
        match sent {
            Ok(message_id) => {
                tracing::info!(session_id = %session.id, recipient = to.hashed(), message_id, "payment-failed notice sent");
                Ok(true)
            }
            Err(err) => {
                self.store
                    .release_failure_notice(&session.id, owner.as_str())
                    .await?;
                Err(err)
            }
        }
    }

    /// `checkout.session.completed` at `completed_at` (the event's creation time): remembers
    /// the purchase, so sessions created before it get no recovery email, and tracks
    /// conversions of recovered sessions.
    pub async fn session_completed(
        &self,
        session: &CheckoutSession,
        completed_at: i64,
        now: i64,
    ) -> Result<(), RecoveryError> {
        if let Some(email) = session
            .customer_details
            .as_ref()
            .and_then(|d| d.email.as_deref())
            .and_then(|e| e.parse::<EmailAddress>().ok())
        {
            self.store
                .record_purchase(&email.hashed(), completed_at)
                .await?;
        }
        if let Some(origin) = &session.recovered_from {
            let amount = session.amount_total.unwrap_or_default();
            let currency = session.currency.clone().unwrap_or_default();
            if self.store.convert(origin, amount, &currency, now).await? {
                tracing::info!(session_id = %session.id, recovered_from = %origin, amount, "recovered session converted");
                metrics::emit("RecoveryConversions", 1.0, Unit::Count, &[]);
                metrics::emit(
                    "RecoveredRevenue",
                    amount as f64,
                    Unit::None,
                    &[("Currency", &currency)],
                );
            }
        }
        Ok(())
    }

    /// `GET|POST /recovery/unsubscribe?token=…`.
    pub async fn unsubscribe(&self, request: &Request) -> Result<(), RecoveryError> {
        let token = form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let hash = verify_unsubscribe_token(&self.config.unsubscribe_secret, &token)?;
        self.store.unsubscribe(&hash, unix_now()).await?;
        tracing::info!(recipient = hash, "unsubscribed from recovery emails");
        Ok(())
    }
}

impl<M: Mailer> crate::lambda::StreamAndHttp for Recovery<M> {
    async fn stream(&self, batch: StreamEvent, deadline: Option<i64>) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        let mut out_of_time = false;
        for record in batch.records {
            let sequence = record.change.sequence_number.clone();
            // A timeout between claim and mark would lose the email (at-most-once): a record
            // is only started with time for its worst case left; the rest are retried.
            out_of_time |= deadline.is_some_and(|d| d - unix_now() < RECORD_TIME_BUDGET_SECS);
            if out_of_time {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = sequence;
                response.batch_item_failures.push(failure);
                continue;
            }
            if let Err(err) = self.process(record).await {
                tracing::warn!(error = %err, sequence = sequence.as_deref(), "stream record will be retried");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = sequence;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// `/recovery/unsubscribe`, the function's one route.
    async fn http(&self, request: Request, _deadline: Option<i64>) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::POST {
            return api::method_not_allowed("GET, POST");
        }
        match self.unsubscribe(&request).await {
            Err(err) => api::error(&err),
            Ok(()) if request.method() == Method::POST => {
                api::json(StatusCode::OK, &serde_json::json!({"unsubscribed": true}))
            }
            Ok(()) => {
                let mut response = Response::new(Body::from(
                    "<!doctype html><html><body><h1>You are unsubscribed</h1><p>You will not receive cart reminders any more.</p></body></html>",
                ));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
        }
    }
}

/// The event types this function acts on: the SAM template's stream filter lists exactly
/// these (tests/tests/template.rs), so Lambda is not invoked for the others.
pub const STREAM_EVENTS: &[EventType] = &[
    EventType::CheckoutSessionExpired,
    EventType::CheckoutSessionAsyncPaymentFailed,
    EventType::CheckoutSessionCompleted,
];

impl<M: Mailer> Recovery<M> {
    async fn process(&self, record: StreamRecord) -> Result<(), RecoveryError> {
        if record.event_name != "INSERT" {
            return Ok(());
        }
        let Ok(event) = serde_dynamo::from_item::<_, EventRecord>(record.change.new_image) else {
            tracing::error!("stream record is not a stored event; skipped");
            return Ok(());
        };
        if !STREAM_EVENTS.contains(&event.kind) {
            return Ok(());
        }
        let span = tracing::info_span!("stripe_event", event_id = %event.event_id, event_type = %event.kind, account = event.account.as_ref().map(AccountId::as_str));
        async {
            let Some(session) = self.session_of(&event).await? else {
                return Ok(());
            };
            let now = unix_now();
            match event.kind {
                EventType::CheckoutSessionExpired => self
                    .session_expired(&session, event.account.as_ref(), now)
                    .await
                    .map(drop),
                EventType::CheckoutSessionAsyncPaymentFailed => {
                    self.payment_failed(&session, now).await.map(drop)
                }
                _ => self.session_completed(&session, event.created, now).await,
            }
        }
        .instrument(span)
        .await
    }

    /// The session in the event: as stored, or from Stripe when it was too large to store
    /// (or stored in a shape this version does not read).
    async fn session_of(
        &self,
        event: &EventRecord,
    ) -> Result<Option<CheckoutSession>, RecoveryError> {
        if let Some(stored) = event.object.as_deref() {
            match serde_json::from_str::<CheckoutSession>(stored) {
                Ok(session) => return Ok(Some(session)),
                Err(err) => {
                    tracing::warn!(error = %err, "stored session unreadable; retrieving it from Stripe")
                }
            }
        }
        let Some(id) = event
            .object_id
            .as_deref()
            .and_then(|id| id.parse::<SessionId>().ok())
        else {
            tracing::error!("event without a checkout session id; skipped");
            return Ok(None);
        };
        match self
            .stripe
            .retrieve_checkout_session(&id, event.account.as_ref())
            .await
        {
            Ok(session) => Ok(Some(session)),
            Err(err) if err.is_not_found() => {
                tracing::warn!(session_id = %id, "session unknown to Stripe; skipped");
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }
}
