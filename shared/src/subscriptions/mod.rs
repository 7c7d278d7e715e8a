//! After the first payment: a subscription's life from Stripe's events, and the access that
//! follows it.
//!
//! - `config`: what the function reads at cold start.
//! - `state`: the subscription table's writes from `customer.subscription.*` and
//!   `invoice.*` events, newest state only, and the session that created it.
//! - `access`: access follows the stored status: granted on the first payment, extended at
//!   each renewal, kept through `past_due` until the paid period plus the grace, revoked on
//!   `canceled`, `unpaid`, `paused`; each change once, through the `Entitle` seam.
//! - `stream`: the function's trigger, the events table's stream.
//!
//! Renewals never make orders: the order is the Checkout Session's, fulfilled once by the
//! fulfillment function; an invoice's PaymentIntent is never fulfilled on its own.

mod access;
mod config;
mod state;
mod stream;

pub use config::SubscriptionsConfig;
pub use stream::{RECORD_TIME_BUDGET_SECS, STREAM_EVENTS, handle as handle_stream, handle_event};

use crate::access::{Entitle, EntitleError};
use crate::clock::Clock;
use crate::store::{DynamoDb, EventStore, StoreError, SubscriptionStore};
use crate::stripe::{StripeClient, StripeError};

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionsError {
    /// The subscription or invoice does not exist (on this account): permanent.
    #[error("{0} was not found at Stripe")]
    NotFound(String),
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("entitlement failed: {0}")]
    Entitle(#[from] EntitleError),
    /// Another invocation is changing this subscription's access: retried.
    #[error("another invocation is changing this subscription's access")]
    Busy,
}

impl SubscriptionsError {
    /// A stable code for the event's recorded outcome and metrics.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Stripe(_) => "stripe",
            Self::Store(_) => "storage",
            Self::Entitle(_) => "entitle",
            Self::Busy => "busy",
        }
    }
}

/// Everything the subscriptions function serves, built once at cold start.
pub struct Subscriptions<E> {
    stripe: StripeClient,
    store: SubscriptionStore,
    events: EventStore,
    entitle: E,
    config: SubscriptionsConfig,
    clock: Clock,
}

impl<E: Entitle> Subscriptions<E> {
    /// `entitle`: the merchant's access control (`access::AccessTable` by default).
    #[must_use]
    pub fn new(config: SubscriptionsConfig, dynamodb: DynamoDb, entitle: E) -> Self {
        Self {
            stripe: StripeClient::new(config.stripe.clone()),
            store: SubscriptionStore::new(config.subscriptions_table.clone(), dynamodb.clone()),
            events: EventStore::new(config.events_table.clone(), dynamodb),
            entitle,
            config,
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
    pub fn store(&self) -> &SubscriptionStore {
        &self.store
    }

    #[must_use]
    pub fn config(&self) -> &SubscriptionsConfig {
        &self.config
    }

    /// The lease an access claim gets: until the invocation's deadline (plus margin) when
    /// known.
    fn lease_until(&self, now: i64, deadline: Option<i64>) -> i64 {
        match deadline {
            Some(deadline) => deadline.max(now) + self.config.lease_margin_secs,
            None => now + self.config.default_lease_secs,
        }
    }
}

/// Stripe's 404 for `id` as the permanent `NotFound`; any other error as it is.
fn not_found_as(id: &impl ToString) -> impl FnOnce(StripeError) -> SubscriptionsError + '_ {
    move |err| {
        if err.is_not_found() {
            SubscriptionsError::NotFound(id.to_string())
        } else {
            err.into()
        }
    }
}
