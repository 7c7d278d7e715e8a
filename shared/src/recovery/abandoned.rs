//! The abandoned-cart email for one expired session: the checks, the claim over the session
//! and the address, the single-use promotion code, and the send.

use serde::Serialize;

use super::{Decision, Recovery, RecoveryError, language};
use crate::ids::AccountId;
use crate::mail::{EmailAddress, MailError, Mailer};
use crate::metrics::{self, Unit};
use crate::money::Money;
use crate::store::{RecoveryClaim, SkipReason};
use crate::stripe::{
    CheckoutSession, Form, IdempotencyKey, LineItem, PromotionsConsent, Recovery as RecoveryLink,
    RequestOptions,
};

/// The sender's name, postal address and shop URL come with the sender (`Templates::render`).
#[derive(Serialize)]
struct RecoveryContext<'a> {
    customer_name: Option<&'a str>,
    recovery_url: &'a str,
    unsubscribe_url: String,
    promotion_code: Option<&'a str>,
    items: Vec<ItemLine>,
}

#[derive(Serialize)]
struct ItemLine {
    description: String,
    quantity: u64,
    amount_display: String,
}

impl<M: Mailer> Recovery<M> {
    /// `checkout.session.expired`.
    ///
    /// # Errors
    /// Stripe, DynamoDB or SES failed (the claim is released, or kept when SES's outcome is
    /// unknown): the stream retries the record.
    pub async fn session_expired(
        &self,
        session: &CheckoutSession,
        account: Option<&AccountId>,
        now: i64,
    ) -> Result<Decision, RecoveryError> {
        let decision = self.decide_and_send(session, account, now).await?;
        match &decision {
            Decision::Sent { .. } => metrics::emit("RecoveryEmailsSent", 1.0, Unit::Count, &[]),
            Decision::Skipped(reason) => {
                tracing::info!(session_id = %session.id, reason = reason.as_str(), "no recovery email");
                metrics::emit(
                    "RecoveryEmailsSkipped",
                    1.0,
                    Unit::Count,
                    &[("Reason", reason.as_str())],
                );
            }
        }
        Ok(decision)
    }

    async fn decide_and_send(
        &self,
        session: &CheckoutSession,
        account: Option<&AccountId>,
        now: i64,
    ) -> Result<Decision, RecoveryError> {
        use SkipReason::*;
        let details = session.customer_details.clone().unwrap_or_default();
        let Some(to) = details
            .email
            .as_deref()
            .and_then(|e| e.parse::<EmailAddress>().ok())
        else {
            return Ok(Decision::Skipped(NoEmail));
        };
        let Some(link) = session
            .after_expiration
            .as_ref()
            .and_then(|a| a.recovery.as_ref())
            .filter(|r| r.url.is_some())
        else {
            return Ok(Decision::Skipped(NoRecoveryUrl));
        };
        if link.expires_at.is_some_and(|t| t <= now) {
            return Ok(Decision::Skipped(RecoveryUrlExpired));
        }
        if session.consent.as_ref().and_then(|c| c.promotions) != Some(PromotionsConsent::OptIn) {
            return Ok(Decision::Skipped(NoConsent));
        }
        let address_hash = to.hashed();
        let owner = IdempotencyKey::generate("recovery");
        let claim = RecoveryClaim {
            session: &session.id,
            address_hash: &address_hash,
            owner: owner.as_str(),
            session_created: session.created.unwrap_or(0),
            cooldown_secs: self.config.cooldown_secs,
            now,
        };
        if let Some(reason) = self.store.precheck(&claim).await? {
            return Ok(Decision::Skipped(reason));
        }
        let items = self.stripe.list_line_items(&session.id, account).await?;
        if let Err(reason) = self.store.claim(&claim).await? {
            return Ok(Decision::Skipped(reason));
        }
        match self
            .send_recovery(session, link, account, &to, &items)
            .await
        {
            Ok((message_id, code)) => {
                self.store
                    .mark_sent(
                        &session.id,
                        owner.as_str(),
                        &message_id,
                        code.as_deref(),
                        now,
                    )
                    .await?;
                tracing::info!(session_id = %session.id, recipient = address_hash, message_id, "recovery email sent");
                Ok(Decision::Sent { message_id })
            }
            // SES may have sent it: counted as sent (`MailError::Unknown`). The claim is kept,
            // so the retry finds it and sends nothing.
            Err(err @ RecoveryError::Mail(MailError::Unknown(_))) => {
                tracing::warn!(session_id = %session.id, error = %err, "recovery email outcome unknown; not resent");
                metrics::emit(
                    "EmailOutcomeUnknown",
                    1.0,
                    Unit::Count,
                    &[("Email", "recovery")],
                );
                Err(err)
            }
            Err(err) => {
                self.store
                    .release(&session.id, &address_hash, owner.as_str())
                    .await?;
                Err(err)
            }
        }
    }

    /// `link`: the session's `after_expiration.recovery`, with its URL.
    async fn send_recovery(
        &self,
        session: &CheckoutSession,
        link: &RecoveryLink,
        account: Option<&AccountId>,
        to: &EmailAddress,
        items: &[LineItem],
    ) -> Result<(String, Option<String>), RecoveryError> {
        let code = match (&self.config.coupon, link.allow_promotion_codes) {
            (Some(coupon), true) => {
                Some(self.promotion_code(coupon, session, link, account).await?)
            }
            _ => None,
        };
        let unsubscribe_url = self.unsubscribe_url(to);
        let context = RecoveryContext {
            customer_name: session
                .customer_details
                .as_ref()
                .and_then(|d| d.name.as_deref()),
            recovery_url: link.url.as_deref().unwrap_or_default(),
            unsubscribe_url: unsubscribe_url.clone(),
            promotion_code: code.as_deref(),
            items: items
                .iter()
                .map(|item| ItemLine {
                    description: item.description.clone().unwrap_or_default(),
                    quantity: item.quantity.unwrap_or(1),
                    amount_display: Money::new(item.amount_total, &item.currency).to_string(),
                })
                .collect(),
        };
        let kind = format!("recovery.{}", language(session.locale.as_deref()));
        let mut email = self
            .config
            .templates
            .render(&kind, &self.sender(account), to.clone(), context)
            .map_err(|e| RecoveryError::Template(e.to_string()))?;
        email
            .headers
            .push(("List-Unsubscribe", format!("<{unsubscribe_url}>")));
        email
            .headers
            .push(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into()));
        Ok((self.mailer.send(&email).await?, code))
    }

    /// One single-use code per recovered session; the idempotency key makes a retry reuse it.
    async fn promotion_code(
        &self,
        coupon: &str,
        session: &CheckoutSession,
        link: &RecoveryLink,
        account: Option<&AccountId>,
    ) -> Result<String, RecoveryError> {
        let mut form = Form::new();
        form.push("coupon", coupon).push("max_redemptions", 1);
        form.push_opt("customer", session.customer.as_ref());
        form.push_opt("expires_at", link.expires_at);
        form.push("metadata[recovery_for_session]", &session.id);
        let key = IdempotencyKey::derived("recovery-promotion-code", session.id.as_str());
        let options = RequestOptions {
            account,
            idempotency_key: Some(&key),
        };
        Ok(self
            .stripe
            .create_promotion_code(&form, options)
            .await?
            .code)
    }
}
