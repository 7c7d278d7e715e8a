//! Entitlements, the merchant's second seam beside `Fulfil`: what a customer may use. The
//! bundle calls `grant` when an order is fulfilled or a subscription is paid (and again to
//! extend it at each renewal) and `revoke` when a subscription ends or an order is fully
//! refunded or lost in a dispute, once per change (`store::AccessLedger`).
//!
//! Calls are at-least-once (a crash between the call and its record repeats it), keyed by
//! the order or subscription id, so an implementation can be idempotent on `key`. The
//! default, `AccessTable`, records one item per holder and product in the access table.

use std::future::Future;

use serde::Serialize;

use crate::clock::Clock;
use crate::config::{ConfigError, Source, TableName};
use crate::ids::{AccountId, CustomerId};
use crate::store::{AccessStore, DynamoDb};

/// Access to grant: `products` to `holder`, until `until` (`None`: no end; a subscription's
/// is the end of its paid period plus the grace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The order or subscription id that grants it.
    pub key: String,
    pub account: Option<AccountId>,
    pub holder: String,
    pub products: Vec<String>,
    pub until: Option<i64>,
}

/// Access to take back, granted earlier under the same `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revoke {
    pub key: String,
    pub account: Option<AccountId>,
    pub holder: String,
    pub products: Vec<String>,
    /// Why: `subscription_canceled`, `subscription_unpaid`, `refunded`, `dispute_lost`, …
    pub reason: &'static str,
}

/// An error from an `Entitle` implementation: the change is not recorded and its trigger
/// is retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EntitleError(pub String);

/// The merchant's access control.
pub trait Entitle: Send + Sync {
    fn grant(&self, grant: &Grant) -> impl Future<Output = Result<(), EntitleError>> + Send;
    fn revoke(&self, revoke: &Revoke) -> impl Future<Output = Result<(), EntitleError>> + Send;
}

/// Who holds access: the Stripe customer when there is one, else the merchant's own
/// reference (`client_reference_id`, as `ref:<id>`), else the buyer's email (as
/// `email:<address>`, lower-cased). `None` when the order names nobody.
#[must_use]
pub fn holder(
    customer: Option<&CustomerId>,
    client_reference_id: Option<&str>,
    email: Option<&str>,
) -> Option<String> {
    customer
        .map(|c| c.as_str().to_string())
        .or_else(|| client_reference_id.map(|r| format!("ref:{r}")))
        .or_else(|| email.map(|e| format!("email:{}", e.trim().to_lowercase())))
}

#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub access_table: TableName,
}

impl AccessConfig {
    /// # Errors
    /// `ACCESS_TABLE` is missing or invalid.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            access_table: TableName::from_env(env, "ACCESS_TABLE")?,
        })
    }
}

/// The default `Entitle`: the access table.
#[derive(Debug, Clone)]
pub struct AccessTable {
    store: AccessStore,
    clock: Clock,
}

impl AccessTable {
    #[must_use]
    pub fn new(config: AccessConfig, dynamodb: DynamoDb) -> Self {
        Self {
            store: AccessStore::new(config.access_table, dynamodb),
            clock: Clock::system(),
        }
    }

    /// The same table reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    #[must_use]
    pub fn store(&self) -> &AccessStore {
        &self.store
    }
}

impl Entitle for AccessTable {
    async fn grant(&self, grant: &Grant) -> Result<(), EntitleError> {
        let now = self.clock.now();
        for product in &grant.products {
            self.store
                .grant(
                    &grant.holder,
                    product,
                    grant.until,
                    &grant.key,
                    grant.account.as_ref(),
                    now,
                )
                .await
                .map_err(|e| EntitleError(e.to_string()))?;
        }
        Ok(())
    }

    async fn revoke(&self, revoke: &Revoke) -> Result<(), EntitleError> {
        let now = self.clock.now();
        for product in &revoke.products {
            self.store
                .revoke(&revoke.holder, product, &revoke.key, now)
                .await
                .map_err(|e| EntitleError(e.to_string()))?;
        }
        Ok(())
    }
}
