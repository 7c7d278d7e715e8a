//! The orders table: one item per order (a Checkout Session or a standalone PaymentIntent),
//! moved through its `FulfillmentState` only by conditional writes, so any number of
//! concurrent invocations fulfil an order exactly once.
//!
//! Like AWS Powertools' idempotency records, a claim is "in progress" with an owner; unlike
//! Powertools' known failure mode (an in-progress record without expiry blocks forever), every
//! claim carries a lease expiry derived from the claimant's own deadline, after which any
//! invocation may take it over.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub use super::after_sale::{AfterSale, AfterSaleState};
use super::entitlements::{AccessLedger, AccessState};
use super::{DynamoDb, StoreError, conditional_write, n, s};
use crate::config::TableName;
use crate::ids::AccountId;
use crate::mail::EmailStatus;
use crate::money::Currency;
use crate::stripe::PaymentStatus;

/// Where an order stands. The lease exists only while in progress, by construction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FulfillmentState {
    /// Completed but not yet paid (delayed payment methods), or a PaymentIntent processing.
    AwaitingPayment,
    InProgress {
        lease_owner: String,
        lease_expires_at: i64,
    },
    Fulfilled {
        fulfilled_at: i64,
    },
    PaymentFailed,
    /// A permanent error (the session does not exist on this account): recorded, not retried.
    Failed {
        reason: String,
    },
}

impl FulfillmentState {
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::AwaitingPayment => "awaiting_payment",
            Self::InProgress { .. } => "in_progress",
            Self::Fulfilled { .. } => "fulfilled",
            Self::PaymentFailed => "payment_failed",
            Self::Failed { .. } => "failed",
        }
    }
}

/// What was sold, written once when the order is fulfilled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderDetails {
    pub line_items: Vec<OrderLine>,
    /// Stripe gives every paid session a currency; `None` only for one that paid nothing.
    #[serde(
        default,
        deserialize_with = "crate::money::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub currency: Option<Currency>,
    pub amount_subtotal: i64,
    pub amount_total: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The Stripe customer, when the session had or created one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// The merchant's own reference (its user or cart id), as create-session passed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_reference_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Where the goods go and how, when the session collected a shipping address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<OrderShipping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Tax and discounts, when any (`total_details`, with its breakdown).
    #[serde(default, skip_serializing_if = "OrderTotals::is_empty")]
    pub totals: OrderTotals,
    /// The tax ids the customer gave (`eu_vat`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tax_ids: Vec<OrderTaxId>,
    /// The shop policy's custom fields, with the customer's answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<OrderField>,
    /// The customer ticked the terms of service (`consent.terms_of_service = accepted`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terms_accepted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderShipping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The address's lines as a label prints them (`Address::lines`).
    pub address: Vec<String>,
    /// ISO 3166-1 alpha-2, for a shipping system to route on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The shipping rate chosen (`shr_…`) and its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_name: Option<String>,
    /// What shipping cost, tax included (`shipping_cost.amount_total`).
    #[serde(default)]
    pub amount: i64,
}

/// Tax and discounts of an order, each line as the receipt shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderTotals {
    #[serde(default)]
    pub amount_tax: i64,
    #[serde(default)]
    pub amount_discount: i64,
    #[serde(default)]
    pub amount_shipping: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taxes: Vec<OrderAmount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<OrderAmount>,
}

impl OrderTotals {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A labelled amount: `VAT 20%` 698, `WELCOME10` 150.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAmount {
    pub label: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTaxId {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderField {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `None` when an optional field was left empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    pub description: String,
    pub quantity: u64,
    pub amount_subtotal: i64,
    pub amount_total: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub amount_tax: i64,
    /// Added by the customer from the shop policy's `optional_items`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

fn is_zero(amount: &i64) -> bool {
    *amount == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: String,
    #[serde(flatten)]
    pub state: FulfillmentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<PaymentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<OrderDetails>,
    #[serde(default)]
    pub attempts: u32,
    pub updated_at: i64,
    /// The order-confirmation email, once fulfilled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailStatus>,
    /// Whether the order's access is granted (payment mode) or revoked (refund, dispute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessState>,
    #[serde(flatten)]
    pub after: AfterSale,
}

impl OrderRecord {
    /// The state a customer-facing status reports: the after-sale state when there is one.
    #[must_use]
    pub fn status(&self) -> &'static str {
        match (&self.state, self.after.after_sale) {
            (FulfillmentState::Fulfilled { .. }, Some(after)) => after.name(),
            (state, _) => state.name(),
        }
    }
}

/// What a completed fulfilment records on its order.
#[derive(Debug, Clone, Copy)]
pub struct Completed<'a> {
    pub payment_status: PaymentStatus,
    pub details: &'a OrderDetails,
    /// The confirmation email, when `Fulfil` sent one.
    pub email: Option<&'a EmailStatus>,
    /// Whether the order's access was granted (it then can be revoked).
    pub granted: bool,
}

/// The outcome of trying to claim an order for fulfilment.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    Acquired,
    /// Someone else has it (fulfilled, or in progress under a live lease).
    Held(Box<OrderRecord>),
}

#[derive(Debug, Clone)]
pub struct OrderStore {
    pub(super) client: DynamoDb,
    pub(super) table: TableName,
    ledger: AccessLedger,
}

impl OrderStore {
    pub const KEY: &'static str = "order_id";

    #[must_use]
    pub fn new(table: TableName, client: DynamoDb) -> Self {
        Self {
            ledger: AccessLedger::new(table.clone(), client.clone(), Self::KEY),
            client,
            table,
        }
    }

    /// The order's access ledger (revocations after a refund or a lost dispute).
    #[must_use]
    pub fn ledger(&self) -> &AccessLedger {
        &self.ledger
    }

    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn get(&self, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        super::get_item(&self.client, &self.table, Self::KEY, order_id).await
    }

    /// Claims the order unless it is fulfilled or held under a live lease.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn claim(
        &self,
        order_id: &str,
        account: Option<&AccountId>,
        owner: &str,
        lease_expires_at: i64,
        now: i64,
    ) -> Result<Claim, StoreError> {
        let mut values = HashMap::from([
            (":in_progress".to_string(), s("in_progress")),
            (":fulfilled".to_string(), s("fulfilled")),
            (":owner".to_string(), s(owner)),
            (":lease".to_string(), n(lease_expires_at)),
            (":now".to_string(), n(now)),
            (":zero".to_string(), n(0)),
            (":one".to_string(), n(1)),
        ]);
        let mut set = "#state = :in_progress, lease_owner = :owner, lease_expires_at = :lease, updated_at = :now, attempts = if_not_exists(attempts, :zero) + :one".to_string();
        if let Some(account) = account {
            values.insert(":account".into(), s(account.as_str()));
            set.push_str(", account = :account");
        }
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(order_id))
            .update_expression(format!("SET {set} REMOVE fulfilled_at, reason"))
            .condition_expression(
                "attribute_not_exists(#key) OR (#state <> :fulfilled AND (#state <> :in_progress OR lease_expires_at < :now))",
            )
            .expression_attribute_names("#key", Self::KEY)
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        if conditional_write("UpdateItem", result)? {
            return Ok(Claim::Acquired);
        }
        let current = self.get(order_id).await?.ok_or(StoreError::Unavailable {
            operation: "GetItem",
            detail: "an order that refused a claim has disappeared".into(),
        })?;
        Ok(Claim::Held(Box::new(current)))
    }

    /// Marks a claimed order fulfilled with what `Fulfil` and the grant reported. `false`
    /// when the claim was lost (the lease expired and another invocation took over).
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn complete(
        &self,
        order_id: &str,
        owner: &str,
        completed: &Completed<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Completed {
            payment_status,
            details,
            email,
            granted,
        } = *completed;
        let mut set = "SET #state = :fulfilled, fulfilled_at = :now, updated_at = :now, details = :details, payment_status = :paid".to_string();
        if email.is_some() {
            set.push_str(", email = :email");
        }
        if granted {
            set.push_str(", access = if_not_exists(access, :granted)");
        }
        let mut values = HashMap::from([
            (":fulfilled".to_string(), s("fulfilled")),
            (":in_progress".to_string(), s("in_progress")),
            (":owner".to_string(), s(owner)),
            (":now".to_string(), n(now)),
            (
                ":details".to_string(),
                serde_dynamo::to_attribute_value(details)?,
            ),
            (
                ":paid".to_string(),
                serde_dynamo::to_attribute_value(payment_status)?,
            ),
        ]);
        if let Some(email) = email {
            values.insert(":email".into(), serde_dynamo::to_attribute_value(email)?);
        }
        if granted {
            values.insert(":granted".into(), s("granted"));
        }
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(order_id))
            .update_expression(format!("{set} REMOVE lease_owner, lease_expires_at"))
            .condition_expression("#state = :in_progress AND lease_owner = :owner")
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }

    /// Gives a claim back after a failed fulfilment so the next retry can take it at once.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn release(&self, order_id: &str, owner: &str, now: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(order_id))
            .update_expression("SET lease_expires_at = :expired, updated_at = :now")
            .condition_expression("#state = :in_progress AND lease_owner = :owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":expired", n(0))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        conditional_write("UpdateItem", result).map(drop)
    }

    /// Records a state other than in progress/fulfilled, but never over a fulfilled order or a
    /// live claim, and never over any state in `keep` (so a late "processing" does not undo a
    /// recorded failure). Returns whether it was written.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn record(
        &self,
        order_id: &str,
        state: &FulfillmentState,
        account: Option<&AccountId>,
        payment_status: Option<PaymentStatus>,
        keep: &[&str],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut values = HashMap::from([
            (":state".to_string(), s(state.name())),
            (":fulfilled".to_string(), s("fulfilled")),
            (":in_progress".to_string(), s("in_progress")),
            (":now".to_string(), n(now)),
        ]);
        let mut set = vec!["#state = :state", "updated_at = :now"];
        if let FulfillmentState::Failed { reason } = state {
            values.insert(":reason".into(), s(reason.as_str()));
            set.push("reason = :reason");
        }
        if let Some(account) = account {
            values.insert(":account".into(), s(account.as_str()));
            set.push("account = :account");
        }
        if let Some(status) = payment_status {
            values.insert(
                ":payment_status".into(),
                serde_dynamo::to_attribute_value(status)?,
            );
            set.push("payment_status = :payment_status");
        }
        let mut condition = "attribute_not_exists(#key) OR (#state <> :fulfilled AND (#state <> :in_progress OR lease_expires_at < :now)".to_string();
        for (i, kept) in keep.iter().enumerate() {
            values.insert(format!(":keep{i}"), s(*kept));
            condition.push_str(&format!(" AND #state <> :keep{i}"));
        }
        condition.push(')');
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(order_id))
            .update_expression(format!(
                "SET {} REMOVE lease_owner, lease_expires_at",
                set.join(", ")
            ))
            .condition_expression(condition)
            .expression_attribute_names("#key", Self::KEY)
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }
}
