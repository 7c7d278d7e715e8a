//! The Payment Element stand-in's page: saved cards only for the customer session's own
//! customer, the four buttons, and the return to the `return_url` with Stripe's query.

use http::StatusCode;
use serde_json::json;

use super::payment_attempts::statuses;
use super::payment_intents::{
    REDISPLAY, customer_session, demo_intent, form, id, new_intent, secret,
};
use super::*;
use crate::{DEMO_CUSTOMER, DEMO_PAYMENT_METHOD, SETTLE_AFTER};

const RETURN_URL: &str = "http://shop.test/paid?order=7";

/// The element page for the PaymentIntent, with the customer session when given.
fn element_page(sim: &Arc<Simulator>, intent: &Value, session: Option<&Value>) -> Answer {
    let query = form(&[
        ("client_secret", secret(intent)),
        (
            "customer_session_client_secret",
            session.map_or("", |s| secret(s)),
        ),
        ("return_url", RETURN_URL),
    ]);
    page(sim, "GET", &format!("/elements/pay?{query}"), "")
}

/// A press of one of the element page's buttons.
fn element_pay(
    sim: &Arc<Simulator>,
    intent: &Value,
    session: Option<&Value>,
    extra: &[(&str, &str)],
) -> Answer {
    let mut pairs = vec![
        ("client_secret", secret(intent)),
        (
            "customer_session_client_secret",
            session.map_or("", |s| secret(s)),
        ),
        ("return_url", RETURN_URL),
    ];
    pairs.extend_from_slice(extra);
    page(sim, "POST", "/elements/pay", &form(&pairs))
}

fn location(answer: &Answer) -> &str {
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{}", text(answer));
    answer.headers()["location"].to_str().unwrap()
}

#[tokio::test]
async fn the_element_lists_saved_cards_only_for_its_customer_sessions_customer() {
    let sim = simulator();
    let intent = demo_intent(&sim);
    let saved = "id=\"saved-pm_demo_visa\"";

    let alone = text(&element_page(&sim, &intent, None));
    for button in [
        "pay",
        "pay-delayed-success",
        "pay-delayed-failure",
        "pay-decline",
        "new-card",
    ] {
        assert!(
            alone.contains(&format!("id=\"{button}\"")),
            "#{button}: {alone}"
        );
    }
    assert!(
        alone.contains("20.00") && alone.contains("Tea box"),
        "{alone}"
    );
    assert!(!alone.contains(saved), "no customer session: {alone}");

    let session = customer_session(&sim, DEMO_CUSTOMER, &[REDISPLAY]);
    let shown = text(&element_page(&sim, &intent, Some(&session)));
    assert!(shown.contains(saved), "{shown}");
    assert!(
        shown.contains("4242") && shown.contains("12/2030"),
        "{shown}"
    );

    let no_redisplay = customer_session(&sim, DEMO_CUSTOMER, &[]);
    let hidden = text(&element_page(&sim, &intent, Some(&no_redisplay)));
    assert!(!hidden.contains(saved), "redisplay is disabled by default");

    sim.lock().objects.insert(
        None,
        crate::subscriptions::customer_json("cus_other", &json!("o@example.com"), &Value::Null, 1),
    );
    let other = customer_session(&sim, "cus_other", &[REDISPLAY]);
    let elsewhere = text(&element_page(&sim, &intent, Some(&other)));
    assert!(!elsewhere.contains(saved), "another customer's session");
    assert!(
        elsewhere.contains("customer-session-ignored"),
        "{elsewhere}"
    );
    let anonymous = new_intent(&sim, &[("amount", "500"), ("currency", "eur")], None);
    let nobody = text(&element_page(&sim, &anonymous, Some(&session)));
    assert!(
        !nobody.contains(saved),
        "a PaymentIntent without a customer"
    );

    sim.lock()
        .customer_sessions
        .get_mut(secret(&session))
        .unwrap()
        .object["expires_at"] = 0.into();
    let expired = text(&element_page(&sim, &intent, Some(&session)));
    assert!(!expired.contains(saved), "an expired customer session");

    let unknown = page(
        &sim,
        "GET",
        &format!("/elements/pay?client_secret=pi_x_secret_y&return_url={RETURN_URL}"),
        "",
    );
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let no_return = page(
        &sim,
        "GET",
        &format!(
            "/elements/pay?{}",
            form(&[("client_secret", secret(&intent))])
        ),
        "",
    );
    assert_eq!(no_return.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_element_pays_with_the_saved_card_and_returns_with_stripes_query() {
    let sim = simulator();
    let intent = demo_intent(&sim);
    let session = customer_session(&sim, DEMO_CUSTOMER, &[REDISPLAY]);
    let not_offered = element_pay(
        &sim,
        &intent,
        None,
        &[
            ("payment_method", DEMO_PAYMENT_METHOD),
            ("outcome", "succeed"),
        ],
    );
    assert_eq!(
        not_offered.status(),
        StatusCode::BAD_REQUEST,
        "a saved card needs the customer session"
    );

    let from = event_count(&sim);
    let answer = element_pay(
        &sim,
        &intent,
        Some(&session),
        &[
            ("payment_method", DEMO_PAYMENT_METHOD),
            ("outcome", "succeed"),
        ],
    );
    let expected = format!(
        "{RETURN_URL}&{}",
        form(&[
            ("payment_intent", id(&intent)),
            ("payment_intent_client_secret", secret(&intent)),
            ("redirect_status", "succeeded"),
        ])
    );
    assert_eq!(location(&answer), expected);
    assert_eq!(
        types(&events_since(&sim, from)),
        ["payment_intent.succeeded", "charge.succeeded"]
    );
    let paid = sim.payment_intent_by_secret(secret(&intent)).unwrap();
    assert_eq!(paid["payment_method"], DEMO_PAYMENT_METHOD);
    let charge = get(
        &sim,
        &format!("/v1/charges/{}", paid["latest_charge"].as_str().unwrap()),
        None,
    );
    assert_eq!(
        (
            &charge["payment_method"],
            &charge["payment_method_details"]["card"]["exp_year"]
        ),
        (&DEMO_PAYMENT_METHOD.into(), &2030.into())
    );
    assert!(text(&element_page(&sim, &intent, Some(&session))).contains("id=\"paid\""));
    let again = element_pay(&sim, &intent, Some(&session), &[("outcome", "succeed")]);
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "{}", text(&again));
}

#[tokio::test]
async fn a_declined_card_returns_failed_and_the_page_offers_another_attempt() {
    let sim = simulator();
    let intent = demo_intent(&sim);
    let answer = element_pay(&sim, &intent, None, &[("outcome", "decline")]);
    assert!(location(&answer).ends_with("&redirect_status=failed"));
    let retry = text(&element_page(&sim, &intent, None));
    assert!(
        retry.contains("id=\"payment-error\"") && retry.contains("id=\"pay\""),
        "{retry}"
    );
    let answer = element_pay(&sim, &intent, None, &[("outcome", "succeed")]);
    assert!(location(&answer).ends_with("&redirect_status=succeeded"));
}

#[tokio::test]
async fn a_delayed_payment_from_the_element_settles_by_itself() {
    let sim = simulator();
    let intent = demo_intent(&sim);
    let from = event_count(&sim);
    let answer = element_pay(&sim, &intent, None, &[("outcome", "delayed_failure")]);
    assert!(location(&answer).ends_with("&redirect_status=processing"));
    assert!(text(&element_page(&sim, &intent, None)).contains("id=\"processing\""));
    tokio::time::sleep(SETTLE_AFTER + std::time::Duration::from_millis(300)).await;
    let events = events_since(&sim, from);
    assert_eq!(
        types(&events),
        [
            "payment_intent.processing",
            "payment_intent.payment_failed",
            "charge.failed"
        ]
    );
    assert_eq!(
        statuses(&events),
        ["processing", "requires_payment_method", "failed"]
    );
}

#[tokio::test]
async fn a_new_card_the_customer_saves_is_shown_next_time() {
    let sim = simulator();
    let session = customer_session(
        &sim,
        DEMO_CUSTOMER,
        &[
            REDISPLAY,
            (
                "components[payment_element][features][payment_method_save]",
                "enabled",
            ),
        ],
    );
    let intent = demo_intent(&sim);
    let offered = text(&element_page(&sim, &intent, Some(&session)));
    assert!(offered.contains("id=\"save-card\""), "{offered}");
    let answer = element_pay(
        &sim,
        &intent,
        Some(&session),
        &[
            ("payment_method", "new"),
            ("save", "on"),
            ("outcome", "succeed"),
        ],
    );
    location(&answer);
    let paid = sim.payment_intent_by_secret(secret(&intent)).unwrap();
    assert_eq!(paid["setup_future_usage"], "off_session");
    let card = paid["payment_method"].as_str().unwrap();
    let saved = sim.object(card).unwrap();
    assert_eq!(
        (&saved["customer"], &saved["allow_redisplay"]),
        (&DEMO_CUSTOMER.into(), &"always".into())
    );
    let next = demo_intent(&sim);
    let shown = text(&element_page(&sim, &next, Some(&session)));
    assert!(shown.contains(&format!("id=\"saved-{card}\"")), "{shown}");
}
