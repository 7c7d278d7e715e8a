//! The access table, the default `Entitle`'s record: one item per holder (a Stripe customer,
//! or the merchant's own reference) and product, saying whether the holder may use it, until
//! when, and which order or subscription granted it. The merchant's app reads it
//! (`GetItem` on holder and product, or `Query` by holder) and may follow its stream.
//!
//! Access is valid while `active` is true and `until` (when present) is in the future, so a
//! subscription's grace after a failed renewal ends by itself, without a timer.

use serde::{Deserialize, Serialize};

use super::{DynamoDb, StoreError, conditional_write, n, s};
use crate::config::TableName;
use crate::ids::AccountId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    pub holder: String,
    pub product: String,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// The order or subscription id that last granted it.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct AccessStore {
    client: DynamoDb,
    table: TableName,
}

impl AccessStore {
    pub const KEY: &'static str = "holder";
    pub const SORT_KEY: &'static str = "product";

    #[must_use]
    pub fn new(table: TableName, client: DynamoDb) -> Self {
        Self { client, table }
    }

    /// Grants `product` to `holder` until `until` (`None`: no end), from `source`. The
    /// latest grant wins, so a renewal extends what the first payment granted.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn grant(
        &self,
        holder: &str,
        product: &str,
        until: Option<i64>,
        source: &str,
        account: Option<&AccountId>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut update = "SET active = :true, #source = :source, updated_at = :now".to_string();
        let mut request = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(holder))
            .key(Self::SORT_KEY, s(product))
            .expression_attribute_names("#source", "source")
            .expression_attribute_values(
                ":true",
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            )
            .expression_attribute_values(":source", s(source))
            .expression_attribute_values(":now", n(now));
        if let Some(account) = account {
            update.push_str(", account = :account");
            request = request.expression_attribute_values(":account", s(account.as_str()));
        }
        match until {
            Some(until) => {
                update.push_str(", #until = :until");
                request = request.expression_attribute_values(":until", n(until));
            }
            None => update.push_str(" REMOVE #until"),
        }
        request
            .update_expression(update)
            .expression_attribute_names("#until", "until")
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("UpdateItem", err))?;
        Ok(())
    }

    /// Revokes `product` from `holder` if `source` is what granted it: ending one
    /// subscription never takes away what another order or subscription gave.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn revoke(
        &self,
        holder: &str,
        product: &str,
        source: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(holder))
            .key(Self::SORT_KEY, s(product))
            .update_expression("SET active = :false, revoked_at = :now, updated_at = :now")
            .condition_expression("#source = :source")
            .expression_attribute_names("#source", "source")
            .expression_attribute_values(
                ":false",
                aws_sdk_dynamodb::types::AttributeValue::Bool(false),
            )
            .expression_attribute_values(":source", s(source))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }

    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn get(
        &self,
        holder: &str,
        product: &str,
    ) -> Result<Option<AccessRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(holder))
            .key(Self::SORT_KEY, s(product))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("GetItem", err))?;
        output
            .item
            .map(serde_dynamo::from_item)
            .transpose()
            .map_err(StoreError::from)
    }

    /// Everything one holder was granted, active or not.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn of_holder(&self, holder: &str) -> Result<Vec<AccessRecord>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(self.table.as_str())
            .key_condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", Self::KEY)
            .expression_attribute_values(":holder", s(holder))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("Query", err))?;
        output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(StoreError::from))
            .collect()
    }
}
