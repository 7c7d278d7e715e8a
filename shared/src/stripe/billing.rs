//! The shapes of Stripe's after-the-sale objects at the pinned API version: subscriptions and
//! their invoices, charges with their refunds, disputes. Only the fields the bundle reads are
//! typed; both fixture sets (`shared/tests/fixtures/stripe`) parse, since webhooks arrive in the
//! endpoint's API version.
//!
//! At `2025-03-31.basil` a subscription's period lives on each item
//! (`items.data[].current_period_end`), an invoice names its subscription under
//! `parent.subscription_details`, and a PaymentIntent no longer says which invoice it pays.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{List, Price};
use crate::ids::{CustomerId, InvoiceId, PaymentIntentId, SubscriptionId};
use crate::money::Currency;

/// Stripe's subscription statuses. `canceled` and `incomplete_expired` are final: Stripe
/// never moves a subscription out of them, so neither does the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Unpaid,
    Paused,
}

impl SubscriptionStatus {
    pub const FINAL: [Self; 2] = [Self::Canceled, Self::IncompleteExpired];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Unpaid => "unpaid",
            Self::Paused => "paused",
        }
    }

    #[must_use]
    pub fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
    }

    /// Whether the customer keeps access in this status (`past_due` within the grace).
    #[must_use]
    pub fn grants_access(self) -> bool {
        matches!(self, Self::Trialing | Self::Active | Self::PastDue)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub status: SubscriptionStatus,
    /// An id, or the customer object when expanded.
    pub customer: serde_json::Value,
    pub items: List<SubscriptionItem>,
    /// `null` in some of Stripe's payloads: read as `false`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cancel_at_period_end: bool,
    #[serde(default)]
    pub canceled_at: Option<i64>,
    #[serde(default)]
    pub ended_at: Option<i64>,
    #[serde(default)]
    pub created: Option<i64>,
    /// An id, or the invoice object when expanded.
    #[serde(default)]
    pub latest_invoice: Option<serde_json::Value>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Subscription {
    #[must_use]
    pub fn customer_id(&self) -> Option<CustomerId> {
        id_of(&self.customer)?.parse().ok()
    }

    /// The end of the period paid for: the latest of its items' periods.
    #[must_use]
    pub fn current_period_end(&self) -> Option<i64> {
        self.items
            .data
            .iter()
            .filter_map(|item| item.current_period_end)
            .max()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionItem {
    pub id: String,
    #[serde(default)]
    pub price: Option<Price>,
    #[serde(default)]
    pub quantity: Option<u64>,
    #[serde(default)]
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingReason {
    SubscriptionCreate,
    SubscriptionCycle,
    SubscriptionUpdate,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: InvoiceId,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub billing_reason: Option<BillingReason>,
    #[serde(default)]
    pub customer: Option<serde_json::Value>,
    #[serde(default)]
    pub customer_email: Option<String>,
    #[serde(default)]
    pub hosted_invoice_url: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attempt_count: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub amount_due: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub amount_paid: i64,
    #[serde(default)]
    pub currency: Option<Currency>,
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default)]
    pub next_payment_attempt: Option<i64>,
    #[serde(default)]
    pub parent: Option<InvoiceParent>,
    /// Before basil the subscription was named here; kept for events in older versions.
    #[serde(default)]
    pub subscription: Option<serde_json::Value>,
    #[serde(default)]
    pub lines: Option<List<InvoiceLine>>,
}

impl Invoice {
    /// The subscription this invoice bills, wherever the event's API version puts it.
    #[must_use]
    pub fn subscription_id(&self) -> Option<SubscriptionId> {
        self.parent
            .as_ref()
            .and_then(|p| p.subscription_details.as_ref())
            .and_then(|d| id_of(&d.subscription))
            .or_else(|| self.subscription.as_ref().and_then(id_of))?
            .parse()
            .ok()
    }

    /// The end of the period this invoice pays for: the latest of its lines' periods.
    #[must_use]
    pub fn period_end(&self) -> Option<i64> {
        self.lines
            .as_ref()?
            .data
            .iter()
            .filter_map(|line| line.period.as_ref().map(|p| p.end))
            .max()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceParent {
    #[serde(default)]
    pub subscription_details: Option<SubscriptionDetails>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionDetails {
    #[serde(default)]
    pub subscription: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceLine {
    #[serde(default)]
    pub period: Option<Period>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

/// A charge, as in `charge.refunded`: how much of it has been given back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    pub amount: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub amount_refunded: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub refunded: bool,
    #[serde(default)]
    pub payment_intent: Option<serde_json::Value>,
}

impl Charge {
    #[must_use]
    pub fn payment_intent_id(&self) -> Option<PaymentIntentId> {
        id_of(self.payment_intent.as_ref()?)?.parse().ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    Won,
    Lost,
    #[serde(other)]
    Open,
}

/// A dispute, as in `charge.dispute.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispute {
    pub id: String,
    pub status: DisputeStatus,
    #[serde(default, deserialize_with = "null_as_default")]
    pub amount: i64,
    #[serde(default)]
    pub charge: Option<serde_json::Value>,
    #[serde(default)]
    pub payment_intent: Option<serde_json::Value>,
}

impl Dispute {
    #[must_use]
    pub fn payment_intent_id(&self) -> Option<PaymentIntentId> {
        id_of(self.payment_intent.as_ref()?)?.parse().ok()
    }
}

/// A customer: the address, name and language of its emails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: CustomerId,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub preferred_locales: Vec<String>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An id field that Stripe may expand into the object.
fn id_of(value: &serde_json::Value) -> Option<&str> {
    value
        .as_str()
        .or_else(|| value.get("id").and_then(serde_json::Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(set: &str, name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/stripe/{set}/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The fixtures' placeholder values (`"string"` ids, `"status"` statuses) are not valid
    /// ids; give them real ones so what is checked is the shape.
    fn realistic(json: &str) -> serde_json::Value {
        let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
        let object = value.as_object_mut().unwrap();
        let kind = object["object"].as_str().unwrap().to_string();
        match kind.as_str() {
            "subscription" => {
                object.insert("id".into(), "sub_1".into());
                object.insert("status".into(), "active".into());
                object.insert("customer".into(), "cus_1".into());
            }
            "invoice" => {
                object.insert("id".into(), "in_1".into());
            }
            "dispute" => {
                object.insert("status".into(), "lost".into());
            }
            _ => {}
        }
        value
    }

    #[test]
    fn both_fixture_sets_parse() {
        for set in ["basil", "latest"] {
            let sub: Subscription =
                serde_json::from_value(realistic(&fixture(set, "subscription"))).unwrap();
            assert_eq!(sub.customer_id().unwrap().as_str(), "cus_1");
            let _: Invoice = serde_json::from_value(realistic(&fixture(set, "invoice"))).unwrap();
            let charge: Charge =
                serde_json::from_value(realistic(&fixture(set, "charge"))).unwrap();
            assert!(charge.amount >= 0);
            let dispute: Dispute =
                serde_json::from_value(realistic(&fixture(set, "dispute"))).unwrap();
            assert_eq!(dispute.status, DisputeStatus::Lost);
        }
    }

    #[test]
    fn an_invoice_names_its_subscription_in_either_place() {
        let basil: Invoice = serde_json::from_value(serde_json::json!({
            "id": "in_1",
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_9"}},
            "lines": {"data": [{"period": {"start": 1, "end": 50}}, {"period": {"start": 1, "end": 80}}], "has_more": false}
        }))
        .unwrap();
        assert_eq!(basil.subscription_id().unwrap().as_str(), "sub_9");
        assert_eq!(basil.period_end(), Some(80));
        let older: Invoice = serde_json::from_value(
            serde_json::json!({"id": "in_2", "subscription": {"id": "sub_8"}}),
        )
        .unwrap();
        assert_eq!(older.subscription_id().unwrap().as_str(), "sub_8");
        let one_off: Invoice =
            serde_json::from_value(serde_json::json!({"id": "in_3", "parent": null})).unwrap();
        assert_eq!(one_off.subscription_id(), None);
    }
}
