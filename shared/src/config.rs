//! Configuration read once at cold start from the environment.
//!
//! Every function builds its own typed config from these readers, so a missing or invalid
//! variable fails the cold start with an error that names it, instead of failing later on
//! the first request.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// Where variables come from: the process environment in production, a map in tests.
pub trait Source {
    fn get(&self, var: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, var: &str) -> Option<String> {
        std::env::var(var).ok()
    }
}

/// Another source with some variables set over it: secrets read from Parameter Store, or
/// what the local stack sets for the Stripe simulator.
pub struct Layered<S> {
    base: S,
    over: std::collections::HashMap<&'static str, String>,
}

impl<S: Source> Layered<S> {
    pub fn new(base: S, over: impl IntoIterator<Item = (&'static str, String)>) -> Self {
        Self {
            base,
            over: over.into_iter().collect(),
        }
    }
}

impl<S: Source> Source for Layered<S> {
    fn get(&self, var: &str) -> Option<String> {
        match self.over.get(var) {
            Some(value) => Some(value.clone()),
            None => self.base.get(var),
        }
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, var: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| v.to_string())
    }
}

/// Reads a variable; an empty value counts as unset, as it does for AWS's own variables.
pub fn optional(env: &impl Source, var: &'static str) -> Option<String> {
    env.get(var).filter(|v| !v.trim().is_empty())
}

/// # Errors
/// The variable is unset or empty.
pub fn required(env: &impl Source, var: &'static str) -> Result<String, ConfigError> {
    optional(env, var).ok_or(ConfigError::Missing(var))
}

/// Parses a variable when set, otherwise returns `default`.
///
/// # Errors
/// The variable is set but does not parse.
pub fn parsed_or<T>(env: &impl Source, var: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match optional(env, var) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                var,
                reason: e.to_string(),
            }),
    }
}

/// A comma-separated list, each entry parsed; unset or empty is an empty list.
///
/// # Errors
/// An entry that does not parse, quoted.
pub fn list<T: std::str::FromStr>(
    env: &impl Source,
    var: &'static str,
) -> Result<Vec<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    optional(env, var)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|e: T::Err| ConfigError::Invalid {
                var,
                reason: format!("{s:?}: {e}"),
            })
        })
        .collect()
}

/// A secret value: never printed by `Debug` or `Display`, so it cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A DynamoDB table name, checked against DynamoDB's naming rules at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(String);

impl TableName {
    /// # Errors
    /// The variable is unset, or not a valid DynamoDB table name.
    pub fn from_env(env: &impl Source, var: &'static str) -> Result<Self, ConfigError> {
        let raw = required(env, var)?;
        raw.parse()
            .map_err(|reason| ConfigError::Invalid { var, reason })
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TableName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if (3..=255).contains(&s.len()) && valid_chars {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a DynamoDB table name (3-255 of a-z, A-Z, 0-9, _ - .)"
            ))
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_invalid_variables_are_named() {
        let env = [("EMPTY", " "), ("BAD_NUMBER", "ten"), ("TABLE", "x")];
        assert_eq!(required(&env, "NOPE"), Err(ConfigError::Missing("NOPE")));
        assert_eq!(required(&env, "EMPTY"), Err(ConfigError::Missing("EMPTY")));
        let err = parsed_or::<u64>(&env, "BAD_NUMBER", 1).unwrap_err();
        assert!(err.to_string().contains("BAD_NUMBER"), "{err}");
        let err = TableName::from_env(&env, "TABLE").unwrap_err();
        assert!(err.to_string().contains("TABLE"), "{err}");
        assert_eq!(parsed_or::<u64>(&env, "UNSET", 7), Ok(7));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("whsec_topsecret");
        assert!(!format!("{s:?}").contains("topsecret"));
    }
}
