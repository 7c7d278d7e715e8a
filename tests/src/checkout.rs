//! The create-session harness: the real `SessionCreator` over moto's DynamoDB and a fake
//! Stripe (wiremock), with a configuration every create-session test starts from.

use std::time::Duration;

use checkout_core::{
    callers::CallersConfig,
    checkout::{self, CheckoutConfig, Cors, FeePolicy, SessionCreator},
    config::{Secret, TableName},
    money::BasisPoints,
    store::DynamoDb,
    stripe::StripeConfig,
};
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{dynamodb, requests_table, sessions_table, unix_now};

pub const SUCCESS_URL: &str = "https://shop.example/thanks?session_id={CHECKOUT_SESSION_ID}";
pub const RETURN_URL: &str = "https://shop.example/return?session_id={CHECKOUT_SESSION_ID}";
pub const SHOP: &str = "https://shop.example";
pub const MERCHANT_KEY: &str = "mk_test_merchant_key_of_at_least_32_bytes";
pub const TOKEN_SECRET: &str = "a-customer-token-secret-of-32-bytes-at-least";

pub struct Harness {
    pub stripe: MockServer,
    pub dynamodb: DynamoDb,
    pub table: TableName,
    pub requests: TableName,
}

impl Harness {
    pub async fn new() -> Self {
        let dynamodb = dynamodb().await;
        let table = sessions_table(&dynamodb).await;
        let requests = requests_table(&dynamodb).await;
        Self {
            stripe: MockServer::start().await,
            dynamodb,
            table,
            requests,
        }
    }

    #[must_use]
    pub fn config(&self) -> CheckoutConfig {
        CheckoutConfig {
            shop: Default::default(),
            stock: Default::default(),
            stripe: StripeConfig {
                secret_key: Secret::new("sk_test_fake"),
                api_base: self.stripe.uri(),
                timeout: Duration::from_secs(2),
                max_retries: 2,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
            },
            sessions_table: self.table.clone(),
            requests_table: self.requests.clone(),
            callers: CallersConfig {
                merchant_api_key: Some(Secret::new(MERCHANT_KEY)),
                customer_token_secret: Some(Secret::new(TOKEN_SECRET)),
            },
            payments: checkout::PaymentsPolicy::default(),
            success_url: SUCCESS_URL.into(),
            cancel_url: Some("https://shop.example/cart".into()),
            return_url: Some(RETURN_URL.into()),
            expires_after_secs: 3600,
            collect_promotions_consent: true,
            recovery: true,
            allow_promotion_codes: true,
            limits: checkout::RequestLimits {
                max_quantity: 10,
                allowed_prices: None,
            },
            cors: Cors::new(vec![SHOP.into()]),
            connect: checkout::ConnectConfig {
                accounts: vec!["acct_1Merchant".parse().unwrap()],
                fee: FeePolicy {
                    percent: BasisPoints::new(250).unwrap(),
                    fixed_amount: 30,
                },
            },
        }
    }

    #[must_use]
    pub fn creator(&self, config: CheckoutConfig) -> SessionCreator {
        SessionCreator::new(config, self.dynamodb.clone())
    }

    pub async fn stripe_requests(&self) -> Vec<wiremock::Request> {
        self.stripe.received_requests().await.unwrap_or_default()
    }

    pub async fn mock_create(&self, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/v1/checkout/sessions"))
            .respond_with(response)
            .mount(&self.stripe)
            .await;
    }
}

#[must_use]
pub fn session_json(id: &str, ui_mode: &str) -> Value {
    let mut session = json!({
        "id": id, "object": "checkout.session", "mode": "payment", "ui_mode": ui_mode, "status": "open",
        "payment_status": "unpaid", "expires_at": unix_now() + 3600, "created": unix_now(), "metadata": {}
    });
    if ui_mode == "hosted" {
        session["url"] = json!(format!("https://checkout.stripe.com/c/pay/{id}"));
    } else {
        session["client_secret"] = json!(format!("{id}_secret_abc"));
    }
    session
}

#[must_use]
pub fn created(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(session_json(id, "hosted"))
}

#[must_use]
pub fn stripe_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": {"type": kind, "message": message}}))
}

#[must_use]
pub fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or(Value::Null)
}
