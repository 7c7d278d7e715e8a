//! How the client reaches Stripe: the key, the API base and the retry budget, read once at
//! cold start.

use std::time::Duration;

use crate::config::{self, ConfigError, Secret, Source};

const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// Test or live: Stripe keeps the two apart, and so does the bundle. A live deployment never
/// acts on a test event (a Connect endpoint receives connected accounts' test events too),
/// nor a test one on a live event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeMode {
    Test,
    Live,
}

impl StripeMode {
    /// The mode of an API key: `sk_live_…`, `rk_live_…` are live, every other key is test.
    #[must_use]
    pub fn of_key(key: &str) -> Self {
        if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
            Self::Live
        } else {
            Self::Test
        }
    }

    #[must_use]
    pub fn is_live(self) -> bool {
        self == Self::Live
    }

    /// `STRIPE_MODE` (`test` or `live`), else the key's mode when the function has the key
    /// (`STRIPE_SECRET_KEY`), else test.
    ///
    /// # Errors
    /// `STRIPE_MODE` is neither `test` nor `live`, or contradicts the key.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let var = "STRIPE_MODE";
        let key = config::optional(env, "STRIPE_SECRET_KEY").map(|k| Self::of_key(&k));
        let named = match config::optional(env, var).as_deref() {
            None => None,
            Some("test") => Some(Self::Test),
            Some("live") => Some(Self::Live),
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var,
                    reason: "test or live".into(),
                });
            }
        };
        match (named, key) {
            (Some(named), Some(key)) if named != key => Err(ConfigError::Invalid {
                var,
                reason:
                    "contradicts STRIPE_SECRET_KEY (sk_live_/rk_live_ keys are live, others test)"
                        .into(),
            }),
            (Some(mode), _) | (None, Some(mode)) => Ok(mode),
            (None, None) => Ok(Self::Test),
        }
    }
}

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
        StripeMode::from_env(env)?;
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
    fn the_mode_follows_the_key_and_may_not_contradict_it() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(StripeMode::from_env(&none), Ok(StripeMode::Test));
        assert_eq!(
            StripeMode::from_env(&[("STRIPE_MODE", "live")]),
            Ok(StripeMode::Live)
        );
        assert_eq!(
            StripeMode::from_env(&[("STRIPE_SECRET_KEY", "rk_live_1")]),
            Ok(StripeMode::Live)
        );
        assert_eq!(
            StripeMode::from_env(&[("STRIPE_SECRET_KEY", "sk_test_1")]),
            Ok(StripeMode::Test)
        );
        assert!(
            StripeMode::from_env(&[("STRIPE_SECRET_KEY", "sk_live_1"), ("STRIPE_MODE", "test")])
                .is_err()
        );
        assert!(StripeMode::from_env(&[("STRIPE_MODE", "prod")]).is_err());
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
