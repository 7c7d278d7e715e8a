//! Disputes: the cardholder disputes a charge (a chargeback for its full amount, which the
//! merchant can answer until `evidence_details.due_by`), then the card network decides it,
//! won or lost. One dispute per charge, as on Stripe; the charge is `disputed` from then on.

use serde_json::{Value, json};

use crate::charges::Done;
use crate::delivery::Outgoing;
use crate::objects::{DevError, Objects, no_such};
use crate::random_suffix;

/// How long a merchant has to answer a dispute here (Stripe's deadlines vary by network).
const DISPUTE_RESPONSE_SECS: i64 = 7 * 86_400;

fn dispute_json(charge: &Value, created: i64) -> Value {
    let evidence: serde_json::Map<String, Value> = [
        "access_activity_log",
        "billing_address",
        "cancellation_policy",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "customer_communication",
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "customer_signature",
        "duplicate_charge_documentation",
        "duplicate_charge_explanation",
        "duplicate_charge_id",
        "product_description",
        "receipt",
        "refund_policy",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "service_date",
        "service_documentation",
        "shipping_address",
        "shipping_carrier",
        "shipping_date",
        "shipping_documentation",
        "shipping_tracking_number",
        "uncategorized_file",
        "uncategorized_text",
    ]
    .into_iter()
    .map(|k| (k.to_string(), Value::Null))
    .chain([("enhanced_evidence".to_string(), json!({}))])
    .collect();
    json!({
        "id": format!("dp_{}", random_suffix(24)),
        "object": "dispute",
        "amount": charge["amount"],
        "balance_transactions": [],
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "enhanced_eligibility_types": [],
        "evidence": evidence,
        "evidence_details": {
            "due_by": created + DISPUTE_RESPONSE_SECS,
            "enhanced_eligibility": {},
            "has_evidence": false,
            "past_due": false,
            "submission_count": 0,
        },
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "payment_method_details": {
            "card": {"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4"},
            "type": "card",
        },
        "reason": "fraudulent",
        "status": "needs_response",
    })
}

/// Dispute states in which the merchant can still answer.
pub(crate) fn dispute_open(dispute: &Value) -> bool {
    matches!(
        dispute["status"].as_str(),
        Some("needs_response" | "under_review" | "warning_needs_response" | "warning_under_review")
    )
}

/// A chargeback on the charge: a `needs_response` dispute for its amount; the charge is
/// `disputed`. One dispute per charge, as on Stripe.
pub(crate) fn open_dispute(objects: &mut Objects, id: &str, now: i64) -> Result<Done, DevError> {
    let owned = objects
        .get("charge", id)
        .ok_or_else(|| no_such("charge", id))?;
    let (account, charge) = (owned.account.clone(), owned.object.clone());
    if charge["status"] != "succeeded" {
        // A pending or failed charge moved no money to dispute.
        return Err(DevError::Refused(format!(
            "Charge {id} has not succeeded; only a succeeded charge can be disputed."
        )));
    }
    if objects.find("dispute", "charge", id).is_some() {
        return Err(DevError::Refused(format!(
            "Charge {id} has already been disputed."
        )));
    }
    let dispute = dispute_json(&charge, now);
    let dispute_id = dispute["id"].as_str().unwrap_or_default().to_string();
    objects.insert(account.as_deref(), dispute.clone());
    objects.get_mut("charge", id).expect("found above")["disputed"] = true.into();
    Ok(Done {
        id: dispute_id,
        account,
        events: vec![("charge.dispute.created", dispute).into()],
    })
}

/// The card network's decision: `won` (the evidence was accepted) or `lost`.
pub(crate) fn close_dispute(objects: &mut Objects, id: &str, won: bool) -> Result<Done, DevError> {
    let owned = objects
        .get("dispute", id)
        .ok_or_else(|| no_such("dispute", id))?;
    let account = owned.account.clone();
    if !dispute_open(&owned.object) {
        return Err(DevError::Refused(format!(
            "Dispute {id} is already closed ({}).",
            owned.object["status"].as_str().unwrap_or_default()
        )));
    }
    let before = owned.object.clone();
    let dispute = objects.get_mut("dispute", id).expect("found above");
    dispute["status"] = if won { "won" } else { "lost" }.into();
    if won {
        dispute["evidence_details"]["has_evidence"] = true.into();
        dispute["evidence_details"]["submission_count"] = 1.into();
    }
    let after = dispute.clone();
    Ok(Done {
        id: id.to_string(),
        account,
        events: vec![Outgoing::updated("charge.dispute.closed", &before, after)],
    })
}
