//! The shapes of customers, subscriptions and subscription items, with every key of Stripe's
//! fixtures at the pinned version. There the billing period lives on each subscription item
//! (`current_period_start`/`_end`), not on the subscription; every period is 30 days here,
//! whatever the interval.

use serde_json::{Value, json};

use crate::random_suffix;

pub(crate) const PERIOD_SECS: i64 = 30 * 86_400;

pub(crate) fn customer_json(id: &str, email: &Value, name: &Value, now: i64) -> Value {
    json!({
        "id": id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": now,
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": null,
        "discount": null,
        "email": email,
        "invoice_prefix": random_suffix(8).to_uppercase(),
        "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null},
        "livemode": false,
        "metadata": {},
        "name": name,
        "next_invoice_sequence": 1,
        "phone": null,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null,
    })
}

/// A subscription item: the price (in full, its product as an id), the quantity and, at the
/// pinned version, the item's billing period. `plan` is the legacy view of the same price.
pub(crate) fn item_json(subscription: &str, price: &Value, quantity: i64, now: i64) -> Value {
    json!({
        "id": format!("si_{}", random_suffix(14)),
        "object": "subscription_item",
        "created": now,
        "current_period_start": now,
        "current_period_end": now + PERIOD_SECS,
        "discounts": [],
        "metadata": {},
        "plan": {
            "id": price["id"],
            "object": "plan",
            "active": true,
            "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"],
            "billing_scheme": "per_unit",
            "created": price["created"],
            "currency": price["currency"],
            "interval": price["recurring"]["interval"],
            "interval_count": 1,
            "livemode": false,
            "metadata": {},
            "meter": null,
            "nickname": null,
            "product": price["product"],
            "tiers_mode": null,
            "transform_usage": null,
            "trial_period_days": null,
            "usage_type": "licensed",
        },
        "price": price,
        "quantity": quantity,
        "subscription": subscription,
        "tax_rates": [],
    })
}

pub(crate) struct NewSubscription<'a> {
    pub id: &'a str,
    pub customer: &'a str,
    pub currency: &'a Value,
    pub items: Vec<Value>,
    pub payment_method: &'a str,
    pub application_fee_percent: Option<f64>,
}

pub(crate) fn subscription_json(new: NewSubscription<'_>, now: i64) -> Value {
    json!({
        "id": new.id,
        "object": "subscription",
        "application": null,
        "application_fee_percent": new.application_fee_percent,
        "automatic_tax": {"disabled_reason": null, "enabled": false, "liability": null},
        "billing_cycle_anchor": now,
        "billing_cycle_anchor_config": null,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "cancellation_details": {"comment": null, "feedback": null, "reason": null},
        "collection_method": "charge_automatically",
        "created": now,
        "currency": new.currency,
        "customer": new.customer,
        "days_until_due": null,
        "default_payment_method": new.payment_method,
        "default_source": null,
        "default_tax_rates": [],
        "description": null,
        "discounts": [],
        "ended_at": null,
        "invoice_settings": {"account_tax_ids": null, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": new.items,
            "has_more": false,
            "url": format!("/v1/subscription_items?subscription={}", new.id),
        },
        "latest_invoice": null,
        "livemode": false,
        "metadata": {},
        "next_pending_invoice_item_invoice": null,
        "on_behalf_of": null,
        "pause_collection": null,
        "payment_settings": {"payment_method_options": null, "payment_method_types": null, "save_default_payment_method": "off"},
        "pending_invoice_item_interval": null,
        "pending_setup_intent": null,
        "pending_update": null,
        "schedule": null,
        "start_date": now,
        "status": "active",
        "test_clock": null,
        "transfer_data": null,
        "trial_end": null,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": null,
    })
}

pub(crate) fn items(subscription: &Value) -> Vec<Value> {
    subscription["items"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The end of the current period (the first item's: every item bills together here).
pub(crate) fn period_end(subscription: &Value) -> Value {
    subscription["items"]["data"][0]["current_period_end"].clone()
}
