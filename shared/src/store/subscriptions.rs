//! The subscriptions table: one item per subscription, keyed by its id, holding Stripe's
//! status and what the merchant's app needs (customer, items, period, cancellation, the
//! session that created it, the latest invoice), plus its access ledger (`entitlements`).
//!
//! Events arrive late, twice and out of order. Every write of the subscription's state is
//! conditional on being newer than what is stored: its `version` is the event's `created`
//! (Stripe's clock) times ten plus the status's rank, so within one second `incomplete` is
//! older than `active`, which is older than `canceled`. A final status (`canceled`,
//! `incomplete_expired`) is never written over: Stripe never leaves one.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::entitlements::{AccessLedger, AccessState, Guard};
use super::{DynamoDb, StoreError, conditional_write, n, s};
use crate::config::TableName;
use crate::ids::{AccountId, CustomerId, InvoiceId, SessionId, SubscriptionId};
use crate::stripe::SubscriptionStatus;

/// One item of a subscription: what the customer pays for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    pub quantity: u64,
}

/// The subscription's state as Stripe last told it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionState {
    pub status: SubscriptionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    pub items: Vec<SubscriptionLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_period_end: Option<i64>,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canceled_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
}

/// Where the latest invoice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Paid,
    PaymentFailed,
    ActionRequired,
}

impl InvoiceStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::PaymentFailed => "payment_failed",
            Self::ActionRequired => "action_required",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub subscription_id: SubscriptionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    /// `None` while only an invoice or the session is known (Stripe is then asked).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SubscriptionState>,
    #[serde(default)]
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_reference_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_invoice: Option<InvoiceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_invoice_status: Option<InvoiceStatus>,
    /// The end of the latest period an invoice paid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_through: Option<i64>,
    /// Paid renewal invoices (not the first one).
    #[serde(default)]
    pub renewals: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_until: Option<i64>,
    #[serde(default)]
    pub updated_at: i64,
}

/// The order of two states within one second: later stages win.
#[must_use]
pub fn state_version(created: i64, status: SubscriptionStatus) -> i64 {
    let rank = match status {
        SubscriptionStatus::Incomplete => 0,
        status if status.is_final() => 2,
        _ => 1,
    };
    created.saturating_mul(10).saturating_add(rank)
}

#[derive(Debug, Clone)]
pub struct SubscriptionStore {
    client: DynamoDb,
    table: TableName,
    ledger: AccessLedger,
}

impl SubscriptionStore {
    pub const KEY: &'static str = "subscription_id";

    #[must_use]
    pub fn new(table: TableName, client: DynamoDb) -> Self {
        Self {
            ledger: AccessLedger::new(table.clone(), client.clone(), Self::KEY),
            client,
            table,
        }
    }

    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn get(&self, id: &SubscriptionId) -> Result<Option<SubscriptionRecord>, StoreError> {
        super::get_item(&self.client, &self.table, Self::KEY, id.as_str()).await
    }

    #[must_use]
    pub fn ledger(&self) -> &AccessLedger {
        &self.ledger
    }

    /// Writes the subscription's state if it is newer than the stored one (see the module's
    /// doc). Returns whether it was written; `false` for a stale or duplicated event.
    ///
    /// # Errors
    /// DynamoDB failed, or the state cannot be encoded.
    pub async fn apply(
        &self,
        id: &SubscriptionId,
        account: Option<&AccountId>,
        state: &SubscriptionState,
        version: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut values = HashMap::from([
            (":status".to_string(), s(state.status.as_str())),
            (
                ":items".to_string(),
                serde_dynamo::to_attribute_value(&state.items)?,
            ),
            (
                ":cancel_at_period_end".to_string(),
                AttributeValue::Bool(state.cancel_at_period_end),
            ),
            (":version".to_string(), n(version)),
            (":now".to_string(), n(now)),
            (":canceled".to_string(), s("canceled")),
            (":expired".to_string(), s("incomplete_expired")),
        ]);
        let mut set = vec![
            "#status = :status",
            "#items = :items",
            "cancel_at_period_end = :cancel_at_period_end",
            "version = :version",
            "updated_at = :now",
        ];
        let mut remove = Vec::new();
        let optional = [
            (
                "customer",
                ":customer",
                state.customer.as_ref().map(|c| s(c.as_str())),
            ),
            ("account", ":account", account.map(|a| s(a.as_str()))),
            (
                "current_period_end",
                ":period_end",
                state.current_period_end.map(n),
            ),
            ("canceled_at", ":canceled_at", state.canceled_at.map(n)),
            ("ended_at", ":ended_at", state.ended_at.map(n)),
        ];
        let mut assignments = Vec::new();
        for (attribute, placeholder, value) in optional {
            match value {
                Some(value) => {
                    values.insert(placeholder.to_string(), value);
                    assignments.push(format!("{attribute} = {placeholder}"));
                }
                None if attribute != "account" && attribute != "customer" => {
                    remove.push(attribute);
                }
                None => {}
            }
        }
        let mut update = format!(
            "SET {}",
            set.drain(..)
                .map(str::to_string)
                .chain(assignments)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !remove.is_empty() {
            update.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(id.as_str()))
            .update_expression(update)
            .condition_expression(
                "attribute_not_exists(version) OR (NOT (#status IN (:canceled, :expired)) AND version <= :version)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#items", "items")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }

    /// Records the Checkout Session that created the subscription (first writer wins).
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn link_session(
        &self,
        id: &SubscriptionId,
        account: Option<&AccountId>,
        session: &SessionId,
        client_reference_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut values = HashMap::from([
            (":session".to_string(), s(session.as_str())),
            (":now".to_string(), n(now)),
        ]);
        let mut set = vec![
            "#session = if_not_exists(#session, :session)".to_string(),
            "updated_at = :now".into(),
        ];
        if let Some(reference) = client_reference_id {
            values.insert(":reference".into(), s(reference));
            set.push("client_reference_id = if_not_exists(client_reference_id, :reference)".into());
        }
        if let Some(account) = account {
            values.insert(":account".into(), s(account.as_str()));
            set.push("account = if_not_exists(account, :account)".into());
        }
        self.client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(id.as_str()))
            .update_expression(format!("SET {}", set.join(", ")))
            .expression_attribute_names("#session", "session")
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("UpdateItem", err))?;
        Ok(())
    }

    /// Records a paid invoice once: `true` the first time this invoice is recorded (a
    /// renewal is counted then), `false` for a repeat. Raises `paid_through` to `period_end`,
    /// never lowers it.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn record_paid_invoice(
        &self,
        id: &SubscriptionId,
        invoice: &InvoiceId,
        renewal: bool,
        period_end: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(id.as_str()))
            .update_expression(
                "ADD paid_invoices :invoice, renewals :renewal SET updated_at = :now",
            )
            .condition_expression("NOT contains(paid_invoices, :id)")
            .expression_attribute_values(
                ":invoice",
                AttributeValue::Ss(vec![invoice.as_str().to_string()]),
            )
            .expression_attribute_values(":id", s(invoice.as_str()))
            .expression_attribute_values(":renewal", n(i64::from(renewal)))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        let first = conditional_write("UpdateItem", result)?;
        if let Some(end) = period_end {
            let result = self
                .client
                .update_item()
                .table_name(self.table.as_str())
                .key(Self::KEY, s(id.as_str()))
                .update_expression("SET paid_through = :end")
                .condition_expression("attribute_not_exists(paid_through) OR paid_through < :end")
                .expression_attribute_values(":end", n(end))
                .send()
                .await;
            conditional_write("UpdateItem", result)?;
        }
        Ok(first)
    }

    /// Records where the latest invoice stands, if this event is not older than the one
    /// recorded (`version`: the event's `created`).
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn record_invoice_status(
        &self,
        id: &SubscriptionId,
        invoice: &InvoiceId,
        status: InvoiceStatus,
        version: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(id.as_str()))
            .update_expression(
                "SET latest_invoice = :invoice, latest_invoice_status = :status, invoice_version = :version, updated_at = :now",
            )
            .condition_expression("attribute_not_exists(invoice_version) OR invoice_version <= :version")
            .expression_attribute_values(":invoice", s(invoice.as_str()))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":version", n(version))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }

    /// The guard under which access may be granted: the stored status still grants it.
    #[must_use]
    pub fn grants_access_guard() -> Guard {
        Guard {
            expression: "#status IN (:trialing, :active, :past_due)".into(),
            names: vec![("#status".into(), "status".into())],
            values: vec![
                (":trialing".into(), s("trialing")),
                (":active".into(), s("active")),
                (":past_due".into(), s("past_due")),
            ],
        }
    }

    /// The guard under which access may be revoked: the stored status has ended it.
    #[must_use]
    pub fn ends_access_guard() -> Guard {
        Guard {
            expression: "#status IN (:canceled, :unpaid, :paused, :expired)".into(),
            names: vec![("#status".into(), "status".into())],
            values: vec![
                (":canceled".into(), s("canceled")),
                (":unpaid".into(), s("unpaid")),
                (":paused".into(), s("paused")),
                (":expired".into(), s("incomplete_expired")),
            ],
        }
    }
}
