//! What an order is: what was paid for and by whom, read from a completed Checkout Session or
//! a succeeded PaymentIntent, and the merchant's seam that acts on it (`Fulfil`).

use std::future::Future;

use serde::Serialize;

use crate::ids::AccountId;
use crate::mail::EmailStatus;
use crate::store::{OrderDetails, OrderLine};
use crate::stripe::{
    CheckoutSession, LINES_METADATA_KEY, LineItem, PaymentIntent, RESERVED_METADATA_PREFIX,
};

/// An order about to be fulfilled: what was paid for, by whom. `details` carries the Stripe
/// customer, the merchant's `client_reference_id` and the session's metadata, so a SaaS can
/// match the buyer to its own user without relying on the email typed on Stripe's page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    pub order_id: String,
    pub account: Option<AccountId>,
    #[serde(flatten)]
    pub details: OrderDetails,
}

/// An error from a `Fulfil` implementation. The claim is released and the trigger retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FulfilError(pub String);

/// The merchant's fulfilment: grant access, ship goods, notify a system. Called at most once
/// per order while its claim is held; an error releases the claim and the trigger is
/// retried. If the process dies mid-way, the claim's lease expires and another invocation
/// calls it again: implementations should be idempotent on `order.order_id` (at-least-once).
pub trait Fulfil: Send + Sync {
    fn fulfil(&self, order: &Order) -> impl Future<Output = Result<Fulfilled, FulfilError>> + Send;
}

/// What a fulfilment reports for the order record (`Fulfilled::default()` when nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fulfilled {
    /// The customer's email about this order, when the fulfilment sends one.
    pub email: Option<EmailStatus>,
}

/// Who an order's access is for and what it covers: its holder (`access::holder`) and its
/// lines' products (a price where the product is unknown). `None` when it names nobody.
pub(super) fn access_of(details: &OrderDetails) -> Option<(String, Vec<String>)> {
    let customer = details.customer.as_deref().and_then(|c| c.parse().ok());
    let holder = crate::access::holder(
        customer.as_ref(),
        details.client_reference_id.as_deref(),
        details.customer_email.as_deref(),
    )?;
    let products = details
        .line_items
        .iter()
        .filter_map(|line| line.product.clone().or_else(|| line.price.clone()))
        .collect();
    Some((holder, products))
}

/// A Checkout Session's order, with every line item (all pages).
pub(super) fn session_details(session: &CheckoutSession, line_items: &[LineItem]) -> OrderDetails {
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
        currency: session.currency.clone(),
        amount_subtotal: session.amount_subtotal.unwrap_or_default(),
        amount_total: session.amount_total.unwrap_or_default(),
        customer_email: details.email.or_else(|| session.customer_email.clone()),
        customer_name: details.name,
        payment_intent: session.payment_intent.as_ref().map(ToString::to_string),
        subscription: session.subscription.clone(),
        customer: session.customer.as_ref().map(ToString::to_string),
        client_reference_id: session.client_reference_id.clone(),
        metadata: session.metadata.clone(),
    }
}

/// A standalone PaymentIntent's order: the lines `POST /payments` recorded on it
/// (`checkout_lambda_lines`, named from its description), or one line for what it received.
pub(super) fn payment_intent_details(intent: &PaymentIntent) -> OrderDetails {
    let amount = if intent.amount_received > 0 {
        intent.amount_received
    } else {
        intent.amount
    };
    let description = intent
        .description
        .clone()
        .unwrap_or_else(|| "Payment".into());
    let line_items = recorded_lines(intent).unwrap_or_else(|| {
        vec![OrderLine {
            price: None,
            product: None,
            description: description.clone(),
            quantity: 1,
            amount_subtotal: amount,
            amount_total: amount,
        }]
    });
    OrderDetails {
        line_items,
        currency: Some(intent.currency.clone()),
        amount_subtotal: amount,
        amount_total: amount,
        customer_email: intent.receipt_email.clone(),
        customer_name: None,
        payment_intent: Some(intent.id.to_string()),
        subscription: None,
        customer: intent.customer.as_ref().map(ToString::to_string),
        client_reference_id: intent.metadata.get("client_reference_id").cloned(),
        metadata: intent
            .metadata
            .iter()
            .filter(|(k, _)| !k.starts_with(RESERVED_METADATA_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// `price:product:quantity:unit_amount,…` as lines, named by the description's matching
/// `Name × quantity` parts when there are as many. `None` when absent or unreadable.
fn recorded_lines(intent: &PaymentIntent) -> Option<Vec<OrderLine>> {
    let raw = intent.metadata.get(LINES_METADATA_KEY)?;
    let names: Vec<&str> = intent
        .description
        .as_deref()
        .map(|d| d.split(", ").collect())
        .unwrap_or_default();
    let parts: Vec<&str> = raw.split(',').collect();
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut fields = part.split(':');
            let price = fields.next()?.to_string();
            let product = fields.next().filter(|p| !p.is_empty()).map(str::to_string);
            let quantity: u64 = fields.next()?.parse().ok()?;
            let unit: i64 = fields.next()?.parse().ok()?;
            let total = unit.checked_mul(i64::try_from(quantity).ok()?)?;
            let description = match names.get(i) {
                Some(name) if names.len() == parts.len() => name
                    .rsplit_once(" × ")
                    .map_or(*name, |(n, _)| n)
                    .to_string(),
                _ => price.clone(),
            };
            Some(OrderLine {
                price: Some(price),
                product,
                description,
                quantity,
                amount_subtotal: total,
                amount_total: total,
            })
        })
        .collect()
}
