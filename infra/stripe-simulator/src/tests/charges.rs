//! Charges of payment-mode sessions and invoices: refunds and disputes.

use checkout_core::stripe::{Charge, Dispute, DisputeStatus};
use http::StatusCode;

use super::*;

/// Pays a payment-mode session for a mug (15.00); its PaymentIntent's id.
fn paid_mug(sim: &Arc<Simulator>, account: Option<&str>) -> String {
    let session = new_session(sim, "payment", &["price_mug"], account);
    let from = event_count(sim);
    pay(sim, &session);
    assert_eq!(
        types(&events_since(sim, from)),
        ["checkout.session.completed"],
        "a payment-mode session's events are unchanged"
    );
    let session = get(sim, &format!("/v1/checkout/sessions/{session}"), account);
    session["payment_intent"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_payment_sessions_charge_is_refunded_in_parts_then_in_full() {
    let sim = simulator();
    let intent = paid_mug(&sim, None);
    let charge_id = sim.charge_for_payment_intent(&intent).expect("a charge");
    let pi = get(&sim, &format!("/v1/payment_intents/{intent}"), None);
    assert_eq!(pi["latest_charge"], charge_id.as_str());
    assert_fixture_keys("payment_intent", &pi);
    let charge = get(&sim, &format!("/v1/charges/{charge_id}"), None);
    assert_fixture_keys("charge", &charge);
    assert_eq!(
        (&charge["amount"], &charge["status"]),
        (&1500.into(), &"succeeded".into())
    );
    assert_eq!(charge["payment_intent"], intent.as_str());

    let from = event_count(&sim);
    let refund = sim.refund(&charge_id, Some(500)).unwrap();
    assert!(refund.starts_with("re_"));
    let events = events_since(&sim, from);
    assert_eq!(types(&events), ["charge.refunded"]);
    let partly = &events[0]["data"]["object"];
    assert_eq!(
        (&partly["amount_refunded"], &partly["refunded"]),
        (&500.into(), &false.into())
    );
    assert_eq!(
        events[0]["data"]["previous_attributes"]["amount_refunded"],
        0
    );
    assert_fixture_keys("refund", &partly["refunds"]["data"][0]);
    assert_fixture_keys("refund", &get(&sim, &format!("/v1/refunds/{refund}"), None));
    let typed: Charge = serde_json::from_value(partly.clone()).unwrap();
    assert_eq!(typed.payment_intent_id().unwrap().as_str(), intent);

    assert!(
        sim.refund(&charge_id, Some(1001)).is_err(),
        "more than what is left"
    );
    let from = event_count(&sim);
    sim.refund(&charge_id, None).unwrap();
    let full = &events_since(&sim, from)[0]["data"]["object"];
    assert_eq!(
        (&full["amount_refunded"], &full["refunded"]),
        (&1500.into(), &true.into())
    );
    assert_eq!(full["refunds"]["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        sim.refund(&charge_id, None),
        Err(crate::DevError::Refused(format!(
            "Charge {charge_id} has already been refunded."
        )))
    );
}

#[tokio::test]
async fn a_dispute_opens_on_a_charge_and_closes_won_or_lost() {
    let sim = simulator();
    let intent = paid_mug(&sim, None);
    let charge_id = sim.charge_for_payment_intent(&intent).unwrap();
    let from = event_count(&sim);
    let dispute_id = sim.open_dispute(&charge_id).unwrap();
    let events = events_since(&sim, from);
    assert_eq!(types(&events), ["charge.dispute.created"]);
    let dispute = &events[0]["data"]["object"];
    assert_fixture_keys("dispute", dispute);
    assert_eq!(dispute["id"], dispute_id.as_str());
    assert_eq!(dispute["status"], "needs_response");
    assert_eq!(
        (&dispute["charge"], &dispute["payment_intent"]),
        (&charge_id.as_str().into(), &intent.as_str().into())
    );
    assert_eq!(dispute["amount"], 1500);
    let typed: Dispute = serde_json::from_value(dispute.clone()).unwrap();
    assert_eq!(typed.status, DisputeStatus::Open);
    assert_eq!(
        get(&sim, &format!("/v1/charges/{charge_id}"), None)["disputed"],
        true
    );
    assert!(
        sim.refund(&charge_id, None).is_err(),
        "not while the dispute is open"
    );
    assert!(
        sim.open_dispute(&charge_id).is_err(),
        "one dispute per charge"
    );

    let from = event_count(&sim);
    sim.close_dispute(&dispute_id, true).unwrap();
    let events = events_since(&sim, from);
    assert_eq!(types(&events), ["charge.dispute.closed"]);
    assert_eq!(events[0]["data"]["object"]["status"], "won");
    assert_eq!(
        events[0]["data"]["previous_attributes"]["status"],
        "needs_response"
    );
    assert!(
        sim.close_dispute(&dispute_id, false).is_err(),
        "closed already"
    );

    let lost_charge = sim
        .charge_for_payment_intent(&paid_mug(&sim, None))
        .unwrap();
    let lost = sim.open_dispute(&lost_charge).unwrap();
    let from = event_count(&sim);
    sim.close_dispute(&lost, false).unwrap();
    let closed = &events_since(&sim, from)[0]["data"]["object"];
    assert_eq!(closed["status"], "lost");
    let typed: Dispute = serde_json::from_value(closed.clone()).unwrap();
    assert_eq!(typed.status, DisputeStatus::Lost);
}

#[tokio::test]
async fn a_connected_accounts_charge_sends_its_events_for_that_account() {
    let sim = simulator();
    let intent = paid_mug(&sim, Some("acct_1"));
    let charge_id = sim.charge_for_payment_intent(&intent).unwrap();
    let (status, _) = api(&sim, "GET", &format!("/v1/charges/{charge_id}"), "", None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    let from = event_count(&sim);
    sim.refund(&charge_id, None).unwrap();
    sim.open_dispute(&charge_id).unwrap();
    let events = events_since(&sim, from);
    assert_eq!(
        types(&events),
        ["charge.refunded", "charge.dispute.created"]
    );
    assert!(events.iter().all(|e| e["account"] == "acct_1"));
}

#[tokio::test]
async fn a_delayed_payment_is_charged_when_it_settles() {
    let sim = simulator();
    let session = new_session(&sim, "payment", &["price_tea"], None);
    let answer = page(
        &sim,
        "POST",
        &format!("/c/pay/{session}"),
        "email=ada%40example.com&action=pay-delayed&delayed_outcome=later&withhold=on",
    );
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let intent = get(&sim, &format!("/v1/checkout/sessions/{session}"), None)["payment_intent"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sim.charge_for_payment_intent(&intent),
        None,
        "processing: no charge yet"
    );
    page(
        &sim,
        "POST",
        &format!("/c/pay/{session}/settle"),
        "outcome=succeeded",
    );
    let charge = sim
        .charge_for_payment_intent(&intent)
        .expect("charged once settled");
    let pi = get(&sim, &format!("/v1/payment_intents/{intent}"), None);
    assert_eq!(
        (&pi["status"], &pi["latest_charge"]),
        (&"succeeded".into(), &charge.as_str().into())
    );
}

#[tokio::test]
async fn the_billing_page_refunds_a_part_and_disputes() {
    let sim = simulator();
    let charge_id = sim
        .charge_for_payment_intent(&paid_mug(&sim, None))
        .unwrap();
    let listed = text(&page(&sim, "GET", "/dev/billing", ""));
    assert!(
        listed.contains(&format!("value=\"refund:{charge_id}\"")),
        "{listed}"
    );
    let body = format!("act=refund%3A{charge_id}&amount%3A{charge_id}=300");
    let acted = page(&sim, "POST", "/dev/billing", &body);
    assert_eq!(acted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        get(&sim, &format!("/v1/charges/{charge_id}"), None)["amount_refunded"],
        300
    );
    let bad = page(
        &sim,
        "POST",
        "/dev/billing",
        &format!("act=refund%3A{charge_id}&amount%3A{charge_id}=lots"),
    );
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    page(
        &sim,
        "POST",
        "/dev/billing",
        &format!("act=dispute%3A{charge_id}"),
    );
    let listed = text(&page(&sim, "GET", "/dev/billing", ""));
    assert!(
        listed.contains("needs_response") && listed.contains("value=\"won:dp_"),
        "{listed}"
    );
}
