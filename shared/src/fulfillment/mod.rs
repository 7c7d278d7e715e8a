//! `fulfill_checkout(session_id)`, as Stripe's fulfilment guide specifies it: safe to call
//! many times and concurrently for one session (webhook stream, success landing page), fulfils
//! only paid sessions, records the state of every order.

mod landing;
mod stream;

use std::future::Future;

use serde::Serialize;

pub use landing::{LandingError, LandingPage, handle as handle_landing};
pub use stream::{STREAM_EVENTS, handle as handle_stream};

use crate::config::{self, ConfigError, Source, TableName};
use crate::ids::{AccountId, PaymentIntentId, SessionId};
use crate::mail::{EmailAddress, MailConfig, MailError, Mailer, SesMailer, Templates};
use crate::store::{
    Claim, DynamoDb, FulfillmentState, OrderDetails, OrderLine, OrderRecord, OrderStore,
    SessionStore, StoreError,
};
use crate::stripe::{
    CheckoutSession, LineItem, PaymentIntent, PaymentStatus, StripeClient, StripeConfig,
    StripeError,
};

#[derive(Debug, thiserror::Error)]
pub enum FulfillmentError {
    /// The session or PaymentIntent does not exist (on this account): permanent.
    #[error("{0} was not found at Stripe")]
    NotFound(String),
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("fulfilment failed: {0}")]
    Fulfil(#[from] FulfilError),
}

/// An error from a `Fulfil` implementation. The claim is released and the trigger retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FulfilError(pub String);

impl From<MailError> for FulfilError {
    fn from(err: MailError) -> Self {
        Self(err.to_string())
    }
}

/// An order about to be fulfilled: what was paid for, by whom.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    pub order_id: String,
    pub account: Option<AccountId>,
    #[serde(flatten)]
    pub details: OrderDetails,
}

/// The merchant's fulfilment: grant access, ship goods, notify a system. Called at most once
/// per order while its claim is held; an error releases the claim and the trigger is
/// retried. If the process dies mid-way, the claim's lease expires and another invocation
/// calls it again: implementations should be idempotent on `order.order_id` (at-least-once).
pub trait Fulfil: Send + Sync {
    fn fulfil(&self, order: &Order) -> impl Future<Output = Result<(), FulfilError>> + Send;
}

/// The default fulfilment of a generic bundle: the order is written to the orders table (by
/// `Fulfillment` itself) and the customer gets one order-confirmation email.
pub struct ConfirmationEmail<M> {
    pub mailer: Option<M>,
    pub templates: Templates,
    pub merchant_name: String,
}

impl<M: Mailer> Fulfil for ConfirmationEmail<M> {
    async fn fulfil(&self, order: &Order) -> Result<(), FulfilError> {
        let Some(mailer) = &self.mailer else {
            return Ok(());
        };
        let Some(to) = order
            .details
            .customer_email
            .as_deref()
            .and_then(|e| e.parse::<EmailAddress>().ok())
        else {
            tracing::info!(
                order_id = order.order_id,
                "no customer email: no confirmation sent"
            );
            return Ok(());
        };
        let email = self
            .templates
            .render(
                "confirmation",
                to.clone(),
                ConfirmationContext::new(order, &self.merchant_name),
            )
            .map_err(|e| FulfilError(format!("confirmation template: {e}")))?;
        let message_id = mailer.send(&email).await?;
        tracing::info!(
            order_id = order.order_id,
            recipient = to.hashed(),
            message_id,
            "order confirmation sent"
        );
        Ok(())
    }
}

#[derive(Serialize)]
struct ConfirmationContext<'a> {
    merchant_name: &'a str,
    order: DisplayOrder<'a>,
}

#[derive(Serialize)]
struct DisplayOrder<'a> {
    order_id: &'a str,
    customer_name: Option<&'a str>,
    amount_total_display: String,
    line_items: Vec<DisplayLine<'a>>,
}

#[derive(Serialize)]
struct DisplayLine<'a> {
    description: &'a str,
    quantity: u64,
    amount_total_display: String,
}

impl<'a> ConfirmationContext<'a> {
    fn new(order: &'a Order, merchant_name: &'a str) -> Self {
        let currency = &order.details.currency;
        Self {
            merchant_name,
            order: DisplayOrder {
                order_id: &order.order_id,
                customer_name: order.details.customer_name.as_deref(),
                amount_total_display: display_amount(order.details.amount_total, currency),
                line_items: order
                    .details
                    .line_items
                    .iter()
                    .map(|line| DisplayLine {
                        description: &line.description,
                        quantity: line.quantity,
                        amount_total_display: display_amount(line.amount_total, currency),
                    })
                    .collect(),
            },
        }
    }
}

/// `1999, "eur"` -> `19.99 EUR`; zero-decimal currencies (JPY, KRW, …) have no minor unit.
pub fn display_amount(amount: i64, currency: &str) -> String {
    const ZERO_DECIMAL: &[&str] = &[
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
        "xaf", "xof", "xpf",
    ];
    let code = currency.to_uppercase();
    if ZERO_DECIMAL.contains(&currency.to_lowercase().as_str()) {
        format!("{amount} {code}")
    } else {
        let sign = if amount < 0 { "-" } else { "" };
        format!(
            "{sign}{}.{:02} {code}",
            amount.abs() / 100,
            amount.abs() % 100
        )
    }
}

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

#[derive(Debug, Clone)]
pub struct FulfillmentConfig {
    pub stripe: StripeConfig,
    pub orders_table: TableName,
    pub sessions_table: TableName,
    /// Leases are the invocation's own deadline plus this margin (clock skew).
    pub lease_margin_secs: i64,
    /// Lease used where no deadline is known (the local stack).
    pub default_lease_secs: i64,
}

impl FulfillmentConfig {
    pub fn from_env(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            stripe: StripeConfig::from_env(env)?,
            orders_table: TableName::from_env(env, "ORDERS_TABLE")?,
            sessions_table: TableName::from_env(env, "SESSIONS_TABLE")?,
            lease_margin_secs: config::parsed_or(env, "FULFILLMENT_LEASE_MARGIN_SECS", 5)?,
            default_lease_secs: config::parsed_or(env, "FULFILLMENT_DEFAULT_LEASE_SECS", 30)?,
        })
    }
}

pub struct Fulfillment<F> {
    stripe: StripeClient,
    orders: OrderStore,
    fulfiller: F,
    config: FulfillmentConfig,
}

impl<F: Fulfil> Fulfillment<F> {
    pub fn new(config: FulfillmentConfig, dynamodb: DynamoDb, fulfiller: F) -> Self {
        Self {
            stripe: StripeClient::new(config.stripe.clone()),
            orders: OrderStore::new(dynamodb, config.orders_table.clone()),
            fulfiller,
            config,
        }
    }

    pub fn orders(&self) -> &OrderStore {
        &self.orders
    }

    pub fn stripe(&self) -> &StripeClient {
        &self.stripe
    }

    /// The lease a claim gets: until the invocation's deadline (plus margin) when known.
    pub fn lease_until(&self, now: i64, deadline: Option<i64>) -> i64 {
        match deadline {
            Some(deadline) => deadline.max(now) + self.config.lease_margin_secs,
            None => now + self.config.default_lease_secs,
        }
    }

    /// Fulfils a Checkout Session if, and only if, it is paid and not yet fulfilled.
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
            .map_err(|err| {
                if err.is_not_found() {
                    FulfillmentError::NotFound(session_id.to_string())
                } else {
                    err.into()
                }
            })?;
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
        let details = session_details(&session, &line_items);
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

    /// Fulfils a standalone PaymentIntent (Payment Element flows). One that belongs to a
    /// Checkout Session is left to that session, so it is never fulfilled twice.
    pub async fn fulfill_payment_intent(
        &self,
        intent: PaymentIntent,
        account: Option<&AccountId>,
        lease_until: i64,
        now: i64,
    ) -> Result<Option<Outcome>, FulfillmentError> {
        if self
            .stripe
            .session_for_payment_intent(&intent.id, account)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        if intent.status != "succeeded" {
            return Ok(Some(Outcome::AwaitingPayment));
        }
        let details = OrderDetails {
            line_items: vec![OrderLine {
                price: None,
                product: None,
                description: intent
                    .description
                    .clone()
                    .unwrap_or_else(|| "Payment".into()),
                quantity: 1,
                amount_subtotal: intent.amount_received,
                amount_total: intent.amount_received,
            }],
            currency: intent.currency.clone(),
            amount_subtotal: intent.amount_received,
            amount_total: intent.amount_received,
            customer_email: intent.receipt_email.clone(),
            customer_name: None,
            payment_intent: Some(intent.id.to_string()),
            subscription: None,
        };
        self.fulfil_claimed(
            intent.id.as_str(),
            account,
            PaymentStatus::Paid,
            details,
            lease_until,
            now,
        )
        .await
        .map(Some)
    }

    /// The retrieved state of a PaymentIntent named by an event, for events stored without
    /// their object.
    pub async fn payment_intent(
        &self,
        id: &PaymentIntentId,
        account: Option<&AccountId>,
    ) -> Result<PaymentIntent, FulfillmentError> {
        self.stripe
            .retrieve_payment_intent(id, account)
            .await
            .map_err(|err| {
                if err.is_not_found() {
                    FulfillmentError::NotFound(id.to_string())
                } else {
                    err.into()
                }
            })
    }

    async fn fulfil_claimed(
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
        if let Err(err) = self.fulfiller.fulfil(&order).await {
            self.orders.release(order_id, &owner, now).await?;
            return Err(err.into());
        }
        if !self
            .orders
            .complete(order_id, &owner, payment_status, &order.details, now)
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

/// Everything the fulfillment function serves, built once at cold start.
pub struct FulfillmentApp<F> {
    pub fulfillment: Fulfillment<F>,
    pub sessions: SessionStore,
}

impl<F: Fulfil> FulfillmentApp<F> {
    pub fn new(config: FulfillmentConfig, dynamodb: DynamoDb, fulfiller: F) -> Self {
        Self {
            sessions: SessionStore::new(dynamodb.clone(), config.sessions_table.clone()),
            fulfillment: Fulfillment::new(config, dynamodb, fulfiller),
        }
    }
}

impl<F: Fulfil> crate::lambda::StreamAndHttp for FulfillmentApp<F> {
    async fn stream(
        &self,
        batch: aws_lambda_events::event::dynamodb::Event,
        deadline: Option<i64>,
    ) -> aws_lambda_events::event::streams::DynamoDbEventResponse {
        stream::handle(&self.fulfillment, batch, deadline).await
    }

    /// `GET /checkout/complete`, the function's one route.
    async fn http(
        &self,
        request: lambda_http::Request,
        deadline: Option<i64>,
    ) -> lambda_http::Response<lambda_http::Body> {
        landing::handle(&self.fulfillment, &self.sessions, request, deadline).await
    }
}

impl ConfirmationEmail<SesMailer> {
    /// The default fulfilment from the environment: `ORDER_CONFIRMATION_EMAIL` (default on)
    /// needs `MAIL_FROM` and `MERCHANT_NAME`.
    pub fn from_env(env: &impl Source, ses: aws_sdk_sesv2::Client) -> Result<Self, ConfigError> {
        let enabled: bool = config::parsed_or(env, "ORDER_CONFIRMATION_EMAIL", true)?;
        let mailer = if enabled {
            Some(SesMailer::new(ses, MailConfig::from_env(env)?))
        } else {
            None
        };
        Ok(Self {
            mailer,
            templates: Templates::from_env(env)?,
            merchant_name: config::optional(env, "MERCHANT_NAME").unwrap_or_default(),
        })
    }
}

/// A unique owner for one claim attempt.
fn claim_owner() -> String {
    let mut bytes = [0u8; 12];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

fn session_details(session: &CheckoutSession, line_items: &[LineItem]) -> OrderDetails {
    let details = session.customer_details.clone().unwrap_or_default();
    OrderDetails {
        line_items: line_items
            .iter()
            .map(|item| OrderLine {
                price: item.price.as_ref().map(|p| p.id.to_string()),
                product: item
                    .price
                    .as_ref()
                    .and_then(|p| p.product.as_ref())
                    .and_then(|product| match product {
                        serde_json::Value::String(id) => Some(id.clone()),
                        other => other
                            .get("id")
                            .and_then(|id| id.as_str())
                            .map(str::to_string),
                    }),
                description: item.description.clone().unwrap_or_default(),
                quantity: item.quantity.unwrap_or(1),
                amount_subtotal: item.amount_subtotal,
                amount_total: item.amount_total,
            })
            .collect(),
        currency: session.currency.clone().unwrap_or_default(),
        amount_subtotal: session.amount_subtotal.unwrap_or_default(),
        amount_total: session.amount_total.unwrap_or_default(),
        customer_email: details.email.or_else(|| session.customer_email.clone()),
        customer_name: details.name,
        payment_intent: session.payment_intent.as_ref().map(ToString::to_string),
        subscription: session.subscription.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_display_in_major_units() {
        assert_eq!(display_amount(1999, "eur"), "19.99 EUR");
        assert_eq!(display_amount(5, "usd"), "0.05 USD");
        assert_eq!(display_amount(500, "jpy"), "500 JPY");
    }
}
