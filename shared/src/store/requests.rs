//! The requests table: what a caller's `Idempotency-Key` was first used for, so a retry that
//! comes seconds or hours later (a phone back online, a queue redelivering) gets the same
//! answer without a second create, and the same key with another body is refused.
//!
//! One item per `(route, account, caller key)`: the request's fingerprint (SHA-256 of the
//! body), the first request's time (so a retry sends Stripe the very parameters the first one
//! did, `expires_at` included), and once created, the answer. Kept 24 hours, as Stripe keeps
//! its idempotency keys.

use serde::{Deserialize, Serialize};

use super::{DynamoDb, StoreError, conditional_write, n, s};
use crate::config::TableName;

/// Stripe forgets an idempotency key after 24 hours; so does the bundle.
pub const RETENTION_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub request_key: String,
    pub fingerprint: String,
    pub first_at: i64,
    /// The answer given, once the object was created (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// What a caller's key has been used for so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// First use: go on, at `first_at` (now).
    New,
    /// Used before for this record's request.
    Seen(RequestRecord),
}

#[derive(Debug, Clone)]
pub struct RequestStore {
    client: DynamoDb,
    table: TableName,
}

impl RequestStore {
    pub const KEY: &'static str = "request_key";

    #[must_use]
    pub fn new(table: TableName, client: DynamoDb) -> Self {
        Self { client, table }
    }

    /// Records the first use of `key` for `fingerprint`, or says what it was used for.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn begin(&self, key: &str, fingerprint: &str, now: i64) -> Result<Begun, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_str())
            .item(Self::KEY, s(key))
            .item("fingerprint", s(fingerprint))
            .item("first_at", n(now))
            .item("ttl", n(now + RETENTION_SECS))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", Self::KEY)
            .send()
            .await;
        if conditional_write("PutItem", result)? {
            return Ok(Begun::New);
        }
        let record = super::get_item(&self.client, &self.table, Self::KEY, key)
            .await?
            .ok_or(StoreError::Unavailable {
                operation: "GetItem",
                detail: "a request record that refused a put has disappeared".into(),
            })?;
        Ok(Begun::Seen(record))
    }

    /// Forgets `key`'s record when it is still `fingerprint`'s and unanswered: the request
    /// was refused (4xx), so nothing was created under it, and a corrected retry with the
    /// same key must be a first use, not an `idempotency_conflict`. Returns `false` when
    /// nothing was deleted (another body's record, or one already answered).
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn release(&self, key: &str, fingerprint: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(key))
            .condition_expression("fingerprint = :fingerprint AND attribute_not_exists(answer)")
            .expression_attribute_values(":fingerprint", s(fingerprint))
            .send()
            .await;
        conditional_write("DeleteItem", result)
    }

    /// Records the answer given for `key`'s request.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn finish(
        &self,
        key: &str,
        fingerprint: &str,
        answer: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(key))
            .update_expression("SET answer = :answer")
            .condition_expression("fingerprint = :fingerprint")
            .expression_attribute_values(":answer", s(answer))
            .expression_attribute_values(":fingerprint", s(fingerprint))
            .send()
            .await;
        conditional_write("UpdateItem", result).map(drop)
    }
}
