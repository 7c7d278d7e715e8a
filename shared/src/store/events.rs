//! The events table: one item per Stripe event id, written once, read downstream from the
//! table's stream (NEW_IMAGE) by fulfillment and recovery, and then marked with what each
//! consumer did with it.
//!
//! An event is *pending* for a consumer from the moment it is stored until that consumer
//! records a final outcome (`done` or `skipped`). Pending is a sparse attribute per consumer
//! (`pending_fulfillment`, `pending_recovery`, holding the event type) that keys a global
//! secondary index with `received_at` as sort key, so "events of type T received before
//! a cutoff that C has not finished" is one Query, never a Scan. Outcome updates are MODIFY
//! records on the stream, which the consumers' filters (INSERT only) never see.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{Consumer, DynamoDb, EventOutcome, StoreError, conditional_write, n, s};
use crate::config::TableName;
use crate::ids::{AccountId, EventId};
use crate::metrics::{self, Unit};
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
    /// The event type while fulfillment has not finished it (the pending index's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_fulfillment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_recovery: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_subscriptions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_fulfillment: Option<EventOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_recovery: Option<EventOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_subscriptions: Option<EventOutcome>,
    #[serde(default)]
    pub attempts_fulfillment: u32,
    #[serde(default)]
    pub attempts_recovery: u32,
    #[serde(default)]
    pub attempts_subscriptions: u32,
}

impl EventRecord {
    #[must_use]
    pub fn new(event: &Event, received_at: i64, retention_secs: i64) -> Self {
        let object_ref = event.object_ref().unwrap_or_default();
        let raw = event.data.object.get();
        let pending = |consumer: Consumer| {
            consumer
                .events()
                .contains(&event.kind)
                .then(|| event.kind.to_string())
        };
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
            pending_fulfillment: pending(Consumer::Fulfillment),
            pending_recovery: pending(Consumer::Recovery),
            pending_subscriptions: pending(Consumer::Subscriptions),
            outcome_fulfillment: None,
            outcome_recovery: None,
            outcome_subscriptions: None,
            attempts_fulfillment: 0,
            attempts_recovery: 0,
            attempts_subscriptions: 0,
        }
    }

    #[must_use]
    pub fn outcome(&self, consumer: Consumer) -> Option<&EventOutcome> {
        match consumer {
            Consumer::Fulfillment => self.outcome_fulfillment.as_ref(),
            Consumer::Recovery => self.outcome_recovery.as_ref(),
            Consumer::Subscriptions => self.outcome_subscriptions.as_ref(),
        }
    }

    #[must_use]
    pub fn attempts(&self, consumer: Consumer) -> u32 {
        match consumer {
            Consumer::Fulfillment => self.attempts_fulfillment,
            Consumer::Recovery => self.attempts_recovery,
            Consumer::Subscriptions => self.attempts_subscriptions,
        }
    }

    #[must_use]
    pub fn is_pending(&self, consumer: Consumer) -> bool {
        match consumer {
            Consumer::Fulfillment => self.pending_fulfillment.is_some(),
            Consumer::Recovery => self.pending_recovery.is_some(),
            Consumer::Subscriptions => self.pending_subscriptions.is_some(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// Another delivery of the same event id was stored first; nothing was written.
    Duplicate,
}

/// One page of pending events, and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingPage {
    pub events: Vec<EventRecord>,
    pub next: Option<HashMap<String, AttributeValue>>,
}

#[derive(Debug, Clone)]
pub struct EventStore {
    client: DynamoDb,
    table: TableName,
}

impl EventStore {
    pub const KEY: &'static str = "event_id";
    /// The index over `object_id` (a session, a PaymentIntent), sorted by `received_at`.
    pub const BY_OBJECT_INDEX: &'static str = "by-object";

    #[must_use]
    pub fn new(table: TableName, client: DynamoDb) -> Self {
        Self { client, table }
    }

    /// Stores the record unless one with the same event id exists: one conditional PutItem,
    /// so concurrent deliveries of an event leave exactly one record and one `New`.
    ///
    /// # Errors
    /// DynamoDB failed, or the record could not be encoded.
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

    /// Reads a stored event back.
    ///
    /// # Errors
    /// DynamoDB failed, or the item is not a stored event.
    pub async fn get(&self, id: &EventId) -> Result<Option<EventRecord>, StoreError> {
        super::get_item(&self.client, &self.table, Self::KEY, id.as_str()).await
    }

    /// Records what `consumer` did with the event, and counts the attempt. A final outcome
    /// takes the event off the consumer's pending index; a failure never replaces a final
    /// outcome (a late, slower attempt cannot undo a finished one). Returns `false` when
    /// nothing was written: the event is not stored (a hand-fed record), or it was already
    /// final and this is a failure.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn record_outcome(
        &self,
        id: &EventId,
        consumer: Consumer,
        outcome: &EventOutcome,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(id.as_str()))
            .expression_attribute_names("#key", Self::KEY)
            .expression_attribute_names("#outcome", consumer.outcome_attribute())
            .expression_attribute_names("#attempts", consumer.attempts_attribute())
            .expression_attribute_values(":outcome", serde_dynamo::to_attribute_value(outcome)?)
            .expression_attribute_values(":one", n(1));
        if outcome.is_final() {
            update = update
                .update_expression("SET #outcome = :outcome ADD #attempts :one REMOVE #pending")
                .expression_attribute_names("#pending", consumer.pending_attribute())
                .condition_expression("attribute_exists(#key)");
        } else {
            update = update
                .update_expression("SET #outcome = :outcome ADD #attempts :one")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":failed", s("failed"))
                .condition_expression(
                    "attribute_exists(#key) AND (attribute_not_exists(#outcome) OR #outcome.#status = :failed)",
                );
        }
        conditional_write("UpdateItem", update.send().await)
    }

    /// Records an outcome as [`Self::record_outcome`] does, for consumers that have already
    /// acted: a failure to record is logged and counted, not returned, since the event stays
    /// pending and the reconciler comes back to it (acting again is idempotent).
    ///
    /// The first time an event is done, its lag (Stripe's `created` to done) is counted:
    /// for fulfillment's `checkout.session.completed`, the event-to-fulfilled lag.
    pub async fn settle(&self, event: &EventRecord, consumer: Consumer, outcome: &EventOutcome) {
        let id = &event.event_id;
        if let EventOutcome::Failed { reason, .. } = outcome {
            metrics::emit(
                "EventsFailed",
                1.0,
                Unit::Count,
                &[("Consumer", consumer.as_str()), ("Reason", reason)],
            );
        }
        match self.record_outcome(id, consumer, outcome).await {
            Ok(true) => {
                if let EventOutcome::Done { at } = outcome {
                    #[expect(
                        clippy::cast_precision_loss,
                        reason = "a lag in seconds is far below 2^52"
                    )]
                    let lag = (at - event.created).max(0) as f64;
                    metrics::emit(
                        "EventLagSeconds",
                        lag,
                        Unit::Seconds,
                        &[
                            ("Consumer", consumer.as_str()),
                            ("EventType", event.kind.as_str()),
                        ],
                    );
                }
            }
            Ok(false) => {
                tracing::debug!(event_id = %id, consumer = consumer.as_str(), "outcome not recorded: event not stored, or already final");
            }
            Err(err) => {
                tracing::warn!(event_id = %id, consumer = consumer.as_str(), error = %err, "outcome not recorded; the reconciler will come back to it");
            }
        }
    }

    /// Puts an event back on `consumer`'s pending index with its attempts reset, so the
    /// reconciler tries it again (`ops redrive`).
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn mark_pending(
        &self,
        event: &EventRecord,
        consumer: Consumer,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(event.event_id.as_str()))
            .update_expression("SET #pending = :type, #attempts = :zero REMOVE #outcome")
            .condition_expression("attribute_exists(#key)")
            .expression_attribute_names("#key", Self::KEY)
            .expression_attribute_names("#pending", consumer.pending_attribute())
            .expression_attribute_names("#attempts", consumer.attempts_attribute())
            .expression_attribute_names("#outcome", consumer.outcome_attribute())
            .expression_attribute_values(":type", s(event.kind.as_str()))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }

    /// Events of type `kind` that `consumer` has not finished, received at or before
    /// `received_before`, oldest first: one Query on the consumer's pending index.
    ///
    /// # Errors
    /// DynamoDB failed, or an item is not a stored event.
    pub async fn pending(
        &self,
        consumer: Consumer,
        kind: &EventType,
        received_before: i64,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<PendingPage, StoreError> {
        let output = self
            .client
            .query()
            .table_name(self.table.as_str())
            .index_name(consumer.pending_index())
            .key_condition_expression("#pending = :type AND received_at <= :before")
            .expression_attribute_names("#pending", consumer.pending_attribute())
            .expression_attribute_values(":type", s(kind.as_str()))
            .expression_attribute_values(":before", n(received_before))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("Query", err))?;
        let events = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(serde_dynamo::from_item)
            .collect::<Result<_, _>>()?;
        Ok(PendingPage {
            events,
            next: output.last_evaluated_key.filter(|key| !key.is_empty()),
        })
    }

    /// Every stored event about one object (a session, a PaymentIntent), oldest first.
    ///
    /// # Errors
    /// DynamoDB failed, or an item is not a stored event.
    pub async fn for_object(&self, object_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(self.table.as_str())
                .index_name(Self::BY_OBJECT_INDEX)
                .key_condition_expression("object_id = :id")
                .expression_attribute_values(":id", s(object_id))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| StoreError::from_sdk("Query", err))?;
            for item in output.items.unwrap_or_default() {
                if let Some(AttributeValue::S(id)) = item.get(Self::KEY) {
                    ids.push(id.clone());
                }
            }
            start = output.last_evaluated_key.filter(|key| !key.is_empty());
            if start.is_none() {
                break;
            }
        }
        let mut events = Vec::new();
        for id in ids {
            let item: Option<EventRecord> =
                super::get_item(&self.client, &self.table, Self::KEY, &id).await?;
            events.extend(item);
        }
        events.sort_by_key(|e| (e.created, e.received_at));
        Ok(events)
    }
}
