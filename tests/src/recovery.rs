//! The recovery harness: the real `Recovery` over moto (DynamoDB, SES v2) and a fake Stripe
//! (wiremock), as the recovery tests and the stream fuzz build it.

use std::sync::Arc;
use std::time::Duration;

use checkout_core::{
    config::{Secret, TableName},
    mail::{EmailAddress, MailConfig, SesMailer, Templates},
    recovery::{Decision, Recovery, RecoveryConfig},
    store::RecoveryStore,
    stripe::{CheckoutSession, StripeConfig},
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{
    SentEmail, dynamodb, events_table, outbox, ses, sessions_table, unique_recipient, unique_table,
    unix_now, verified_sender,
};

/// The unsubscribe secret the harness's recovery signs links with.
pub const UNSUBSCRIBE_KEY: &str = "test-unsubscribe-secret-of-at-least-32-chars";

pub struct Harness {
    pub stripe: MockServer,
    pub ses: aws_sdk_sesv2::Client,
    pub from: EmailAddress,
    pub recovery: Arc<Recovery<SesMailer>>,
    pub store: RecoveryStore,
    pub buyer: EmailAddress,
    pub dynamodb: checkout_core::store::DynamoDb,
    /// The recovery table (claims, addresses, consent) `store` and `recovery` use.
    pub table: TableName,
    pub sessions: TableName,
}

impl Harness {
    pub async fn new() -> Self {
        Self::build(true, Some("COUPON_10")).await
    }

    pub async fn build(verified: bool, coupon: Option<&str>) -> Self {
        Self::build_with(verified, coupon, None).await
    }

    /// `sending_ses`: the client the mailer sends with, when not moto's.
    pub async fn build_with(
        verified: bool,
        coupon: Option<&str>,
        sending_ses: Option<aws_sdk_sesv2::Client>,
    ) -> Self {
        let dynamodb = dynamodb().await;
        let ses = ses().await;
        let from: EmailAddress = if verified {
            verified_sender(&ses).await
        } else {
            format!("{}@later.example", unique_table("late"))
                .parse()
                .unwrap()
        };
        let stripe = MockServer::start().await;
        let table: TableName = unique_table("recovery");
        let sessions = sessions_table(&dynamodb).await;
        checkout_core::store::tables::ensure(
            &dynamodb,
            table.as_str(),
            &checkout_core::store::tables::RECOVERY,
        )
        .await
        .unwrap();
        let config = RecoveryConfig {
            stripe: StripeConfig {
                secret_key: Secret::new("sk_test_fake"),
                api_base: stripe.uri(),
                timeout: Duration::from_secs(2),
                max_retries: 1,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
            },
            recovery_table: table.clone(),
            sessions_table: sessions.clone(),
            foreign_sessions: false,
            payment_retry_url: None,
            events_table: events_table(&dynamodb).await,
            mail: MailConfig {
                from_address: from.clone(),
                from_name: "Demo Shop".into(),
                configuration_set: None,
            },
            postal_address: "Demo Shop, 1 rue de Rivoli, 75001 Paris".into(),
            cooldown_secs: 24 * 3600,
            coupon: coupon.map(str::to_string),
            unsubscribe_secret: Secret::new(UNSUBSCRIBE_KEY),
            public_base_url: "https://api.shop.example".into(),
            shop_url: Some("https://shop.example".into()),
            templates: Templates::from_env(&[("UNUSED", "")]).unwrap(),
            shop: Default::default(),
        };
        let mailer = SesMailer::new(
            config.mail.clone(),
            sending_ses.unwrap_or_else(|| ses.clone()),
        );
        let recovery = Arc::new(Recovery::new(config, dynamodb.clone(), mailer));
        let harness = Self {
            stripe,
            ses,
            from,
            recovery,
            store: RecoveryStore::new(table.clone(), dynamodb.clone()),
            buyer: unique_recipient("shopper"),
            dynamodb,
            table,
            sessions,
        };
        harness.mock_stripe().await;
        harness
    }

    pub async fn mock_stripe(&self) {
        let item = |d: &str, amount: i64| json!({"id": format!("li_{d}"), "object": "item", "description": d, "quantity": 1, "amount_subtotal": amount, "amount_total": amount, "currency": "eur"});
        Mock::given(method("GET"))
            .and(wiremock::matchers::path_regex(r"^/v1/checkout/sessions/cs_[A-Za-z0-9_]+/line_items$"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "list", "has_more": false, "data": [item("Blue mug", 1500), item("Tea <b>box</b>", 2500)]})))
            .mount(&self.stripe)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/promotion_codes"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"id": "promo_1", "object": "promotion_code", "code": "COMEBACK10"}),
            ))
            .mount(&self.stripe)
            .await;
    }

    /// An expired session for this test's shopper, consenting, with a live recovery URL.
    #[must_use]
    pub fn expired(&self, id: &str) -> Value {
        let now = unix_now();
        json!({
            "id": id, "object": "checkout.session", "mode": "payment", "status": "expired", "payment_status": "unpaid",
            "created": now - 7200, "expires_at": now - 60, "amount_total": 4000, "currency": "eur", "locale": "auto",
            "customer_details": {"email": self.buyer.as_str(), "name": "Jenny"},
            "consent_collection": {"promotions": "auto"}, "consent": {"promotions": "opt_in"},
            "after_expiration": {"recovery": {"enabled": true, "url": format!("https://buy.stripe.com/r/live_{id}"), "expires_at": now + 30 * 86_400, "allow_promotion_codes": true}},
            "metadata": {}
        })
    }

    pub async fn expire(&self, session: &Value) -> Decision {
        let session: CheckoutSession = serde_json::from_value(session.clone()).unwrap();
        self.recovery
            .session_expired(&session, None, unix_now())
            .await
            .expect("decision")
    }

    pub async fn sent(&self) -> Vec<SentEmail> {
        outbox(&self.buyer).await
    }
}
