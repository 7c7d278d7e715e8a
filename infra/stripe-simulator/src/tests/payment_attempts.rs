//! Paying a PaymentIntent, each outcome with the events Stripe sends in Stripe's order and
//! the statuses they carry: at once, delayed then either way, declined; paid again after a
//! failure, never after a success.

use http::StatusCode;
use serde_json::json;

use super::payment_intents::{demo_intent, id, new_intent};
use super::*;
use crate::{Confirm, DEMO_CUSTOMER};

pub(super) fn statuses(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["data"]["object"]["status"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn paying_at_once_succeeds_with_a_charge_that_can_be_refunded() {
    let sim = simulator();
    let intent = demo_intent(&sim);
    let from = event_count(&sim);
    let charge = sim
        .confirm_payment_intent(id(&intent), Confirm::Succeed)
        .unwrap();
    let events = events_since(&sim, from);
    assert_eq!(
        types(&events),
        ["payment_intent.succeeded", "charge.succeeded"]
    );
    assert_eq!(statuses(&events), ["succeeded", "succeeded"]);
    let paid = get(&sim, &format!("/v1/payment_intents/{}", id(&intent)), None);
    assert_eq!(paid, events[0]["data"]["object"]);
    assert_fixture_keys("payment_intent", &paid);
    assert_eq!(
        (&paid["amount_received"], &paid["latest_charge"]),
        (&2000.into(), &charge.as_str().into())
    );
    assert!(paid["payment_method"].as_str().unwrap().starts_with("pm_"));
    let charged = get(&sim, &format!("/v1/charges/{charge}"), None);
    assert_fixture_keys("charge", &charged);
    assert_eq!(charged, events[1]["data"]["object"]);
    assert_eq!(
        (
            &charged["amount"],
            &charged["payment_intent"],
            &charged["customer"]
        ),
        (&2000.into(), &paid["id"], &DEMO_CUSTOMER.into())
    );
    assert_eq!(charged["metadata"], json!({"order": "7"}));
    assert_eq!(
        sim.charge_for_payment_intent(id(&intent)),
        Some(charge.clone())
    );
    // The events are where GET /v1/events reads them.
    let listed = get(&sim, "/v1/events?type=payment_intent.*", None);
    assert_eq!(listed["data"][0]["type"], "payment_intent.succeeded");

    assert!(sim.refund(&charge, None).unwrap().starts_with("re_"));
    assert_eq!(
        sim.confirm_payment_intent(id(&intent), Confirm::Succeed),
        Err(crate::DevError::Refused(
            "You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed.".into()
        ))
    );
}

#[tokio::test]
async fn a_delayed_payment_is_processing_then_succeeds() {
    let sim = simulator();
    let intent = demo_intent(&sim);
    let pi = id(&intent);
    let from = event_count(&sim);
    let charge = sim
        .confirm_payment_intent(pi, Confirm::DelayedSuccess)
        .unwrap();
    let events = events_since(&sim, from);
    assert_eq!(types(&events), ["payment_intent.processing"]);
    assert_eq!(statuses(&events), ["processing"]);
    assert_eq!(
        get(&sim, &format!("/v1/charges/{charge}"), None)["status"],
        "pending"
    );
    assert!(sim.refund(&charge, None).is_err(), "nothing to refund yet");
    assert!(
        matches!(
            sim.confirm_payment_intent(pi, Confirm::Succeed),
            Err(crate::DevError::Refused(why)) if why.contains("processing")
        ),
        "a processing PaymentIntent is not confirmed again"
    );

    let from = event_count(&sim);
    assert_eq!(sim.settle_now(pi).unwrap(), charge);
    let events = events_since(&sim, from);
    assert_eq!(
        types(&events),
        ["payment_intent.succeeded", "charge.succeeded"]
    );
    assert_eq!(statuses(&events), ["succeeded", "succeeded"]);
    assert_eq!(events[0]["data"]["object"]["amount_received"], 2000);
    assert_eq!(events[1]["data"]["object"]["id"], charge.as_str());
    assert!(sim.settle_now(pi).is_err(), "settled once");
}

#[tokio::test]
async fn a_delayed_failure_and_a_decline_leave_it_payable_again() {
    let sim = simulator();
    let intent = demo_intent(&sim);
    let pi = id(&intent);
    let first = sim
        .confirm_payment_intent(pi, Confirm::DelayedFailure)
        .unwrap();
    let from = event_count(&sim);
    sim.settle_now(pi).unwrap();
    let events = events_since(&sim, from);
    assert_eq!(
        types(&events),
        ["payment_intent.payment_failed", "charge.failed"]
    );
    assert_eq!(statuses(&events), ["requires_payment_method", "failed"]);
    let failed = &events[0]["data"]["object"];
    assert_fixture_keys("payment_intent", failed);
    assert!(failed["payment_method"].is_null());
    let error = &failed["last_payment_error"];
    assert_eq!(
        (&error["code"], &error["type"], &error["charge"]),
        (
            &"payment_intent_payment_attempt_failed".into(),
            &"card_error".into(),
            &first.as_str().into()
        )
    );
    assert_fixture_keys("payment_method", &error["payment_method"]);
    let charge = &events[1]["data"]["object"];
    assert_eq!(
        (&charge["failure_code"], &charge["paid"]),
        (&"card_declined".into(), &false.into())
    );

    let from = event_count(&sim);
    let second = sim.confirm_payment_intent(pi, Confirm::Decline).unwrap();
    let events = events_since(&sim, from);
    assert_eq!(
        types(&events),
        ["payment_intent.payment_failed", "charge.failed"],
        "a decline is never processing"
    );
    assert_eq!(statuses(&events), ["requires_payment_method", "failed"]);
    let error = &events[0]["data"]["object"]["last_payment_error"];
    assert_eq!(
        (&error["code"], &error["decline_code"], &error["charge"]),
        (
            &"card_declined".into(),
            &"generic_decline".into(),
            &second.as_str().into()
        )
    );

    let from = event_count(&sim);
    let third = sim.confirm_payment_intent(pi, Confirm::Succeed).unwrap();
    assert_eq!(
        types(&events_since(&sim, from)),
        ["payment_intent.succeeded", "charge.succeeded"]
    );
    assert!(first != second && second != third, "one charge per attempt");
    let paid = get(&sim, &format!("/v1/payment_intents/{pi}"), None);
    assert_eq!(
        (&paid["latest_charge"], &paid["last_payment_error"]),
        (&third.as_str().into(), &Value::Null)
    );
    assert_eq!(sim.charge_for_payment_intent(pi), Some(third.clone()));
    assert!(
        sim.refund(&first, None).is_err(),
        "a failed charge moved no money"
    );
    let listed = text(&page(&sim, "GET", "/dev/billing", ""));
    assert!(
        listed.contains(&format!("value=\"refund:{third}\""))
            && !listed.contains(&format!("value=\"refund:{first}\"")),
        "the billing page offers controls for the succeeded charge only: {listed}"
    );
}

#[tokio::test]
async fn a_connected_accounts_payment_intent_is_its_own() {
    let sim = simulator();
    let intent = new_intent(
        &sim,
        &[
            ("amount", "1500"),
            ("currency", "eur"),
            ("application_fee_amount", "150"),
        ],
        Some("acct_1"),
    );
    let pi = id(&intent);
    let (status, _) = api(&sim, "GET", &format!("/v1/payment_intents/{pi}"), "", None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    let from = event_count(&sim);
    let charge = sim.confirm_payment_intent(pi, Confirm::Succeed).unwrap();
    let events = events_since(&sim, from);
    assert!(
        events.iter().all(|e| e["account"] == "acct_1"),
        "{events:?}"
    );
    assert_eq!(
        get(&sim, &format!("/v1/charges/{charge}"), Some("acct_1"))["application_fee_amount"],
        150
    );
}
