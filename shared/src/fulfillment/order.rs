//! What an order is: what was paid for and by whom, read from a completed Checkout Session or
//! a succeeded PaymentIntent, and the merchant's seam that acts on it (`Fulfil`).

use std::future::Future;

use serde::Serialize;

use crate::ids::AccountId;
use crate::mail::EmailStatus;
use crate::store::{
    OrderAmount, OrderDetails, OrderField, OrderLine, OrderShipping, OrderTaxId, OrderTotals,
};
use crate::stripe::{
    CheckoutSession, LINES_METADATA_KEY, LineItem, PaymentIntent, RESERVED_METADATA_PREFIX,
    TermsConsent,
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

/// A Checkout Session's order, with every line item (all pages) and what the session
/// collected: shipping, phone, tax and discounts, tax ids, custom fields, the terms accepted.
/// A line is `optional` when its price is one of `optional_prices` (the shop policy's
/// `optional_items`), so a warehouse sees what the customer added.
pub(super) fn session_details(
    session: &CheckoutSession,
    line_items: &[LineItem],
    optional_prices: &[String],
) -> OrderDetails {
    let details = session.customer_details.clone().unwrap_or_default();
    let totals = session.total_details.clone().unwrap_or_default();
    let breakdown = totals.breakdown.clone().unwrap_or_default();
    OrderDetails {
        line_items: line_items
            .iter()
            .map(|item| {
                let price = item.price.as_ref().map(|p| p.id.to_string());
                OrderLine {
                    optional: price.as_ref().is_some_and(|p| optional_prices.contains(p)),
                    price,
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
                    amount_tax: item.amount_tax,
                }
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
        shipping: session.shipping().map(|shipping| {
            let address = shipping.address.clone().unwrap_or_default();
            let cost = session.shipping_cost.as_ref();
            let rate = cost.and_then(|c| c.shipping_rate.as_ref());
            OrderShipping {
                name: shipping.name.clone(),
                address: address.lines(),
                country: address.country,
                rate: rate.map(|r| r.id().to_string()),
                rate_name: rate.and_then(|r| r.display_name()).map(str::to_string),
                amount: cost.map_or(0, |c| c.amount_total),
            }
        }),
        phone: details.phone,
        totals: OrderTotals {
            amount_tax: totals.amount_tax,
            amount_discount: totals.amount_discount,
            amount_shipping: totals.amount_shipping.unwrap_or_default(),
            taxes: breakdown
                .taxes
                .iter()
                .map(|t| OrderAmount {
                    label: t.label(),
                    amount: t.amount,
                })
                .collect(),
            discounts: breakdown
                .discounts
                .iter()
                .map(|d| OrderAmount {
                    label: d.label(),
                    amount: d.amount,
                })
                .collect(),
        },
        tax_ids: details
            .tax_ids
            .unwrap_or_default()
            .into_iter()
            .map(|t| OrderTaxId {
                kind: t.kind,
                value: t.value,
            })
            .collect(),
        custom_fields: session
            .custom_fields
            .iter()
            .map(|f| OrderField {
                key: f.key.clone(),
                label: f.label.custom.clone(),
                value: f.value().map(str::to_string),
            })
            .collect(),
        terms_accepted: session.consent.as_ref().and_then(|c| c.terms_of_service)
            == Some(TermsConsent::Accepted),
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
            ..OrderLine::default()
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
        ..OrderDetails::default()
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
                ..OrderLine::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A completed session as the pinned version answers it, with what a physical shop's
    /// policy collects, retrieved with `shipping_cost.shipping_rate` and
    /// `total_details.breakdown` expanded.
    fn shipped_session() -> CheckoutSession {
        serde_json::from_value(serde_json::json!({
            "id": "cs_test_ship", "object": "checkout.session", "mode": "payment", "status": "complete",
            "payment_status": "paid", "expires_at": 1, "currency": "eur",
            "amount_subtotal": 3000, "amount_total": 4188, "metadata": {},
            "customer_details": {"email": "jenny@example.com", "name": "Jenny Rosen", "phone": "+33612345678",
                "address": {"line1": "1 rue de la Paix", "line2": null, "postal_code": "75002", "city": "Paris", "state": null, "country": "FR"},
                "tax_ids": [{"type": "eu_vat", "value": "FR12345678901"}], "tax_exempt": "none"},
            "collected_information": {"shipping_details": {"name": "Jenny Rosen",
                "address": {"line1": "1 rue de la Paix", "line2": "Bât. B", "postal_code": "75002", "city": "Paris", "state": null, "country": "FR"}}},
            "shipping_details": null,
            "shipping_cost": {"amount_subtotal": 490, "amount_tax": 98, "amount_total": 588,
                "shipping_rate": {"id": "shr_standard", "object": "shipping_rate", "display_name": "Standard shipping",
                                  "fixed_amount": {"amount": 490, "currency": "eur"}}},
            "total_details": {"amount_discount": 0, "amount_shipping": 490, "amount_tax": 698,
                "breakdown": {"discounts": [], "taxes": [{"amount": 698, "taxable_amount": 3490,
                    "rate": {"id": "txr_1", "object": "tax_rate", "display_name": "VAT", "percentage": 20.0, "jurisdiction": "FR"}}]}},
            "custom_fields": [{"key": "giftnote", "label": {"type": "custom", "custom": "Gift note"}, "type": "text",
                               "optional": true, "text": {"value": "Happy birthday", "maximum_length": 120, "minimum_length": null}}],
            "consent": {"promotions": "opt_in", "terms_of_service": "accepted"}
        }))
        .unwrap()
    }

    fn line(price: &str, tax: i64) -> LineItem {
        serde_json::from_value(serde_json::json!({
            "id": "li_1", "object": "item", "description": price, "quantity": 1, "amount_subtotal": 1500,
            "amount_total": 1500 + tax, "amount_tax": tax, "amount_discount": 0, "currency": "eur",
            "price": {"id": price, "object": "price", "currency": "eur", "unit_amount": 1500, "product": "prod_1"}
        }))
        .unwrap()
    }

    #[test]
    fn an_order_knows_where_it_goes_and_what_tax_it_paid() {
        let details = session_details(
            &shipped_session(),
            &[line("price_mug", 300), line("price_tea", 300)],
            &["price_tea".to_string()],
        );
        let shipping = details.shipping.unwrap();
        assert_eq!(shipping.name.as_deref(), Some("Jenny Rosen"));
        assert_eq!(
            shipping.address,
            ["1 rue de la Paix", "Bât. B", "75002 Paris", "FR"]
        );
        assert_eq!(shipping.country.as_deref(), Some("FR"));
        assert_eq!(shipping.rate.as_deref(), Some("shr_standard"));
        assert_eq!(shipping.rate_name.as_deref(), Some("Standard shipping"));
        assert_eq!(shipping.amount, 588);
        assert_eq!(details.phone.as_deref(), Some("+33612345678"));
        assert_eq!(details.totals.amount_tax, 698);
        assert_eq!(details.totals.amount_shipping, 490);
        assert_eq!(
            details.totals.taxes,
            [OrderAmount {
                label: "VAT 20%".into(),
                amount: 698
            }]
        );
        assert_eq!(
            details.tax_ids,
            [OrderTaxId {
                kind: "eu_vat".into(),
                value: "FR12345678901".into()
            }]
        );
        assert_eq!(
            details.custom_fields,
            [OrderField {
                key: "giftnote".into(),
                label: Some("Gift note".into()),
                value: Some("Happy birthday".into())
            }]
        );
        assert!(details.terms_accepted);
        let optional: Vec<bool> = details.line_items.iter().map(|l| l.optional).collect();
        assert_eq!(optional, [false, true]);
        assert_eq!(details.line_items[0].amount_tax, 300);
    }

    #[test]
    fn an_older_endpoint_versions_shipping_details_are_read_too_and_a_digital_order_has_none() {
        let mut session = shipped_session();
        session.shipping_details = session
            .collected_information
            .take()
            .and_then(|c| c.shipping_details);
        let details = session_details(&session, &[], &[]);
        assert_eq!(details.shipping.unwrap().address[0], "1 rue de la Paix");

        let mut digital = shipped_session();
        digital.collected_information = None;
        digital.shipping_cost = None;
        digital.total_details = None;
        digital.custom_fields.clear();
        digital.consent = None;
        digital.customer_details.as_mut().unwrap().tax_ids = None;
        let details = session_details(&digital, &[], &[]);
        assert!(details.shipping.is_none() && details.totals.is_empty());
        assert!(!details.terms_accepted);
        // Nothing of it reaches the stored record.
        let stored = serde_json::to_value(&details).unwrap();
        for key in [
            "shipping",
            "totals",
            "custom_fields",
            "terms_accepted",
            "tax_ids",
        ] {
            assert!(
                stored.get(key).is_none(),
                "{key} stored for a digital order"
            );
        }
    }
}
