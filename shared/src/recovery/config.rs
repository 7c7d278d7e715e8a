//! The recovery function's configuration, read once at cold start.

use crate::config::{self, ConfigError, Secret, Source, TableName};
use crate::mail::{MailConfig, Templates};
use crate::shop::ShopConfig;
use crate::stripe::StripeConfig;

#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    pub stripe: StripeConfig,
    pub recovery_table: TableName,
    /// Sessions created here: a connected account's session this bundle did not create is
    /// not its to email about (unless `CONNECT_FULFIL_FOREIGN_SESSIONS`).
    pub sessions_table: TableName,
    pub foreign_sessions: bool,
    /// Where each event's outcome is recorded.
    pub events_table: TableName,
    /// The sender when no shop profile applies (`Recovery::sender`).
    pub mail: MailConfig,
    /// The sender's postal address, required in marketing email (CAN-SPAM); a shop profile's
    /// replaces it.
    pub postal_address: String,
    pub cooldown_secs: i64,
    /// A Stripe coupon to make one single-use promotion code per email from, when the
    /// session allowed promotion codes.
    pub coupon: Option<String>,
    pub unsubscribe_secret: Secret,
    /// The bundle's public base URL (API Gateway), for unsubscribe links.
    pub public_base_url: String,
    /// Where the payment-failed email sends the customer to order again; a shop profile's
    /// URL replaces it.
    pub shop_url: Option<String>,
    /// `PAYMENT_RETRY_URL`: the merchant's page to pay a failed Payment Element payment
    /// again, with `{PAYMENT_INTENT_ID}`; the shop's URL when unset.
    pub payment_retry_url: Option<String>,
    pub templates: Templates,
    /// The shop document: whose shop each email is from (`Shop::profile` of the session's,
    /// payment's or invoice's account).
    pub shop: ShopConfig,
}

impl RecoveryConfig {
    /// # Errors
    /// A missing or invalid variable, named, a template that does not compile, or a shop
    /// document that does not parse.
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
        let var = "PAYMENT_RETRY_URL";
        let payment_retry_url = config::optional(env, var);
        if let Some(url) = &payment_retry_url
            && (!(url.starts_with("https://") || url.starts_with("http://"))
                || !url.contains(super::PAYMENT_INTENT_PLACEHOLDER))
        {
            return Err(ConfigError::Invalid {
                var,
                reason: "an absolute http(s) URL with {PAYMENT_INTENT_ID}".into(),
            });
        }
        Ok(Self {
            stripe: StripeConfig::from_env(env)?,
            recovery_table: TableName::from_env(env, "RECOVERY_TABLE")?,
            sessions_table: TableName::from_env(env, "SESSIONS_TABLE")?,
            foreign_sessions: config::parsed_or(env, "CONNECT_FULFIL_FOREIGN_SESSIONS", false)?,
            events_table: TableName::from_env(env, "EVENTS_TABLE")?,
            mail: MailConfig::from_env(env)?,
            postal_address: config::required(env, "MERCHANT_POSTAL_ADDRESS")?,
            cooldown_secs: hours * 3600,
            coupon: config::optional(env, "RECOVERY_COUPON"),
            unsubscribe_secret: Secret::new(secret),
            public_base_url: public_base_url.trim_end_matches('/').to_string(),
            shop_url: config::optional(env, "MERCHANT_SHOP_URL"),
            payment_retry_url,
            templates: Templates::from_env(env)?,
            shop: ShopConfig::from_env(env)?,
        })
    }
}
