//! The recovery table: what was sent to whom, so no customer gets two recovery emails for a
//! session, nor more than one per cooldown window, nor any after opting out or buying.
//!
//! Keys: `session#<cs_…>` (one claim per session), `address#<sha256 of the address>`
//! (cooldown, opt-out, last purchase; the address itself is never stored), and
//! `failed#<cs_…>` (the one payment-failed notice per session), and
//! `invoice#<in_…>#<attempt>#<kind>` (one renewal notice per invoice attempt), and
//! `payment#<pi_…>#<attempt>#<pending|retry>` (a Payment Element payment's notices).

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::{DynamoDb, StoreError, conditional_write, n, s};
use crate::config::TableName;
use crate::ids::SessionId;

/// How long the records stay: past the recovery URL's 30 days and any cooldown.
pub(super) const RETENTION_SECS: i64 = 60 * 86_400;

/// Why an email was not sent, also the `Reason` dimension of the skip metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    NoEmail,
    NoRecoveryUrl,
    RecoveryUrlExpired,
    NoConsent,
    Unsubscribed,
    PurchasedSince,
    Cooldown,
    AlreadySent,
}

impl SkipReason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoEmail => "no_email",
            Self::NoRecoveryUrl => "no_recovery_url",
            Self::RecoveryUrlExpired => "recovery_url_expired",
            Self::NoConsent => "no_consent",
            Self::Unsubscribed => "unsubscribed",
            Self::PurchasedSince => "purchased_since",
            Self::Cooldown => "cooldown",
            Self::AlreadySent => "already_sent",
        }
    }
}

/// One claim: which session, which hashed address, by whom.
#[derive(Debug, Clone)]
pub struct RecoveryClaim<'a> {
    pub session: &'a SessionId,
    pub address_hash: &'a str,
    pub owner: &'a str,
    pub session_created: i64,
    pub cooldown_secs: i64,
    pub now: i64,
}

#[derive(Debug, Clone)]
pub struct RecoveryStore {
    pub(super) client: DynamoDb,
    pub(super) table: TableName,
}

fn session_key(id: &SessionId) -> AttributeValue {
    s(format!("session#{id}"))
}

fn address_key(hash: &str) -> AttributeValue {
    s(format!("address#{hash}"))
}

fn transaction_conflict(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .any(|reason| reason.code() == Some("TransactionConflict")),
        _ => false,
    }
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

impl RecoveryStore {
    pub const KEY: &'static str = "pk";

    #[must_use]
    pub fn new(table: TableName, client: DynamoDb) -> Self {
        Self { client, table }
    }

    /// Why sending would be refused right now, read without writing: lets the caller skip
    /// the Stripe calls (line items, promotion code) for the common refusals.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn precheck(
        &self,
        claim: &RecoveryClaim<'_>,
    ) -> Result<Option<SkipReason>, StoreError> {
        if self.item(session_key(claim.session)).await?.is_some() {
            return Ok(Some(SkipReason::AlreadySent));
        }
        self.address_refusal(claim).await
    }

    async fn address_refusal(
        &self,
        claim: &RecoveryClaim<'_>,
    ) -> Result<Option<SkipReason>, StoreError> {
        let Some(address) = self.item(address_key(claim.address_hash)).await? else {
            return Ok(None);
        };
        Ok(if address.contains_key("unsubscribed_at") {
            Some(SkipReason::Unsubscribed)
        } else if number(&address, "last_purchase_at").is_some_and(|t| t >= claim.session_created) {
            Some(SkipReason::PurchasedSince)
        } else if number(&address, "last_sent_at")
            .is_some_and(|t| t > claim.now - claim.cooldown_secs)
        {
            Some(SkipReason::Cooldown)
        } else {
            None
        })
    }

    /// Claims the right to send: one transaction that fails if this session was already
    /// claimed, or if the address opted out, bought since the session was created, or got a
    /// recovery email within the cooldown. `Err(reason)` says which.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn claim(
        &self,
        claim: &RecoveryClaim<'_>,
    ) -> Result<Result<(), SkipReason>, StoreError> {
        // The address item must outlive its cooldown, or its expiry would end the cooldown.
        let retention = RETENTION_SECS.max(claim.cooldown_secs);
        let session = Put::builder()
            .table_name(self.table.as_str())
            .item(Self::KEY, session_key(claim.session))
            .item("state", s("claimed"))
            .item("owner", s(claim.owner))
            .item("address_hash", s(claim.address_hash))
            .item("claimed_at", n(claim.now))
            .item("ttl", n(claim.now + retention))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table, item and condition are set");
        let address = Update::builder()
            .table_name(self.table.as_str())
            .key(Self::KEY, address_key(claim.address_hash))
            .update_expression("SET last_sent_at = :now, previous_sent_at = if_not_exists(last_sent_at, :zero), claim_session = :session, #ttl = :ttl")
            .condition_expression(
                "attribute_not_exists(unsubscribed_at) \
                 AND (attribute_not_exists(last_purchase_at) OR last_purchase_at < :created) \
                 AND (attribute_not_exists(last_sent_at) OR last_sent_at <= :cooldown_start)",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(claim.now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":session", s(claim.session.as_str()))
            .expression_attribute_values(":ttl", n(claim.now + retention))
            .expression_attribute_values(":created", n(claim.session_created))
            .expression_attribute_values(":cooldown_start", n(claim.now - claim.cooldown_secs))
            .build()
            .expect("table, key and expression are set");
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(session).build())
            .transact_items(TransactWriteItem::builder().update(address).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(err) if transaction_conflict(&err) => {
                // A concurrent write to the same address (purchase, opt-out): not a refusal;
                // the stream's retry decides again.
                Err(StoreError::from_sdk("TransactWriteItems", err))
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception()) =>
            {
                // Which condition failed: read back rather than trust cancellation reasons'
                // order, which DynamoDB-compatible servers do not all report.
                if self.item(session_key(claim.session)).await?.is_some() {
                    return Ok(Err(SkipReason::AlreadySent));
                }
                Ok(Err(self
                    .address_refusal(claim)
                    .await?
                    .unwrap_or(SkipReason::Cooldown)))
            }
            Err(err) => Err(StoreError::from_sdk("TransactWriteItems", err)),
        }
    }

    /// Records the send. Keyed on the owner so a stale claimant cannot overwrite.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn mark_sent(
        &self,
        session: &SessionId,
        owner: &str,
        message_id: &str,
        promotion_code: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, session_key(session))
            .update_expression(if promotion_code.is_some() {
                "SET #state = :sent, message_id = :message, sent_at = :now, promotion_code = :code"
            } else {
                "SET #state = :sent, message_id = :message, sent_at = :now"
            })
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":sent", s("sent"))
            .expression_attribute_values(":message", s(message_id))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":owner", s(owner));
        if let Some(code) = promotion_code {
            update = update.expression_attribute_values(":code", s(code));
        }
        update
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("UpdateItem", err))?;
        Ok(())
    }

    /// Undoes a claim whose send failed, so the stream's retry can send: the session claim is
    /// deleted and the address's cooldown goes back to what it was.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn release(
        &self,
        session: &SessionId,
        address_hash: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(self.table.as_str())
            .key(Self::KEY, session_key(session))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .build()
            .expect("table, key and condition are set");
        let restore = Update::builder()
            .table_name(self.table.as_str())
            .key(Self::KEY, address_key(address_hash))
            .update_expression("SET last_sent_at = previous_sent_at REMOVE claim_session")
            .condition_expression("claim_session = :session")
            .expression_attribute_values(":session", s(session.as_str()))
            .build()
            .expect("table, key and expression are set");
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(TransactWriteItem::builder().update(restore).build())
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("TransactWriteItems", err))?;
        Ok(())
    }

    /// Records an opt-out (idempotent: the first time is kept).
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn unsubscribe(&self, address_hash: &str, now: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, address_key(address_hash))
            // An opt-out is kept for good: the address item loses its expiry.
            .update_expression(
                "SET unsubscribed_at = if_not_exists(unsubscribed_at, :now) REMOVE #ttl",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("UpdateItem", err))?;
        Ok(())
    }

    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn is_unsubscribed(&self, address_hash: &str) -> Result<bool, StoreError> {
        Ok(self
            .item(address_key(address_hash))
            .await?
            .is_some_and(|item| item.contains_key("unsubscribed_at")))
    }

    /// Records a purchase by this address at `at` (when its session completed); keeps the latest.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn record_purchase(&self, address_hash: &str, at: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, address_key(address_hash))
            .update_expression("SET last_purchase_at = :at")
            .condition_expression(
                "attribute_not_exists(last_purchase_at) OR last_purchase_at < :at",
            )
            .expression_attribute_values(":at", n(at))
            .send()
            .await;
        conditional_write("UpdateItem", result).map(drop)
    }

    /// Marks an emailed session converted (its recovery URL led to a purchase), once.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn convert(
        &self,
        session: &SessionId,
        amount: i64,
        currency: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, session_key(session))
            .update_expression("SET converted_at = :now, converted_amount = :amount, converted_currency = :currency")
            .condition_expression("#state = :sent AND attribute_not_exists(converted_at)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sent", s("sent"))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":amount", n(amount))
            .expression_attribute_values(":currency", s(currency))
            .send()
            .await;
        conditional_write("UpdateItem", result)
    }

    /// A raw record, for tests and tools.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn item(
        &self,
        key: AttributeValue,
    ) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, key)
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("GetItem", err))?;
        Ok(output.item)
    }

    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn session_item(
        &self,
        session: &SessionId,
    ) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        self.item(session_key(session)).await
    }
}
