//! The store of billing objects (customers, subscriptions, invoices and their payments,
//! PaymentIntents of invoices, charges, refunds, disputes): each kept as the very JSON Stripe
//! returns, with the account it belongs to. One map for all of them, by id: Stripe's ids carry
//! their kind in the prefix, and `object` says it again.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// An object and the account (`Stripe-Account`) it was made under; `None` is the platform.
#[derive(Debug, Clone)]
pub(crate) struct Owned {
    pub account: Option<String>,
    pub object: Value,
}

#[derive(Debug, Default)]
pub(crate) struct Objects(BTreeMap<String, Owned>);

impl Objects {
    pub fn insert(&mut self, account: Option<&str>, object: Value) {
        let id = object["id"].as_str().unwrap_or_default().to_string();
        self.0.insert(
            id,
            Owned {
                account: account.map(str::to_string),
                object,
            },
        );
    }

    pub fn by_id(&self, id: &str) -> Option<&Owned> {
        self.0.get(id)
    }

    /// The object of this kind (`"subscription"`, `"invoice"`…), whatever its account: the
    /// developer's pages and the Rust controls act on every account.
    pub fn get(&self, kind: &str, id: &str) -> Option<&Owned> {
        self.0.get(id).filter(|o| o.object["object"] == kind)
    }

    pub fn get_mut(&mut self, kind: &str, id: &str) -> Option<&mut Value> {
        self.0
            .get_mut(id)
            .filter(|o| o.object["object"] == kind)
            .map(|o| &mut o.object)
    }

    /// As the API sees it: only under the account that made it, like sessions.
    pub fn scoped(&self, kind: &str, id: &str, account: Option<&str>) -> Option<&Value> {
        self.get(kind, id)
            .filter(|o| o.account.as_deref() == account)
            .map(|o| &o.object)
    }

    /// Every object of a kind, newest first (ids are random, so by `created`, then id).
    pub fn all(&self, kind: &str) -> Vec<&Owned> {
        let mut all: Vec<&Owned> = self
            .0
            .values()
            .filter(|o| o.object["object"] == kind)
            .collect();
        all.sort_by_key(|o| {
            std::cmp::Reverse((
                o.object["created"].as_i64().unwrap_or_default(),
                o.object["id"].as_str().unwrap_or_default().to_string(),
            ))
        });
        all
    }

    /// The first object of a kind whose `field` is `value` (a charge of a PaymentIntent…).
    pub fn find(&self, kind: &str, field: &str, value: &str) -> Option<&Owned> {
        self.0
            .values()
            .find(|o| o.object["object"] == kind && o.object[field] == value)
    }
}

/// An action of the developer's controls that Stripe would refuse, or that names nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevError {
    /// No object of this kind with this id (`kind` as Stripe's `object`, e.g. `"charge"`).
    NoSuch { kind: &'static str, id: String },
    /// The object exists but is not in a state that allows the action (Stripe's 400).
    Refused(String),
}

impl fmt::Display for DevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuch { kind, id } => write!(f, "No such {kind}: '{id}'"),
            Self::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DevError {}

pub(crate) fn no_such(kind: &'static str, id: &str) -> DevError {
    DevError::NoSuch {
        kind,
        id: id.to_string(),
    }
}

/// `data.previous_attributes` of an `*.updated` event: the top-level fields that changed,
/// with their values before, as Stripe sends them.
pub(crate) fn previous_attributes(before: &Value, after: &Value) -> Value {
    let (Value::Object(before), Value::Object(after)) = (before, after) else {
        return Value::Object(Map::new());
    };
    Value::Object(
        before
            .iter()
            .filter(|(key, old)| after.get(key.as_str()) != Some(old))
            .map(|(key, old)| (key.clone(), old.clone()))
            .collect(),
    )
}
