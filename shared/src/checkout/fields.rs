//! The fields a merchant page's request is made of, each parsed into a type that can only
//! hold what Checkout accepts (a supported locale, metadata within Stripe's limits), and the
//! error that names a field at fault.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A request refused before Stripe is called, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: String,
    pub message: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checkout's supported locales.
const LOCALES: &[&str] = &[
    "auto", "bg", "cs", "da", "de", "el", "en", "en-GB", "es", "es-419", "et", "fi", "fil", "fr",
    "fr-CA", "hr", "hu", "id", "it", "ja", "ko", "lt", "lv", "ms", "mt", "nb", "nl", "pl", "pt",
    "pt-BR", "ro", "ru", "sk", "sl", "sv", "th", "tr", "vi", "zh", "zh-HK", "zh-TW",
];

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Locale(String);

impl TryFrom<String> for Locale {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if LOCALES.contains(&value.as_str()) {
            Ok(Self(value))
        } else {
            Err("not a locale Checkout supports (e.g. auto, en, fr, pt-BR)".into())
        }
    }
}

impl From<Locale> for String {
    fn from(locale: Locale) -> Self {
        locale.0
    }
}

impl Locale {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Stripe's metadata limits: 50 keys, keys up to 40 characters without square brackets,
/// values up to 500 characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct Metadata(BTreeMap<String, String>);

impl TryFrom<BTreeMap<String, String>> for Metadata {
    type Error = String;

    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        if map.len() > 50 {
            return Err("at most 50 keys".into());
        }
        if let Some(key) = map
            .keys()
            .find(|k| k.is_empty() || k.chars().count() > 40 || k.contains(['[', ']']))
        {
            return Err(format!(
                "key {key:?} must be 1 to 40 characters without [ or ]"
            ));
        }
        if let Some(key) = map
            .iter()
            .find(|(_, v)| v.chars().count() > 500)
            .map(|(k, _)| k)
        {
            return Err(format!("value of {key:?} is over 500 characters"));
        }
        Ok(Self(map))
    }
}

impl Metadata {
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

/// `client_reference_id`: the merchant's own reference for the buyer or cart (its user id),
/// within Stripe's limit of 200 characters. A browser's claim, not a proof: it is passed to
/// the order and to `Fulfil` as the caller sent it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientReference(String);

impl TryFrom<String> for ClientReference {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let len = value.chars().count();
        if len == 0 || len > 200 {
            return Err("1 to 200 characters".into());
        }
        if value.chars().any(char::is_control) {
            return Err("no control characters".into());
        }
        Ok(Self(value))
    }
}

impl From<ClientReference> for String {
    fn from(reference: ClientReference) -> Self {
        reference.0
    }
}

impl ClientReference {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
