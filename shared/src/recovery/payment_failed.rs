//! `checkout.session.async_payment_failed`: one transactional notice per session telling the
//! customer the delayed payment failed, with a way back to the shop.

use serde::Serialize;

use super::{Recovery, RecoveryError, language};
use crate::ids::AccountId;
use crate::mail::{EmailAddress, MailError, Mailer};
use crate::metrics::{self, Unit};
use crate::stripe::{CheckoutSession, IdempotencyKey};

/// Nothing beyond the sender's name, postal address and shop URL (`Templates::render`).
#[derive(Serialize)]
struct FailureContext {}

impl<M: Mailer> Recovery<M> {
    /// `checkout.session.async_payment_failed`: a transactional notice (no consent needed),
    /// once per session.
    ///
    /// # Errors
    /// DynamoDB or SES failed; the claim is released so the stream's retry sends it.
    pub async fn payment_failed(
        &self,
        session: &CheckoutSession,
        account: Option<&AccountId>,
        now: i64,
    ) -> Result<bool, RecoveryError> {
        let email_of = |s: &CheckoutSession| {
            s.customer_details
                .as_ref()
                .and_then(|d| d.email.clone())
                .or_else(|| s.customer_email.clone())
        };
        let Some(to) = email_of(session).and_then(|e| e.parse::<EmailAddress>().ok()) else {
            return Ok(false);
        };
        let owner = IdempotencyKey::generate("payment-failed");
        if !self
            .store
            .claim_failure_notice(&session.id, owner.as_str(), now)
            .await?
        {
            return Ok(false);
        }
        let sender = self.sender(account);
        let kind = format!("payment_failed.{}", language(session.locale.as_deref()));
        let sent = async {
            let email = self
                .config
                .templates
                .render(&kind, &sender, to.clone(), FailureContext {})
                .map_err(|e| RecoveryError::Template(e.to_string()))?;
            Ok::<_, RecoveryError>(self.mailer.send(&email).await?)
        }
        .await;
        match sent {
            Ok(message_id) => {
                tracing::info!(session_id = %session.id, recipient = to.hashed(), message_id, "payment-failed notice sent");
                Ok(true)
            }
            // SES may have sent it: counted as sent (`MailError::Unknown`). The claim is kept,
            // so the retry finds it and sends nothing.
            Err(err @ RecoveryError::Mail(MailError::Unknown(_))) => {
                tracing::warn!(session_id = %session.id, error = %err, "payment-failed notice outcome unknown; not resent");
                metrics::emit(
                    "EmailOutcomeUnknown",
                    1.0,
                    Unit::Count,
                    &[("Email", "payment_failed")],
                );
                Err(err)
            }
            Err(err) => {
                self.store
                    .release_failure_notice(&session.id, owner.as_str())
                    .await?;
                Err(err)
            }
        }
    }
}
