//! The fulfillment function's configuration, read once at cold start.

use crate::config::{self, ConfigError, Source, TableName};
use crate::shop::ShopConfig;
use crate::stock::StockConfig;
use crate::stripe::StripeConfig;

#[derive(Debug, Clone)]
pub struct FulfillmentConfig {
    pub stripe: StripeConfig,
    pub orders_table: TableName,
    /// Where each event's outcome is recorded.
    pub events_table: TableName,
    pub sessions_table: TableName,
    /// Leases are the invocation's own deadline plus this margin (clock skew).
    pub lease_margin_secs: i64,
    /// Lease used where no deadline is known (the local stack).
    pub default_lease_secs: i64,
    /// `FULFIL_ON_PROCESSING` (default false): fulfil a marked PaymentIntent as soon as it
    /// is `processing` (digital goods); a later failure revokes it.
    pub fulfil_on_processing: bool,
    /// `CONNECT_FULFIL_FOREIGN_SESSIONS` (default false): act on a connected account's
    /// Checkout Sessions this bundle did not create (Stripe sends a Connect endpoint every
    /// connected account's events).
    pub fulfil_foreign_sessions: bool,
    /// The shop document: optional items (to mark the lines a customer added) and the
    /// profiles the confirmation email is branded with.
    pub shop: ShopConfig,
    /// Stock committed at fulfilment and released when a session expires (`STOCK_TABLE`).
    pub stock: StockConfig,
}

impl FulfillmentConfig {
    /// # Errors
    /// A missing or invalid variable, named.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            stripe: StripeConfig::from_env(env)?,
            orders_table: TableName::from_env(env, "ORDERS_TABLE")?,
            events_table: TableName::from_env(env, "EVENTS_TABLE")?,
            sessions_table: TableName::from_env(env, "SESSIONS_TABLE")?,
            lease_margin_secs: config::parsed_or(env, "FULFILLMENT_LEASE_MARGIN_SECS", 5)?,
            default_lease_secs: config::parsed_or(env, "FULFILLMENT_DEFAULT_LEASE_SECS", 30)?,
            fulfil_on_processing: config::parsed_or(env, "FULFIL_ON_PROCESSING", false)?,
            fulfil_foreign_sessions: config::parsed_or(
                env,
                "CONNECT_FULFIL_FOREIGN_SESSIONS",
                false,
            )?,
            shop: ShopConfig::from_env(env)?,
            stock: StockConfig::from_env(env)?,
        })
    }
}
