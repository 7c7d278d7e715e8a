//! The subscription's stored state from its events: each write newer than the stored one
//! (`store::state_version`), a retrieve from Stripe where the event does not carry what is
//! needed (an invoice before any subscription event, an object too large to store).

use super::{Subscriptions, SubscriptionsError, not_found_as};
use crate::access::Entitle;
use crate::ids::{AccountId, InvoiceId, SubscriptionId};
use crate::metrics::{self, Unit};
use crate::store::{InvoiceStatus, SubscriptionLine, SubscriptionState, state_version};
use crate::stripe::{BillingReason, Invoice, Subscription};

/// What the table keeps of a subscription.
pub(super) fn state_of(subscription: &Subscription) -> SubscriptionState {
    SubscriptionState {
        status: subscription.status,
        customer: subscription.customer_id(),
        items: subscription
            .items
            .data
            .iter()
            .map(|item| SubscriptionLine {
                price: item.price.as_ref().map(|p| p.id.to_string()),
                product: item
                    .price
                    .as_ref()
                    .and_then(|p| p.product.as_ref())
                    .and_then(|product| {
                        product
                            .as_str()
                            .or_else(|| product.get("id").and_then(|id| id.as_str()))
                    })
                    .map(str::to_string),
                quantity: item.quantity.unwrap_or(1),
            })
            .collect(),
        current_period_end: subscription.current_period_end(),
        cancel_at_period_end: subscription.cancel_at_period_end,
        canceled_at: subscription.canceled_at,
        ended_at: subscription.ended_at,
    }
}

/// How an invoice event ends for the subscription.
pub(super) enum InvoiceOutcome {
    Recorded,
    Duplicate,
    NotASubscription,
}

impl<E: Entitle> Subscriptions<E> {
    /// Writes `subscription` as of an event created at `created`. `false`: the stored state
    /// is newer (or final), and stays.
    pub(super) async fn apply(
        &self,
        subscription: &Subscription,
        account: Option<&AccountId>,
        created: i64,
    ) -> Result<bool, SubscriptionsError> {
        let state = state_of(subscription);
        let version = state_version(created, state.status);
        let written = self
            .store
            .apply(&subscription.id, account, &state, version, self.clock.now())
            .await?;
        if written {
            tracing::info!(subscription_id = %subscription.id, status = state.status.as_str(), "subscription recorded");
        } else {
            tracing::info!(subscription_id = %subscription.id, status = state.status.as_str(), "older than the stored subscription; kept the stored one");
        }
        Ok(written)
    }

    /// The subscription as Stripe has it now, written as of `created` (an event's): it is at
    /// least as new as that event.
    pub(super) async fn refresh(
        &self,
        id: &SubscriptionId,
        account: Option<&AccountId>,
        created: i64,
    ) -> Result<(), SubscriptionsError> {
        let subscription = self
            .stripe
            .retrieve_subscription(id, account)
            .await
            .map_err(not_found_as(id))?;
        self.apply(&subscription, account, created).await.map(drop)
    }

    /// `invoice.paid`, `invoice.payment_failed`, `invoice.payment_action_required`: the
    /// latest invoice's status; a paid one also extends `paid_through` and, for a renewal,
    /// is counted once. When the stored subscription does not grant access yet (unknown,
    /// or still `incomplete` when its first invoice is paid), it is retrieved from Stripe.
    pub(super) async fn record_invoice(
        &self,
        invoice: &Invoice,
        status: InvoiceStatus,
        account: Option<&AccountId>,
        created: i64,
    ) -> Result<InvoiceOutcome, SubscriptionsError> {
        let Some(id) = invoice.subscription_id() else {
            return Ok(InvoiceOutcome::NotASubscription);
        };
        let now = self.clock.now();
        let rank = i64::from(status == InvoiceStatus::Paid);
        let newest = self
            .store
            .record_invoice_status(&id, &invoice.id, status, created * 10 + rank, now)
            .await?;
        if status != InvoiceStatus::Paid {
            return Ok(if newest {
                InvoiceOutcome::Recorded
            } else {
                InvoiceOutcome::Duplicate
            });
        }
        let stored = self.store.get(&id).await?;
        let known = stored
            .as_ref()
            .and_then(|r| r.state.as_ref())
            .is_some_and(|s| s.status.grants_access() || s.status.is_final());
        if !known {
            self.refresh(&id, account, created).await?;
        }
        let renewal = invoice.billing_reason == Some(BillingReason::SubscriptionCycle);
        let first = self
            .store
            .record_paid_invoice(&id, &invoice.id, renewal, invoice.period_end(), now)
            .await?;
        if first && renewal {
            tracing::info!(subscription_id = %id, invoice_id = %invoice.id, "renewal paid");
            metrics::emit("RenewalsPaid", 1.0, Unit::Count, &[]);
        }
        Ok(if first {
            InvoiceOutcome::Recorded
        } else {
            InvoiceOutcome::Duplicate
        })
    }

    /// The invoice in an event, as stored or from Stripe when stored without its object.
    pub(super) async fn invoice(
        &self,
        object: Option<&str>,
        id: Option<&str>,
        account: Option<&AccountId>,
    ) -> Result<Option<Invoice>, SubscriptionsError> {
        if let Some(invoice) = object.and_then(|o| serde_json::from_str::<Invoice>(o).ok()) {
            return Ok(Some(invoice));
        }
        let Some(id) = id.and_then(|id| id.parse::<InvoiceId>().ok()) else {
            return Ok(None);
        };
        self.stripe
            .retrieve_invoice(&id, account)
            .await
            .map(Some)
            .map_err(not_found_as(&id))
    }

    /// The subscription in an event, as stored or from Stripe when stored without it.
    pub(super) async fn subscription(
        &self,
        object: Option<&str>,
        id: Option<&str>,
        account: Option<&AccountId>,
    ) -> Result<Option<Subscription>, SubscriptionsError> {
        if let Some(subscription) =
            object.and_then(|o| serde_json::from_str::<Subscription>(o).ok())
        {
            return Ok(Some(subscription));
        }
        let Some(id) = id.and_then(|id| id.parse::<SubscriptionId>().ok()) else {
            return Ok(None);
        };
        self.stripe
            .retrieve_subscription(&id, account)
            .await
            .map(Some)
            .map_err(not_found_as(&id))
    }
}
