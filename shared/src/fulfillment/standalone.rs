//! A standalone PaymentIntent's order (the Payment Element): only one marked as the bundle's
//! (`stripe::FULFIL_METADATA_KEY`), never one that belongs to a Checkout Session or an invoice,
//! through the same exactly-once claim as a session's order.

use super::order::payment_intent_details;
use super::{Fulfil, Fulfillment, FulfillmentError, Outcome};
use crate::access::Entitle;
use crate::ids::AccountId;
use crate::stripe::{PaymentIntent, PaymentStatus};

impl<F: Fulfil, E: Entitle> Fulfillment<F, E> {
    /// Fulfils a standalone PaymentIntent (Payment Element flows), one marked with
    /// `stripe::FULFIL_METADATA_KEY`. Any other (an invoice's, a Checkout Session's) is left
    /// to what it belongs to, so it is never fulfilled twice; so is a marked one that
    /// belongs to a session after all.
    ///
    /// # Errors
    /// As [`Self::fulfill_checkout`].
    pub async fn fulfill_payment_intent(
        &self,
        intent: PaymentIntent,
        account: Option<&AccountId>,
        lease_until: i64,
        now: i64,
    ) -> Result<Option<Outcome>, FulfillmentError> {
        if !intent.is_standalone()
            || self
                .stripe()
                .session_for_payment_intent(&intent.id, account)
                .await?
                .is_some()
        {
            return Ok(None);
        }
        let payment_status = match intent.status.as_str() {
            "succeeded" => PaymentStatus::Paid,
            // Digital goods may go out while a bank debit settles; a failure revokes them.
            "processing" if self.config().fulfil_on_processing => PaymentStatus::Unpaid,
            _ => return Ok(Some(Outcome::AwaitingPayment)),
        };
        let mut details = payment_intent_details(&intent);
        // A Payment Element order names its customer, not an address: ask Stripe for it.
        if details.customer_email.is_none()
            && let Some(customer) = &intent.customer
        {
            let customer = self.stripe().retrieve_customer(customer, account).await?;
            details.customer_email = customer.email;
            details.customer_name = customer.name;
        }
        self.fulfil_claimed(
            intent.id.as_str(),
            account,
            payment_status,
            details,
            lease_until,
            now,
        )
        .await
        .map(Some)
    }
}
