//! Who is calling a public route, and who may name a Stripe customer.
//!
//! Two kinds of caller:
//! - **Server calls** carry `Authorization: Bearer <MERCHANT_API_KEY>`, compared in constant
//!   time. The merchant's own server may name any customer (`customer: "cus_…"`).
//! - **Browser calls** carry no `Authorization`. They never name a customer directly: a raw
//!   `customer` is refused before Stripe is called (`customer_requires_token`), so no script
//!   can open a payment on another shopper's Customer (their email, their saved cards) or use
//!   the answers as an oracle for which ids exist. They may send a `customer_token` the
//!   merchant's server minted after its login (`token`).
//!
//! A wrong or malformed `Authorization` is refused (401), never downgraded to a browser call.

mod token;

use http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

pub use token::{CustomerClaims, MAX_LIFETIME_SECS, TokenError, mint, verify};

use crate::config::{self, ConfigError, Secret, Source};
use crate::http::ApiError;
use crate::ids::CustomerId;

/// Keys and secrets shorter than this are refused at cold start: they are guessable.
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct CallersConfig {
    /// `MERCHANT_API_KEY`: server calls are refused (401) when unset.
    pub merchant_api_key: Option<Secret>,
    /// `CUSTOMER_TOKEN_SECRET`: customer tokens are refused when unset.
    pub customer_token_secret: Option<Secret>,
}

impl CallersConfig {
    /// # Errors
    /// A key or secret shorter than 32 bytes.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let secret = |var: &'static str| {
            config::optional(env, var)
                .map(|value| {
                    if value.len() < MIN_SECRET_BYTES {
                        Err(ConfigError::Invalid {
                            var,
                            reason: format!(
                                "at least {MIN_SECRET_BYTES} characters of random data"
                            ),
                        })
                    } else {
                        Ok(Secret::new(value))
                    }
                })
                .transpose()
        };
        Ok(Self {
            merchant_api_key: secret("MERCHANT_API_KEY")?,
            customer_token_secret: secret("CUSTOMER_TOKEN_SECRET")?,
        })
    }
}

/// Who made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The merchant's server, authenticated by its API key.
    Server,
    /// Anyone else: a browser.
    Browser,
}

/// A customer a request may act for, and how it was vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VouchedCustomer {
    pub customer: CustomerId,
    /// From a token's claims; a server call sets its own.
    pub client_reference_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    #[error("Authorization must be `Bearer <MERCHANT_API_KEY>`")]
    Unauthorized,
    #[error("a browser call names a customer with customer_token, minted by the merchant's server")]
    CustomerRequiresToken,
    #[error("customer_token: {0}")]
    InvalidToken(TokenError),
    #[error("customer_token: customer tokens are not enabled here (CUSTOMER_TOKEN_SECRET)")]
    TokensOff,
    #[error("give customer or customer_token, not both")]
    BothCustomerAndToken,
}

impl ApiError for CallerError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::CustomerRequiresToken => "customer_requires_token",
            Self::InvalidToken(_) | Self::TokensOff => "invalid_customer_token",
            Self::BothCustomerAndToken => "invalid_request",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::Unauthorized => None,
            Self::CustomerRequiresToken => Some("customer"),
            _ => Some("customer_token"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Callers {
    config: CallersConfig,
}

impl Callers {
    #[must_use]
    pub fn new(config: CallersConfig) -> Self {
        Self { config }
    }

    /// Server or browser, from `Authorization`.
    ///
    /// # Errors
    /// `Authorization` is present but not the merchant's API key (or none is configured).
    pub fn identify(&self, headers: &HeaderMap) -> Result<Caller, CallerError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(Caller::Browser);
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(CallerError::Unauthorized)?;
        let Some(key) = &self.config.merchant_api_key else {
            return Err(CallerError::Unauthorized);
        };
        // Equal lengths compared in constant time; a length mismatch says only that.
        if bool::from(presented.as_bytes().ct_eq(key.expose().as_bytes())) {
            Ok(Caller::Server)
        } else {
            Err(CallerError::Unauthorized)
        }
    }

    /// The customer a request may act for: a server call's `customer`, or a browser call's
    /// verified `customer_token`; `None` for a guest.
    ///
    /// # Errors
    /// A browser naming a raw customer, a token that does not verify, or both given.
    pub fn customer(
        &self,
        caller: Caller,
        customer: Option<&CustomerId>,
        token: Option<&str>,
        now: i64,
    ) -> Result<Option<VouchedCustomer>, CallerError> {
        match (caller, customer, token) {
            (_, Some(_), Some(_)) => Err(CallerError::BothCustomerAndToken),
            (Caller::Browser, Some(_), None) => Err(CallerError::CustomerRequiresToken),
            (Caller::Server, Some(customer), None) => Ok(Some(VouchedCustomer {
                customer: customer.clone(),
                client_reference_id: None,
            })),
            (_, None, Some(token)) => {
                let secret = self
                    .config
                    .customer_token_secret
                    .as_ref()
                    .ok_or(CallerError::TokensOff)?;
                let claims = verify(secret.expose().as_bytes(), token, now)
                    .map_err(CallerError::InvalidToken)?;
                Ok(Some(VouchedCustomer {
                    customer: claims.customer,
                    client_reference_id: claims.client_reference_id,
                }))
            }
            (_, None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "mk_a-merchant-api-key-of-32-bytes-at-least";
    const SECRET: &str = "a-customer-token-secret-of-32-bytes!";

    fn callers() -> Callers {
        Callers::new(CallersConfig {
            merchant_api_key: Some(Secret::new(KEY)),
            customer_token_secret: Some(Secret::new(SECRET)),
        })
    }

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn callers_are_told_apart_by_the_merchant_key_only() {
        let c = callers();
        assert_eq!(c.identify(&headers(None)), Ok(Caller::Browser));
        assert_eq!(
            c.identify(&headers(Some(&format!("Bearer {KEY}")))),
            Ok(Caller::Server)
        );
        for bad in [
            format!("Bearer {KEY}x"),
            format!("Bearer {}", &KEY[..KEY.len() - 1]),
            format!("bearer {KEY}"),
            KEY.to_string(),
            "Basic dXNlcjpwYXNz".into(),
            "Bearer ".into(),
        ] {
            assert_eq!(
                c.identify(&headers(Some(&bad))),
                Err(CallerError::Unauthorized),
                "{bad}"
            );
        }
        let unkeyed = Callers::new(CallersConfig::default());
        assert_eq!(
            unkeyed.identify(&headers(Some(&format!("Bearer {KEY}")))),
            Err(CallerError::Unauthorized),
            "no key configured: no server calls"
        );
    }

    #[test]
    fn only_a_server_or_a_token_names_a_customer() {
        let c = callers();
        let now = 1_796_000_000;
        let cus: CustomerId = "cus_1".parse().unwrap();
        let token = mint(
            SECRET.as_bytes(),
            &CustomerClaims {
                customer: "cus_2".parse().unwrap(),
                client_reference_id: Some("u2".into()),
                exp: now + 60,
            },
        );
        assert_eq!(
            c.customer(Caller::Browser, Some(&cus), None, now),
            Err(CallerError::CustomerRequiresToken)
        );
        assert_eq!(
            c.customer(Caller::Server, Some(&cus), None, now)
                .unwrap()
                .unwrap()
                .customer,
            cus
        );
        let vouched = c
            .customer(Caller::Browser, None, Some(&token), now)
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                vouched.customer.as_str(),
                vouched.client_reference_id.as_deref()
            ),
            ("cus_2", Some("u2"))
        );
        assert_eq!(
            c.customer(Caller::Browser, Some(&cus), Some(&token), now),
            Err(CallerError::BothCustomerAndToken)
        );
        assert_eq!(
            c.customer(Caller::Browser, None, Some(&token), now + 61),
            Err(CallerError::InvalidToken(TokenError::Expired))
        );
        assert_eq!(c.customer(Caller::Browser, None, None, now), Ok(None));
        assert_eq!(
            Callers::new(CallersConfig::default()).customer(
                Caller::Browser,
                None,
                Some(&token),
                now
            ),
            Err(CallerError::TokensOff)
        );
    }
}
