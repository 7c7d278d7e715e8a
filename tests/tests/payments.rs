//! Existing customers and the Payment Element (Stripe's guide, seed 003), through the real
//! handlers against moto (DynamoDB, SES v2) and a fake Stripe at the HTTP boundary: who may
//! name a customer, `POST /payments`, a caller's `Idempotency-Key` across real retries,
//! `GET /payments/complete`, the three `payment_intent.*` events with their emails, test and
//! live kept apart, and a connected account's foreign sessions.

#![recursion_limit = "256"]

use std::sync::Arc;
use std::time::Duration;

use checkout_core::{
    access::{AccessConfig, AccessTable},
    callers::{self, CallersConfig, CustomerClaims},
    checkout::{
        self, CheckoutConfig, ConnectConfig, Cors, FeePolicy, PaymentsPolicy, SessionCreator,
    },
    clock::ManualClock,
    config::{Secret, TableName},
    fulfillment::{ConfirmationConfig, ConfirmationEmail, FulfillmentApp, FulfillmentConfig},
    lambda::StreamAndHttp,
    mail::{EmailAddress, MailConfig, SesMailer, Templates},
    money::BasisPoints,
    recovery::{Recovery, RecoveryConfig},
    store::{
        AfterSaleState, DynamoDb, EventRecord, EventStore, FulfillmentState, OrderStore,
        SessionRecord, SessionStore, tables,
    },
    stripe::{Mode, StripeConfig, StripeMode},
    webhook::{self, WebhookConfig, WebhookReceiver, WebhookSecrets},
};
use integration_tests::*;
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MERCHANT_KEY: &str = "mk_test_merchant_key_of_at_least_32_bytes";
const TOKEN_SECRET: &str = "a-customer-token-secret-of-32-bytes-at-least";
const SHOP: &str = "https://shop.example";
const RETRY_URL: &str = "https://shop.example/pay-again?payment_intent={PAYMENT_INTENT_ID}";

type Fulfillment = FulfillmentApp<ConfirmationEmail<SesMailer>, AccessTable>;

struct Harness {
    stripe: MockServer,
    dynamodb: DynamoDb,
    clock: ManualClock,
    creator: Arc<SessionCreator>,
    fulfillment: Arc<Fulfillment>,
    recovery: Arc<Recovery<SesMailer>>,
    events: TableName,
    sessions: TableName,
    orders: OrderStore,
    buyer: EmailAddress,
}

impl Harness {
    async fn new() -> Self {
        Self::with(false).await
    }

    async fn with(fulfil_on_processing: bool) -> Self {
        let dynamodb = dynamodb().await;
        let ses = ses().await;
        let from = verified_sender(&ses).await;
        let stripe = MockServer::start().await;
        let clock = ManualClock::now();
        let stripe_config = StripeConfig {
            secret_key: Secret::new("sk_test_fake"),
            api_base: stripe.uri(),
            timeout: Duration::from_secs(2),
            max_retries: 0,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        };
        let sessions = sessions_table(&dynamodb).await;
        let events = events_table(&dynamodb).await;
        let orders = orders_table(&dynamodb).await;
        let creator = SessionCreator::new(
            CheckoutConfig {
                shop: Default::default(),
                stock: Default::default(),
                stripe: stripe_config.clone(),
                sessions_table: sessions.clone(),
                requests_table: requests_table(&dynamodb).await,
                callers: CallersConfig {
                    merchant_api_key: Some(Secret::new(MERCHANT_KEY)),
                    customer_token_secret: Some(Secret::new(TOKEN_SECRET)),
                },
                payments: PaymentsPolicy {
                    setup_future_usage: Some("off_session".into()),
                    allow_save: true,
                    allow_remove: false,
                },
                success_url: "https://shop.example/thanks?session_id={CHECKOUT_SESSION_ID}".into(),
                cancel_url: None,
                return_url: None,
                expires_after_secs: 3600,
                collect_promotions_consent: true,
                recovery: true,
                allow_promotion_codes: false,
                limits: checkout::RequestLimits {
                    max_quantity: 10,
                    allowed_prices: None,
                },
                cors: Cors::new(vec![SHOP.into()]),
                connect: ConnectConfig {
                    accounts: vec!["acct_1Merchant".parse().unwrap()],
                    fee: FeePolicy {
                        percent: BasisPoints::new(1000).unwrap(),
                        fixed_amount: 0,
                    },
                },
            },
            dynamodb.clone(),
        )
        .with_clock(clock.clock());
        let mail = MailConfig {
            from_address: from,
            from_name: "Demo Shop".into(),
            configuration_set: None,
        };
        let templates = Templates::from_env(&[("UNUSED", "")]).unwrap();
        let fulfillment = FulfillmentApp::new(
            FulfillmentConfig {
                shop: Default::default(),
                stock: Default::default(),
                stripe: stripe_config.clone(),
                orders_table: orders.clone(),
                events_table: events.clone(),
                sessions_table: sessions.clone(),
                lease_margin_secs: 5,
                default_lease_secs: 30,
                fulfil_on_processing,
                fulfil_foreign_sessions: false,
            },
            dynamodb.clone(),
            ConfirmationEmail::new(
                ConfirmationConfig {
                    mail: Some(mail.clone()),
                    templates: templates.clone(),
                    merchant_name: "Demo Shop".into(),
                    shop: Default::default(),
                },
                Some(SesMailer::new(mail.clone(), ses.clone())),
            ),
            AccessTable::new(
                AccessConfig {
                    access_table: access_table(&dynamodb).await,
                },
                dynamodb.clone(),
            ),
        )
        .with_clock(clock.clock());
        let recovery_table = unique_table("recovery");
        tables::ensure(&dynamodb, recovery_table.as_str(), &tables::RECOVERY)
            .await
            .unwrap();
        let recovery = Recovery::new(
            RecoveryConfig {
                stripe: stripe_config,
                recovery_table,
                sessions_table: sessions.clone(),
                foreign_sessions: false,
                events_table: events.clone(),
                mail: mail.clone(),
                postal_address: "Demo Shop, 1 rue de Rivoli, 75001 Paris".into(),
                cooldown_secs: 24 * 3600,
                coupon: None,
                unsubscribe_secret: Secret::new("an-unsubscribe-key-of-at-least-32-bytes"),
                public_base_url: "https://api.shop.example".into(),
                shop_url: Some(SHOP.into()),
                payment_retry_url: Some(RETRY_URL.into()),
                templates,
                shop: Default::default(),
            },
            dynamodb.clone(),
            SesMailer::new(mail, ses),
        )
        .with_clock(clock.clock());
        Self {
            stripe,
            orders: OrderStore::new(orders, dynamodb.clone()),
            dynamodb,
            clock,
            creator: Arc::new(creator),
            fulfillment: Arc::new(fulfillment),
            recovery: Arc::new(recovery),
            events,
            sessions,
            buyer: unique_recipient("returning"),
        }
    }

    fn token(&self, customer: &str, reference: Option<&str>, ttl: i64) -> String {
        callers::mint(
            TOKEN_SECRET.as_bytes(),
            &CustomerClaims {
                customer: customer.parse().unwrap(),
                client_reference_id: reference.map(str::to_string),
                exp: self.clock.clock().now() + ttl,
            },
        )
    }

    async fn call(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Response<Body> {
        let mut request = checkout_request("application/json", body, headers);
        *request.uri_mut() = path.parse().unwrap();
        checkout::handle(&self.creator, request).await
    }

    async fn stripe_requests(&self) -> Vec<wiremock::Request> {
        self.stripe.received_requests().await.unwrap_or_default()
    }

    async fn creates(&self, route: &str) -> Vec<wiremock::Request> {
        self.stripe_requests()
            .await
            .into_iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path() == route)
            .collect()
    }

    /// The shop's catalog at Stripe, a PaymentIntent and a CustomerSession created on demand.
    async fn mock_stripe(&self) {
        let price = |id: &str,
                     product: &str,
                     name: &str,
                     amount: i64,
                     currency: &str,
                     kind: &str| {
            json!({"id": id, "object": "price", "currency": currency, "unit_amount": amount, "type": kind, "active": true,
                   "product": {"id": product, "object": "product", "name": name}})
        };
        for (id, body) in [
            (
                "price_mug",
                price("price_mug", "prod_mug", "Mug", 1500, "eur", "one_time"),
            ),
            (
                "price_tea",
                price("price_tea", "prod_tea", "Tea box", 2500, "eur", "one_time"),
            ),
            (
                "price_plan",
                price(
                    "price_plan",
                    "prod_plan",
                    "Pro plan",
                    900,
                    "eur",
                    "recurring",
                ),
            ),
            (
                "price_usd",
                price("price_usd", "prod_usd", "Cap", 1000, "usd", "one_time"),
            ),
        ] {
            Mock::given(method("GET"))
                .and(path(format!("/v1/prices/{id}")))
                .respond_with(ResponseTemplate::new(200).set_body_json(body))
                .mount(&self.stripe)
                .await;
        }
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "pi_created", "object": "payment_intent", "amount": 5500, "currency": "eur",
                "status": "requires_payment_method", "client_secret": "pi_created_secret_abc", "metadata": {}
            })))
            .mount(&self.stripe)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/customer_sessions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "customer_session", "client_secret": "cuss_secret_xyz", "customer": "cus_token", "expires_at": unix_now() + 1800
            })))
            .mount(&self.stripe)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/v1/customers/cus_\w+$"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "cus_token", "object": "customer", "email": self.buyer.as_str(), "preferred_locales": ["fr"]
            })))
            .mount(&self.stripe)
            .await;
    }

    /// Stores `records` as the webhook does and delivers each to fulfillment and recovery.
    async fn deliver(&self, records: &[EventRecord]) {
        let store = EventStore::new(self.events.clone(), self.dynamodb.clone());
        for record in records {
            store.record_once(record).await.unwrap();
            let batch = || stream_batch(std::slice::from_ref(record));
            let failed = self
                .fulfillment
                .stream(batch(), None)
                .await
                .batch_item_failures
                .len()
                + self
                    .recovery
                    .stream(batch(), None)
                    .await
                    .batch_item_failures
                    .len();
            assert_eq!(failed, 0, "{} was not finished", record.kind);
        }
    }
}

fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or(Value::Null)
}

const CART: &str =
    r#"{"line_items":[{"price":"price_mug","quantity":2},{"price":"price_tea","quantity":1}]"#;

#[tokio::test]
async fn who_may_name_a_customer() {
    let h = Harness::new().await;
    h.mock_stripe().await;
    let good = h.token("cus_token", Some("user-42"), 600);
    let expired = h.token("cus_token", None, -1);
    let mut tampered = good.clone();
    tampered.replace_range(good.len() - 3.., "AAA");
    let foreign = callers::mint(
        b"a-secret-that-is-not-the-merchant-s-own-secret",
        &CustomerClaims {
            customer: "cus_victim".parse().unwrap(),
            client_reference_id: None,
            exp: h.clock.clock().now() + 60,
        },
    );
    let wrong_key = "Bearer mk_test_a_key_that_is_not_the_merchant_s";
    let server = format!("Bearer {MERCHANT_KEY}");
    let session = |customer: &str| {
        format!(
            r#"{{"line_items":[{{"price":"price_mug","quantity":1}}],"mode":"payment",{customer}}}"#
        )
    };
    let payment = |customer: &str| format!(r#"{CART},{customer}}}"#);
    // (route, body, Authorization, status, code)
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "/checkout/sessions",
            session(r#""customer":"cus_victim""#),
            None,
            400,
            "customer_requires_token",
        ),
        (
            "/payments",
            payment(r#""customer":"cus_victim""#),
            None,
            400,
            "customer_requires_token",
        ),
        (
            "/payments",
            payment(&format!(r#""customer_token":"{expired}""#)),
            None,
            400,
            "invalid_customer_token",
        ),
        (
            "/payments",
            payment(&format!(r#""customer_token":"{tampered}""#)),
            None,
            400,
            "invalid_customer_token",
        ),
        (
            "/checkout/sessions",
            session(&format!(r#""customer_token":"{foreign}""#)),
            None,
            400,
            "invalid_customer_token",
        ),
        (
            "/payments",
            payment(r#""customer_token":"not.a.jwt""#),
            None,
            400,
            "invalid_customer_token",
        ),
        (
            "/payments",
            payment(r#""customer":"cus_victim""#),
            Some(wrong_key),
            401,
            "unauthorized",
        ),
        (
            "/checkout/sessions",
            session(r#""customer":"cus_victim""#),
            Some("Basic Zm9vOmJhcg=="),
            401,
            "unauthorized",
        ),
        (
            "/payments",
            payment(&format!(r#""customer":"cus_1","customer_token":"{good}""#)),
            Some(&server),
            400,
            "invalid_request",
        ),
    ];
    for (route, body, authorization, status, code) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|a| ("authorization", *a))
            .collect();
        let response = h.call(route, &body, &headers).await;
        assert_eq!(
            response.status(),
            status,
            "{route} {body}: {}",
            body_json(&response)
        );
        assert_eq!(
            body_json(&response)["error"]["code"],
            code,
            "{route} {body}"
        );
    }
    assert!(
        h.stripe_requests().await.is_empty(),
        "Stripe is never called for a refused caller"
    );

    // A token: its customer reaches Stripe, and its reference with it.
    let response = h
        .call(
            "/payments",
            &payment(&format!(r#""customer_token":"{good}""#)),
            &[],
        )
        .await;
    assert_eq!(response.status(), 201, "{}", body_json(&response));
    let intent = form_pairs(&h.creates("/v1/payment_intents").await[0].body);
    assert!(intent.contains(&("customer".into(), "cus_token".into())));
    assert!(intent.contains(&("metadata[client_reference_id]".into(), "user-42".into())));
    // The merchant's server, with its key: a raw customer.
    let response = h
        .call(
            "/payments",
            &payment(r#""customer":"cus_server""#),
            &[("authorization", &server)],
        )
        .await;
    assert_eq!(response.status(), 201, "{}", body_json(&response));
    let sessions = h.creates("/v1/customer_sessions").await;
    assert_eq!(
        form_pairs(&sessions[1].body)[0],
        ("customer".into(), "cus_server".into())
    );
}

#[tokio::test]
async fn payments_send_the_exact_forms_with_amounts_from_stripe() {
    let h = Harness::new().await;
    h.mock_stripe().await;
    let token = h.token("cus_token", None, 600);
    let body = format!(r#"{CART},"customer_token":"{token}","metadata":{{"cart":"42"}}}}"#);
    let response = h
        .call("/payments", &body, &[("idempotency-key", "pay-1")])
        .await;
    assert_eq!(response.status(), 201, "{}", body_json(&response));
    assert_eq!(
        body_json(&response),
        json!({"payment_intent": "pi_created", "client_secret": "pi_created_secret_abc", "customer_session_client_secret": "cuss_secret_xyz"})
    );
    let intents = h.creates("/v1/payment_intents").await;
    assert_eq!(intents.len(), 1);
    assert_eq!(
        intents[0].headers["idempotency-key"],
        "payments:caller:pay-1"
    );
    let expected: Vec<(String, String)> = [
        ("amount", "5500"),
        ("currency", "eur"),
        ("automatic_payment_methods[enabled]", "true"),
        ("description", "Mug × 2, Tea box × 1"),
        ("customer", "cus_token"),
        ("metadata[checkout_lambda_fulfil]", "true"),
        (
            "metadata[checkout_lambda_lines]",
            "price_mug:prod_mug:2:1500,price_tea:prod_tea:1:2500",
        ),
        ("metadata[cart]", "42"),
        ("setup_future_usage", "off_session"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    assert_eq!(form_pairs(&intents[0].body), expected);
    let sessions = h.creates("/v1/customer_sessions").await;
    let expected: Vec<(String, String)> = [
        ("customer", "cus_token"),
        ("components[payment_element][enabled]", "true"),
        (
            "components[payment_element][features][payment_method_redisplay]",
            "enabled",
        ),
        (
            "components[payment_element][features][payment_method_save]",
            "enabled",
        ),
        (
            "components[payment_element][features][payment_method_remove]",
            "disabled",
        ),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    assert_eq!(form_pairs(&sessions[0].body), expected);
    assert_eq!(
        sessions[0].headers["idempotency-key"],
        "payments:caller:pay-1:customer-session"
    );

    // A guest (no customer) gets no CustomerSession; a connected account its fee.
    let response = h
        .call(
            "/payments",
            r#"{"line_items":[{"price":"price_mug","quantity":1}],"account":"acct_1Merchant"}"#,
            &[],
        )
        .await;
    assert_eq!(response.status(), 201, "{}", body_json(&response));
    assert!(
        body_json(&response)
            .get("customer_session_client_secret")
            .is_none()
    );
    let connect = h.creates("/v1/payment_intents").await.pop().unwrap();
    assert_eq!(connect.headers["stripe-account"], "acct_1Merchant");
    assert!(form_pairs(&connect.body).contains(&("application_fee_amount".into(), "150".into())));
    assert_eq!(h.creates("/v1/customer_sessions").await.len(), 1);

    // What a client may not do: set the amount, pay a plan, mix currencies, use our keys.
    let cases = [
        (
            r#"{"line_items":[{"price":"price_mug","quantity":1}],"amount":1}"#,
            "amount",
        ),
        (
            r#"{"line_items":[{"price":"price_mug","quantity":1,"unit_amount":1}]}"#,
            "line_items[0].unit_amount",
        ),
        (
            r#"{"line_items":[{"price":"price_plan","quantity":1}]}"#,
            "line_items[0].price",
        ),
        (
            r#"{"line_items":[{"price":"price_mug","quantity":1},{"price":"price_usd","quantity":1}]}"#,
            "line_items[1].price",
        ),
        (
            r#"{"line_items":[{"price":"price_mug","quantity":11}]}"#,
            "line_items[0].quantity",
        ),
        (r#"{"line_items":[]}"#, "line_items"),
        (
            r#"{"line_items":[{"price":"price_mug","quantity":1}],"metadata":{"checkout_lambda_fulfil":"false"}}"#,
            "metadata.checkout_lambda_fulfil",
        ),
        (
            r#"{"line_items":[{"price":"price_mug","quantity":1}],"account":"acct_1Stranger"}"#,
            "account",
        ),
    ];
    let before = h.creates("/v1/payment_intents").await.len();
    for (body, param) in cases {
        let response = h.call("/payments", body, &[]).await;
        assert_eq!(response.status(), 400, "{body}: {}", body_json(&response));
        assert_eq!(body_json(&response)["error"]["param"], param, "{body}");
    }
    assert_eq!(
        h.creates("/v1/payment_intents").await.len(),
        before,
        "nothing created"
    );
    let form = checkout_request("application/x-www-form-urlencoded", "price=price_mug", &[]);
    let mut form = form;
    *form.uri_mut() = "/payments".parse().unwrap();
    assert_eq!(checkout::handle(&h.creator, form).await.status(), 415);
}

#[tokio::test]
async fn a_stripe_unknown_customer_is_a_generic_error() {
    let h = Harness::new().await;
    h.mock_stripe().await;
    h.stripe.reset().await;
    Mock::given(method("GET"))
        .and(path("/v1/prices/price_mug"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "price_mug", "object": "price", "currency": "eur", "unit_amount": 1500, "type": "one_time"})))
        .mount(&h.stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "customer", "message": "No such customer: 'cus_gone'"}})))
        .mount(&h.stripe)
        .await;
    let token = h.token("cus_gone", None, 600);
    let response = h
        .call("/payments", &format!(r#"{{"line_items":[{{"price":"price_mug","quantity":1}}],"customer_token":"{token}"}}"#), &[])
        .await;
    assert_eq!(response.status(), 400);
    let answer = body_json(&response);
    assert_eq!(answer["error"]["code"], "customer_unusable");
    assert!(!answer.to_string().contains("No such customer"), "{answer}");
}

#[tokio::test]
async fn a_caller_key_holds_across_a_real_retry() {
    let h = Harness::new().await;
    h.mock_stripe().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cs_test_once", "object": "checkout.session", "mode": "payment", "status": "open",
            "payment_status": "unpaid", "expires_at": unix_now() + 3600, "url": "https://checkout.stripe.com/c/pay/cs_test_once", "metadata": {}
        })))
        .mount(&h.stripe)
        .await;
    let session = r#"{"line_items":[{"price":"price_mug","quantity":1}],"mode":"payment"}"#;
    let first = h
        .call(
            "/checkout/sessions",
            session,
            &[("idempotency-key", "retry-1")],
        )
        .await;
    assert_eq!(first.status(), 201);
    h.clock.advance(Duration::from_secs(60));
    let again = h
        .call(
            "/checkout/sessions",
            session,
            &[("idempotency-key", "retry-1")],
        )
        .await;
    assert_eq!(again.status(), 201);
    assert_eq!(
        body_json(&again),
        body_json(&first),
        "the same session, the same URL"
    );
    assert_eq!(
        h.creates("/v1/checkout/sessions").await.len(),
        1,
        "one Stripe create"
    );
    let other = r#"{"line_items":[{"price":"price_mug","quantity":2}],"mode":"payment"}"#;
    let conflict = h
        .call(
            "/checkout/sessions",
            other,
            &[("idempotency-key", "retry-1")],
        )
        .await;
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        body_json(&conflict)["error"]["code"],
        "idempotency_conflict"
    );

    let pay = r#"{"line_items":[{"price":"price_mug","quantity":1}]}"#;
    let first = h
        .call("/payments", pay, &[("idempotency-key", "retry-2")])
        .await;
    h.clock.advance(Duration::from_secs(60));
    let again = h
        .call("/payments", pay, &[("idempotency-key", "retry-2")])
        .await;
    assert_eq!(
        (first.status().as_u16(), again.status().as_u16()),
        (201, 201)
    );
    assert_eq!(body_json(&again), body_json(&first));
    assert_eq!(
        h.creates("/v1/payment_intents").await.len(),
        1,
        "one Stripe create"
    );
    let conflict = h
        .call(
            "/payments",
            r#"{"line_items":[{"price":"price_tea","quantity":1}]}"#,
            &[("idempotency-key", "retry-2")],
        )
        .await;
    assert_eq!(conflict.status(), 409);
    // A key is the caller's per route and account: the same key elsewhere is another request.
    let elsewhere = h
        .call("/payments", pay, &[("idempotency-key", "retry-1")])
        .await;
    assert_eq!(elsewhere.status(), 201);
}

/// A marked PaymentIntent as Stripe sends it in events.
fn intent(id: &str, status: &str, charge: &str, buyer: &str) -> Value {
    json!({
        "id": id, "object": "payment_intent", "amount": 2500, "amount_received": if status == "succeeded" { 2500 } else { 0 },
        "currency": "eur", "status": status, "customer": "cus_token", "receipt_email": buyer,
        "description": "Tea box × 1", "latest_charge": charge,
        "metadata": {"checkout_lambda_fulfil": "true", "checkout_lambda_lines": "price_tea:prod_tea:1:2500"}
    })
}

fn pi_event(id: &str, kind: &str, object: Value) -> EventRecord {
    stored_event(id, kind, object, None)
}

#[tokio::test]
async fn a_delayed_payment_that_fails_sends_one_pending_and_one_retry_email() {
    let h = Harness::new().await;
    h.mock_stripe().await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "has_more": false, "data": []})),
        )
        .mount(&h.stripe)
        .await;
    let buyer = h.buyer.as_str();
    let processing = pi_event(
        "evt_late_proc",
        "payment_intent.processing",
        intent("pi_late", "processing", "ch_late_1", buyer),
    );
    let failed = pi_event(
        "evt_late_fail",
        "payment_intent.payment_failed",
        intent("pi_late", "requires_payment_method", "ch_late_1", buyer),
    );
    for _ in 0..3 {
        h.deliver(&[processing.clone(), failed.clone()]).await;
    }
    let sent = outbox(&h.buyer).await;
    let subjects: Vec<String> = sent.iter().map(|m| m.parsed().subject).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("votre paiement est en cours")),
        "{subjects:?}"
    );
    let retry = sent
        .iter()
        .map(|m| m.parsed())
        .find(|m| m.subject.contains("n'a pas abouti"))
        .expect("the retry email");
    assert!(
        retry
            .text
            .contains("https://shop.example/pay-again?payment_intent=pi_late"),
        "{}",
        retry.text
    );
    assert_eq!(
        h.orders.get("pi_late").await.unwrap().unwrap().state,
        FulfillmentState::PaymentFailed
    );

    // A card declined on the spot (never processing) gets no email: the customer is on the page.
    let declined = pi_event(
        "evt_declined",
        "payment_intent.payment_failed",
        intent("pi_declined", "requires_payment_method", "ch_d", buyer),
    );
    h.deliver(&[declined]).await;
    assert_eq!(outbox(&h.buyer).await.len(), 2);
}

#[tokio::test]
async fn a_delayed_payment_that_succeeds_is_pending_then_fulfilled_once() {
    let h = Harness::new().await;
    h.mock_stripe().await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "has_more": false, "data": []})),
        )
        .mount(&h.stripe)
        .await;
    let buyer = h.buyer.as_str();
    let processing = pi_event(
        "evt_ok_proc",
        "payment_intent.processing",
        intent("pi_ok", "processing", "ch_ok", buyer),
    );
    let succeeded = pi_event(
        "evt_ok_done",
        "payment_intent.succeeded",
        intent("pi_ok", "succeeded", "ch_ok", buyer),
    );
    for _ in 0..3 {
        h.deliver(&[processing.clone(), succeeded.clone()]).await;
    }
    let subjects: Vec<String> = outbox(&h.buyer)
        .await
        .iter()
        .map(|m| m.parsed().subject)
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("votre paiement est en cours"))
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("your order is confirmed"))
    );
    let order = h.orders.get("pi_ok").await.unwrap().unwrap();
    assert!(matches!(order.state, FulfillmentState::Fulfilled { .. }));
    assert_eq!(order.attempts, 1, "fulfilled once");
    let details = order.details.unwrap();
    assert_eq!(details.line_items[0].description, "Tea box");
    assert_eq!(details.line_items[0].product.as_deref(), Some("prod_tea"));
    assert_eq!(details.amount_total, 2500);
    assert!(
        details.metadata.is_empty(),
        "the bundle's own keys are not the merchant's metadata"
    );
}

#[tokio::test]
async fn digital_goods_go_out_on_processing_and_come_back_if_the_payment_fails() {
    let h = Harness::with(true).await;
    h.mock_stripe().await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "has_more": false, "data": []})),
        )
        .mount(&h.stripe)
        .await;
    let buyer = h.buyer.as_str();
    h.deliver(&[pi_event(
        "evt_dig_proc",
        "payment_intent.processing",
        intent("pi_dig", "processing", "ch_dig", buyer),
    )])
    .await;
    let order = h.orders.get("pi_dig").await.unwrap().unwrap();
    assert!(
        matches!(order.state, FulfillmentState::Fulfilled { .. }),
        "{:?}",
        order.state
    );
    assert_eq!(
        order.access,
        Some(checkout_core::store::AccessState::Granted)
    );
    let failed = pi_event(
        "evt_dig_fail",
        "payment_intent.payment_failed",
        intent("pi_dig", "requires_payment_method", "ch_dig", buyer),
    );
    h.deliver(&[failed.clone(), failed]).await;
    let order = h.orders.get("pi_dig").await.unwrap().unwrap();
    assert_eq!(order.after.after_sale, Some(AfterSaleState::PaymentFailed));
    assert_eq!(
        order.access,
        Some(checkout_core::store::AccessState::Revoked)
    );
    assert_eq!(order.status(), "payment_failed");
}

fn complete(id: &str) -> lambda_http::Request {
    http::Request::builder()
        .uri(format!("/payments/complete?payment_intent={id}"))
        .body(Body::Empty)
        .unwrap()
}

#[tokio::test]
async fn the_return_page_fulfils_once_and_never_asks_stripe_twice_about_an_unknown_id() {
    let h = Harness::new().await;
    let buyer = h.buyer.as_str();
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_paid"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent(
            "pi_paid",
            "succeeded",
            "ch_p",
            buyer,
        )))
        .mount(&h.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_failed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent(
            "pi_failed",
            "requires_payment_method",
            "ch_f",
            buyer,
        )))
        .mount(&h.stripe)
        .await;
    let mut invoice_pi = intent("pi_invoice", "succeeded", "ch_i", buyer);
    invoice_pi["metadata"] = json!({});
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_invoice"))
        .respond_with(ResponseTemplate::new(200).set_body_json(invoice_pi))
        .mount(&h.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_nowhere"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such payment_intent"}})))
        .mount(&h.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "has_more": false, "data": []})),
        )
        .mount(&h.stripe)
        .await;

    for _ in 0..3 {
        let page = h.fulfillment.http(complete("pi_paid"), None).await;
        assert_eq!(page.status(), 200);
        let page = body_json(&page);
        assert_eq!(
            (page["status"].as_str(), page["order_status"].as_str()),
            (Some("succeeded"), Some("fulfilled"))
        );
    }
    assert_eq!(outbox(&h.buyer).await.len(), 1, "one confirmation");
    let failed = body_json(&h.fulfillment.http(complete("pi_failed"), None).await);
    assert_eq!(
        (failed["status"].as_str(), failed["retry"].as_bool()),
        (Some("requires_payment_method"), Some(true))
    );

    let asked = |id: &'static str| {
        let stripe = &h.stripe;
        async move {
            stripe
                .received_requests()
                .await
                .unwrap()
                .iter()
                .filter(|r| r.url.path() == format!("/v1/payment_intents/{id}"))
                .count()
        }
    };
    for id in ["pi_nowhere", "pi_invoice"] {
        for _ in 0..5 {
            let page = h.fulfillment.http(complete(id), None).await;
            assert_eq!(page.status(), 404, "{id}");
        }
        assert_eq!(
            asked(id).await,
            1,
            "{id}: Stripe asked once, then the answer remembered"
        );
    }
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(
        h.fulfillment
            .http(complete("pi_nowhere"), None)
            .await
            .status(),
        404
    );
    assert_eq!(asked("pi_nowhere").await, 2, "forgotten after a minute");
    for (query, status) in [
        ("", 400),
        ("?payment_intent=cs_1", 400),
        ("?payment_intent=pi_x&account=cus_1", 400),
    ] {
        let request = http::Request::builder()
            .uri(format!("/payments/complete{query}"))
            .body(Body::Empty)
            .unwrap();
        assert_eq!(
            h.fulfillment.http(request, None).await.status(),
            status,
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_connected_accounts_foreign_sessions_are_left_alone() {
    let h = Harness::new().await;
    let account = "acct_1Merchant";
    let session = |id: &str| {
        json!({
            "id": id, "object": "checkout.session", "mode": "payment", "status": "complete", "payment_status": "paid",
            "expires_at": unix_now() + 3600, "amount_total": 1500, "currency": "eur", "payment_intent": null, "metadata": {},
            "customer_details": {"email": h.buyer.as_str()},
            "line_items": {"object": "list", "has_more": false, "data": []}
        })
    };
    for id in ["cs_test_ours", "cs_test_theirs"] {
        Mock::given(method("GET"))
            .and(path(format!("/v1/checkout/sessions/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(session(id)))
            .mount(&h.stripe)
            .await;
    }
    SessionStore::new(h.sessions.clone(), h.dynamodb.clone())
        .record(&SessionRecord {
            session_id: "cs_test_ours".parse().unwrap(),
            account: Some(account.parse().unwrap()),
            customer: None,
            customer_email: None,
            mode: Mode::Payment,
            items: vec![],
            created_at: unix_now(),
            expires_at: unix_now() + 3600,
        })
        .await
        .unwrap();
    let completed = |event: &str, id: &str| {
        stored_event(
            event,
            "checkout.session.completed",
            json!({"id": id, "object": "checkout.session"}),
            Some(account),
        )
    };
    h.deliver(&[
        completed("evt_ours", "cs_test_ours"),
        completed("evt_theirs", "cs_test_theirs"),
    ])
    .await;
    assert!(
        h.orders.get("cs_test_ours").await.unwrap().is_some(),
        "ours is fulfilled"
    );
    assert_eq!(
        h.orders.get("cs_test_theirs").await.unwrap(),
        None,
        "another integration's is not"
    );
    let outcome = EventStore::new(h.events.clone(), h.dynamodb.clone())
        .get(&"evt_theirs".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_value(outcome.outcome_fulfillment).unwrap()["reason"],
        "foreign_session"
    );
}

#[tokio::test]
async fn a_live_configuration_never_stores_a_test_event() {
    let dynamodb = dynamodb().await;
    let table = events_table(&dynamodb).await;
    let receiver = WebhookReceiver::new(
        WebhookConfig {
            secrets: WebhookSecrets::parse(WEBHOOK_SECRET).unwrap(),
            tolerance_secs: webhook::DEFAULT_TOLERANCE_SECS,
            events_table: table.clone(),
            retention_days: 30,
            mode: StripeMode::Live,
        },
        dynamodb.clone(),
    );
    let test_event = event_json(
        "evt_test_on_live",
        "checkout.session.completed",
        json!({"id": "cs_test_1", "object": "checkout.session"}),
    );
    let response = webhook::handle(&receiver, signed_webhook(&test_event)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_json(&response)["ignored"], "livemode");
    assert_eq!(item_count(&dynamodb, &table).await, 0, "not stored");
    let live_event = test_event
        .replace(r#""livemode":false"#, r#""livemode":true"#)
        .replace("evt_test_on_live", "evt_live_1");
    assert!(live_event.contains(r#""livemode":true"#), "{live_event}");
    let response = webhook::handle(&receiver, signed_webhook(&live_event)).await;
    assert_eq!(
        body_json(&response),
        json!({"event_id": "evt_live_1", "duplicate": false})
    );
    assert_eq!(item_count(&dynamodb, &table).await, 1);
}
