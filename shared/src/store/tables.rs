//! Table definitions the code relies on (keys, stream, TTL), used by the local stack and the
//! tests to create tables on a DynamoDB-protocol server the way the SAM template does in AWS.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

use super::{
    AccessStore, CheckpointStore, DynamoDb, EventStore, OrderStore, RecoveryStore, RequestStore,
    SessionStore, StockStore, StoreError, SubscriptionStore,
};

#[derive(Debug, Clone)]
pub struct TableSpec {
    pub partition_key: &'static str,
    /// A string sort key, for tables read by partition (every access of one customer).
    pub sort_key: Option<&'static str>,
    pub stream: Option<StreamViewType>,
    pub ttl_attribute: Option<&'static str>,
    pub indexes: &'static [IndexSpec],
}

/// A global secondary index: a string partition key, a number sort key.
#[derive(Debug, Clone)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    /// `KEYS_ONLY` when readers fetch the items themselves, else `ALL`.
    pub keys_only: bool,
}

pub const EVENTS: TableSpec = TableSpec {
    partition_key: EventStore::KEY,
    sort_key: None,
    stream: Some(StreamViewType::NewImage),
    ttl_attribute: Some("expires_at"),
    indexes: &[
        // Sparse: only events a consumer has not finished have the key attribute.
        IndexSpec {
            name: "fulfillment-pending",
            partition_key: "pending_fulfillment",
            sort_key: "received_at",
            keys_only: false,
        },
        IndexSpec {
            name: "recovery-pending",
            partition_key: "pending_recovery",
            sort_key: "received_at",
            keys_only: false,
        },
        IndexSpec {
            name: "subscriptions-pending",
            partition_key: "pending_subscriptions",
            sort_key: "received_at",
            keys_only: false,
        },
        // For `ops explain`: every event of one session or PaymentIntent.
        IndexSpec {
            name: EventStore::BY_OBJECT_INDEX,
            partition_key: "object_id",
            sort_key: "received_at",
            keys_only: true,
        },
    ],
};

/// The reconciler's backfill checkpoints, one item per Stripe account.
pub const RECONCILE: TableSpec = TableSpec {
    partition_key: CheckpointStore::KEY,
    sort_key: None,
    stream: None,
    ttl_attribute: None,
    indexes: &[],
};

pub const SESSIONS: TableSpec = TableSpec {
    partition_key: SessionStore::KEY,
    sort_key: None,
    stream: None,
    ttl_attribute: Some("ttl"),
    indexes: &[],
};

/// Orders have a stream too, so other systems (shipping, analytics) can follow fulfilments.
pub const ORDERS: TableSpec = TableSpec {
    partition_key: OrderStore::KEY,
    sort_key: None,
    stream: Some(StreamViewType::NewAndOldImages),
    ttl_attribute: None,
    indexes: &[],
};

/// One item per subscription, written by the subscriptions function from Stripe's events;
/// the merchant's app may read it (status, period, cancellation).
pub const SUBSCRIPTIONS: TableSpec = TableSpec {
    partition_key: SubscriptionStore::KEY,
    sort_key: None,
    stream: None,
    ttl_attribute: None,
    indexes: &[],
};

/// What each customer may use, one item per customer and product: the default `Entitle`
/// writes it, the merchant's app reads it (`Query` by customer). Streamed, like orders, so
/// other systems can follow grants and revocations.
pub const ACCESS: TableSpec = TableSpec {
    partition_key: AccessStore::KEY,
    sort_key: Some(AccessStore::SORT_KEY),
    stream: Some(StreamViewType::NewAndOldImages),
    ttl_attribute: None,
    indexes: &[],
};

/// The callers' `Idempotency-Key`s, kept 24 hours.
pub const REQUESTS: TableSpec = TableSpec {
    partition_key: RequestStore::KEY,
    sort_key: None,
    stream: None,
    ttl_attribute: Some("ttl"),
    indexes: &[],
};

pub const RECOVERY: TableSpec = TableSpec {
    partition_key: RecoveryStore::KEY,
    sort_key: None,
    stream: None,
    ttl_attribute: Some("ttl"),
    indexes: &[],
};

/// Stock levels and each session's reservation (the default `Stock`); only when a shop
/// tracks stock (`STOCK_TABLE`). Reservations expire 90 days on; levels have no `ttl`.
pub const STOCK: TableSpec = TableSpec {
    partition_key: StockStore::KEY,
    sort_key: None,
    stream: None,
    ttl_attribute: Some("ttl"),
    indexes: &[],
};

/// Creates the table if it does not exist yet, then enables its TTL.
///
/// # Errors
/// DynamoDB refused to create the table or to enable its TTL.
pub async fn ensure(client: &DynamoDb, name: &str, spec: &TableSpec) -> Result<(), StoreError> {
    let attribute = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("name and type are set")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("name and key type are set")
    };
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(spec.partition_key, ScalarAttributeType::S))
        .key_schema(key(spec.partition_key, KeyType::Hash));
    let mut defined = vec![spec.partition_key];
    if let Some(sort_key) = spec.sort_key {
        defined.push(sort_key);
        create = create
            .attribute_definitions(attribute(sort_key, ScalarAttributeType::S))
            .key_schema(key(sort_key, KeyType::Range));
    }
    for index in spec.indexes {
        for (name, kind) in [
            (index.partition_key, ScalarAttributeType::S),
            (index.sort_key, ScalarAttributeType::N),
        ] {
            if !defined.contains(&name) {
                defined.push(name);
                create = create.attribute_definitions(attribute(name, kind));
            }
        }
        let projection = if index.keys_only {
            ProjectionType::KeysOnly
        } else {
            ProjectionType::All
        };
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.partition_key, KeyType::Hash))
                .key_schema(key(index.sort_key, KeyType::Range))
                .projection(Projection::builder().projection_type(projection).build())
                .build()
                .expect("name and keys are set"),
        );
    }
    if let Some(view) = &spec.stream {
        create = create.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(view.clone())
                .build()
                .expect("stream_enabled is set"),
        );
    }
    match create.send().await {
        Ok(_) => {}
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(err) => return Err(StoreError::from_sdk("CreateTable", err)),
    }
    if let Some(attribute) = spec.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(attribute)
                    .build()
                    .expect("enabled and attribute are set"),
            )
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("UpdateTimeToLive", err))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Consumer;

    #[test]
    fn each_consumer_queries_an_index_the_events_table_has() {
        for consumer in Consumer::ALL {
            let index = EVENTS
                .indexes
                .iter()
                .find(|i| i.name == consumer.pending_index())
                .unwrap_or_else(|| panic!("{consumer}: no index"));
            assert_eq!(index.partition_key, consumer.pending_attribute());
            assert_eq!(index.sort_key, "received_at");
            assert!(
                !index.keys_only,
                "the reconciler reads the events from the index"
            );
        }
    }
}
