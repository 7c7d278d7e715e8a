//! Money that moved: the charge behind every successful payment (a payment-mode session's,
//! an invoice's, or a Payment Element attempt's, which may also be pending or failed; see
//! `payment_attempts`), the PaymentIntent of an invoice, and refunds of a charge (full or
//! partial, cumulative). Each object carries every key of Stripe's fixture at the pinned
//! version, unknown ones null or default. Disputes of a charge are in `disputes`.
//!
//! Kept simple: the card is always Visa 4242, a session's or invoice's charge succeeds at once
//! (no `pending`), a refund succeeds at once.

use serde_json::{Value, json};

use crate::delivery::Outgoing;
use crate::disputes::dispute_open;
use crate::objects::{DevError, Objects, no_such};
use crate::{Simulator, StoredSession, random_suffix};

/// What an action of the developer's controls did: the id it made or changed, the account
/// it happened under, and the events to send for it, in order.
pub(crate) struct Done {
    pub id: String,
    pub account: Option<String>,
    pub events: Vec<Outgoing>,
}

/// The parts of a PaymentIntent that vary; everything else is a succeeded card payment's.
pub(crate) struct Intent<'a> {
    pub id: &'a str,
    pub amount: i64,
    pub currency: &'a Value,
    pub customer: &'a Value,
    pub status: &'a str,
    pub created: i64,
    pub description: Option<&'a str>,
    pub application_fee_amount: Option<i64>,
}

pub(crate) fn payment_intent_json(intent: &Intent<'_>) -> Value {
    let succeeded = intent.status == "succeeded";
    json!({
        "id": intent.id,
        "object": "payment_intent",
        "amount": intent.amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": if succeeded { intent.amount } else { 0 },
        "application": null,
        "application_fee_amount": intent.application_fee_amount,
        "automatic_payment_methods": null,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic",
        "client_secret": format!("{}_secret_{}", intent.id, random_suffix(24)),
        "confirmation_method": "automatic",
        "created": intent.created,
        "currency": intent.currency,
        "customer": intent.customer,
        "description": intent.description,
        "last_payment_error": null,
        "latest_charge": null,
        "livemode": false,
        "metadata": {},
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": null,
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": intent.status,
        "transfer_data": null,
        "transfer_group": null,
    })
}

/// Who pays, as a charge records it.
pub(crate) struct Payer<'a> {
    pub customer: &'a Value,
    pub email: &'a Value,
    pub name: &'a Value,
    pub payment_method: &'a str,
}

/// A succeeded card charge of `amount` for the PaymentIntent `intent`.
pub(crate) fn charge_json(
    public_url: &str,
    payer: &Payer<'_>,
    intent: &Value,
    created: i64,
) -> Value {
    let id = format!("ch_{}", random_suffix(24));
    let amount = intent["amount"].as_i64().unwrap_or_default();
    json!({
        "id": id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "application": null,
        "application_fee": null,
        "application_fee_amount": intent["application_fee_amount"],
        "balance_transaction": format!("txn_{}", random_suffix(24)),
        "billing_details": {
            "address": {"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null},
            "email": payer.email,
            "name": payer.name,
            "phone": null,
        },
        "calculated_statement_descriptor": "SIMULATOR",
        "captured": true,
        "created": created,
        "currency": intent["currency"],
        "customer": payer.customer,
        "description": intent["description"],
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": null,
        "failure_message": null,
        "fraud_details": {},
        "livemode": false,
        "metadata": {},
        "on_behalf_of": null,
        "outcome": {
            "advice_code": null,
            "network_advice_code": null,
            "network_decline_code": null,
            "network_status": "approved_by_network",
            "reason": null,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": true,
        "payment_intent": intent["id"],
        "payment_method": payer.payment_method,
        "payment_method_details": {
            "card": {
                "amount_authorized": amount,
                "authorization_code": null,
                "brand": "visa",
                "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "extended_authorization": {"status": "disabled"},
                "fingerprint": random_suffix(16),
                "funding": "credit",
                "incremental_authorization": {"status": "unavailable"},
                "installments": null,
                "last4": "4242",
                "mandate": null,
                "multicapture": {"status": "unavailable"},
                "network": "visa",
                "network_token": {"used": false},
                "network_transaction_id": random_suffix(15),
                "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
                "regulated_status": "unregulated",
                "three_d_secure": null,
                "wallet": null,
            },
            "type": "card",
        },
        "receipt_email": payer.email,
        "receipt_number": null,
        // The developer's page stands in for Stripe's receipt.
        "receipt_url": format!("{public_url}/dev/billing#{id}"),
        "refunded": false,
        "refunds": {"object": "list", "data": [], "has_more": false, "url": format!("/v1/charges/{id}/refunds")},
        "review": null,
        "shipping": null,
        "source": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "succeeded",
        "transfer_data": null,
        "transfer_group": null,
    })
}

fn refund_json(charge: &Value, amount: i64, created: i64) -> Value {
    json!({
        "id": format!("re_{}", random_suffix(24)),
        "object": "refund",
        "amount": amount,
        "balance_transaction": format!("txn_{}", random_suffix(24)),
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "destination_details": {
            "card": {"reference": null, "reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"},
            "type": "card",
        },
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "reason": "requested_by_customer",
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null,
    })
}

impl Simulator {
    /// The charge of a payment-mode session's PaymentIntent, made when the payment succeeds
    /// (at once, or when a delayed method settles), so it can be refunded or disputed.
    pub(crate) fn charge_session(&self, objects: &mut Objects, stored: &StoredSession, now: i64) {
        let session = &stored.session;
        let Some(intent) = &session.payment_intent else {
            return;
        };
        let details = session.customer_details.clone().unwrap_or_default();
        let intent = json!({
            "id": intent.as_str(),
            "amount": session.amount_total.unwrap_or_default(),
            "currency": session.currency,
            "application_fee_amount": stored.application_fee_amount,
            "description": null,
        });
        let payer = Payer {
            customer: &json!(session.customer),
            email: &json!(details.email),
            name: &json!(details.name),
            payment_method: &format!("pm_{}", random_suffix(24)),
        };
        let charge = charge_json(&self.config.public_url, &payer, &intent, now);
        objects.insert(stored.account.as_deref(), charge);
    }
}

/// A full refund (`amount` `None`) or a partial one; refunds add up, and the charge is
/// `refunded` once they reach its amount. Refused as Stripe does for a disputed charge or
/// more than what is left.
pub(crate) fn refund(
    objects: &mut Objects,
    id: &str,
    amount: Option<i64>,
    now: i64,
) -> Result<Done, DevError> {
    let owned = objects
        .get("charge", id)
        .ok_or_else(|| no_such("charge", id))?;
    let (account, before) = (owned.account.clone(), owned.object.clone());
    if before["status"] != "succeeded" {
        // A pending or failed attempt of a PaymentIntent moved no money to give back.
        return Err(DevError::Refused(format!(
            "Charge {id} has not succeeded; only a succeeded charge can be refunded."
        )));
    }
    let charged = before["amount"].as_i64().unwrap_or_default();
    let left = charged - before["amount_refunded"].as_i64().unwrap_or_default();
    let disputed = objects
        .find("dispute", "charge", id)
        .is_some_and(|d| dispute_open(&d.object));
    if disputed {
        return Err(DevError::Refused(format!(
            "Charge {id} has been disputed; it cannot be refunded while the dispute is open."
        )));
    }
    if left <= 0 {
        return Err(DevError::Refused(format!(
            "Charge {id} has already been refunded."
        )));
    }
    let amount = amount.unwrap_or(left);
    if amount <= 0 || amount > left {
        return Err(DevError::Refused(format!(
            "Refund amount ({amount}) must be positive and at most the unrefunded amount on the charge ({left})."
        )));
    }
    let refund = refund_json(&before, amount, now);
    let refund_id = refund["id"].as_str().unwrap_or_default().to_string();
    objects.insert(account.as_deref(), refund.clone());
    let charge = objects.get_mut("charge", id).expect("found above");
    let refunded = charged - left + amount;
    charge["amount_refunded"] = refunded.into();
    charge["refunded"] = (refunded == charged).into();
    if let Some(list) = charge["refunds"]["data"].as_array_mut() {
        // Newest first, as Stripe lists them.
        list.insert(0, refund);
    }
    let after = charge.clone();
    Ok(Done {
        id: refund_id,
        account,
        events: vec![Outgoing::updated("charge.refunded", &before, after)],
    })
}
