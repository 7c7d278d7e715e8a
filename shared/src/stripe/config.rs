//! How the client reaches Stripe: the key, the API base and the retry budget, read once at
//! cold start.

use std::time::Duration;

use crate::config::{self, ConfigError, Secret, Source};

const DEFAULT_API_BASE: &str = "https://api.stripe.com";

#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub secret_key: Secret,
    pub api_base: String,
    pub timeout: Duration,
    pub max_retries: u32,
    /// First retry waits up to this long; each next one doubles, capped at `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl StripeConfig {
    /// # Errors
    /// A missing or invalid variable, named.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let var = "STRIPE_SECRET_KEY";
        let key = config::required(env, var)?;
        if !(key.starts_with("sk_") || key.starts_with("rk_")) {
            return Err(ConfigError::Invalid {
                var,
                reason: "expected a secret (sk_…) or restricted (rk_…) API key".into(),
            });
        }
        let var = "STRIPE_API_BASE";
        let api_base = config::optional(env, var).unwrap_or_else(|| DEFAULT_API_BASE.into());
        let api_base =
            check_api_base(&api_base).map_err(|reason| ConfigError::Invalid { var, reason })?;
        Ok(Self {
            secret_key: Secret::new(key),
            api_base,
            timeout: Duration::from_secs(config::parsed_or(env, "STRIPE_TIMEOUT_SECS", 10)?),
            max_retries: config::parsed_or(env, "STRIPE_MAX_RETRIES", 2)?,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
        })
    }
}

/// The API key travels in every request: plain HTTP is only allowed to loopback (tests, the
/// local simulator).
fn check_api_base(base: &str) -> Result<String, String> {
    let uri: http::Uri = base.parse().map_err(|_| format!("{base:?} is not a URL"))?;
    let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        _ => return Err("must be https:// (http:// only to 127.0.0.1 or localhost)".into()),
    }
    Ok(base.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_must_be_https_except_on_loopback() {
        assert_eq!(
            check_api_base("https://api.stripe.com/").unwrap(),
            "https://api.stripe.com"
        );
        assert!(check_api_base("http://127.0.0.1:12111").is_ok());
        assert!(check_api_base("http://localhost:12111").is_ok());
        assert!(check_api_base("http://api.stripe.com").is_err());
        assert!(check_api_base("ftp://x").is_err());
        assert!(check_api_base("not a url").is_err());
    }

    #[test]
    fn config_names_the_bad_variable() {
        let err = StripeConfig::from_env(&[("STRIPE_SECRET_KEY", "pk_test_1")]).unwrap_err();
        assert!(err.to_string().contains("STRIPE_SECRET_KEY"));
        let err = StripeConfig::from_env(&[
            ("STRIPE_SECRET_KEY", "sk_test_1"),
            ("STRIPE_API_BASE", "http://evil.example"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("STRIPE_API_BASE"));
        assert!(
            !format!(
                "{:?}",
                StripeConfig::from_env(&[("STRIPE_SECRET_KEY", "sk_test_secret")]).unwrap()
            )
            .contains("sk_test_secret")
        );
    }
}
