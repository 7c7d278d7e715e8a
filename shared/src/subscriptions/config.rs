//! The subscriptions function's configuration, read once at cold start.

use crate::access::AccessConfig;
use crate::config::{self, ConfigError, Source, TableName};
use crate::stripe::StripeConfig;

#[derive(Debug, Clone)]
pub struct SubscriptionsConfig {
    pub stripe: StripeConfig,
    /// Where each event's outcome is recorded.
    pub events_table: TableName,
    pub subscriptions_table: TableName,
    pub access: AccessConfig,
    /// How long access outlives the paid period (`ACCESS_GRACE_DAYS`, default 3): a
    /// `past_due` customer keeps access while Stripe retries the renewal.
    pub grace_secs: i64,
    /// Leases are the invocation's own deadline plus this margin (clock skew).
    pub lease_margin_secs: i64,
    /// Lease used where no deadline is known (the local stack).
    pub default_lease_secs: i64,
}

impl SubscriptionsConfig {
    /// # Errors
    /// A missing or invalid variable, named.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let grace_days: u32 = config::parsed_or(env, "ACCESS_GRACE_DAYS", 3)?;
        Ok(Self {
            stripe: StripeConfig::from_env(env)?,
            events_table: TableName::from_env(env, "EVENTS_TABLE")?,
            subscriptions_table: TableName::from_env(env, "SUBSCRIPTIONS_TABLE")?,
            access: AccessConfig::from_env(env)?,
            grace_secs: i64::from(grace_days) * 86_400,
            lease_margin_secs: config::parsed_or(env, "FULFILLMENT_LEASE_MARGIN_SECS", 5)?,
            default_lease_secs: config::parsed_or(env, "FULFILLMENT_DEFAULT_LEASE_SECS", 30)?,
        })
    }
}
