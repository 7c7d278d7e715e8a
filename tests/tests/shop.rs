//! Checkout for real shops, through the real create-session and fulfillment handlers against
//! moto's DynamoDB and a fake Stripe at the HTTP boundary: the merchant's shop policy reaches
//! Stripe exactly and a browser cannot set any of it; `ui_mode=custom`; the expire route;
//! stock reserved, released and committed once per session under concurrency; the landing
//! page asks Stripe about no session it does not know.

#![recursion_limit = "256"]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use checkout_core::{
    access::{Entitle, EntitleError, Grant, Revoke},
    checkout::{self, CheckoutConfig},
    config::{Secret, TableName},
    fulfillment::{Fulfil, FulfilError, Fulfilled, FulfillmentApp, FulfillmentConfig, Order},
    ids::PriceId,
    lambda::StreamAndHttp,
    shop::{OPTION_KEYS, Shop, ShopConfig},
    stock::{StockConfig, StockTable},
    stripe::StripeConfig,
};
use integration_tests::checkout::*;
use integration_tests::*;
use lambda_http::Body;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

const POLICY: &str = include_str!("../../examples/shop-policy.json");

fn with_policy(mut config: CheckoutConfig, document: &str) -> CheckoutConfig {
    config.shop = ShopConfig {
        shop: Arc::new(Shop::parse(document).expect("the policy parses")),
    };
    config
}

/// Stripe making a new session for every create, and answering a repeated
/// `Idempotency-Key` with the session it made for it, as it does.
struct NewSessions(
    AtomicU32,
    std::sync::Mutex<std::collections::HashMap<String, u32>>,
);

impl Respond for NewSessions {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let key = request
            .headers
            .get("idempotency-key")
            .and_then(|k| k.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let n = *self
            .1
            .lock()
            .unwrap()
            .entry(key)
            .or_insert_with(|| self.0.fetch_add(1, Ordering::SeqCst));
        let ui_mode = form_pairs(&request.body)
            .into_iter()
            .find(|(k, _)| k == "ui_mode")
            .map_or("hosted".to_string(), |(_, v)| v);
        ResponseTemplate::new(200).set_body_json(session_json(&format!("cs_test_{n:04}"), &ui_mode))
    }
}

/// Stripe expiring any session, answering it expired.
struct Expire;

impl Respond for Expire {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = request
            .url
            .path()
            .split('/')
            .nth(4)
            .unwrap_or_default()
            .to_string();
        let mut session = session_json(&id, "hosted");
        session["status"] = "expired".into();
        ResponseTemplate::new(200).set_body_json(session)
    }
}

async fn mock_stripe(h: &Harness) {
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(NewSessions(AtomicU32::new(0), std::sync::Mutex::default()))
        .mount(&h.stripe)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/v1/checkout/sessions/cs_[A-Za-z0-9_]+/expire$",
        ))
        .respond_with(Expire)
        .mount(&h.stripe)
        .await;
}

async fn post(
    creator: &checkout::SessionCreator,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let response =
        checkout::handle(creator, checkout_request("application/json", body, headers)).await;
    (response.status().as_u16(), body_json(&response))
}

fn sent_forms(requests: &[wiremock::Request], path: &str) -> Vec<Vec<(String, String)>> {
    requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == path)
        .map(|r| form_pairs(&r.body))
        .collect()
}

#[tokio::test]
async fn the_shop_policy_reaches_stripe_key_for_key() {
    let h = Harness::new().await;
    mock_stripe(&h).await;
    let creator = h.creator(with_policy(h.config(), POLICY));
    let (status, answer) = post(
        &creator,
        r#"{"line_items":[{"price":"price_mug","quantity":2},{"price":"price_A","quantity":1}],"mode":"payment"}"#,
        &[],
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let mut form = sent_forms(&h.stripe_requests().await, "/v1/checkout/sessions").remove(0);
    form.retain(|(k, _)| k != "expires_at");
    let expected: Vec<(String, String)> = [
        ("line_items[0][price]", "price_mug"),
        ("line_items[0][quantity]", "2"),
        ("line_items[0][adjustable_quantity][enabled]", "true"),
        ("line_items[0][adjustable_quantity][maximum]", "10"),
        ("line_items[0][adjustable_quantity][minimum]", "1"),
        ("line_items[1][price]", "price_A"),
        ("line_items[1][quantity]", "1"),
        ("mode", "payment"),
        ("ui_mode", "hosted"),
        ("success_url", SUCCESS_URL),
        ("cancel_url", "https://shop.example/cart"),
        ("consent_collection[promotions]", "auto"),
        ("allow_promotion_codes", "true"),
        ("after_expiration[recovery][enabled]", "true"),
        ("after_expiration[recovery][allow_promotion_codes]", "true"),
        ("shipping_address_collection[allowed_countries][0]", "FR"),
        ("shipping_address_collection[allowed_countries][1]", "DE"),
        ("shipping_address_collection[allowed_countries][2]", "BE"),
        ("shipping_options[0][shipping_rate]", "shr_standard"),
        ("shipping_options[1][shipping_rate]", "shr_express"),
        ("phone_number_collection[enabled]", "true"),
        ("billing_address_collection", "auto"),
        ("tax_id_collection[enabled]", "true"),
        ("automatic_tax[enabled]", "true"),
        (
            "custom_text[submit][message]",
            "We ship within two working days.",
        ),
        (
            "custom_text[terms_of_service_acceptance][message]",
            "I accept the [terms of sale](https://shop.example/terms).",
        ),
        ("custom_fields[0][key]", "giftnote"),
        ("custom_fields[0][label][custom]", "Gift note"),
        ("custom_fields[0][label][type]", "custom"),
        ("custom_fields[0][optional]", "true"),
        ("custom_fields[0][text][maximum_length]", "120"),
        ("custom_fields[0][type]", "text"),
        ("consent_collection[terms_of_service]", "required"),
        ("invoice_creation[enabled]", "true"),
        ("submit_type", "pay"),
        (
            "saved_payment_method_options[payment_method_save]",
            "enabled",
        ),
        ("payment_intent_data[setup_future_usage]", "on_session"),
        ("optional_items[0][adjustable_quantity][enabled]", "true"),
        ("optional_items[0][adjustable_quantity][maximum]", "5"),
        ("optional_items[0][price]", "price_tea"),
        ("optional_items[0][quantity]", "1"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    assert_eq!(form, expected);
}

#[tokio::test]
async fn a_browser_cannot_set_what_the_policy_sets() {
    let h = Harness::new().await;
    mock_stripe(&h).await;
    let creator = h.creator(with_policy(h.config(), POLICY));
    let mut cases: Vec<(String, String)> = OPTION_KEYS
        .iter()
        .map(|key| {
            (
                format!(r#"{{"line_items":[{{"price":"price_A","quantity":1}}],"mode":"payment","{key}":{{}}}}"#),
                (*key).to_string(),
            )
        })
        .collect();
    cases.extend([
        (
            r#"{"line_items":[{"price":"price_A","quantity":1,"adjustable_quantity":{"enabled":true}}],"mode":"payment"}"#.into(),
            "line_items[0].adjustable_quantity".into(),
        ),
        (
            r#"{"line_items":[{"price":"price_A","quantity":1}],"mode":"payment","shipping_options":[{"shipping_rate":"shr_free"}]}"#.into(),
            "shipping_options".into(),
        ),
    ]);
    for (body, field) in &cases {
        let (status, answer) = post(&creator, body, &[]).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["param"], field.as_str(), "{body}: {answer}");
    }
    // Outside the range the policy lets customers choose from (within CHECKOUT_MAX_QUANTITY).
    let ranged = h.creator(with_policy(
        h.config(),
        r#"{"checkout": {"adjustable_quantity": {"price_mug": {"enabled": true, "minimum": 2, "maximum": 5}}}}"#,
    ));
    for quantity in [1, 6] {
        let body = format!(
            r#"{{"line_items":[{{"price":"price_mug","quantity":{quantity}}}],"mode":"payment"}}"#
        );
        let (status, answer) = post(&ranged, &body, &[]).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(
            answer["error"]["param"], "line_items[0].quantity",
            "{answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("between 2 and 5"),
            "{answer}"
        );
    }
    let (_, answer) = post(&creator, &cases[0].0, &[]).await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shop policy"),
        "{answer}"
    );
    assert!(h.stripe_requests().await.is_empty(), "Stripe was called");
}

#[tokio::test]
async fn a_custom_page_gets_a_client_secret_and_a_form_post_cannot_ask_for_one() {
    let h = Harness::new().await;
    mock_stripe(&h).await;
    let creator = h.creator(h.config());
    let (status, answer) = post(
        &creator,
        r#"{"line_items":[{"price":"price_A","quantity":1}],"mode":"payment","ui_mode":"custom"}"#,
        &[],
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert!(
        answer["client_secret"]
            .as_str()
            .unwrap()
            .contains("_secret_"),
        "{answer}"
    );
    assert!(answer.get("url").is_none(), "{answer}");
    let form = sent_forms(&h.stripe_requests().await, "/v1/checkout/sessions").remove(0);
    assert!(
        form.contains(&("ui_mode".into(), "custom".into())),
        "{form:?}"
    );
    assert!(
        form.contains(&("return_url".into(), RETURN_URL.into())),
        "{form:?}"
    );
    assert!(!form.iter().any(|(k, _)| k == "success_url"), "{form:?}");

    let response = checkout::handle(
        &creator,
        checkout_request(
            "application/x-www-form-urlencoded",
            "price=price_A&ui_mode=custom",
            &[],
        ),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(body_json(&response)["error"]["param"], "ui_mode");

    let mut no_return = h.config();
    no_return.return_url = None;
    let (status, answer) = post(
        &h.creator(no_return),
        r#"{"line_items":[{"price":"price_A","quantity":1}],"mode":"payment","ui_mode":"custom"}"#,
        &[],
    )
    .await;
    assert_eq!(
        (status, answer["error"]["param"].as_str()),
        (400, Some("ui_mode")),
        "{answer}"
    );
}

/// A fulfiller and an access seam that do nothing: these tests are about stock.
struct Quiet;

impl Fulfil for Quiet {
    async fn fulfil(&self, _: &Order) -> Result<Fulfilled, FulfilError> {
        Ok(Fulfilled::default())
    }
}

impl Entitle for Quiet {
    async fn grant(&self, _: &Grant) -> Result<(), EntitleError> {
        Ok(())
    }

    async fn revoke(&self, _: &Revoke) -> Result<(), EntitleError> {
        Ok(())
    }
}

async fn fulfillment(h: &Harness, stock: &TableName) -> FulfillmentApp<Quiet, Quiet> {
    let config = FulfillmentConfig {
        stripe: StripeConfig {
            secret_key: Secret::new("sk_test_fake"),
            api_base: h.stripe.uri(),
            timeout: Duration::from_secs(2),
            max_retries: 1,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        },
        orders_table: orders_table(&h.dynamodb).await,
        events_table: events_table(&h.dynamodb).await,
        sessions_table: h.table.clone(),
        lease_margin_secs: 5,
        default_lease_secs: 30,
        fulfil_on_processing: false,
        fulfil_foreign_sessions: false,
        shop: ShopConfig::default(),
        stock: StockConfig {
            table: Some(stock.clone()),
        },
    };
    FulfillmentApp::new(config, h.dynamodb.clone(), Quiet, Quiet)
}

fn paid_session(id: &str, price: &str, quantity: u64) -> Value {
    json!({
        "id": id, "object": "checkout.session", "mode": "payment", "status": "complete", "payment_status": "paid",
        "expires_at": unix_now() + 3600, "amount_subtotal": 1200, "amount_total": 1200, "currency": "eur",
        "customer_details": {"email": "buyer@example.com"}, "payment_intent": "pi_1", "metadata": {},
        "line_items": {"object": "list", "has_more": false, "data": [
            {"id": "li_1", "object": "item", "description": "Poster", "quantity": quantity, "amount_subtotal": 1200,
             "amount_total": 1200, "currency": "eur",
             "price": {"id": price, "object": "price", "currency": "eur", "unit_amount": 1200, "product": "prod_poster"}}
        ]}
    })
}

#[tokio::test]
async fn twenty_carts_for_the_last_five_posters_make_five_sessions_and_each_unit_moves_once() {
    let h = Harness::new().await;
    mock_stripe(&h).await;
    let stock_table_name = stock_table(&h.dynamodb).await;
    let stock = StockTable::new(stock_table_name.clone(), h.dynamodb.clone());
    let poster: PriceId = "price_poster".parse().unwrap();
    stock.set(None, &poster, 5).await.unwrap();
    let mut config = h.config();
    config.stock = StockConfig {
        table: Some(stock_table_name.clone()),
    };
    let creator = Arc::new(h.creator(config));

    let carts = (0..20).map(|_| {
        let creator = creator.clone();
        tokio::spawn(async move {
            post(
                &creator,
                r#"{"line_items":[{"price":"price_poster","quantity":1}],"mode":"payment"}"#,
                &[],
            )
            .await
        })
    });
    let mut taken = Vec::new();
    let mut refused = 0;
    for cart in carts {
        let (status, answer) = cart.await.unwrap();
        match status {
            201 => taken.push(answer["id"].as_str().unwrap().to_string()),
            409 => {
                assert_eq!(answer["error"]["code"], "out_of_stock", "{answer}");
                assert!(
                    answer["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("price_poster"),
                    "{answer}"
                );
                refused += 1;
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!((taken.len(), refused), (5, 15));
    assert_eq!(stock.level(None, &poster).await.unwrap(), Some(0));
    // Every refused cart's session was expired at Stripe at once: nobody has its URL.
    let requests = h.stripe_requests().await;
    let expired = requests
        .iter()
        .filter(|r| r.url.path().ends_with("/expire"))
        .count();
    assert_eq!(expired, 15);

    // The first taken cart expires: its expired event returns the unit, a duplicate does not.
    let app = fulfillment(&h, &stock_table_name).await;
    let expired_event = |id: &str| {
        stored_event(
            id,
            "checkout.session.expired",
            json!({"id": taken[0], "object": "checkout.session"}),
            None,
        )
    };
    let response = app
        .stream(stream_batch(&[expired_event("evt_expired_1")]), None)
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stock.level(None, &poster).await.unwrap(), Some(1));
    app.stream(
        stream_batch(&[
            expired_event("evt_expired_2"),
            expired_event("evt_expired_3"),
        ]),
        None,
    )
    .await;
    assert_eq!(
        stock.level(None, &poster).await.unwrap(),
        Some(1),
        "a duplicate expiry released again"
    );

    // The second is paid: fulfilment commits it (no level change), an expiry after cannot return it.
    Mock::given(method("GET"))
        .and(path(format!("/v1/checkout/sessions/{}", taken[1])))
        .respond_with(ResponseTemplate::new(200).set_body_json(paid_session(
            &taken[1],
            "price_poster",
            1,
        )))
        .mount(&h.stripe)
        .await;
    let completed = stored_event(
        "evt_completed_1",
        "checkout.session.completed",
        json!({"id": taken[1], "object": "checkout.session"}),
        None,
    );
    let response = app
        .stream(stream_batch(&[completed.clone(), completed]), None)
        .await;
    assert!(response.batch_item_failures.is_empty());
    let late_expiry = stored_event(
        "evt_expired_4",
        "checkout.session.expired",
        json!({"id": taken[1], "object": "checkout.session"}),
        None,
    );
    app.stream(stream_batch(&[late_expiry]), None).await;
    assert_eq!(stock.level(None, &poster).await.unwrap(), Some(1));
}

fn expire_request(session: &str, authorization: Option<&str>) -> lambda_http::Request {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("/checkout/sessions/{session}/expire"));
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    builder.body(Body::Empty).unwrap()
}

#[tokio::test]
async fn the_expire_route_is_for_the_merchant_server_and_releases_stock_once() {
    let h = Harness::new().await;
    mock_stripe(&h).await;
    let stock_table_name = stock_table(&h.dynamodb).await;
    let stock = StockTable::new(stock_table_name.clone(), h.dynamodb.clone());
    let poster: PriceId = "price_poster".parse().unwrap();
    stock.set(None, &poster, 3).await.unwrap();
    let mut config = h.config();
    config.stock = StockConfig {
        table: Some(stock_table_name),
    };
    let creator = h.creator(config);
    let (status, answer) = post(
        &creator,
        r#"{"line_items":[{"price":"price_poster","quantity":2}],"mode":"payment"}"#,
        &[],
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let session = answer["id"].as_str().unwrap().to_string();
    assert_eq!(stock.level(None, &poster).await.unwrap(), Some(1));

    let key = format!("Bearer {MERCHANT_KEY}");
    for (request, status, code) in [
        (expire_request(&session, None), 401, "unauthorized"),
        (
            expire_request(
                &session,
                Some("Bearer mk_wrong_key_of_the_same_kind_000000"),
            ),
            401,
            "unauthorized",
        ),
        (
            expire_request(&session, Some(MERCHANT_KEY)),
            401,
            "unauthorized",
        ),
        (expire_request("pi_123", Some(&key)), 400, "invalid_request"),
        (
            expire_request("cs_test_not_created_here", Some(&key)),
            404,
            "not_found",
        ),
    ] {
        let response = checkout::handle(&creator, request).await;
        assert_eq!(response.status(), status, "{}", body_json(&response));
        assert_eq!(body_json(&response)["error"]["code"], code);
    }
    let before = h.stripe_requests().await.len();
    assert_eq!(before, 1, "refused expire calls reached Stripe");

    for _ in 0..2 {
        let response = checkout::handle(&creator, expire_request(&session, Some(&key))).await;
        assert_eq!(response.status(), 200, "{}", body_json(&response));
        assert_eq!(
            body_json(&response),
            json!({"id": session, "status": "expired"})
        );
    }
    assert_eq!(
        stock.level(None, &poster).await.unwrap(),
        Some(3),
        "released once"
    );
}

#[tokio::test]
async fn a_paid_session_cannot_be_expired_and_an_expired_one_answers_the_same() {
    let h = Harness::new().await;
    let key = format!("Bearer {MERCHANT_KEY}");
    for (id, status) in [("cs_test_paid", "complete"), ("cs_test_gone", "expired")] {
        created_here(&h.dynamodb, &h.table, id, None).await;
        Mock::given(method("POST"))
            .and(path(format!("/v1/checkout/sessions/{id}/expire")))
            .respond_with(stripe_error(
                400,
                "invalid_request_error",
                "Only Checkout Sessions with a status in [open] can be expired.",
            ))
            .mount(&h.stripe)
            .await;
        let mut session = session_json(id, "hosted");
        session["status"] = status.into();
        Mock::given(method("GET"))
            .and(path(format!("/v1/checkout/sessions/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(session))
            .mount(&h.stripe)
            .await;
    }
    let creator = h.creator(h.config());
    let response = checkout::handle(&creator, expire_request("cs_test_paid", Some(&key))).await;
    assert_eq!(response.status(), 409);
    assert_eq!(body_json(&response)["error"]["code"], "session_complete");
    let response = checkout::handle(&creator, expire_request("cs_test_gone", Some(&key))).await;
    assert_eq!(response.status(), 200, "{}", body_json(&response));
    assert_eq!(body_json(&response)["status"], "expired");
}

#[tokio::test]
async fn an_existing_customer_lets_checkout_save_what_tax_needs() {
    let h = Harness::new().await;
    mock_stripe(&h).await;
    let creator = h.creator(with_policy(h.config(), POLICY));
    let key = format!("Bearer {MERCHANT_KEY}");
    let (status, answer) = post(
        &creator,
        r#"{"line_items":[{"price":"price_A","quantity":1}],"mode":"payment","customer":"cus_returning"}"#,
        &[("authorization", &key)],
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let form = sent_forms(&h.stripe_requests().await, "/v1/checkout/sessions").remove(0);
    // Automatic tax with shipping collected, and tax ids: Stripe refuses both for a
    // Customer without an address and a name unless Checkout may save them.
    for pair in [
        ("customer", "cus_returning"),
        ("customer_update[shipping]", "auto"),
        ("customer_update[name]", "auto"),
    ] {
        assert!(
            form.contains(&(pair.0.into(), pair.1.into())),
            "{pair:?} missing from {form:?}"
        );
    }
    // A guest has no Customer to update.
    let (status, _) = post(
        &creator,
        r#"{"line_items":[{"price":"price_A","quantity":1}],"mode":"payment"}"#,
        &[],
    )
    .await;
    assert_eq!(status, 201);
    let forms = sent_forms(&h.stripe_requests().await, "/v1/checkout/sessions");
    assert!(
        !forms[1]
            .iter()
            .any(|(k, _)| k.starts_with("customer_update")),
        "{:?}",
        forms[1]
    );
}

/// A cart refused for stock is expired at once; the caller retrying with the same
/// `Idempotency-Key` (Stripe answers the same, now dead, session) is refused again, and no
/// units are taken for a session nobody can pay, even once stock is back.
#[tokio::test]
async fn a_refused_cart_retried_with_its_key_stays_refused() {
    let h = Harness::new().await;
    mock_stripe(&h).await;
    let stock_table_name = stock_table(&h.dynamodb).await;
    let stock = StockTable::new(stock_table_name.clone(), h.dynamodb.clone());
    let poster: PriceId = "price_poster".parse().unwrap();
    stock.set(None, &poster, 0).await.unwrap();
    let mut config = h.config();
    config.stock = StockConfig {
        table: Some(stock_table_name),
    };
    let creator = h.creator(config);
    let cart = r#"{"line_items":[{"price":"price_poster","quantity":1}],"mode":"payment"}"#;
    let key = [("idempotency-key", "cart-42-attempt")];
    let (status, answer) = post(&creator, cart, &key).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("out_of_stock"))
    );

    stock.set(None, &poster, 5).await.unwrap();
    let (status, answer) = post(&creator, cart, &key).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("out_of_stock")),
        "{answer}"
    );
    assert_eq!(
        stock.level(None, &poster).await.unwrap(),
        Some(5),
        "nothing taken for a dead session"
    );
    // A new key is a new cart.
    let (status, answer) = post(&creator, cart, &[("idempotency-key", "cart-42-new")]).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(stock.level(None, &poster).await.unwrap(), Some(4));
}
