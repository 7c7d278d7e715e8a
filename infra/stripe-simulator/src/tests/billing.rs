//! Subscription-mode sessions: what Stripe refuses, and the objects paying one makes.

use checkout_core::stripe::{CheckoutSession, Customer, Invoice, PaymentIntent, Subscription};
use http::StatusCode;
use serde_json::Value;

use super::*;

const DAYS_30: i64 = 30 * 86_400;

#[tokio::test]
async fn a_cart_that_does_not_fit_the_mode_is_refused_as_stripe_refuses_it() {
    let sim = simulator();
    let cases = [
        (
            session_form("subscription", &["price_mug"]),
            "You must provide at least one recurring price in `subscription` mode when using prices.",
            "line_items",
        ),
        (
            session_form("payment", &["price_mug", "price_plan"]),
            "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.",
            "line_items",
        ),
        (
            session_form("subscription", &["price_plan", "price_nope"]),
            "No such price: 'price_nope'",
            "line_items[1][price]",
        ),
        (
            session_form("payment", &["price_mug"]).replace(
                "line_items%5B0%5D%5Bquantity%5D=1",
                "line_items%5B0%5D%5Bquantity%5D=0",
            ),
            "This value must be greater than or equal to 1.",
            "line_items[0][quantity]",
        ),
        (
            session_form("payment", &["price_mug"]).replace(
                "line_items%5B0%5D%5Bquantity%5D=1",
                "line_items%5B0%5D%5Bquantity%5D=-2",
            ),
            "Invalid integer",
            "line_items[0][quantity]",
        ),
    ];
    for (form, message, param) in cases {
        let (status, answer) = api(&sim, "POST", "/v1/checkout/sessions", &form, None);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        assert_eq!(answer["error"]["message"], message);
        assert_eq!(answer["error"]["param"], param);
    }
    let (_, unknown) = api(
        &sim,
        "POST",
        "/v1/checkout/sessions",
        &session_form("payment", &["price_nope"]),
        None,
    );
    assert_eq!(unknown["error"]["code"], "resource_missing");
    // A recurring price with one-time ones is a subscription with a first-invoice extra.
    new_session(&sim, "subscription", &["price_plan", "price_mug"], None);
    new_session(&sim, "payment", &["price_mug"], None);
    assert!(
        sim.lock().sessions.len() == 2,
        "refused sessions are not kept"
    );
}

#[tokio::test]
async fn prices_say_whether_they_recur() {
    let sim = simulator();
    let plan = get(&sim, "/v1/prices/price_plan", None);
    assert_fixture_keys("price", &plan);
    assert_eq!(plan["type"], "recurring");
    assert_eq!(plan["recurring"]["interval"], "month");
    assert_eq!(plan["recurring"]["interval_count"], 1);
    assert_eq!(plan["recurring"]["usage_type"], "licensed");
    assert_eq!(plan["unit_amount"], 900);
    let mug = get(&sim, "/v1/prices/price_mug", None);
    assert_eq!(
        (&mug["type"], &mug["recurring"]),
        (&"one_time".into(), &Value::Null)
    );
    let session = new_session(&sim, "subscription", &["price_plan"], None);
    let items = get(
        &sim,
        &format!("/v1/checkout/sessions/{session}/line_items"),
        None,
    );
    assert_eq!(items["data"][0]["price"]["type"], "recurring");
    assert_eq!(items["data"][0]["price"]["recurring"]["interval"], "month");
}

#[tokio::test]
async fn paying_a_subscription_session_makes_stripes_objects_in_stripes_order() {
    let sim = simulator();
    let session = new_session(&sim, "subscription", &["price_plan", "price_mug"], None);
    let from = event_count(&sim);
    pay(&sim, &session);
    let events = events_since(&sim, from);
    assert_eq!(
        types(&events),
        [
            "customer.subscription.created",
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded",
            "payment_intent.succeeded",
            "charge.succeeded",
            "checkout.session.completed",
        ]
    );

    let completed: CheckoutSession =
        serde_json::from_value(get(&sim, &format!("/v1/checkout/sessions/{session}"), None))
            .unwrap();
    assert_eq!(
        completed.payment_intent, None,
        "as on Stripe in subscription mode"
    );
    let sub_id = completed.subscription.clone().expect("subscription set");
    let raw = &of_type(&events, "checkout.session.completed")["data"]["object"];
    assert_eq!(raw["subscription"], sub_id.as_str());
    assert!(sub_id.starts_with("sub_"));
    assert_eq!(sim.subscription_for_session(&session), Some(sub_id.clone()));
    let customer_id = completed.customer.expect("a customer made").to_string();

    let sub = get(&sim, &format!("/v1/subscriptions/{sub_id}"), None);
    assert_fixture_keys("subscription", &sub);
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["customer"], customer_id.as_str());
    assert_eq!(sub["cancel_at_period_end"], false);
    assert_eq!(sub["metadata"], serde_json::json!({}));
    assert!(sub["canceled_at"].is_null() && sub["ended_at"].is_null());
    let items = sub["items"]["data"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1,
        "only the recurring price is a subscription item"
    );
    let item = &items[0];
    assert!(item["id"].as_str().unwrap().starts_with("si_"));
    assert_fixture_keys("subscription_item", item);
    assert_eq!(item["price"]["id"], "price_plan");
    assert_eq!(item["price"]["product"], "prod_plan");
    assert_eq!(item["quantity"], 1);
    let start = item["current_period_start"].as_i64().unwrap();
    assert_eq!(
        item["current_period_end"].as_i64().unwrap(),
        start + DAYS_30
    );
    assert_eq!(sub["start_date"], start);
    let typed: Subscription = serde_json::from_value(sub.clone()).unwrap();
    assert_eq!(typed.current_period_end(), Some(start + DAYS_30));

    let invoice_id = sub["latest_invoice"].as_str().unwrap();
    assert_eq!(raw["invoice"], invoice_id);
    let invoice = get(&sim, &format!("/v1/invoices/{invoice_id}"), None);
    assert_fixture_keys("invoice", &invoice);
    assert_eq!(invoice["status"], "paid");
    assert_eq!(invoice["billing_reason"], "subscription_create");
    assert_eq!(invoice["customer"], customer_id.as_str());
    assert_eq!(invoice["parent"]["type"], "subscription_details");
    assert_eq!(
        invoice["parent"]["subscription_details"]["subscription"],
        sub_id.as_str()
    );
    assert_eq!(
        invoice["parent"]["subscription_details"]["metadata"],
        serde_json::json!({})
    );
    assert!(invoice["parent"]["quote_details"].is_null());
    assert_eq!(
        (&invoice["amount_paid"], &invoice["attempt_count"]),
        (&2400.into(), &1.into())
    );
    assert!(invoice["status_transitions"]["paid_at"].is_i64());
    assert_eq!(
        invoice["hosted_invoice_url"],
        format!("{PUBLIC_URL}/i/{invoice_id}").as_str()
    );
    let line = &invoice["lines"]["data"][0];
    assert_eq!(line["pricing"]["type"], "price_details");
    assert_eq!(line["pricing"]["price_details"]["price"], "price_plan");
    assert_eq!(line["pricing"]["price_details"]["product"], "prod_plan");
    assert_eq!(line["period"]["end"], start + DAYS_30);
    assert_eq!(
        invoice["lines"]["data"][1]["pricing"]["price_details"]["price"],
        "price_mug"
    );
    let typed: Invoice = serde_json::from_value(invoice.clone()).unwrap();
    assert_eq!(typed.subscription_id().unwrap().as_str(), sub_id);
    assert_eq!(typed.period_end(), Some(start + DAYS_30));

    // At basil only invoice_payments link the invoice to its PaymentIntent.
    let payments = get(
        &sim,
        &format!("/v1/invoice_payments?invoice={invoice_id}"),
        None,
    );
    assert_fixture_keys("invoice_payment", &payments["data"][0]);
    assert_eq!(payments["data"][0]["status"], "paid");
    let intent_id = payments["data"][0]["payment"]["payment_intent"]
        .as_str()
        .unwrap();
    let intent = get(&sim, &format!("/v1/payment_intents/{intent_id}"), None);
    assert_fixture_keys("payment_intent", &intent);
    assert_eq!(
        intent,
        of_type(&events, "payment_intent.succeeded")["data"]["object"]
    );
    assert_eq!(
        (&intent["status"], &intent["amount"]),
        (&"succeeded".into(), &2400.into())
    );
    assert_eq!(intent["customer"], customer_id.as_str());
    assert_eq!(intent["metadata"], serde_json::json!({}));
    let _: PaymentIntent = serde_json::from_value(intent.clone()).unwrap();
    let charge_id = intent["latest_charge"].as_str().unwrap();
    assert_eq!(
        sim.charge_for_payment_intent(intent_id).as_deref(),
        Some(charge_id)
    );
    let charge = get(&sim, &format!("/v1/charges/{charge_id}"), None);
    assert_fixture_keys("charge", &charge);
    assert_eq!(charge["payment_intent"], intent_id);
    assert_eq!(charge["customer"], customer_id.as_str());

    // No session has the invoice's PaymentIntent, as on Stripe.
    let found = get(
        &sim,
        &format!("/v1/checkout/sessions?payment_intent={intent_id}"),
        None,
    );
    assert_eq!(found["data"], serde_json::json!([]));

    let customer = get(&sim, &format!("/v1/customers/{customer_id}"), None);
    assert_fixture_keys("customer", &customer);
    let typed: Customer = serde_json::from_value(customer).unwrap();
    assert_eq!(typed.email.as_deref(), Some("ada@example.com"));

    // Each event carries the object as it was then: a draft, finalized, then paid invoice.
    let statuses: Vec<&Value> = ["invoice.created", "invoice.finalized", "invoice.paid"]
        .iter()
        .map(|k| &of_type(&events, k)["data"]["object"]["status"])
        .collect();
    assert_eq!(statuses, ["draft", "open", "paid"]);
    let (missing, _) = api(&sim, "GET", "/v1/subscriptions/sub_nope", "", None);
    assert_eq!(missing, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_connected_accounts_subscription_is_its_own() {
    let sim = simulator();
    let session = new_session(&sim, "subscription", &["price_plan"], Some("acct_1"));
    let from = event_count(&sim);
    pay(&sim, &session);
    let sub_id = sim.subscription_for_session(&session).unwrap();
    let (status, answer) = api(
        &sim,
        "GET",
        &format!("/v1/subscriptions/{sub_id}"),
        "",
        None,
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["code"], "resource_missing");
    get(&sim, &format!("/v1/subscriptions/{sub_id}"), Some("acct_1"));
    sim.renew(&sub_id).unwrap();
    assert!(
        events_since(&sim, from)
            .iter()
            .all(|e| e["account"] == "acct_1")
    );
    let listed = get(&sim, "/v1/events?type=invoice.*", Some("acct_1"));
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        8,
        "4 of the first invoice, 4 of the renewal"
    );
    let platform = get(&sim, "/v1/events?type=invoice.*", None);
    assert_eq!(platform["data"], serde_json::json!([]));
}
