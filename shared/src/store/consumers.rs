//! The events stream's consumers (fulfillment, recovery, subscriptions): which event types each acts on,
//! where its pending mark and outcome live on an event's item, and what an outcome is.
//! Listed here, below the domain modules, because the store marks an event pending for its
//! consumers when it writes it.

use serde::{Deserialize, Serialize};

use crate::stripe::EventType;

/// The event types the fulfillment function acts on.
pub const FULFILLMENT_EVENTS: &[EventType] = &[
    EventType::CheckoutSessionCompleted,
    EventType::CheckoutSessionAsyncPaymentSucceeded,
    EventType::CheckoutSessionAsyncPaymentFailed,
    // Only to return an unpaid cart's stock.
    EventType::CheckoutSessionExpired,
    EventType::PaymentIntentSucceeded,
    EventType::PaymentIntentProcessing,
    EventType::PaymentIntentPaymentFailed,
    EventType::ChargeRefunded,
    EventType::ChargeDisputeCreated,
    EventType::ChargeDisputeClosed,
];

/// The event types the subscriptions function acts on.
pub const SUBSCRIPTION_EVENTS: &[EventType] = &[
    // Only to link the subscription to the session that created it.
    EventType::CheckoutSessionCompleted,
    EventType::SubscriptionCreated,
    EventType::SubscriptionUpdated,
    EventType::SubscriptionDeleted,
    EventType::SubscriptionPaused,
    EventType::SubscriptionResumed,
    EventType::InvoicePaid,
    EventType::InvoicePaymentFailed,
    EventType::InvoicePaymentActionRequired,
];

/// The event types the recovery function acts on.
pub const RECOVERY_EVENTS: &[EventType] = &[
    EventType::CheckoutSessionExpired,
    EventType::CheckoutSessionAsyncPaymentFailed,
    EventType::CheckoutSessionCompleted,
    EventType::InvoicePaymentFailed,
    EventType::InvoicePaymentActionRequired,
    EventType::PaymentIntentProcessing,
    EventType::PaymentIntentPaymentFailed,
];

/// A function that consumes the events stream. Which types each takes is listed here, below
/// the domain modules, because the store marks an event pending for its consumers when it
/// writes it; the SAM template's stream filters list the same types (tests/tests/template.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Consumer {
    Fulfillment,
    Recovery,
    Subscriptions,
}

impl Consumer {
    pub const ALL: [Consumer; 3] = [
        Consumer::Fulfillment,
        Consumer::Recovery,
        Consumer::Subscriptions,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fulfillment => "fulfillment",
            Self::Recovery => "recovery",
            Self::Subscriptions => "subscriptions",
        }
    }

    #[must_use]
    pub fn events(self) -> &'static [EventType] {
        match self {
            Self::Fulfillment => FULFILLMENT_EVENTS,
            Self::Recovery => RECOVERY_EVENTS,
            Self::Subscriptions => SUBSCRIPTION_EVENTS,
        }
    }

    /// The sparse attribute (and index key) marking an event this consumer has not finished.
    #[must_use]
    pub fn pending_attribute(self) -> &'static str {
        match self {
            Self::Fulfillment => "pending_fulfillment",
            Self::Recovery => "pending_recovery",
            Self::Subscriptions => "pending_subscriptions",
        }
    }

    /// The index over `pending_attribute`, sorted by `received_at`.
    #[must_use]
    pub fn pending_index(self) -> &'static str {
        match self {
            Self::Fulfillment => "fulfillment-pending",
            Self::Recovery => "recovery-pending",
            Self::Subscriptions => "subscriptions-pending",
        }
    }

    pub(super) fn outcome_attribute(self) -> &'static str {
        match self {
            Self::Fulfillment => "outcome_fulfillment",
            Self::Recovery => "outcome_recovery",
            Self::Subscriptions => "outcome_subscriptions",
        }
    }

    pub(super) fn attempts_attribute(self) -> &'static str {
        match self {
            Self::Fulfillment => "attempts_fulfillment",
            Self::Recovery => "attempts_recovery",
            Self::Subscriptions => "attempts_subscriptions",
        }
    }
}

impl std::fmt::Display for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one consumer did with one event, last time it tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EventOutcome {
    /// Acted on (fulfilled, emailed, recorded). Final.
    Done { at: i64 },
    /// Nothing to do, for a stated reason (no consent, not this bundle's payment). Final.
    Skipped { reason: String, at: i64 },
    /// Not finished: the stream or the reconciler tries again; `reason` is a stable code,
    /// `error` the detail.
    Failed {
        reason: String,
        error: String,
        at: i64,
    },
}

impl EventOutcome {
    #[must_use]
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Failed { .. })
    }

    /// The outcome a consumer's handling ended with, at `at`; `code` names an error.
    pub fn of<E: std::fmt::Display>(
        result: &Result<Handled, E>,
        code: impl FnOnce(&E) -> &'static str,
        at: i64,
    ) -> Self {
        match result {
            Ok(Handled::Done) => Self::Done { at },
            Ok(Handled::Skipped(reason)) => Self::Skipped {
                reason: (*reason).into(),
                at,
            },
            Ok(Handled::Unresolved { reason, error }) => Self::Failed {
                reason: (*reason).into(),
                error: error.clone(),
                at,
            },
            Err(err) => Self::Failed {
                reason: code(err).into(),
                error: err.to_string(),
                at,
            },
        }
    }
}

/// How a consumer finished with an event, when its handler returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Done,
    Skipped(&'static str),
    /// Acknowledged to the stream, whose immediate retries cannot heal it (a Stripe 404),
    /// but not finished: left `failed` for the reconciler's re-drive with backoff.
    Unresolved {
        reason: &'static str,
        error: String,
    },
}
