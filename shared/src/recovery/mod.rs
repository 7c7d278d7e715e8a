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
//!
//! - `config`: what the function reads at cold start.
//! - `abandoned`: the abandoned-cart email; `payment_failed`: the failed-payment notice;
//!   `dunning`: a subscription's failed-renewal notices (one per invoice attempt);
//!   `payment_notices`: a Payment Element payment pending, then failed; `notice`: sending
//!   one transactional notice once;
//!   `purchases`: purchases and conversions; `unsubscribe`: tokens and the route.
//! - `stream`: the stream trigger, which routes each event to one of those.

mod abandoned;
mod config;
mod dunning;
mod notice;
mod payment_failed;
mod payment_notices;
mod purchases;
mod stream;
mod unsubscribe;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use http::StatusCode;
use lambda_http::{Body, Request, Response};

pub use config::RecoveryConfig;
pub use payment_notices::PAYMENT_INTENT_PLACEHOLDER;
pub use unsubscribe::{
    InvalidToken, token as unsubscribe_token, verify as verify_unsubscribe_token,
};

use crate::clock::Clock;
use crate::http::ApiError;
use crate::ids::AccountId;
use crate::mail::{MailError, Mailer, Sender};
use crate::store::{
    DynamoDb, EventStore, RECOVERY_EVENTS, RecoveryStore, SessionStore, SkipReason, StoreError,
};
use crate::stripe::{EventType, StripeClient, StripeError};

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

impl RecoveryError {
    /// A stable code for the event's recorded outcome and metrics.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Stripe(_) => "stripe",
            Self::Store(_) => "storage",
            Self::Mail(_) => "mail",
            Self::Template(_) => "template",
            Self::InvalidToken(_) => "invalid_token",
        }
    }
}

impl ApiError for RecoveryError {
    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidToken(_) => StatusCode::BAD_REQUEST,
            Self::Stripe(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidToken(_) => "invalid_token",
            Self::Stripe(_) => "stripe_unavailable",
            _ => "recovery_unavailable",
        }
    }

    fn param(&self) -> Option<&str> {
        matches!(self, Self::InvalidToken(_)).then_some("token")
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
    sessions: SessionStore,
    events: EventStore,
    mailer: M,
    clock: Clock,
}

impl<M: Mailer> Recovery<M> {
    #[must_use]
    pub fn new(config: RecoveryConfig, dynamodb: DynamoDb, mailer: M) -> Self {
        Self {
            stripe: StripeClient::new(config.stripe.clone()),
            store: RecoveryStore::new(config.recovery_table.clone(), dynamodb.clone()),
            sessions: SessionStore::new(config.sessions_table.clone(), dynamodb.clone()),
            events: EventStore::new(config.events_table.clone(), dynamodb),
            config,
            mailer,
            clock: Clock::system(),
        }
    }

    /// The same service reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    #[must_use]
    pub fn store(&self) -> &RecoveryStore {
        &self.store
    }

    /// Who an email about `account`'s session, payment or invoice is from: the shop
    /// document's profile of that account (or the platform's, logged once per account), else
    /// the configured sender, postal address and shop URL.
    fn sender(&self, account: Option<&AccountId>) -> Sender {
        match self.config.shop.shop.profile(account) {
            Some(p) => Sender::profile(
                p.name.as_str(),
                &p.email_from,
                p.postal_address.as_str(),
                p.url.as_ref().map(|url| url.as_str()),
            ),
            None => Sender::configured(
                &self.config.mail,
                &self.config.mail.from_name,
                Some(&self.config.postal_address),
                self.config.shop_url.as_deref(),
            ),
        }
    }
}

impl<M: Mailer> crate::lambda::StreamAndHttp for Recovery<M> {
    async fn stream(&self, batch: StreamEvent, deadline: Option<i64>) -> DynamoDbEventResponse {
        self.handle_batch(batch, deadline).await
    }

    /// `/recovery/unsubscribe`, the function's one route.
    async fn http(&self, request: Request, _deadline: Option<i64>) -> Response<Body> {
        self.route(&request).await
    }
}

/// The event types this function acts on: the SAM template's stream filter lists exactly
/// these (tests/tests/template.rs), so Lambda is not invoked for the others.
pub const STREAM_EVENTS: &[EventType] = RECOVERY_EVENTS;

/// `fr`, `fr-CA` -> French; everything else English.
fn language(locale: Option<&str>) -> &'static str {
    match locale {
        Some(l) if l == "fr" || l.starts_with("fr-") => "fr",
        _ => "en",
    }
}
