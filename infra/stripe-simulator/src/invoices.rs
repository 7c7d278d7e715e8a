//! Invoices of subscriptions and their payment: an invoice is made as a draft, finalized
//! (numbered, given its hosted page), then collected — paid (a PaymentIntent that succeeded and
//! its charge), failed (the card declined; retried later) or waiting for the customer to
//! authenticate. At the pinned version an invoice names neither its PaymentIntent nor its
//! charge: `invoice_payment` objects link them, as on Stripe.

use serde_json::{Value, json};

use crate::charges::{Intent, Payer, charge_json, payment_intent_json};
use crate::delivery::Outgoing;
use crate::objects::Objects;
use crate::{CatalogPrice, Simulator, random_suffix};

/// Stripe's Smart Retries try again a few days after a failure; the simulator says 3 days.
const RETRY_AFTER_SECS: i64 = 3 * 86_400;

/// How an attempt to collect an invoice ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Paid,
    Failed,
    ActionRequired,
}

/// A line of a subscription item for its current period; `name` is the product's.
pub(crate) fn subscription_line(
    invoice: &str,
    subscription: &Value,
    item: &Value,
    name: &str,
) -> Value {
    let price = &item["price"];
    let quantity = item["quantity"].as_i64().unwrap_or(1);
    let unit = price["unit_amount"].as_i64().unwrap_or_default();
    line(
        invoice,
        &LineParts {
            amount: unit.saturating_mul(quantity),
            quantity,
            description: format!(
                "{quantity} × {name} (at {} / {})",
                money(unit, &price["currency"]),
                price["recurring"]["interval"].as_str().unwrap_or("month"),
            ),
            price,
            period: (&item["current_period_start"], &item["current_period_end"]),
            parent: json!({
                "type": "subscription_item_details",
                "invoice_item_details": null,
                "subscription_item_details": {
                    "invoice_item": null,
                    "proration": false,
                    "proration_details": {"credited_items": null},
                    "subscription": subscription["id"],
                    "subscription_item": item["id"],
                },
            }),
            subscription: &subscription["id"],
        },
    )
}

/// A one-time price bought with the subscription: an invoice item on the first invoice only.
pub(crate) fn one_time_line(
    invoice: &str,
    subscription: &Value,
    price: &CatalogPrice,
    quantity: i64,
    now: i64,
) -> Value {
    line(
        invoice,
        &LineParts {
            amount: price.unit_amount.saturating_mul(quantity),
            quantity,
            description: price.name.clone(),
            price: &price.json(),
            period: (&now.into(), &now.into()),
            parent: json!({
                "type": "invoice_item_details",
                "invoice_item_details": {
                    "invoice_item": format!("ii_{}", random_suffix(24)),
                    "proration": false,
                    "proration_details": {"credited_items": null},
                    "subscription": subscription["id"],
                },
                "subscription_item_details": null,
            }),
            subscription: &subscription["id"],
        },
    )
}

struct LineParts<'a> {
    amount: i64,
    quantity: i64,
    description: String,
    price: &'a Value,
    period: (&'a Value, &'a Value),
    parent: Value,
    subscription: &'a Value,
}

fn line(invoice: &str, parts: &LineParts<'_>) -> Value {
    json!({
        "id": format!("il_{}", random_suffix(24)),
        "object": "line_item",
        "amount": parts.amount,
        "currency": parts.price["currency"],
        "description": parts.description,
        "discount_amounts": [],
        "discountable": true,
        "discounts": [],
        "invoice": invoice,
        "livemode": false,
        "metadata": {},
        "parent": parts.parent,
        "period": {"start": parts.period.0, "end": parts.period.1},
        "pretax_credit_amounts": [],
        "pricing": {
            "type": "price_details",
            "price_details": {"price": parts.price["id"], "product": parts.price["product"]},
            "unit_amount_decimal": parts.price["unit_amount_decimal"],
        },
        "quantity": parts.quantity,
        "subscription": parts.subscription,
        "taxes": [],
    })
}

fn money(amount: i64, currency: &Value) -> String {
    match currency.as_str().and_then(|c| c.parse().ok()) {
        Some(currency) => checkout_core::money::Money::new(amount, &currency).to_string(),
        None => amount.to_string(),
    }
}

/// A draft invoice of the subscription for `lines`, covering `period` (`period_start` and
/// `period_end`: for a renewal, the period that just ended, as on Stripe).
pub(crate) fn draft(
    id: &str,
    subscription: &Value,
    customer: &Value,
    billing_reason: &str,
    lines: Vec<Value>,
    period: (i64, i64),
    now: i64,
) -> Value {
    let total: i64 = lines.iter().filter_map(|l| l["amount"].as_i64()).sum();
    json!({
        "id": id,
        "object": "invoice",
        "account_country": "IE",
        "account_name": "Stripe simulator",
        "account_tax_ids": null,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": total,
        "amount_shipping": 0,
        "application": null,
        "attempt_count": 0,
        "attempted": false,
        "auto_advance": true,
        "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null, "status": null},
        "automatically_finalizes_at": null,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": now,
        "currency": subscription["currency"],
        "custom_fields": null,
        "customer": customer["id"],
        "customer_address": null,
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": null,
        "customer_shipping": null,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": null,
        "default_source": null,
        "default_tax_rates": [],
        "description": null,
        "discounts": [],
        "due_date": null,
        "effective_at": null,
        "ending_balance": null,
        "footer": null,
        "from_invoice": null,
        "hosted_invoice_url": null,
        "invoice_pdf": null,
        "issuer": {"type": "self"},
        "last_finalization_error": null,
        "latest_revision": null,
        "lines": {"object": "list", "data": lines, "has_more": false, "url": format!("/v1/invoices/{id}/lines")},
        "livemode": false,
        "metadata": {},
        "next_payment_attempt": null,
        "number": null,
        "on_behalf_of": null,
        "parent": {
            "type": "subscription_details",
            "quote_details": null,
            "subscription_details": {"metadata": {}, "subscription": subscription["id"]},
        },
        "payment_settings": {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
        "period_end": period.1,
        "period_start": period.0,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": null,
        "rendering": null,
        "shipping_cost": null,
        "shipping_details": null,
        "starting_balance": 0,
        "statement_descriptor": null,
        "status": "draft",
        "status_transitions": {"finalized_at": null, "marked_uncollectible_at": null, "paid_at": null, "voided_at": null},
        // Removed at the pinned version (basil): `parent.subscription_details` names it.
        "subscription": null,
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "test_clock": null,
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": null,
    })
}

impl Simulator {
    /// Finalizes a draft: numbered from the customer's sequence, given its hosted page.
    pub(crate) fn finalize(&self, objects: &mut Objects, invoice: &mut Value, now: i64) {
        let customer = invoice["customer"].as_str().unwrap_or_default().to_string();
        if let Some(customer) = objects.get_mut("customer", &customer) {
            let sequence = customer["next_invoice_sequence"].as_i64().unwrap_or(1);
            invoice["number"] = format!(
                "{}-{sequence:04}",
                customer["invoice_prefix"].as_str().unwrap_or_default()
            )
            .into();
            customer["next_invoice_sequence"] = (sequence + 1).into();
        }
        invoice["status"] = "open".into();
        invoice["effective_at"] = now.into();
        invoice["ending_balance"] = 0.into();
        invoice["webhooks_delivered_at"] = now.into();
        invoice["status_transitions"]["finalized_at"] = now.into();
        invoice["hosted_invoice_url"] = format!(
            "{}/i/{}",
            self.config.public_url,
            invoice["id"].as_str().unwrap_or_default()
        )
        .into();
    }

    /// One attempt to collect an open invoice, with the PaymentIntent of its earlier attempts
    /// if there was one (Stripe retries the same PaymentIntent). Returns the invoice and
    /// payment events in Stripe's order; the subscription's own change is the caller's.
    pub(crate) fn collect(
        &self,
        objects: &mut Objects,
        invoice_id: &str,
        outcome: Outcome,
        now: i64,
    ) -> Vec<Outgoing> {
        let Some(owned) = objects.get("invoice", invoice_id) else {
            return Vec::new();
        };
        let account = owned.account.clone();
        let invoice = owned.object.clone();
        let customer = objects
            .get("customer", invoice["customer"].as_str().unwrap_or_default())
            .map(|c| c.object.clone())
            .unwrap_or(Value::Null);
        let subscription = objects
            .get(
                "subscription",
                invoice["parent"]["subscription_details"]["subscription"]
                    .as_str()
                    .unwrap_or_default(),
            )
            .map(|s| s.object.clone())
            .unwrap_or(Value::Null);
        let payment_method = subscription["default_payment_method"]
            .as_str()
            .unwrap_or("pm_card_visa")
            .to_string();
        let amount = invoice["amount_due"].as_i64().unwrap_or_default();
        let pending = objects
            .all("invoice_payment")
            .into_iter()
            .find(|p| p.object["invoice"] == invoice_id && p.object["status"] == "open")
            .map(|p| {
                (
                    p.object["id"].clone(),
                    p.object["payment"]["payment_intent"].clone(),
                )
            });
        let (payment_id, intent_id) = match pending {
            Some((payment, intent)) => (
                payment.as_str().unwrap_or_default().to_string(),
                intent.as_str().unwrap_or_default().to_string(),
            ),
            None => {
                let intent_id = format!("pi_{}", random_suffix(24));
                // Percent of the amount, rounded down, as Stripe computes a subscription's fee.
                #[allow(clippy::cast_possible_truncation)]
                let fee = subscription["application_fee_percent"]
                    .as_f64()
                    .map(|p| (p * amount as f64 / 100.0).floor() as i64);
                let intent = payment_intent_json(&Intent {
                    id: &intent_id,
                    amount,
                    currency: &invoice["currency"],
                    customer: &invoice["customer"],
                    status: "requires_payment_method",
                    created: now,
                    description: Some(if invoice["billing_reason"] == "subscription_create" {
                        "Subscription creation"
                    } else {
                        "Subscription update"
                    }),
                    application_fee_amount: fee,
                });
                objects.insert(account.as_deref(), intent);
                let payment = json!({
                    "id": format!("inpay_{}", random_suffix(24)),
                    "object": "invoice_payment",
                    "amount_paid": null,
                    "amount_requested": amount,
                    "created": now,
                    "currency": invoice["currency"],
                    "invoice": invoice_id,
                    "is_default": true,
                    "livemode": false,
                    "payment": {"type": "payment_intent", "payment_intent": intent_id},
                    "status": "open",
                    "status_transitions": {"canceled_at": null, "paid_at": null},
                });
                let payment_id = payment["id"].as_str().unwrap_or_default().to_string();
                objects.insert(account.as_deref(), payment);
                (payment_id, intent_id)
            }
        };
        let mut events = Vec::new();
        let mut intent = objects
            .get("payment_intent", &intent_id)
            .map(|p| p.object.clone())
            .unwrap_or(Value::Null);
        let mut invoice = invoice;
        invoice["attempted"] = true.into();
        invoice["attempt_count"] =
            (invoice["attempt_count"].as_i64().unwrap_or_default() + 1).into();
        intent["payment_method"] = payment_method.clone().into();
        intent["setup_future_usage"] = "off_session".into();
        match outcome {
            Outcome::Paid => {
                let payer = Payer {
                    customer: &invoice["customer"],
                    email: &customer["email"],
                    name: &customer["name"],
                    payment_method: &payment_method,
                };
                intent["status"] = "succeeded".into();
                intent["amount_received"] = amount.into();
                intent["last_payment_error"] = Value::Null;
                intent["next_action"] = Value::Null;
                let charge = charge_json(&self.config.public_url, &payer, &intent, now);
                intent["latest_charge"] = charge["id"].clone();
                objects.insert(account.as_deref(), charge.clone());
                invoice["status"] = "paid".into();
                invoice["amount_paid"] = amount.into();
                invoice["amount_remaining"] = 0.into();
                invoice["auto_advance"] = false.into();
                invoice["next_payment_attempt"] = Value::Null;
                invoice["status_transitions"]["paid_at"] = now.into();
                if let Some(payment) = objects.get_mut("invoice_payment", &payment_id) {
                    payment["status"] = "paid".into();
                    payment["amount_paid"] = amount.into();
                    payment["status_transitions"]["paid_at"] = now.into();
                }
                events.push(("invoice.paid", invoice.clone()).into());
                events.push(("invoice.payment_succeeded", invoice.clone()).into());
                events.push(("payment_intent.succeeded", intent.clone()).into());
                events.push(("charge.succeeded", charge).into());
            }
            Outcome::Failed => {
                intent["status"] = "requires_payment_method".into();
                intent["last_payment_error"] = json!({
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": "insufficient_funds",
                    "message": "Your card has insufficient funds.",
                    "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                    "payment_method": {"id": payment_method, "object": "payment_method", "type": "card"},
                });
                invoice["next_payment_attempt"] = (now + RETRY_AFTER_SECS).into();
                events.push(("invoice.payment_failed", invoice.clone()).into());
            }
            Outcome::ActionRequired => {
                intent["status"] = "requires_action".into();
                intent["next_action"] = json!({
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": invoice["hosted_invoice_url"]},
                });
                // Stripe waits for the customer rather than retrying on its own.
                invoice["next_payment_attempt"] = Value::Null;
                events.push(("invoice.payment_action_required", invoice.clone()).into());
            }
        }
        if let Some(customer) =
            objects.get_mut("customer", invoice["customer"].as_str().unwrap_or_default())
        {
            customer["delinquent"] = (outcome != Outcome::Paid).into();
        }
        objects.insert(account.as_deref(), intent);
        objects.insert(account.as_deref(), invoice);
        events
    }
}
