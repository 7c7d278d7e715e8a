//! `checkout.session.completed` as recovery sees it: a purchase that stops reminders to that
//! address, and the conversion of a recovered cart.

use super::{Recovery, RecoveryError};
use crate::mail::{EmailAddress, Mailer};
use crate::metrics::{self, Unit};
use crate::stripe::CheckoutSession;

impl<M: Mailer> Recovery<M> {
    /// `checkout.session.completed` at `completed_at` (the event's creation time): remembers
    /// the purchase, so sessions created before it get no recovery email, and tracks
    /// conversions of recovered sessions.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn session_completed(
        &self,
        session: &CheckoutSession,
        completed_at: i64,
        now: i64,
    ) -> Result<(), RecoveryError> {
        if let Some(email) = session
            .customer_details
            .as_ref()
            .and_then(|d| d.email.as_deref())
            .and_then(|e| e.parse::<EmailAddress>().ok())
        {
            self.store
                .record_purchase(&email.hashed(), completed_at)
                .await?;
        }
        if let Some(origin) = &session.recovered_from {
            let amount = session.amount_total.unwrap_or_default();
            let currency = session
                .currency
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            if self.store.convert(origin, amount, &currency, now).await? {
                tracing::info!(session_id = %session.id, recovered_from = %origin, amount, "recovered session converted");
                metrics::emit("RecoveryConversions", 1.0, Unit::Count, &[]);
                metrics::emit(
                    "RecoveredRevenue",
                    amount as f64,
                    Unit::None,
                    &[("Currency", &currency)],
                );
            }
        }
        Ok(())
    }
}
