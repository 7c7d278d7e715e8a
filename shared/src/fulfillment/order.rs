//! What an order is: what was paid for and by whom, read from a completed Checkout Session or
//! a succeeded PaymentIntent, and the merchant's seam that acts on it (`Fulfil`).

use std::future::Future;

use serde::Serialize;

use crate::ids::AccountId;
use crate::mail::EmailStatus;
use crate::store::{OrderDetails, OrderLine};
use crate::stripe::{CheckoutSession, LineItem, PaymentIntent};

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

/// A standalone PaymentIntent's order: one line for what it received.
pub(super) fn payment_intent_details(intent: &PaymentIntent) -> OrderDetails {
    OrderDetails {
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
        currency: Some(intent.currency.clone()),
        amount_subtotal: intent.amount_received,
        amount_total: intent.amount_received,
        customer_email: intent.receipt_email.clone(),
        customer_name: None,
        payment_intent: Some(intent.id.to_string()),
        subscription: None,
        customer: intent.customer.as_ref().map(ToString::to_string),
        client_reference_id: None,
        metadata: intent.metadata.clone(),
    }
}
