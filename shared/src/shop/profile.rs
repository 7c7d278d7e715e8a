//! Whose shop an email is about: the name in its greeting and signature, the sender, the
//! postal address the law asks marketing emails to carry, the shop's URL. A platform's
//! connected merchants each have their own, so their customers hear from the shop they
//! bought from, not from the platform.

use serde::{Deserialize, Serialize};

use crate::mail::EmailAddress;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The shop's name, as its customers know it.
    pub name: Name,
    /// The sender; an identity verified in SES (a domain or this address).
    pub email_from: EmailAddress,
    /// Printed in the footer of every email (CAN-SPAM, the EU's e-commerce directive).
    pub postal_address: Name,
    /// The shop's home page, linked from the emails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<ShopUrl>,
}

/// 1 to 200 characters, on one line: it goes into an email header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl TryFrom<String> for Name {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let value = value.trim().to_string();
        if value.is_empty() || value.chars().count() > 200 {
            return Err("1 to 200 characters".into());
        }
        if value.chars().any(char::is_control) {
            return Err("one line, no control characters".into());
        }
        Ok(Self(value))
    }
}

impl From<Name> for String {
    fn from(name: Name) -> Self {
        name.0
    }
}

impl Name {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute `https://` URL (or `http://` for a local shop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShopUrl(String);

impl TryFrom<String> for ShopUrl {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let ok = (value.starts_with("https://") || value.starts_with("http://"))
            && value.len() <= 2048
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(Self(value))
        } else {
            Err("an absolute http(s) URL".into())
        }
    }
}

impl From<ShopUrl> for String {
    fn from(url: ShopUrl) -> Self {
        url.0
    }
}

impl ShopUrl {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
