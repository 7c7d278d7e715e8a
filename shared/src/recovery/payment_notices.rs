//! A Payment Element payment's notices, as Stripe's guide for existing customers asks:
//! `payment_intent.processing` gets one "payment pending" email (a bank debit takes days),
//! and `payment_intent.payment_failed` after `processing` one inviting the customer to try
//! again, linking to the merchant's retry page (`PAYMENT_RETRY_URL`, with
//! `{PAYMENT_INTENT_ID}`). One of each per payment attempt (the attempt's charge), only for
//! the PaymentIntents the bundle fulfils; a card declined on the spot needs no email, the
//! customer is on the page.

use serde::Serialize;

use super::notice::Notice;
use super::{Recovery, RecoveryError, language};
use crate::mail::Mailer;
use crate::money::Money;
use crate::store::{EventRecord, Handled};
use crate::stripe::{EventType, PaymentIntent};

/// The sender's name, postal address and shop URL come with the sender (`Templates::render`).
#[derive(Serialize)]
struct PaymentContext<'a> {
    retry_url: Option<String>,
    amount_display: String,
    description: Option<&'a str>,
}

/// The placeholder `PAYMENT_RETRY_URL` holds.
pub const PAYMENT_INTENT_PLACEHOLDER: &str = "{PAYMENT_INTENT_ID}";

impl<M: Mailer> Recovery<M> {
    /// `payment_intent.processing` and `payment_intent.payment_failed`.
    pub(super) async fn payment_notice(
        &self,
        event: &EventRecord,
    ) -> Result<Handled, RecoveryError> {
        let Some(intent) = event
            .object
            .as_deref()
            .and_then(|o| serde_json::from_str::<PaymentIntent>(o).ok())
        else {
            return Ok(Handled::Skipped("payment_intent_not_stored"));
        };
        if !intent.is_standalone() {
            return Ok(Handled::Skipped("not_a_standalone_payment_intent"));
        }
        let attempt = intent.attempt().unwrap_or("1").to_string();
        let pending_key = format!("payment#{}#{attempt}#pending", intent.id);
        let (key, kind) = if event.kind == EventType::PaymentIntentProcessing {
            (pending_key, "payment_pending")
        } else {
            // Only a payment that was pending failed "later": a declined card is told on the
            // payment page itself.
            if !self.store.notice_claimed(&pending_key).await? {
                return Ok(Handled::Skipped("not_after_processing"));
            }
            (
                format!("payment#{}#{attempt}#retry", intent.id),
                "payment_retry",
            )
        };
        let Some((to, locale)) = self
            .recipient(
                intent.receipt_email.as_deref(),
                intent.customer.as_ref(),
                event.account.as_ref(),
            )
            .await?
        else {
            return Ok(Handled::Skipped("no_email"));
        };
        let context = PaymentContext {
            retry_url: self
                .config
                .payment_retry_url
                .as_ref()
                .map(|url| url.replace(PAYMENT_INTENT_PLACEHOLDER, intent.id.as_str())),
            amount_display: Money {
                amount: intent.amount,
                currency: Some(&intent.currency),
            }
            .to_string(),
            description: intent.description.as_deref(),
        };
        self.send_notice(Notice {
            key,
            kind,
            template: format!("{kind}.{}", language(locale.as_deref())),
            account: event.account.as_ref(),
            to: &to,
            context,
        })
        .await
    }
}
