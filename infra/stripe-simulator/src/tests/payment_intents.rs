//! PaymentIntents and CustomerSessions of the Payment Element flow for existing customers, as
//! Stripe makes, replays and refuses them, each object key by key against Stripe's fixtures.
//! The helpers here serve the other Payment Element tests too.

use checkout_core::stripe::PaymentIntent;
use http::StatusCode;
use serde_json::json;

use super::*;
use crate::{DEMO_CUSTOMER, DEMO_PAYMENT_METHOD};

pub(super) fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub(super) fn new_intent(
    sim: &Arc<Simulator>,
    pairs: &[(&str, &str)],
    account: Option<&str>,
) -> Value {
    let (status, intent) = api(sim, "POST", "/v1/payment_intents", &form(pairs), account);
    assert_eq!(status, StatusCode::OK, "{intent}");
    intent
}

/// 20.00 EUR for the returning customer.
pub(super) fn demo_intent(sim: &Arc<Simulator>) -> Value {
    new_intent(
        sim,
        &[
            ("amount", "2000"),
            ("currency", "eur"),
            ("customer", DEMO_CUSTOMER),
            ("automatic_payment_methods[enabled]", "true"),
            ("description", "Tea box"),
            ("metadata[order]", "7"),
        ],
        None,
    )
}

pub(super) fn customer_session(
    sim: &Arc<Simulator>,
    customer: &str,
    features: &[(&str, &str)],
) -> Value {
    let mut pairs = vec![
        ("customer", customer),
        ("components[payment_element][enabled]", "true"),
    ];
    pairs.extend_from_slice(features);
    let (status, session) = api(sim, "POST", "/v1/customer_sessions", &form(&pairs), None);
    assert_eq!(status, StatusCode::OK, "{session}");
    session
}

pub(super) const REDISPLAY: (&str, &str) = (
    "components[payment_element][features][payment_method_redisplay]",
    "enabled",
);

pub(super) fn id(value: &Value) -> &str {
    value["id"].as_str().unwrap()
}

pub(super) fn secret(value: &Value) -> &str {
    value["client_secret"].as_str().unwrap()
}

#[tokio::test]
async fn payment_intents_and_customer_sessions_carry_every_key_of_stripes_fixtures() {
    let sim = simulator();
    let customer = get(&sim, &format!("/v1/customers/{DEMO_CUSTOMER}"), None);
    assert_fixture_keys("customer", &customer);
    assert_eq!(
        (
            &customer["email"],
            &customer["name"],
            &customer["preferred_locales"]
        ),
        (
            &"returning@example.com".into(),
            &"Robin Returning".into(),
            &json!(["en"])
        )
    );
    let card = get(
        &sim,
        &format!("/v1/payment_methods/{DEMO_PAYMENT_METHOD}"),
        None,
    );
    assert_fixture_keys("payment_method", &card);
    assert_eq!(
        (
            &card["allow_redisplay"],
            &card["customer"],
            &card["card"]["exp_year"]
        ),
        (&"always".into(), &DEMO_CUSTOMER.into(), &2030.into())
    );

    let intent = demo_intent(&sim);
    assert_fixture_keys("payment_intent", &intent);
    let pi = id(&intent);
    assert!(pi.starts_with("pi_"));
    assert!(secret(&intent).starts_with(&format!("{pi}_secret_")));
    assert_eq!(
        (
            &intent["status"],
            &intent["amount"],
            &intent["amount_received"]
        ),
        (&"requires_payment_method".into(), &2000.into(), &0.into())
    );
    assert_eq!(
        intent["automatic_payment_methods"],
        json!({"enabled": true, "allow_redirects": "always"})
    );
    assert_eq!(
        (
            &intent["customer"],
            &intent["metadata"],
            &intent["description"]
        ),
        (
            &DEMO_CUSTOMER.into(),
            &json!({"order": "7"}),
            &"Tea box".into()
        )
    );
    for null in [
        "latest_charge",
        "last_payment_error",
        "payment_method",
        "setup_future_usage",
    ] {
        assert!(intent[null].is_null(), "{null}: {intent}");
    }
    assert_eq!(intent["livemode"], false);
    assert_eq!(
        get(&sim, &format!("/v1/payment_intents/{pi}"), None),
        intent
    );
    let typed: PaymentIntent = serde_json::from_value(intent.clone()).unwrap();
    assert_eq!(typed.metadata["order"], "7");
    assert_eq!(
        sim.payment_intent_by_secret(secret(&intent)).as_ref(),
        Some(&intent)
    );
    assert_eq!(sim.payment_intent_by_secret("pi_x_secret_y"), None);

    let session = customer_session(
        &sim,
        DEMO_CUSTOMER,
        &[
            REDISPLAY,
            (
                "components[payment_element][features][payment_method_save]",
                "enabled",
            ),
            (
                "components[payment_element][features][payment_method_remove]",
                "disabled",
            ),
            (
                "components[payment_element][features][payment_method_save_usage]",
                "off_session",
            ),
            (
                "components[payment_element][features][payment_method_allow_redisplay_filters][]",
                "always",
            ),
            (
                "components[payment_element][features][payment_method_allow_redisplay_filters][]",
                "limited",
            ),
        ],
    );
    assert_fixture_keys("customer_session", &session);
    assert!(secret(&session).starts_with("cuss_secret_"));
    assert_eq!(
        (
            &session["object"],
            &session["customer"],
            &session["livemode"]
        ),
        (
            &"customer_session".into(),
            &DEMO_CUSTOMER.into(),
            &false.into()
        )
    );
    assert_eq!(
        session["expires_at"].as_i64().unwrap() - session["created"].as_i64().unwrap(),
        1800
    );
    let element = &session["components"]["payment_element"];
    assert_eq!(element["enabled"], true);
    assert_eq!(
        element["features"],
        json!({
            "payment_method_allow_redisplay_filters": ["always", "limited"],
            "payment_method_redisplay": "enabled",
            "payment_method_redisplay_limit": 3,
            "payment_method_remove": "disabled",
            "payment_method_save": "enabled",
            "payment_method_save_usage": "off_session",
        })
    );
    assert_eq!(session["components"]["pricing_table"]["enabled"], false);
}

#[tokio::test]
async fn unknown_customers_and_parameters_are_refused_as_stripe_refuses_them() {
    let sim = simulator();
    let refused = |pairs: &[(&str, &str)], account: Option<&str>| {
        let (status, answer) = api(&sim, "POST", "/v1/payment_intents", &form(pairs), account);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        answer["error"].clone()
    };
    let sale = [("amount", "2000"), ("currency", "eur")];
    let with = |extra: (&'static str, &'static str)| {
        let mut pairs = sale.to_vec();
        pairs.push(extra);
        pairs
    };

    let error = refused(&with(("customer", "cus_nobody")), None);
    assert_eq!(
        error,
        json!({
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": "No such customer: 'cus_nobody'",
            "param": "customer",
        })
    );
    let error = refused(&with(("customer", DEMO_CUSTOMER)), Some("acct_1"));
    assert_eq!(
        (&error["code"], &error["param"]),
        (&"resource_missing".into(), &"customer".into()),
        "the demo customer is the platform's"
    );
    let error = refused(&with(("confirm", "true")), None);
    assert_eq!(
        error,
        json!({
            "type": "invalid_request_error",
            "code": "parameter_unknown",
            "message": "Received unknown parameter: confirm",
            "param": "confirm",
        })
    );
    for (key, named) in [
        ("payment_method_types[]", "payment_method_types"),
        (
            "automatic_payment_methods[foo]",
            "automatic_payment_methods[foo]",
        ),
    ] {
        let error = refused(&with((key, "x")), None);
        assert_eq!(
            (&error["message"], &error["param"]),
            (
                &format!("Received unknown parameter: {named}").into(),
                &named.into()
            )
        );
    }
    let error = refused(&[("currency", "eur")], None);
    assert_eq!(
        (&error["code"], &error["param"]),
        (&"parameter_missing".into(), &"amount".into())
    );
    let error = refused(&[("amount", "0"), ("currency", "eur")], None);
    assert_eq!(
        (&error["code"], &error["param"]),
        (&"parameter_invalid_integer".into(), &"amount".into())
    );
    assert_eq!(
        refused(&[("amount", "12.5"), ("currency", "eur")], None)["message"],
        "Invalid integer: 12.5"
    );
    assert_eq!(refused(&[("amount", "100")], None)["param"], "currency");
    let error = refused(&with(("application_fee_amount", "100")), None);
    assert_eq!(error["param"], "application_fee_amount");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Stripe-Account header"),
        "{error}"
    );
    assert_eq!(
        refused(&with(("setup_future_usage", "sometimes")), None)["param"],
        "setup_future_usage"
    );
    let many: Vec<(String, String)> = (0..51)
        .map(|i| (format!("metadata[k{i}]"), "v".to_string()))
        .chain(
            sale.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        )
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        refused(&many, None)["message"],
        "Metadata can have up to 50 keys, but you've set 51."
    );
    assert_eq!(
        refused(&with(("expand[]", "customer")), None)["param"],
        "expand[]",
        "an expansion the simulator does not make is refused, not ignored"
    );
    assert!(
        sim.lock().element_intents.is_empty(),
        "nothing is made by a refused request"
    );
    new_intent(&sim, &with(("expand[]", "latest_charge")), None);

    let connected = new_intent(
        &sim,
        &with(("application_fee_amount", "100")),
        Some("acct_1"),
    );
    assert_eq!(connected["application_fee_amount"], 100);

    let (status, answer) = api(
        &sim,
        "POST",
        "/v1/customer_sessions",
        &form(&[
            ("customer", "cus_nobody"),
            ("components[payment_element][enabled]", "true"),
        ]),
        None,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"],
        json!({
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": "No such customer: 'cus_nobody'",
            "param": "customer",
        })
    );
    let (status, answer) = api(
        &sim,
        "POST",
        "/v1/customer_sessions",
        &form(&[("components[payment_element][enabled]", "true")]),
        None,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], "parameter_missing");
}

#[tokio::test]
async fn an_idempotent_create_replays_the_same_payment_intent() {
    let sim = simulator();
    let body = form(&[
        ("amount", "2000"),
        ("currency", "eur"),
        ("customer", DEMO_CUSTOMER),
    ]);
    let send = |body: &str| {
        let request = http::Request::builder()
            .method("POST")
            .uri("/v1/payment_intents")
            .header("authorization", format!("Bearer {KEY}"))
            .header("idempotency-key", "order-7")
            .body(Bytes::from(body.to_string()))
            .unwrap();
        sim.api(&request)
    };
    let first = send(&body);
    let again = send(&body);
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(again.body(), first.body());
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(sim.lock().element_intents.len(), 1, "made once");
    let different = send(&form(&[("amount", "2500"), ("currency", "eur")]));
    assert_eq!(different.status(), StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_slice(different.body()).unwrap();
    assert_eq!(error["error"]["type"], "idempotency_error");
}
