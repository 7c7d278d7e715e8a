//! The events table: one item per Stripe event id, written once, read downstream from the
//! table's stream (NEW_IMAGE) by fulfillment and recovery.

use serde::{Deserialize, Serialize};

use super::{DynamoDb, StoreError, conditional_write};
use crate::config::TableName;
use crate::ids::{AccountId, EventId};
use crate::stripe::{Event, EventType};

/// DynamoDB refuses items over 400 KB. Stripe objects are far smaller, but a body may be up
/// to 1 MiB; rather than fail such an event forever (Stripe would retry it for days), it is
/// stored without its object, and consumers retrieve the object from Stripe.
const MAX_STORED_OBJECT_BYTES: usize = 350 * 1024;

/// An event as stored, and as stream consumers read it back from `NEW_IMAGE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    pub created: i64,
    pub livemode: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `data.object` exactly as Stripe sent it, or `None` when it was too large to store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub received_at: i64,
    /// TTL attribute: DynamoDB deletes the record after the retention period.
    pub expires_at: i64,
}

impl EventRecord {
    #[must_use]
    pub fn new(event: &Event, received_at: i64, retention_secs: i64) -> Self {
        let object_ref = event.object_ref().unwrap_or_default();
        let raw = event.data.object.get();
        Self {
            event_id: event.id.clone(),
            kind: event.kind.clone(),
            object_id: object_ref.id,
            object_type: object_ref.kind,
            account: event.account.clone(),
            created: event.created,
            livemode: event.livemode,
            api_version: event.api_version.clone(),
            object: (raw.len() <= MAX_STORED_OBJECT_BYTES).then(|| raw.to_string()),
            received_at,
            expires_at: received_at.saturating_add(retention_secs),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// Another delivery of the same event id was stored first; nothing was written.
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct EventStore {
    client: DynamoDb,
    table: TableName,
}

impl EventStore {
    pub const KEY: &'static str = "event_id";

    #[must_use]
    pub fn new(table: TableName, client: DynamoDb) -> Self {
        Self { client, table }
    }

    /// Stores the record unless one with the same event id exists: one conditional PutItem,
    /// so concurrent deliveries of an event leave exactly one record and one `New`.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn record_once(&self, record: &EventRecord) -> Result<Recorded, StoreError> {
        let item = serde_dynamo::to_item(record)?;
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_str())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", Self::KEY)
            .send()
            .await;
        conditional_write("PutItem", result).map(|written| {
            if written {
                Recorded::New
            } else {
                Recorded::Duplicate
            }
        })
    }

    /// Reads a stored event back (tests, the local stack's tools, backfills).
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn get(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError> {
        super::get_item(&self.client, &self.table, Self::KEY, id.as_str()).await
    }
}
