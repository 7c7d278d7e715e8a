//! The sessions table: what was asked for when a Checkout Session was created, for
//! fulfillment and recovery (the account a session lives on, the requested items).

use serde::{Deserialize, Serialize};

use super::{DynamoDb, StoreError, conditional_write};
use crate::config::TableName;
use crate::ids::{AccountId, CustomerId, SessionId};
use crate::stripe::{LineItemRequest, Mode};

/// Kept 45 days past expiry: a recovery URL stays usable 30 days after the session expires.
const RETENTION_AFTER_EXPIRY_SECS: i64 = 45 * 86_400;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session_id: SessionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    pub mode: Mode,
    pub items: Vec<LineItemRequest>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Serialize)]
struct Item<'a> {
    #[serde(flatten)]
    record: &'a SessionRecord,
    ttl: i64,
}

#[derive(Debug, Clone)]
pub struct SessionStore {
    client: DynamoDb,
    table: TableName,
}

impl SessionStore {
    pub const KEY: &'static str = "session_id";

    #[must_use]
    pub fn new(table: TableName, client: DynamoDb) -> Self {
        Self { client, table }
    }

    /// Records a created session. A replayed create (same Idempotency-Key) returns the same
    /// session, whose record is already there and stays as first written.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn record(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(Item {
            record,
            ttl: record.expires_at + RETENTION_AFTER_EXPIRY_SECS,
        })?;
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_str())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", Self::KEY)
            .send()
            .await;
        conditional_write("PutItem", result).map(drop)
    }

    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn get(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        super::get_item(&self.client, &self.table, Self::KEY, id.as_str()).await
    }
}
