//! The access ledger: on an order's or a subscription's own item, whether its access is
//! granted (and until when) or revoked, moved by conditional writes under a lease, so the
//! merchant's `Entitle` seam is called once per change however many events, retries and
//! concurrent invocations ask for it.
//!
//! A change is claimed (a lease on the item, and the change's precondition checked in the
//! same write), then made by the seam, then finished (the new access recorded, the lease
//! dropped). A failed seam call releases the lease at once; a crash leaves it to expire, and
//! the next trigger claims again: at-least-once towards the seam, exactly once when nothing
//! crashes between the call and its record.
//!
//! Attributes: `access` (`granted` | `revoked`), `access_until` (absent: no end),
//! `access_lease_owner`, `access_lease_expires_at`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{DynamoDb, StoreError, conditional_write, n, s};
use crate::config::TableName;

/// Where an item's access stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessState {
    Granted,
    Revoked,
}

/// A change to claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    /// Grant, or extend a grant, until `until` (`None`: no end). Claimed only when the item
    /// has no access yet, was revoked (and `regrant` allows it), or is granted until earlier.
    Grant { until: Option<i64>, regrant: bool },
    /// Claimed only when the item's access is granted.
    Revoke,
}

/// The ledger over one table whose items carry the access attributes.
#[derive(Debug, Clone)]
pub struct AccessLedger {
    client: DynamoDb,
    table: TableName,
    key: &'static str,
}

/// A condition of the caller's on the same item (e.g. the subscription's stored status), so
/// a decision made on an earlier read cannot land after the item moved on.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    pub expression: String,
    pub names: Vec<(String, String)>,
    pub values: Vec<(String, AttributeValue)>,
}

impl AccessLedger {
    #[must_use]
    pub fn new(table: TableName, client: DynamoDb, key: &'static str) -> Self {
        Self { client, table, key }
    }

    /// Claims `change` for the item `id` under a lease until `lease_expires_at`. `false` when
    /// the change is not due (already made, or the guard does not hold) or another
    /// invocation holds a live lease.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn claim(
        &self,
        id: &str,
        change: AccessChange,
        guard: Option<&Guard>,
        owner: &str,
        lease_expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut values = HashMap::from([
            (":owner".to_string(), s(owner)),
            (":lease".to_string(), n(lease_expires_at)),
            (":now".to_string(), n(now)),
            (":granted".to_string(), s("granted")),
        ]);
        let mut names = HashMap::from([
            ("#key".to_string(), self.key.to_string()),
            ("#access".to_string(), "access".to_string()),
        ]);
        let due = match change {
            AccessChange::Grant { until, regrant } => {
                let mut due = vec!["attribute_not_exists(#access)".to_string()];
                if regrant {
                    values.insert(":revoked".into(), s("revoked"));
                    due.push("#access = :revoked".into());
                }
                if let Some(until) = until {
                    values.insert(":until".into(), n(until));
                    // A grant without end is never "earlier" than a dated one.
                    due.push(
                        "(#access = :granted AND attribute_exists(access_until) AND access_until < :until)"
                            .into(),
                    );
                }
                format!("({})", due.join(" OR "))
            }
            AccessChange::Revoke => "#access = :granted".to_string(),
        };
        let mut condition = format!(
            "attribute_exists(#key) AND {due} AND (attribute_not_exists(access_lease_expires_at) OR access_lease_expires_at < :now)"
        );
        if let Some(guard) = guard {
            condition.push_str(&format!(" AND ({})", guard.expression));
            names.extend(guard.names.iter().cloned());
            values.extend(guard.values.iter().cloned());
        }
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(self.key, s(id))
            .update_expression("SET access_lease_owner = :owner, access_lease_expires_at = :lease")
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }

    /// Records a claimed change as made. `false` when the lease was lost meanwhile (it
    /// expired and another invocation claimed): that one records it.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn finish(
        &self,
        id: &str,
        change: AccessChange,
        owner: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut values = HashMap::from([
            (":owner".to_string(), s(owner)),
            (":now".to_string(), n(now)),
        ]);
        let update = match change {
            AccessChange::Grant {
                until: Some(until), ..
            } => {
                values.insert(":state".into(), s("granted"));
                values.insert(":until".into(), n(until));
                "SET #access = :state, access_until = :until, access_changed_at = :now REMOVE access_lease_owner, access_lease_expires_at"
            }
            AccessChange::Grant { until: None, .. } => {
                values.insert(":state".into(), s("granted"));
                "SET #access = :state, access_changed_at = :now REMOVE access_until, access_lease_owner, access_lease_expires_at"
            }
            AccessChange::Revoke => {
                values.insert(":state".into(), s("revoked"));
                "SET #access = :state, access_changed_at = :now REMOVE access_lease_owner, access_lease_expires_at"
            }
        };
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(self.key, s(id))
            .update_expression(update)
            .condition_expression("access_lease_owner = :owner")
            .expression_attribute_names("#access", "access")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }

    /// Gives a claim back after the seam failed, so the trigger's retry can claim at once.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn release(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(self.key, s(id))
            .update_expression("REMOVE access_lease_owner, access_lease_expires_at")
            .condition_expression("access_lease_owner = :owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        conditional_write("UpdateItem", result).map(drop)
    }
}
