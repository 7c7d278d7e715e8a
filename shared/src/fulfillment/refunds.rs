//! After fulfilment: `charge.refunded`, `charge.dispute.created` and `charge.dispute.closed`
//! move a fulfilled order to `partially_refunded`, `refunded`, `disputed`, `dispute_lost`,
//! or back to `fulfilled` when a dispute is won; a delayed payment that fails after the order
//! was fulfilled on `processing` moves it to `payment_failed`. A full refund, a lost dispute
//! or that failure revokes the order's access once (the order's access ledger).
//!
//! Late and repeated events never undo a newer state: refunds are ordered by the amount
//! refunded (Stripe's `amount_refunded` only grows), disputes by their events' `created`,
//! and `refunded` and `dispute_lost` are final. Each write is conditional on the after-sale
//! record read just before, so concurrent events are applied one after the other.

use super::order::access_of;
use super::stream::RetryLater;
use super::{Fulfil, Fulfillment, FulfillmentError};
use crate::access::{Entitle, Revoke};
use crate::ids::{AccountId, PaymentIntentId};
use crate::metrics::{self, Unit};
use crate::store::{
    AccessChange, AccessState, AfterSale, AfterSaleState, EventRecord, FulfillmentState, Handled,
    OrderRecord,
};
use crate::stripe::{Charge, Dispute, DisputeStatus, EventType, IdempotencyKey};

/// What an event says happened to the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Refunded {
        amount_refunded: i64,
        full: bool,
    },
    DisputeOpened,
    DisputeClosed {
        won: bool,
    },
    /// A delayed payment failed after the order was fulfilled on `processing`
    /// (`FULFIL_ON_PROCESSING`).
    PaymentFailed,
}

/// The after-sale record `change` (of an event created at `created`) leads to, or `None`
/// when it changes nothing: a final state, a refund not larger than the recorded one, a
/// dispute event older than the recorded one, a duplicate.
#[must_use]
pub fn next(current: &AfterSale, change: Change, created: i64) -> Option<AfterSale> {
    if current.after_sale.is_some_and(AfterSaleState::is_final) {
        return None;
    }
    let mut next = *current;
    match change {
        Change::PaymentFailed => next.after_sale = Some(AfterSaleState::PaymentFailed),
        Change::Refunded {
            amount_refunded,
            full,
        } => {
            if amount_refunded <= current.amount_refunded && !full {
                return None;
            }
            next.amount_refunded = amount_refunded.max(current.amount_refunded);
            next.after_sale = Some(match (full, current.after_sale) {
                (true, _) => AfterSaleState::Refunded,
                (false, Some(AfterSaleState::Disputed)) => AfterSaleState::Disputed,
                (false, _) => AfterSaleState::PartiallyRefunded,
            });
        }
        Change::DisputeOpened | Change::DisputeClosed { .. } => {
            // Within one second, a dispute's close comes after its opening.
            let version = created
                .saturating_mul(10)
                .saturating_add(i64::from(matches!(change, Change::DisputeClosed { .. })));
            if version <= current.after_sale_version {
                return None;
            }
            next.after_sale_version = version;
            next.after_sale = match change {
                Change::DisputeClosed { won: false } => Some(AfterSaleState::DisputeLost),
                Change::DisputeClosed { won: true } => {
                    (current.amount_refunded > 0).then_some(AfterSaleState::PartiallyRefunded)
                }
                _ => Some(AfterSaleState::Disputed),
            };
        }
    }
    (next != *current).then_some(next)
}

/// How many times a write that lost its race is re-read and retried.
const WRITE_ATTEMPTS: usize = 3;

impl<F: Fulfil, E: Entitle> Fulfillment<F, E> {
    /// `charge.refunded`, `charge.dispute.*` on the order their PaymentIntent paid for.
    pub(super) async fn after_sale(
        &self,
        event: &EventRecord,
        deadline: Option<i64>,
    ) -> Result<Handled, RetryLater> {
        let Some((intent, change)) = change_of(event) else {
            tracing::error!(
                "charge or dispute event unreadable or without a PaymentIntent; skipped"
            );
            return Ok(Handled::Skipped("no_payment_intent"));
        };
        let account = event.account.as_ref();
        let Some(order) = self.order_paid_by(&intent, account).await? else {
            return Ok(Handled::Skipped("not_an_order"));
        };
        self.apply_after_sale(order, change, event.created, deadline)
            .await
    }

    /// Moves a fulfilled order on by `change` (of an event created at `created`), and revokes
    /// its access once the state is final.
    pub(super) async fn apply_after_sale(
        &self,
        mut order: OrderRecord,
        change: Change,
        created: i64,
        deadline: Option<i64>,
    ) -> Result<Handled, RetryLater> {
        if !matches!(order.state, FulfillmentState::Fulfilled { .. }) {
            // Refunded before its fulfilment finished: left for the reconciler, which
            // applies it once the order is fulfilled.
            return Ok(Handled::Unresolved {
                reason: "order_not_fulfilled",
                error: format!("order {} is {}", order.order_id, order.state.name()),
            });
        }
        let mut written = false;
        for _ in 0..WRITE_ATTEMPTS {
            let Some(after) = next(&order.after, change, created) else {
                break;
            };
            if self
                .orders()
                .record_after_sale(&order.order_id, &order.after, &after, self.clock().now())
                .await?
            {
                tracing::info!(
                    order_id = order.order_id,
                    state = after.after_sale.map_or("fulfilled", AfterSaleState::name),
                    amount_refunded = after.amount_refunded,
                    "order after sale"
                );
                order.after = after;
                written = true;
                break;
            }
            let Some(reread) = self.orders().get(&order.order_id).await? else {
                break;
            };
            order = reread;
        }
        // Also when nothing was written: a revocation that a crash left undone is made now.
        if order.after.after_sale.is_some_and(AfterSaleState::is_final) {
            self.revoke(&order, deadline).await?;
        }
        Ok(if written {
            Handled::Done
        } else {
            Handled::Skipped("older_or_final")
        })
    }

    /// The order a PaymentIntent paid for: a standalone one keyed by it, or its session's.
    async fn order_paid_by(
        &self,
        intent: &PaymentIntentId,
        account: Option<&AccountId>,
    ) -> Result<Option<OrderRecord>, RetryLater> {
        if let Some(order) = self.orders().get(intent.as_str()).await? {
            return Ok(Some(order));
        }
        let session = self
            .stripe()
            .session_for_payment_intent(intent, account)
            .await
            .map_err(FulfillmentError::from)?;
        let Some(session) = session else {
            // An invoice's payment, or one made outside the bundle.
            return Ok(None);
        };
        match self.orders().get(session.id.as_str()).await? {
            Some(order) => Ok(Some(order)),
            None => Err(RetryLater::Failed(FulfillmentError::NotFound(format!(
                "the order of {}",
                session.id
            )))),
        }
    }

    /// Revokes a fulfilled order's access once, if it was granted.
    async fn revoke(&self, order: &OrderRecord, deadline: Option<i64>) -> Result<(), RetryLater> {
        if order.access != Some(AccessState::Granted) {
            return Ok(());
        }
        let Some((holder, products)) = order.details.as_ref().and_then(access_of) else {
            return Ok(());
        };
        let now = self.clock().now();
        let owner = IdempotencyKey::generate("access");
        let ledger = self.orders().ledger();
        if !ledger
            .claim(
                &order.order_id,
                AccessChange::Revoke,
                None,
                owner.as_str(),
                self.lease_until(now, deadline),
                now,
            )
            .await?
        {
            return Ok(());
        }
        let reason = match order.after.after_sale {
            Some(AfterSaleState::DisputeLost) => "dispute_lost",
            Some(AfterSaleState::PaymentFailed) => "payment_failed",
            _ => "refunded",
        };
        let revoked = self
            .entitle()
            .revoke(&Revoke {
                key: order.order_id.clone(),
                account: order.account.clone(),
                holder,
                products,
                reason,
            })
            .await;
        if let Err(err) = revoked {
            ledger.release(&order.order_id, owner.as_str()).await?;
            return Err(FulfillmentError::from(err).into());
        }
        ledger
            .finish(
                &order.order_id,
                AccessChange::Revoke,
                owner.as_str(),
                self.clock().now(),
            )
            .await?;
        tracing::info!(order_id = order.order_id, reason, "order access revoked");
        metrics::emit("AccessRevoked", 1.0, Unit::Count, &[("Source", "order")]);
        Ok(())
    }
}

/// The PaymentIntent and the change a `charge.*` event is about.
fn change_of(event: &EventRecord) -> Option<(PaymentIntentId, Change)> {
    let object = event.object.as_deref()?;
    match event.kind {
        EventType::ChargeRefunded => {
            let charge: Charge = serde_json::from_str(object).ok()?;
            let full = charge.refunded || charge.amount_refunded >= charge.amount;
            Some((
                charge.payment_intent_id()?,
                Change::Refunded {
                    amount_refunded: charge.amount_refunded,
                    full,
                },
            ))
        }
        EventType::ChargeDisputeCreated | EventType::ChargeDisputeClosed => {
            let dispute: Dispute = serde_json::from_str(object).ok()?;
            let change = if event.kind == EventType::ChargeDisputeCreated {
                Change::DisputeOpened
            } else {
                // `warning_closed` (an inquiry) and `won` cost the merchant nothing.
                Change::DisputeClosed {
                    won: dispute.status != DisputeStatus::Lost,
                }
            };
            Some((dispute.payment_intent_id()?, change))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(state: Option<AfterSaleState>, amount: i64, version: i64) -> AfterSale {
        AfterSale {
            after_sale: state,
            amount_refunded: amount,
            after_sale_version: version,
        }
    }

    #[test]
    fn later_states_win_and_final_ones_stay() {
        use AfterSaleState::*;
        let fresh = AfterSale::default();
        let partial = Change::Refunded {
            amount_refunded: 500,
            full: false,
        };
        let full = Change::Refunded {
            amount_refunded: 2000,
            full: true,
        };
        let cases = [
            (
                fresh,
                partial,
                100,
                Some(after(Some(PartiallyRefunded), 500, 0)),
            ),
            (fresh, full, 100, Some(after(Some(Refunded), 2000, 0))),
            (after(Some(PartiallyRefunded), 500, 0), partial, 100, None),
            (after(Some(PartiallyRefunded), 800, 0), partial, 100, None),
            (
                after(Some(PartiallyRefunded), 500, 0),
                full,
                100,
                Some(after(Some(Refunded), 2000, 0)),
            ),
            (
                after(Some(Refunded), 2000, 0),
                Change::DisputeOpened,
                200,
                None,
            ),
            (
                fresh,
                Change::DisputeOpened,
                100,
                Some(after(Some(Disputed), 0, 1000)),
            ),
            (
                after(Some(Disputed), 0, 1000),
                Change::DisputeOpened,
                100,
                None,
            ),
            (
                after(Some(Disputed), 0, 1000),
                Change::DisputeClosed { won: false },
                100,
                Some(after(Some(DisputeLost), 0, 1001)),
            ),
            (
                after(Some(Disputed), 0, 1000),
                Change::DisputeClosed { won: true },
                300,
                Some(after(None, 0, 3001)),
            ),
            (
                after(Some(Disputed), 500, 1000),
                Change::DisputeClosed { won: true },
                300,
                Some(after(Some(PartiallyRefunded), 500, 3001)),
            ),
            (after(None, 0, 3001), Change::DisputeOpened, 200, None),
            (after(Some(DisputeLost), 0, 1001), full, 500, None),
            (
                after(Some(Disputed), 0, 1000),
                partial,
                500,
                Some(after(Some(Disputed), 500, 1000)),
            ),
        ];
        for (current, change, created, expected) in cases {
            assert_eq!(
                next(&current, change, created),
                expected,
                "{current:?} + {change:?}"
            );
        }
    }
}
