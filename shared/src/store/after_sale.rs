//! A fulfilled order's life after the sale, on its own item of the orders table: its
//! after-sale state (refunded, disputed, …), how much was given back, and the version it was
//! written at, moved only by writes conditional on the record read just before.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{OrderStore, StoreError, conditional_write, n, s};

/// What happened to a fulfilled order's payment afterwards. `Refunded` and `DisputeLost`
/// are final; a won dispute takes the order back to plain `fulfilled` (or
/// `partially_refunded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterSaleState {
    PartiallyRefunded,
    Refunded,
    Disputed,
    DisputeLost,
    /// A delayed payment failed after the order was fulfilled on `processing`.
    PaymentFailed,
}

impl AfterSaleState {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
            Self::Disputed => "disputed",
            Self::DisputeLost => "dispute_lost",
            Self::PaymentFailed => "payment_failed",
        }
    }

    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Refunded | Self::DisputeLost | Self::PaymentFailed
        )
    }
}

/// The order's after-sale record: its state (`None`: plain fulfilled), how much was given
/// back, and the version (`created` of the event, ranked) it was written at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSale {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_sale: Option<AfterSaleState>,
    #[serde(default)]
    pub amount_refunded: i64,
    #[serde(default)]
    pub after_sale_version: i64,
}

impl OrderStore {
    /// Writes a fulfilled order's after-sale record if the stored one is still `expected`
    /// (optimistic: the caller read it, decided, and re-reads on `false`).
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn record_after_sale(
        &self,
        order_id: &str,
        expected: &AfterSale,
        next: &AfterSale,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut values = HashMap::from([
            (":fulfilled".to_string(), s("fulfilled")),
            (":amount".to_string(), n(next.amount_refunded)),
            (":version".to_string(), n(next.after_sale_version)),
            (":now".to_string(), n(now)),
            (":old_version".to_string(), n(expected.after_sale_version)),
        ]);
        let mut update =
            "SET amount_refunded = :amount, after_sale_version = :version, updated_at = :now"
                .to_string();
        match next.after_sale {
            Some(state) => {
                values.insert(":after".into(), s(state.name()));
                update.push_str(", after_sale = :after");
            }
            None => update.push_str(" REMOVE after_sale"),
        }
        let unchanged = if expected.after_sale_version == 0 {
            "(attribute_not_exists(after_sale_version) OR after_sale_version = :old_version)"
        } else {
            "after_sale_version = :old_version"
        };
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(order_id))
            .update_expression(update)
            .condition_expression(format!("#state = :fulfilled AND {unchanged}"))
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }
}
