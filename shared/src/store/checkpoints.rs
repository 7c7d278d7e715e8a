//! The reconciler's table: how far back each Stripe account's event list has been read.
//! A checkpoint only moves forward, so two passes racing cannot rewind it.

use super::{DynamoDb, StoreError, conditional_write, n, s};
use crate::config::TableName;

#[derive(Debug, Clone)]
pub struct CheckpointStore {
    client: DynamoDb,
    table: TableName,
}

impl CheckpointStore {
    pub const KEY: &'static str = "name";

    #[must_use]
    pub fn new(table: TableName, client: DynamoDb) -> Self {
        Self { client, table }
    }

    /// The time (unix seconds) up to which `name` is read, if it ever was.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn get(&self, name: &str) -> Result<Option<i64>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Item {
            until: i64,
        }
        let item: Option<Item> =
            super::get_item(&self.client, &self.table, Self::KEY, name).await?;
        Ok(item.map(|i| i.until))
    }

    /// Moves `name` forward to `until`; an older value is not written (`false`).
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn advance(&self, name: &str, until: i64, now: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(name))
            .update_expression("SET #until = :until, updated_at = :now")
            .condition_expression("attribute_not_exists(#until) OR #until <= :until")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }
}
