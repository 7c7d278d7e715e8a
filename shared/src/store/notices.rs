//! Transactional notices on the recovery table, one item each, claimed before a send and
//! released when the send failed before SES took it: `failed#<cs_…>` (a delayed Checkout
//! payment failed), `invoice#<in_…>#<attempt>#<kind>` (a renewal), and
//! `payment#<pi_…>#<attempt>#<pending|retry>` (a Payment Element payment).

use super::recovery::RETENTION_SECS;
use super::{RecoveryStore, StoreError, conditional_write, n, s};
use crate::ids::SessionId;

impl RecoveryStore {
    /// Claims the one payment-failed notice of a session.
    ///
    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn claim_failure_notice(
        &self,
        session: &SessionId,
        owner: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.claim_notice(&format!("failed#{session}"), owner, now)
            .await
    }

    /// # Errors
    /// DynamoDB failed, or an item read back is not of this shape.
    pub async fn release_failure_notice(
        &self,
        session: &SessionId,
        owner: &str,
    ) -> Result<(), StoreError> {
        self.release_notice(&format!("failed#{session}"), owner)
            .await
    }

    /// Claims one transactional notice, named by `key` (`failed#<cs_…>`,
    /// `invoice#<in_…>#<attempt>#<kind>`): `true` for the one caller that may send it.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn claim_notice(&self, key: &str, owner: &str, now: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_str())
            .item(Self::KEY, s(key))
            .item("owner", s(owner))
            .item("claimed_at", n(now))
            .item("ttl", n(now + RETENTION_SECS))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        conditional_write("PutItem", result)
    }

    /// Whether the notice named `key` was claimed (sent, or its outcome unknown).
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn notice_claimed(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.item(s(key)).await?.is_some())
    }

    /// Gives a notice's claim back after a failed send, so the retry can send it.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn release_notice(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(self.table.as_str())
            .key(Self::KEY, s(key))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await
            .map_err(|err| StoreError::from_sdk("DeleteItem", err))?;
        Ok(())
    }
}
