//! One transactional notice, sent at most once: claimed in the recovery table under its key
//! before it is sent, released when the send fails before SES took it (so the trigger's retry
//! sends it), kept when SES may have sent it (`MailError::Unknown`: counted as sent, never
//! resent). Transactional notices concern the customer's own payment, so no consent is needed.

use serde::Serialize;

use super::{Recovery, RecoveryError};
use crate::ids::{AccountId, CustomerId};
use crate::mail::{EmailAddress, MailError, Mailer};
use crate::metrics::{self, Unit};
use crate::store::Handled;
use crate::stripe::IdempotencyKey;

/// A notice to send once.
pub(super) struct Notice<'a, C> {
    /// The claim's key in the recovery table.
    pub key: String,
    /// The metric and log name (`renewal_failed`, `payment_pending`, …).
    pub kind: &'static str,
    /// The template, with its language (`payment_pending.fr`).
    pub template: String,
    /// The payment's or invoice's account: whose shop the notice is from.
    pub account: Option<&'a AccountId>,
    pub to: &'a EmailAddress,
    pub context: C,
}

impl<M: Mailer> Recovery<M> {
    /// Where a notice about a payment goes, and in which language: the address the payment
    /// names, else its customer's, and the customer's first preferred locale.
    pub(super) async fn recipient(
        &self,
        email: Option<&str>,
        customer: Option<&CustomerId>,
        account: Option<&AccountId>,
    ) -> Result<Option<(EmailAddress, Option<String>)>, RecoveryError> {
        let customer = match customer {
            Some(id) => Some(self.stripe.retrieve_customer(id, account).await?),
            None => None,
        };
        let to = email
            .map(str::to_string)
            .or_else(|| customer.as_ref().and_then(|c| c.email.clone()))
            .and_then(|e| e.parse::<EmailAddress>().ok());
        let locale = customer.and_then(|c| c.preferred_locales.into_iter().next());
        Ok(to.map(|to| (to, locale)))
    }

    /// Claims and sends `notice`. `Skipped("already_sent")` when it was claimed before.
    pub(super) async fn send_notice<C: Serialize>(
        &self,
        notice: Notice<'_, C>,
    ) -> Result<Handled, RecoveryError> {
        let owner = IdempotencyKey::generate(notice.kind);
        let now = self.clock.now();
        if !self
            .store
            .claim_notice(&notice.key, owner.as_str(), now)
            .await?
        {
            return Ok(Handled::Skipped("already_sent"));
        }
        let kind = notice.kind;
        let sent = async {
            let email = self
                .config
                .templates
                .render(
                    &notice.template,
                    &self.sender(notice.account),
                    notice.to.clone(),
                    notice.context,
                )
                .map_err(|e| RecoveryError::Template(e.to_string()))?;
            Ok::<_, RecoveryError>(self.mailer.send(&email).await?)
        }
        .await;
        match sent {
            Ok(message_id) => {
                tracing::info!(
                    notice = notice.key,
                    recipient = notice.to.hashed(),
                    message_id,
                    kind,
                    "notice sent"
                );
                metrics::emit("NoticesSent", 1.0, Unit::Count, &[("Kind", kind)]);
                Ok(Handled::Done)
            }
            Err(err @ RecoveryError::Mail(MailError::Unknown(_))) => {
                tracing::warn!(notice = notice.key, error = %err, kind, "notice outcome unknown; not resent");
                metrics::emit("EmailOutcomeUnknown", 1.0, Unit::Count, &[("Email", kind)]);
                Ok(Handled::Done)
            }
            Err(err) => {
                self.store
                    .release_notice(&notice.key, owner.as_str())
                    .await?;
                Err(err)
            }
        }
    }
}
