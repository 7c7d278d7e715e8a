//! A caller's `Idempotency-Key`, kept across real retries (`store::RequestStore`): the same
//! key with the same body gets the first answer without a second create; with another body,
//! `409 idempotency_conflict`. Stripe's own idempotency stays underneath, with a key derived
//! from the caller's, and the first request's time is reused so Stripe sees the very same
//! parameters (`expires_at` included) and replays its object instead of refusing.

use sha2::{Digest, Sha256};

use super::CheckoutError;
use crate::ids::AccountId;
use crate::store::{Begun, RequestStore};

/// Where a request with a caller's key stands.
pub(super) enum Prior {
    /// Not answered yet: create, as of `first_at`.
    Create { first_at: i64 },
    /// Answered before: give the same answer.
    Answered(String),
}

/// One request under a caller's key.
pub(super) struct Replay<'a> {
    store: &'a RequestStore,
    key: String,
    fingerprint: String,
}

impl<'a> Replay<'a> {
    pub(super) fn new(
        store: &'a RequestStore,
        route: &str,
        account: Option<&AccountId>,
        caller_key: &str,
        body: &[u8],
    ) -> Self {
        let scope = account.map_or("platform", AccountId::as_str);
        Self {
            store,
            key: format!("{route}#{scope}#{caller_key}"),
            fingerprint: hex::encode(Sha256::digest(body)),
        }
    }

    /// # Errors
    /// The key was used with another body (409), or DynamoDB failed.
    pub(super) async fn begin(&self, now: i64) -> Result<Prior, CheckoutError> {
        match self.store.begin(&self.key, &self.fingerprint, now).await? {
            Begun::New => Ok(Prior::Create { first_at: now }),
            Begun::Seen(record) if record.fingerprint != self.fingerprint => {
                Err(CheckoutError::IdempotencyConflict)
            }
            Begun::Seen(record) => Ok(match record.answer {
                Some(answer) => Prior::Answered(answer),
                // The first request is running, or died before it recorded its answer:
                // Stripe's own key makes this one get the same object.
                None => Prior::Create {
                    first_at: record.first_at,
                },
            }),
        }
    }

    /// Releases the key after the request was refused (4xx) before anything was created
    /// under it, so a corrected retry with the same key is a first use. Best effort: a
    /// failure is logged, and the caller still gets the refusal.
    pub(super) async fn release(&self) {
        if let Err(err) = self.store.release(&self.key, &self.fingerprint).await {
            tracing::warn!(error = %err, "a refused request's Idempotency-Key record was not released");
        }
    }

    /// # Errors
    /// DynamoDB failed.
    pub(super) async fn finish(&self, answer: &str) -> Result<(), CheckoutError> {
        Ok(self
            .store
            .finish(&self.key, &self.fingerprint, answer)
            .await?)
    }
}
