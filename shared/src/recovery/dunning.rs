//! A subscription's failed renewal: `invoice.payment_failed` sends one email per invoice
//! attempt inviting the customer to pay on Stripe's hosted invoice page, and
//! `invoice.payment_action_required` one asking them to confirm the payment there (3-D
//! Secure). Transactional, so no consent is needed; claimed exactly once per invoice,
//! attempt and kind, however many times the event comes.

use serde::Serialize;

use super::notice::Notice;
use super::{Recovery, RecoveryError, language};
use crate::mail::Mailer;
use crate::money::Money;
use crate::store::{EventRecord, Handled};
use crate::stripe::{EventType, Invoice};

/// The sender's name, postal address and shop URL come with the sender (`Templates::render`).
#[derive(Serialize)]
struct InvoiceContext<'a> {
    pay_url: &'a str,
    amount_display: String,
    attempt: u32,
    next_attempt: Option<String>,
}

impl<M: Mailer> Recovery<M> {
    /// The renewal notices (`invoice.payment_failed`, `invoice.payment_action_required`).
    pub(super) async fn invoice_notice(
        &self,
        event: &EventRecord,
    ) -> Result<Handled, RecoveryError> {
        let Some(invoice) = self.invoice_of(event).await? else {
            return Ok(Handled::Skipped("malformed_object_id"));
        };
        if invoice.subscription_id().is_none() {
            return Ok(Handled::Skipped("not_a_subscription_invoice"));
        }
        let kind = if event.kind == EventType::InvoicePaymentFailed {
            "renewal_failed"
        } else {
            "renewal_action_required"
        };
        let Some(pay_url) = invoice.hosted_invoice_url.as_deref() else {
            return Ok(Handled::Skipped("no_hosted_invoice_url"));
        };
        let customer = invoice.customer.as_ref().and_then(|c| {
            c.as_str()
                .or_else(|| c.get("id").and_then(|id| id.as_str()))
                .and_then(|id| id.parse().ok())
        });
        let Some((to, locale)) = self
            .recipient(
                invoice.customer_email.as_deref(),
                customer.as_ref(),
                event.account.as_ref(),
            )
            .await?
        else {
            return Ok(Handled::Skipped("no_email"));
        };
        let key = format!(
            "invoice#{}#{}#{kind}",
            invoice.id,
            invoice.attempt_count.max(1)
        );
        let context = InvoiceContext {
            pay_url,
            amount_display: Money {
                amount: invoice.amount_due,
                currency: invoice.currency.as_ref(),
            }
            .to_string(),
            attempt: invoice.attempt_count.max(1),
            next_attempt: invoice.next_payment_attempt.map(crate::clock::iso8601),
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

    /// The invoice in an event, as stored or from Stripe when stored without its object.
    async fn invoice_of(&self, event: &EventRecord) -> Result<Option<Invoice>, RecoveryError> {
        if let Some(invoice) = event
            .object
            .as_deref()
            .and_then(|o| serde_json::from_str::<Invoice>(o).ok())
        {
            return Ok(Some(invoice));
        }
        let Some(id) = event.object_id.as_deref().and_then(|id| id.parse().ok()) else {
            return Ok(None);
        };
        Ok(Some(
            self.stripe
                .retrieve_invoice(&id, event.account.as_ref())
                .await?,
        ))
    }
}
