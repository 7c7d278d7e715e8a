//! The shop document: what the merchant decides about its shop, read once at cold start.
//!
//! ```json
//! {
//!   "checkout": { "shipping_address_collection": { "allowed_countries": ["FR", "DE"] } },
//!   "profile": { "name": "Le Comptoir", "email_from": "orders@comptoir.example",
//!                "postal_address": "1 rue de la Paix, 75002 Paris, France",
//!                "url": "https://comptoir.example" },
//!   "accounts": { "acct_…": { "checkout": { … }, "profile": { … } } }
//! }
//! ```
//!
//! - `checkout` (`policy`): the Checkout options every session gets, in Stripe's own shapes.
//! - `profile` (`profile`): who the emails come from and whose shop they are about.
//! - `accounts`: a Connect platform's connected accounts, each with its own `checkout` and
//!   `profile`; a part an account leaves out falls back to the platform's.
//!
//! In AWS the document is the value of the SSM parameter `SHOP_POLICY_PARAMETER` names
//! (read at cold start with the secrets, `secrets::resolve`, into `SHOP_POLICY`); locally a
//! file, `SHOP_POLICY_FILE`. Unset: no options beyond the bundle's own, no profiles.
//! An unknown key or a value Stripe would refuse stops the cold start, the key named
//! (`checkout.custom_fields[0].label.custom: 1 to 50 characters`).

mod policy;
mod profile;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Deserialize;

pub use policy::{
    AdjustableQuantity, CheckoutPolicy, CountryCode, CustomFieldSpec, OPTION_KEYS, OptionalItem,
    SessionKind,
};
pub use profile::Profile;

use crate::config::{self, ConfigError, Source};
use crate::ids::AccountId;

/// The shop policy as a JSON value (what `SHOP_POLICY_PARAMETER` resolves into).
pub const POLICY_VAR: &str = "SHOP_POLICY";
/// A file holding the document, for the local stack and tests.
pub const POLICY_FILE_VAR: &str = "SHOP_POLICY_FILE";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    checkout: CheckoutPolicy,
    #[serde(default)]
    profile: Option<Profile>,
    #[serde(default)]
    accounts: HashMap<AccountId, AccountEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    #[serde(default)]
    checkout: Option<CheckoutPolicy>,
    #[serde(default)]
    profile: Option<Profile>,
}

/// The parsed document, per account.
#[derive(Debug, Default)]
pub struct Shop {
    document: Document,
    /// Accounts whose missing profile was already logged, so the log says it once.
    logged: Mutex<HashSet<AccountId>>,
}

impl Shop {
    /// # Errors
    /// A key that is unknown or a value out of Stripe's limits: `path: reason`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let document: Document =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
                let path = err.path().to_string();
                let inner = err.into_inner().to_string();
                // serde_json's own position is of little use once the path is known.
                let inner = inner.split(" at line ").next().unwrap_or_default();
                if path == "." {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                }
            })?;
        let check = |prefix: &str, policy: &CheckoutPolicy| {
            policy
                .check()
                .map_err(|(path, reason)| format!("{prefix}{path}: {reason}"))
        };
        check("checkout.", &document.checkout)?;
        for (account, entry) in &document.accounts {
            if let Some(policy) = &entry.checkout {
                check(&format!("accounts.{account}.checkout."), policy)?;
            }
        }
        Ok(Self {
            document,
            logged: Mutex::default(),
        })
    }

    /// The Checkout options of `account`'s sessions (the platform's when it has none).
    #[must_use]
    pub fn checkout(&self, account: Option<&AccountId>) -> &CheckoutPolicy {
        account
            .and_then(|a| self.document.accounts.get(a))
            .and_then(|entry| entry.checkout.as_ref())
            .unwrap_or(&self.document.checkout)
    }

    /// Whose emails these are: `account`'s profile, else the platform's (logged once per
    /// account, since a connected merchant's customers then get the platform's name).
    #[must_use]
    pub fn profile(&self, account: Option<&AccountId>) -> Option<&Profile> {
        let Some(account) = account else {
            return self.document.profile.as_ref();
        };
        if let Some(profile) = self
            .document
            .accounts
            .get(account)
            .and_then(|entry| entry.profile.as_ref())
        {
            return Some(profile);
        }
        let first = self
            .logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(account.clone());
        if first {
            tracing::warn!(
                account = account.as_str(),
                "no shop profile for this connected account: its emails carry the platform's"
            );
        }
        self.document.profile.as_ref()
    }
}

/// Where the shop document is read from.
#[derive(Debug, Clone, Default)]
pub struct ShopConfig {
    pub shop: std::sync::Arc<Shop>,
}

impl ShopConfig {
    /// `SHOP_POLICY` (the document itself, from SSM in AWS) or `SHOP_POLICY_FILE` (a path);
    /// neither: an empty document.
    ///
    /// # Errors
    /// Both set, the file unreadable, or the document invalid: the variable and the key named.
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        let inline = config::optional(env, POLICY_VAR);
        let file = config::optional(env, POLICY_FILE_VAR);
        let (var, text) = match (inline, file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    var: POLICY_FILE_VAR,
                    reason:
                        "set SHOP_POLICY (or SHOP_POLICY_PARAMETER) or SHOP_POLICY_FILE, not both"
                            .into(),
                });
            }
            (Some(text), None) => (POLICY_VAR, text),
            (None, Some(path)) => (
                POLICY_FILE_VAR,
                std::fs::read_to_string(&path).map_err(|err| ConfigError::Invalid {
                    var: POLICY_FILE_VAR,
                    reason: format!("{path}: {err}"),
                })?,
            ),
            (None, None) => return Ok(Self::default()),
        };
        let shop = Shop::parse(&text).map_err(|reason| ConfigError::Invalid { var, reason })?;
        Ok(Self {
            shop: std::sync::Arc::new(shop),
        })
    }
}

#[cfg(test)]
mod tests;
