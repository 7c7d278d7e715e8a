//! DynamoDB stores. Idempotency lives here: every write that must happen once is a
//! conditional write, so concurrent Lambdas race safely on DynamoDB, not in memory.

mod access;
mod after_sale;
mod checkpoints;
mod consumers;
mod entitlements;
mod events;
mod notices;
mod orders;
mod recovery;
mod requests;
mod sessions;
mod stock;
mod subscriptions;
pub mod tables;

pub use access::{AccessRecord, AccessStore};
pub use aws_sdk_dynamodb::Client as DynamoDb;
pub use checkpoints::CheckpointStore;
pub use consumers::{
    Consumer, EventOutcome, FULFILLMENT_EVENTS, Handled, RECOVERY_EVENTS, SUBSCRIPTION_EVENTS,
};
pub use entitlements::{AccessChange, AccessLedger, AccessState, Guard};
pub use events::{EventRecord, EventStore, PendingPage, Recorded};
pub use orders::{
    AfterSale, AfterSaleState, Claim, Completed, FulfillmentState, OrderAmount, OrderDetails,
    OrderField, OrderLine, OrderRecord, OrderShipping, OrderStore, OrderTaxId, OrderTotals,
};
pub use recovery::{RecoveryClaim, RecoveryStore, SkipReason};
pub use requests::{Begun, RequestRecord, RequestStore};
pub use sessions::{SessionRecord, SessionStore};
pub use stock::{
    MAX_TRACKED_PRICES, Reservation, ReservationState, ReserveWrite, ReservedLine, StockStore,
};
pub use subscriptions::{
    InvoiceStatus, SubscriptionLine, SubscriptionRecord, SubscriptionState, SubscriptionStore,
    state_version,
};

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::config::TableName;
use crate::http::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB could not be reached or refused the call; the caller answers 5xx so the
    /// sender (Stripe, the stream) retries.
    #[error("DynamoDB call {operation} failed: {detail}")]
    Unavailable {
        operation: &'static str,
        detail: String,
    },
    #[error("the record could not be encoded for DynamoDB: {0}")]
    Encoding(#[from] serde_dynamo::Error),
}

/// DynamoDB out of reach is worth retrying (503); a record that cannot be encoded is a bug.
impl ApiError for StoreError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Encoding(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        "storage_unavailable"
    }
}

impl StoreError {
    fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        Self::Unavailable {
            operation,
            detail: DisplayErrorContext(&err).to_string(),
        }
    }
}

/// A conditional write's outcome: `Ok(true)` when written, `Ok(false)` when its condition did
/// not hold (the race was lost, or the state forbids it), an error when DynamoDB failed.
fn conditional_write<T, E, R>(
    operation: &'static str,
    result: Result<T, SdkError<E, R>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if is_conditional_check_failure(&err) => Ok(false),
        Err(err) => Err(StoreError::from_sdk(operation, err)),
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// True when a conditional write lost its race: the record already exists.
fn is_conditional_check_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// A strongly consistent read of one item by its string partition key.
async fn get_item<T: DeserializeOwned>(
    client: &DynamoDb,
    table: &TableName,
    key: &str,
    value: &str,
) -> Result<Option<T>, StoreError> {
    let output = client
        .get_item()
        .table_name(table.as_str())
        .key(key, AttributeValue::S(value.to_string()))
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
