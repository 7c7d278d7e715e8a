//! A subscription's life after the sale: renewals paid, failed or held for authentication,
//! paid from the hosted invoice page, cancelled now or at the period's end.

use http::StatusCode;
use serde_json::Value;

use super::*;

const DAYS_30: i64 = 30 * 86_400;

/// Pays a one-item subscription session; its subscription's id.
fn subscribed(sim: &Arc<Simulator>) -> String {
    let session = new_session(sim, "subscription", &["price_plan"], None);
    pay(sim, &session);
    sim.subscription_for_session(&session).unwrap()
}

fn subscription(sim: &Arc<Simulator>, id: &str) -> Value {
    get(sim, &format!("/v1/subscriptions/{id}"), None)
}

#[tokio::test]
async fn a_renewal_bills_the_next_period() {
    let sim = simulator();
    let sub_id = subscribed(&sim);
    let before = subscription(&sim, &sub_id);
    let from = event_count(&sim);
    let invoice_id = sim.renew(&sub_id).unwrap();
    let events = events_since(&sim, from);
    assert_eq!(
        types(&events),
        [
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded",
            "payment_intent.succeeded",
            "charge.succeeded",
            "customer.subscription.updated",
        ]
    );
    let after = subscription(&sim, &sub_id);
    assert_eq!(after["latest_invoice"], invoice_id.as_str());
    let (old, new) = (&before["items"]["data"][0], &after["items"]["data"][0]);
    assert_eq!(new["current_period_start"], old["current_period_end"]);
    assert_eq!(
        new["current_period_end"].as_i64().unwrap(),
        old["current_period_end"].as_i64().unwrap() + DAYS_30
    );
    let updated = of_type(&events, "customer.subscription.updated");
    assert_eq!(updated["data"]["object"], after);
    assert_eq!(
        updated["data"]["previous_attributes"]["items"],
        before["items"]
    );
    let invoice = get(&sim, &format!("/v1/invoices/{invoice_id}"), None);
    assert_eq!(
        (&invoice["status"], &invoice["billing_reason"]),
        (&"paid".into(), &"subscription_cycle".into())
    );
    assert_eq!(
        invoice["lines"]["data"][0]["period"]["end"],
        new["current_period_end"]
    );
    let intent = &of_type(&events, "payment_intent.succeeded")["data"]["object"];
    let charge = &of_type(&events, "charge.succeeded")["data"]["object"];
    assert_eq!(intent["latest_charge"], charge["id"]);
    assert_eq!(
        sim.charge_for_payment_intent(intent["id"].as_str().unwrap()),
        charge["id"].as_str().map(str::to_string)
    );
    assert_eq!(charge["amount"], 900);
}

#[tokio::test]
async fn a_failed_renewal_is_retried_then_paid_from_its_hosted_page() {
    let sim = simulator();
    let sub_id = subscribed(&sim);
    let from = event_count(&sim);
    let invoice_id = sim.fail_renewal(&sub_id).unwrap();
    let events = events_since(&sim, from);
    assert_eq!(
        types(&events),
        [
            "invoice.created",
            "invoice.finalized",
            "invoice.payment_failed",
            "customer.subscription.updated"
        ]
    );
    let failed = &of_type(&events, "invoice.payment_failed")["data"]["object"];
    assert_eq!(
        (&failed["status"], &failed["attempt_count"]),
        (&"open".into(), &1.into())
    );
    assert!(failed["next_payment_attempt"].as_i64().unwrap() > failed["created"].as_i64().unwrap());
    let updated = of_type(&events, "customer.subscription.updated");
    assert_eq!(updated["data"]["object"]["status"], "past_due");
    assert_eq!(updated["data"]["previous_attributes"]["status"], "active");

    // A second failure retries the same invoice; the subscription is past_due already.
    let from = event_count(&sim);
    assert_eq!(sim.fail_renewal(&sub_id).unwrap(), invoice_id);
    let events = events_since(&sim, from);
    assert_eq!(types(&events), ["invoice.payment_failed"]);
    assert_eq!(events[0]["data"]["object"]["attempt_count"], 2);

    let from = event_count(&sim);
    assert_eq!(sim.require_action(&sub_id).unwrap(), invoice_id);
    let events = events_since(&sim, from);
    assert_eq!(types(&events), ["invoice.payment_action_required"]);
    let held = &events[0]["data"]["object"];
    assert_eq!(
        held["hosted_invoice_url"],
        format!("{PUBLIC_URL}/i/{invoice_id}").as_str()
    );
    assert_eq!(held["attempt_count"], 3);
    let payments = get(
        &sim,
        &format!("/v1/invoice_payments?invoice={invoice_id}"),
        None,
    );
    assert_eq!(
        payments["data"].as_array().unwrap().len(),
        1,
        "one PaymentIntent, retried"
    );
    let intent = payments["data"][0]["payment"]["payment_intent"]
        .as_str()
        .unwrap();
    assert_eq!(
        get(&sim, &format!("/v1/payment_intents/{intent}"), None)["status"],
        "requires_action"
    );

    // The customer pays on the hosted invoice page.
    let shown = page(&sim, "GET", &format!("/i/{invoice_id}"), "");
    assert!(
        text(&shown).contains("id=\"pay-invoice\""),
        "{}",
        text(&shown)
    );
    let from = event_count(&sim);
    let paid = page(&sim, "POST", &format!("/i/{invoice_id}"), "");
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    let events = events_since(&sim, from);
    assert_eq!(
        types(&events),
        [
            "invoice.paid",
            "invoice.payment_succeeded",
            "payment_intent.succeeded",
            "charge.succeeded",
            "customer.subscription.updated"
        ]
    );
    assert_eq!(subscription(&sim, &sub_id)["status"], "active");
    assert_eq!(
        get(&sim, &format!("/v1/payment_intents/{intent}"), None)["status"],
        "succeeded"
    );
    assert!(sim.pay_invoice(&invoice_id).is_err(), "paid already");
}

#[tokio::test]
async fn cancelling_ends_now_or_at_the_periods_end() {
    let sim = simulator();
    let now_id = subscribed(&sim);
    let from = event_count(&sim);
    assert_eq!(sim.cancel_subscription(&now_id).unwrap(), now_id);
    let events = events_since(&sim, from);
    assert_eq!(types(&events), ["customer.subscription.deleted"]);
    let ended = &events[0]["data"]["object"];
    assert_eq!(ended["status"], "canceled");
    assert!(ended["canceled_at"].is_i64() && ended["ended_at"].is_i64());
    assert_eq!(ended, &subscription(&sim, &now_id));
    assert!(matches!(
        sim.renew(&now_id),
        Err(crate::DevError::Refused(_))
    ));
    assert!(matches!(
        sim.renew("sub_nope"),
        Err(crate::DevError::NoSuch { .. })
    ));

    let later_id = subscribed(&sim);
    let before = subscription(&sim, &later_id);
    let from = event_count(&sim);
    sim.cancel_at_period_end(&later_id).unwrap();
    let events = events_since(&sim, from);
    assert_eq!(types(&events), ["customer.subscription.updated"]);
    let scheduled = &events[0]["data"]["object"];
    assert_eq!(
        (&scheduled["cancel_at_period_end"], &scheduled["status"]),
        (&true.into(), &"active".into())
    );
    assert_eq!(
        scheduled["cancel_at"],
        before["items"]["data"][0]["current_period_end"]
    );
    assert_eq!(
        events[0]["data"]["previous_attributes"]["cancel_at_period_end"],
        false
    );
    assert!(sim.cancel_at_period_end(&later_id).is_err());
    // At the period's end it ends instead of renewing.
    let from = event_count(&sim);
    assert_eq!(sim.renew(&later_id).unwrap(), later_id);
    assert_eq!(
        types(&events_since(&sim, from)),
        ["customer.subscription.deleted"]
    );
}

#[tokio::test]
async fn the_billing_page_lists_and_drives_subscriptions() {
    let sim = simulator();
    let index = page(&sim, "GET", "/", "");
    assert!(text(&index).contains("href=\"/dev/billing\""));
    let sub_id = subscribed(&sim);
    let listed = page(&sim, "GET", "/dev/billing", "");
    assert!(text(&listed).contains(&format!("value=\"renew:{sub_id}\"")));
    let from = event_count(&sim);
    let acted = page(
        &sim,
        "POST",
        "/dev/billing",
        &format!("act=fail_renewal%3A{sub_id}&withhold=on"),
    );
    assert_eq!(acted.status(), StatusCode::SEE_OTHER);
    let location = acted.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/dev/billing?done=in_"), "{location}");
    assert_eq!(
        types(&events_since(&sim, from)).last(),
        Some(&"customer.subscription.updated")
    );
    assert!(text(&page(&sim, "GET", "/dev/billing", "")).contains("past_due"));
    let unknown = page(&sim, "POST", "/dev/billing", "act=renew%3Asub_nope");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
