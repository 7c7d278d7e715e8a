//! The exactly-once flow over the orders table: read, retrieve from Stripe, claim under a
//! lease, call `Fulfil`, complete. Safe to run any number of times at once for one order.

use super::order::{access_of, session_details};
use super::{Fulfil, FulfillmentConfig, FulfillmentError, Order};
use crate::access::{Entitle, Grant};
use crate::clock::Clock;
use std::sync::Arc;

use crate::ids::{AccountId, PaymentIntentId, PriceId, SessionId};
use crate::metrics::{self, Unit};
use crate::stock::{Cart, Committed, Released, Stock, stock_from_config};
use crate::store::{
    Claim, Completed, DynamoDb, EventStore, FulfillmentState, OrderDetails, OrderRecord,
    OrderStore, SessionStore, StoreError,
};
use crate::stripe::{PaymentIntent, PaymentStatus, StripeClient, StripeError};

/// How a call to `fulfill_checkout` ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Fulfilled now or earlier; `details` as recorded.
    Fulfilled(Box<OrderRecord>),
    /// Not paid yet (delayed payment method): recorded, fulfilled when the payment succeeds.
    AwaitingPayment,
    /// Another invocation holds a live claim; it will finish, or its lease will expire.
    InProgressElsewhere,
    /// The payment failed.
    PaymentFailed,
}

/// Whether a PaymentIntent is an order of its own (`stripe::FULFIL_METADATA_KEY`).
#[must_use]
pub fn is_standalone(intent: &PaymentIntent) -> bool {
    intent.is_standalone()
}

pub struct Fulfillment<F, E> {
    stripe: StripeClient,
    orders: OrderStore,
    sessions: SessionStore,
    events: EventStore,
    fulfiller: F,
    entitle: E,
    stock: Arc<dyn Stock>,
    config: FulfillmentConfig,
    clock: Clock,
}

impl<F: Fulfil, E: Entitle> Fulfillment<F, E> {
    /// `fulfiller` and `entitle`: the merchant's two seams (`ConfirmationEmail` and
    /// `access::AccessTable` by default).
    #[must_use]
    pub fn new(config: FulfillmentConfig, dynamodb: DynamoDb, fulfiller: F, entitle: E) -> Self {
        Self {
            stripe: StripeClient::new(config.stripe.clone()),
            orders: OrderStore::new(config.orders_table.clone(), dynamodb.clone()),
            sessions: SessionStore::new(config.sessions_table.clone(), dynamodb.clone()),
            events: EventStore::new(config.events_table.clone(), dynamodb.clone()),
            stock: stock_from_config(config.stock.clone(), dynamodb),
            fulfiller,
            entitle,
            config,
            clock: Clock::system(),
        }
    }

    #[must_use]
    pub fn entitle(&self) -> &E {
        &self.entitle
    }

    #[must_use]
    pub fn config(&self) -> &FulfillmentConfig {
        &self.config
    }

    /// A connected account's session this bundle did not create: Stripe sends a Connect
    /// endpoint every connected account's events, and another integration's orders are
    /// not this bundle's to fulfil (unless `CONNECT_FULFIL_FOREIGN_SESSIONS`).
    ///
    /// # Errors
    /// DynamoDB failed.
    /// A session Stripe made from a recovery link is the bundle's when the session it
    /// recovers is (`recovered_from`).
    pub async fn is_foreign(
        &self,
        session: &SessionId,
        recovered_from: Option<&SessionId>,
        account: Option<&AccountId>,
    ) -> Result<bool, StoreError> {
        if account.is_none() || self.config.fulfil_foreign_sessions {
            return Ok(false);
        }
        for id in std::iter::once(session).chain(recovered_from) {
            if self.sessions.get(id).await?.is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The same service with the merchant's own stock keeper (an inventory system).
    #[must_use]
    pub fn with_stock(mut self, stock: Arc<dyn Stock>) -> Self {
        self.stock = stock;
        self
    }

    /// Returns an unpaid session's units, once (an expired session, a failed delayed
    /// payment).
    ///
    /// # Errors
    /// The stock keeper failed: the event is retried.
    pub async fn release_stock(&self, session: &SessionId) -> Result<Released, FulfillmentError> {
        let released = self.stock.release(session).await?;
        Ok(released)
    }

    /// Takes a paid session's units for good, once: the reservation create-session made, or,
    /// for a session made without one (a recovered cart), the units now, even below zero
    /// (the customer paid; an oversold price is logged for the merchant to act on).
    async fn commit_stock(
        &self,
        session: &SessionId,
        account: Option<&AccountId>,
        details: &OrderDetails,
    ) -> Result<(), FulfillmentError> {
        let cart = Cart {
            session: session.clone(),
            account: account.cloned(),
            lines: details
                .line_items
                .iter()
                .filter_map(|l| Some((l.price.as_deref()?.parse().ok()?, l.quantity)))
                .collect(),
        };
        if let Committed::TakenUnreserved { oversold } | Committed::Committed { oversold } =
            self.stock.commit(&cart).await?
            && !oversold.is_empty()
        {
            let prices: Vec<&str> = oversold.iter().map(PriceId::as_str).collect();
            tracing::error!(session_id = %session, ?prices, "stock_oversold: a paid order took stock below zero; restock or contact the customer");
            metrics::emit("StockOversold", 1.0, Unit::Count, &[]);
        }
        Ok(())
    }

    /// The same service reading time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    #[must_use]
    pub fn orders(&self) -> &OrderStore {
        &self.orders
    }

    #[must_use]
    pub fn events(&self) -> &EventStore {
        &self.events
    }

    /// The lease a claim gets where no deadline is known.
    #[must_use]
    pub fn default_lease_secs(&self) -> i64 {
        self.config.default_lease_secs
    }

    #[must_use]
    pub fn stripe(&self) -> &StripeClient {
        &self.stripe
    }

    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The lease a claim gets: until the invocation's deadline (plus margin) when known.
    #[must_use]
    pub fn lease_until(&self, now: i64, deadline: Option<i64>) -> i64 {
        match deadline {
            Some(deadline) => deadline.max(now) + self.config.lease_margin_secs,
            None => now + self.config.default_lease_secs,
        }
    }

    /// Fulfils a Checkout Session if, and only if, it is paid and not yet fulfilled.
    ///
    /// # Errors
    /// The session is unknown to Stripe (`NotFound`, permanent), Stripe or DynamoDB failed,
    /// or the `Fulfil` implementation did (the claim is released): retry later.
    pub async fn fulfill_checkout(
        &self,
        session_id: &SessionId,
        account: Option<&AccountId>,
        lease_until: i64,
        now: i64,
    ) -> Result<Outcome, FulfillmentError> {
        if let Some(order) = self.orders.get(session_id.as_str()).await?
            && let FulfillmentState::Fulfilled { .. } = order.state
        {
            return Ok(Outcome::Fulfilled(Box::new(order)));
        }
        let mut session = self
            .stripe
            .retrieve_checkout_session(session_id, account)
            .await
            .map_err(not_found_as(session_id))?;
        if session.payment_status == PaymentStatus::Unpaid {
            self.orders
                .record(
                    session_id.as_str(),
                    &FulfillmentState::AwaitingPayment,
                    account,
                    Some(PaymentStatus::Unpaid),
                    &["payment_failed"],
                    now,
                )
                .await?;
            return Ok(self
                .settled_outcome(session_id.as_str(), Outcome::AwaitingPayment)
                .await?);
        }
        let line_items = match session.line_items.take() {
            Some(page) if !page.has_more => page.data,
            _ => self.stripe.list_line_items(session_id, account).await?,
        };
        let optional = self.config.shop.shop.checkout(account).optional_prices();
        let details = session_details(&session, &line_items, &optional);
        self.commit_stock(session_id, account, &details).await?;
        self.fulfil_claimed(
            session_id.as_str(),
            account,
            session.payment_status,
            details,
            lease_until,
            now,
        )
        .await
    }

    /// The retrieved state of a PaymentIntent named by an event, for events stored without
    /// their object.
    ///
    /// # Errors
    /// `NotFound` when Stripe does not know it (permanent); Stripe failing otherwise.
    pub async fn payment_intent(
        &self,
        id: &PaymentIntentId,
        account: Option<&AccountId>,
    ) -> Result<PaymentIntent, FulfillmentError> {
        self.stripe
            .retrieve_payment_intent(id, account)
            .await
            .map_err(not_found_as(id))
    }

    pub(super) async fn fulfil_claimed(
        &self,
        order_id: &str,
        account: Option<&AccountId>,
        payment_status: PaymentStatus,
        details: OrderDetails,
        lease_until: i64,
        now: i64,
    ) -> Result<Outcome, FulfillmentError> {
        let owner = claim_owner();
        match self
            .orders
            .claim(order_id, account, &owner, lease_until, now)
            .await?
        {
            Claim::Held(record) => return Ok(outcome_of(*record)),
            Claim::Acquired => {}
        }
        let order = Order {
            order_id: order_id.to_string(),
            account: account.cloned(),
            details,
        };
        let fulfilled = match self.fulfiller.fulfil(&order).await {
            Ok(fulfilled) => fulfilled,
            Err(err) => {
                self.orders.release(order_id, &owner, now).await?;
                return Err(err.into());
            }
        };
        let granted = match self.grant(&order).await {
            Ok(granted) => granted,
            Err(err) => {
                self.orders.release(order_id, &owner, now).await?;
                return Err(err);
            }
        };
        if !self
            .orders
            .complete(
                order_id,
                &owner,
                &Completed {
                    payment_status,
                    details: &order.details,
                    email: fulfilled.email.as_ref(),
                    granted,
                },
                now,
            )
            .await?
        {
            tracing::warn!(
                order_id,
                "claim lost before completion: another invocation took over"
            );
            return Ok(Outcome::InProgressElsewhere);
        }
        tracing::info!(
            order_id,
            account = account.map(AccountId::as_str),
            amount_total = order.details.amount_total,
            "order fulfilled"
        );
        Ok(Outcome::Fulfilled(Box::new(
            self.orders.get(order_id).await?.expect("just completed"),
        )))
    }

    /// A one-time order's access, granted without end under the order's claim. A
    /// subscription's is the subscriptions function's (it follows the subscription), so a
    /// subscription order grants nothing here. `false` when the order names no holder.
    async fn grant(&self, order: &Order) -> Result<bool, FulfillmentError> {
        let details = &order.details;
        if details.subscription.is_some() {
            return Ok(false);
        }
        let Some((holder, products)) = access_of(details) else {
            tracing::warn!(
                order_id = order.order_id,
                "order names no customer, reference or email; no access granted"
            );
            return Ok(false);
        };
        self.entitle
            .grant(&Grant {
                key: order.order_id.clone(),
                account: order.account.clone(),
                holder,
                products,
                until: None,
            })
            .await?;
        metrics::emit("AccessGranted", 1.0, Unit::Count, &[("Source", "order")]);
        Ok(true)
    }

    /// After recording a non-final state, report what the order really is (a concurrent
    /// invocation may have fulfilled it meanwhile).
    async fn settled_outcome(
        &self,
        order_id: &str,
        default: Outcome,
    ) -> Result<Outcome, StoreError> {
        Ok(match self.orders.get(order_id).await? {
            Some(record) if !matches!(record.state, FulfillmentState::AwaitingPayment) => {
                outcome_of(record)
            }
            _ => default,
        })
    }

    /// Records a failed payment (`async_payment_failed`, `payment_intent.payment_failed`),
    /// never over a fulfilled order.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn record_payment_failed(
        &self,
        order_id: &str,
        account: Option<&AccountId>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.orders
            .record(
                order_id,
                &FulfillmentState::PaymentFailed,
                account,
                Some(PaymentStatus::Unpaid),
                &[],
                now,
            )
            .await
            .map(drop)
    }

    /// Records a pending payment (`payment_intent.processing`), never over a later state.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn record_awaiting_payment(
        &self,
        order_id: &str,
        account: Option<&AccountId>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.orders
            .record(
                order_id,
                &FulfillmentState::AwaitingPayment,
                account,
                Some(PaymentStatus::Unpaid),
                &["payment_failed"],
                now,
            )
            .await
            .map(drop)
    }

    /// Records a permanent failure so it is visible, instead of retrying it forever.
    ///
    /// # Errors
    /// DynamoDB failed.
    pub async fn record_failed(
        &self,
        order_id: &str,
        account: Option<&AccountId>,
        reason: String,
        now: i64,
    ) -> Result<(), StoreError> {
        self.orders
            .record(
                order_id,
                &FulfillmentState::Failed { reason },
                account,
                None,
                &["payment_failed", "awaiting_payment"],
                now,
            )
            .await
            .map(drop)
    }
}

fn outcome_of(record: OrderRecord) -> Outcome {
    match record.state {
        FulfillmentState::Fulfilled { .. } => Outcome::Fulfilled(Box::new(record)),
        FulfillmentState::PaymentFailed => Outcome::PaymentFailed,
        FulfillmentState::AwaitingPayment => Outcome::AwaitingPayment,
        FulfillmentState::InProgress { .. } | FulfillmentState::Failed { .. } => {
            Outcome::InProgressElsewhere
        }
    }
}

/// A unique owner for one claim attempt.
fn claim_owner() -> String {
    let mut bytes = [0u8; 12];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

/// Stripe's 404 for `id` as the permanent `NotFound`; any other error as it is.
fn not_found_as(id: &impl ToString) -> impl FnOnce(StripeError) -> FulfillmentError + '_ {
    move |err| {
        if err.is_not_found() {
            FulfillmentError::NotFound(id.to_string())
        } else {
            err.into()
        }
    }
}
