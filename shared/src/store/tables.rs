//! Table definitions the code relies on (keys, stream, TTL), used by the local stack and the
//! tests to create tables on a DynamoDB-protocol server the way the SAM template does in AWS.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use super::{DynamoDb, EventStore, OrderStore, RecoveryStore, SessionStore, StoreError};

#[derive(Debug, Clone)]
pub struct TableSpec {
    pub partition_key: &'static str,
    pub stream: Option<StreamViewType>,
    pub ttl_attribute: Option<&'static str>,
}

pub const EVENTS: TableSpec = TableSpec {
    partition_key: EventStore::KEY,
    stream: Some(StreamViewType::NewImage),
    ttl_attribute: Some("expires_at"),
};

pub const SESSIONS: TableSpec = TableSpec {
    partition_key: SessionStore::KEY,
    stream: None,
    ttl_attribute: Some("ttl"),
};

/// Orders have a stream too, so other systems (shipping, analytics) can follow fulfilments.
pub const ORDERS: TableSpec = TableSpec {
    partition_key: OrderStore::KEY,
    stream: Some(StreamViewType::NewAndOldImages),
    ttl_attribute: None,
};

pub const RECOVERY: TableSpec = TableSpec {
    partition_key: RecoveryStore::KEY,
    stream: None,
    ttl_attribute: Some("ttl"),
};

/// Creates the table if it does not exist yet, then enables its TTL.
///
/// # Errors
/// DynamoDB refused to create the table or to enable its TTL.
pub async fn ensure(client: &DynamoDb, name: &str, spec: &TableSpec) -> Result<(), StoreError> {
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(spec.partition_key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(spec.partition_key)
                .key_type(KeyType::Hash)
                .build()
                .expect("name and key type are set"),
        );
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
