//! create-session's configuration, parsed once at cold start.

use crate::callers::CallersConfig;
use crate::config::{self as env_config, ConfigError, Source, TableName};
use crate::ids::{AccountId, PriceId};
use crate::money::BasisPoints;
use crate::shop::ShopConfig;
use crate::stock::StockConfig;
use crate::stripe::StripeConfig;

use super::cors::Cors;
use super::payment::PaymentsPolicy;
use super::request::RequestLimits;

#[derive(Debug, Clone)]
pub struct CheckoutConfig {
    pub stripe: StripeConfig,
    pub sessions_table: TableName,
    /// Callers' `Idempotency-Key`s, kept 24 hours.
    pub requests_table: TableName,
    /// Who may name a customer: the merchant's API key and customer-token secret.
    pub callers: CallersConfig,
    pub payments: PaymentsPolicy,
    /// Hosted mode's redirect after payment; holds `{CHECKOUT_SESSION_ID}`.
    pub success_url: String,
    pub cancel_url: Option<String>,
    /// Embedded and custom modes' redirect; holds `{CHECKOUT_SESSION_ID}`. Unset: both are
    /// refused.
    pub return_url: Option<String>,
    pub expires_after_secs: i64,
    pub collect_promotions_consent: bool,
    pub recovery: bool,
    pub allow_promotion_codes: bool,
    pub limits: RequestLimits,
    pub cors: Cors,
    pub connect: ConnectConfig,
    /// The merchant's Checkout options, per account (`shop`).
    pub shop: ShopConfig,
    /// Stock reserved per session when `STOCK_TABLE` is set (`stock`).
    pub stock: StockConfig,
}

#[derive(Debug, Clone, Default)]
pub struct ConnectConfig {
    /// Connected accounts sessions may be created on; empty turns Connect off.
    pub accounts: Vec<AccountId>,
    pub fee: FeePolicy,
}

/// The platform's application fee: a percentage of the subtotal plus a fixed amount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeePolicy {
    pub percent: BasisPoints,
    /// In the smallest currency unit; one-time payments only (Stripe takes a percent on
    /// subscriptions).
    pub fixed_amount: i64,
}

impl FeePolicy {
    /// Rounded half up to the smallest currency unit, and never more than the subtotal.
    #[must_use]
    pub fn fee_on(&self, subtotal: i64) -> i64 {
        self.percent
            .of(subtotal)
            .saturating_add(self.fixed_amount)
            .clamp(0, subtotal.max(0))
    }
}

const SESSION_ID_PLACEHOLDER: &str = "{CHECKOUT_SESSION_ID}";

fn url_var(
    env: &impl Source,
    var: &'static str,
    needs_placeholder: bool,
) -> Result<Option<String>, ConfigError> {
    let Some(url) = env_config::optional(env, var) else {
        return Ok(None);
    };
    let invalid = |reason: &str| ConfigError::Invalid {
        var,
        reason: reason.into(),
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid("must be an absolute http(s) URL"));
    }
    if needs_placeholder && !url.contains(SESSION_ID_PLACEHOLDER) {
        return Err(invalid(
            "must contain {CHECKOUT_SESSION_ID} so the landing page can fulfil the order",
        ));
    }
    Ok(Some(url))
}

impl CheckoutConfig {
    /// # Errors
    /// A missing or invalid variable, named.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let success_url = url_var(env, "CHECKOUT_SUCCESS_URL", true)?
            .ok_or(ConfigError::Missing("CHECKOUT_SUCCESS_URL"))?;
        let expires_after_minutes: i64 =
            env_config::parsed_or(env, "CHECKOUT_EXPIRES_AFTER_MINUTES", 240)?;
        if !(30..=1440).contains(&expires_after_minutes) {
            return Err(ConfigError::Invalid {
                var: "CHECKOUT_EXPIRES_AFTER_MINUTES",
                reason: "Stripe allows 30 minutes to 24 hours (30 to 1440)".into(),
            });
        }
        let allowed_prices: Vec<PriceId> = env_config::list(env, "CHECKOUT_ALLOWED_PRICES")?;
        let setup_future_usage = env_config::optional(env, "PAYMENTS_SETUP_FUTURE_USAGE");
        if let Some(usage) = &setup_future_usage
            && usage != "off_session"
            && usage != "on_session"
        {
            return Err(ConfigError::Invalid {
                var: "PAYMENTS_SETUP_FUTURE_USAGE",
                reason: "off_session or on_session (or unset)".into(),
            });
        }
        Ok(Self {
            stripe: StripeConfig::from_env(env)?,
            sessions_table: TableName::from_env(env, "SESSIONS_TABLE")?,
            requests_table: TableName::from_env(env, "REQUESTS_TABLE")?,
            callers: CallersConfig::from_env(env)?,
            payments: PaymentsPolicy {
                setup_future_usage,
                allow_save: env_config::parsed_or(env, "PAYMENTS_ALLOW_SAVE", true)?,
                allow_remove: env_config::parsed_or(env, "PAYMENTS_ALLOW_REMOVE", false)?,
            },
            success_url,
            cancel_url: url_var(env, "CHECKOUT_CANCEL_URL", false)?,
            return_url: url_var(env, "CHECKOUT_RETURN_URL", true)?,
            expires_after_secs: expires_after_minutes * 60,
            collect_promotions_consent: env_config::parsed_or(
                env,
                "CHECKOUT_COLLECT_CONSENT",
                true,
            )?,
            recovery: env_config::parsed_or(env, "CHECKOUT_RECOVERY", true)?,
            allow_promotion_codes: env_config::parsed_or(
                env,
                "CHECKOUT_ALLOW_PROMOTION_CODES",
                true,
            )?,
            limits: RequestLimits {
                max_quantity: env_config::parsed_or(env, "CHECKOUT_MAX_QUANTITY", 99)?,
                allowed_prices: (!allowed_prices.is_empty()).then_some(allowed_prices),
            },
            cors: Cors::new(env_config::list(env, "ALLOWED_ORIGINS")?),
            connect: ConnectConfig {
                accounts: env_config::list(env, "CONNECT_ACCOUNTS")?,
                fee: FeePolicy {
                    percent: env_config::parsed_or(env, "CONNECT_FEE_PERCENT", BasisPoints::ZERO)?,
                    fixed_amount: env_config::parsed_or(env, "CONNECT_FEE_FIXED", 0)?,
                },
            },
            shop: ShopConfig::from_env(env)?,
            stock: StockConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 4] = [
        ("STRIPE_SECRET_KEY", "sk_test_x"),
        ("SESSIONS_TABLE", "sessions"),
        ("REQUESTS_TABLE", "requests"),
        (
            "CHECKOUT_SUCCESS_URL",
            "https://shop.example/thanks?session_id={CHECKOUT_SESSION_ID}",
        ),
    ];

    #[test]
    fn defaults() {
        let config = CheckoutConfig::from_env(&BASE).unwrap();
        assert!(
            config.collect_promotions_consent && config.recovery && config.allow_promotion_codes
        );
        assert_eq!(config.expires_after_secs, 4 * 3600);
        assert_eq!(config.return_url, None);
        assert!(config.connect.accounts.is_empty());
    }

    #[test]
    fn errors_name_the_variable() {
        let no_placeholder = [
            ("STRIPE_SECRET_KEY", "sk_test_x"),
            ("SESSIONS_TABLE", "sessions"),
            ("REQUESTS_TABLE", "requests"),
            ("CHECKOUT_SUCCESS_URL", "https://shop.example/thanks"),
        ];
        let err = CheckoutConfig::from_env(&no_placeholder)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CHECKOUT_SUCCESS_URL") && err.contains("{CHECKOUT_SESSION_ID}"),
            "{err}"
        );
        let err = CheckoutConfig::from_env(&[("STRIPE_SECRET_KEY", "sk_test_x")]).unwrap_err();
        assert_eq!(err, ConfigError::Missing("CHECKOUT_SUCCESS_URL"));
    }

    #[test]
    fn fees_round_and_never_exceed_the_subtotal() {
        let fee = FeePolicy {
            percent: BasisPoints::new(250).unwrap(),
            fixed_amount: 30,
        };
        assert_eq!(fee.fee_on(2000), 80);
        assert_eq!(fee.fee_on(999), 55);
        assert_eq!(fee.fee_on(10), 10);
        assert_eq!(FeePolicy::default().fee_on(5000), 0);
    }
}
