//! Access follows the stored subscription. After every write, the stored item says what
//! access should be: granted until the end of the paid period plus the grace while the
//! status is `trialing`, `active` or `past_due`; revoked once it is `canceled`, `unpaid`,
//! `paused` or `incomplete_expired`. The change is claimed on the item with the stored
//! status as its guard, so a decision read before a cancellation never grants after it.

use super::{Subscriptions, SubscriptionsError};
use crate::access::{Entitle, Grant, Revoke};
use crate::ids::{AccountId, SubscriptionId};
use crate::metrics::{self, Unit};
use crate::store::{AccessChange, AccessState, SubscriptionRecord, SubscriptionStore};
use crate::stripe::{IdempotencyKey, SubscriptionStatus};

/// The change the stored subscription calls for, if any.
fn due(record: &SubscriptionRecord, grace_secs: i64) -> Option<AccessChange> {
    let state = record.state.as_ref()?;
    if state.status.grants_access() {
        // Access runs to the end of what was paid for: a period Stripe has started but not
        // collected (`past_due`) extends nothing. A trial runs to its period's end, as does
        // an active subscription whose first invoice is not recorded yet.
        let end = match state.status {
            SubscriptionStatus::Trialing => state.current_period_end.max(record.paid_through),
            _ => record.paid_through.or(state.current_period_end),
        }?;
        let until = end.saturating_add(grace_secs);
        let current = match record.access {
            Some(AccessState::Granted) => record.access_until,
            _ => None,
        };
        return (current < Some(until)).then_some(AccessChange::Grant {
            until: Some(until),
            regrant: true,
        });
    }
    let ends = matches!(
        state.status,
        SubscriptionStatus::Canceled
            | SubscriptionStatus::Unpaid
            | SubscriptionStatus::Paused
            | SubscriptionStatus::IncompleteExpired
    );
    (ends && record.access == Some(AccessState::Granted)).then_some(AccessChange::Revoke)
}

fn revoke_reason(status: SubscriptionStatus) -> &'static str {
    match status {
        SubscriptionStatus::Unpaid => "subscription_unpaid",
        SubscriptionStatus::Paused => "subscription_paused",
        SubscriptionStatus::IncompleteExpired => "subscription_expired",
        _ => "subscription_canceled",
    }
}

impl<E: Entitle> Subscriptions<E> {
    /// Makes access match the stored subscription. `Ok(None)` when nothing was due or
    /// another invocation holds the claim (it makes the change).
    ///
    /// # Errors
    /// DynamoDB or the `Entitle` implementation failed; the claim is released.
    pub async fn sync_access(
        &self,
        id: &SubscriptionId,
        deadline: Option<i64>,
    ) -> Result<Option<AccessChange>, SubscriptionsError> {
        let Some(record) = self.store.get(id).await? else {
            return Ok(None);
        };
        let Some(change) = due(&record, self.config.grace_secs) else {
            return Ok(None);
        };
        let state = record.state.as_ref().expect("due() needs a state");
        let Some(holder) = state.customer.as_ref().map(|c| c.as_str().to_string()) else {
            tracing::warn!(subscription_id = %id, "subscription without a customer; access not changed");
            return Ok(None);
        };
        let products: Vec<String> = state
            .items
            .iter()
            .filter_map(|item| item.product.clone().or_else(|| item.price.clone()))
            .collect();
        let guard = match change {
            AccessChange::Grant { .. } => SubscriptionStore::grants_access_guard(),
            AccessChange::Revoke => SubscriptionStore::ends_access_guard(),
        };
        let owner = IdempotencyKey::generate("access");
        let now = self.clock.now();
        let ledger = self.store.ledger();
        if !ledger
            .claim(
                id.as_str(),
                change,
                Some(&guard),
                owner.as_str(),
                self.lease_until(now, deadline),
                now,
            )
            .await?
        {
            // Not due any more (made meanwhile), or another invocation holds the claim: then
            // this event is retried, so a change it asks for is never dropped.
            let busy = self
                .store
                .get(id)
                .await?
                .is_some_and(|now| due(&now, self.config.grace_secs).is_some());
            return if busy {
                Err(SubscriptionsError::Busy)
            } else {
                Ok(None)
            };
        }
        let account: Option<AccountId> = record.account.clone();
        let called = match change {
            AccessChange::Grant { until, .. } => {
                self.entitle
                    .grant(&Grant {
                        key: id.to_string(),
                        account,
                        holder,
                        products,
                        until,
                    })
                    .await
            }
            AccessChange::Revoke => {
                self.entitle
                    .revoke(&Revoke {
                        key: id.to_string(),
                        account,
                        holder,
                        products,
                        reason: revoke_reason(state.status),
                    })
                    .await
            }
        };
        if let Err(err) = called {
            ledger.release(id.as_str(), owner.as_str()).await?;
            return Err(err.into());
        }
        if !ledger
            .finish(id.as_str(), change, owner.as_str(), self.clock.now())
            .await?
        {
            tracing::warn!(subscription_id = %id, "access claim lost before it was recorded; another invocation took over");
        }
        let (metric, what) = match change {
            AccessChange::Grant { .. } => ("AccessGranted", "access granted"),
            AccessChange::Revoke => ("AccessRevoked", "access revoked"),
        };
        tracing::info!(subscription_id = %id, status = state.status.as_str(), "{what}");
        metrics::emit(metric, 1.0, Unit::Count, &[("Source", "subscription")]);
        Ok(Some(change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SubscriptionLine, SubscriptionState};

    fn record(
        status: SubscriptionStatus,
        access: Option<AccessState>,
        until: Option<i64>,
    ) -> SubscriptionRecord {
        SubscriptionRecord {
            subscription_id: "sub_1".parse().unwrap(),
            account: None,
            state: Some(SubscriptionState {
                status,
                customer: Some("cus_1".parse().unwrap()),
                items: vec![SubscriptionLine {
                    price: Some("price_1".into()),
                    product: Some("prod_1".into()),
                    quantity: 1,
                }],
                current_period_end: Some(1_000),
                cancel_at_period_end: false,
                canceled_at: None,
                ended_at: None,
            }),
            version: 0,
            session: None,
            client_reference_id: None,
            latest_invoice: None,
            latest_invoice_status: None,
            paid_through: None,
            renewals: 0,
            access,
            access_until: until,
            updated_at: 0,
        }
    }

    #[test]
    fn access_follows_the_status() {
        use AccessState::{Granted, Revoked};
        use SubscriptionStatus::*;
        let grant = |until| {
            Some(AccessChange::Grant {
                until: Some(until),
                regrant: true,
            })
        };
        let cases = [
            (Active, None, None, grant(1_010)),
            (Trialing, None, None, grant(1_010)),
            (PastDue, Some(Granted), Some(1_010), None),
            (Active, Some(Granted), Some(900), grant(1_010)),
            (Active, Some(Revoked), Some(1_010), grant(1_010)),
            (Incomplete, None, None, None),
            (
                Canceled,
                Some(Granted),
                Some(1_010),
                Some(AccessChange::Revoke),
            ),
            (
                Unpaid,
                Some(Granted),
                Some(1_010),
                Some(AccessChange::Revoke),
            ),
            (
                Paused,
                Some(Granted),
                Some(1_010),
                Some(AccessChange::Revoke),
            ),
            (Canceled, Some(Revoked), Some(1_010), None),
            (Canceled, None, None, None),
        ];
        for (status, access, until, expected) in cases {
            assert_eq!(
                due(&record(status, access, until), 10),
                expected,
                "{status:?} {access:?}"
            );
        }
        let mut paid_later = record(Active, Some(Granted), Some(1_010));
        paid_later.paid_through = Some(2_000);
        assert_eq!(due(&paid_later, 10), grant(2_010), "a paid renewal extends");
        let mut unpaid_period = record(PastDue, Some(Granted), Some(1_010));
        unpaid_period.paid_through = Some(1_000);
        unpaid_period.state.as_mut().unwrap().current_period_end = Some(2_000);
        assert_eq!(
            due(&unpaid_period, 10),
            None,
            "an unpaid period extends nothing"
        );
    }
}
