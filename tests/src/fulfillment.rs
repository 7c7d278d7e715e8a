//! The fulfillment harness: the real `FulfillmentApp` over moto (DynamoDB, SES v2) and a
//! fake Stripe (wiremock), as the fulfillment tests and the stream fuzz build it.

use std::sync::Arc;
use std::time::Duration;

use checkout_core::{
    access::{AccessConfig, AccessTable},
    clock::ManualClock,
    config::{Secret, TableName},
    fulfillment::{ConfirmationConfig, ConfirmationEmail, FulfillmentApp, FulfillmentConfig},
    mail::{EmailAddress, MailConfig, SesMailer, Templates},
    store::{DynamoDb, EventRecord, EventStore, OrderStore},
    stripe::StripeConfig,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{
    access_table, dynamodb, events_table, orders_table, ses, sessions_table, unique_recipient,
    unix_now, verified_sender,
};

pub type App = FulfillmentApp<ConfirmationEmail<SesMailer>, AccessTable>;

pub struct Harness {
    pub stripe: MockServer,
    pub dynamodb: DynamoDb,
    pub orders: TableName,
    pub sessions: TableName,
    pub app: Arc<App>,
    pub events: TableName,
    pub buyer: EmailAddress,
    /// The app's time: it stands still at the harness's creation until a test moves it.
    pub clock: ManualClock,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_sender(true, None).await
    }

    /// `sending_ses`: the client the confirmation is sent with, when not moto's.
    pub async fn with_sender(verified: bool, sending_ses: Option<aws_sdk_sesv2::Client>) -> Self {
        let dynamodb = dynamodb().await;
        let ses = ses().await;
        let from = if verified {
            verified_sender(&ses).await
        } else {
            "unverified@nowhere.example".parse().unwrap()
        };
        let stripe = MockServer::start().await;
        let orders = orders_table(&dynamodb).await;
        let events = events_table(&dynamodb).await;
        let sessions = sessions_table(&dynamodb).await;
        let config = FulfillmentConfig {
            shop: Default::default(),
            stock: Default::default(),
            stripe: StripeConfig {
                secret_key: Secret::new("sk_test_fake"),
                api_base: stripe.uri(),
                timeout: Duration::from_secs(2),
                max_retries: 2,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
            },
            orders_table: orders.clone(),
            events_table: events.clone(),
            sessions_table: sessions.clone(),
            lease_margin_secs: 5,
            default_lease_secs: 30,
            fulfil_on_processing: false,
            fulfil_foreign_sessions: false,
        };
        let confirmation = ConfirmationConfig {
            mail: Some(MailConfig {
                from_address: from,
                from_name: "Demo Shop".into(),
                configuration_set: None,
            }),
            templates: Templates::from_env(&[("UNUSED", "")]).unwrap(),
            merchant_name: "Demo Shop".into(),
            shop: Default::default(),
        };
        let mailer = confirmation
            .mail
            .clone()
            .map(|mail| SesMailer::new(mail, sending_ses.unwrap_or(ses)));
        let fulfiller = ConfirmationEmail::new(confirmation, mailer);
        let clock = ManualClock::now();
        let access = AccessTable::new(
            AccessConfig {
                access_table: access_table(&dynamodb).await,
            },
            dynamodb.clone(),
        );
        let app = Arc::new(
            FulfillmentApp::new(config, dynamodb.clone(), fulfiller, access)
                .with_clock(clock.clock()),
        );
        Self {
            stripe,
            dynamodb,
            orders,
            sessions,
            app,
            events,
            buyer: unique_recipient("buyer"),
            clock,
        }
    }

    #[must_use]
    pub fn session(&self, id: &str, payment_status: &str) -> Value {
        json!({
            "id": id, "object": "checkout.session", "mode": "payment", "status": "complete", "payment_status": payment_status,
            "expires_at": unix_now() + 3600, "amount_subtotal": 4000, "amount_total": 4000, "currency": "eur",
            "customer_details": {"email": self.buyer.as_str(), "name": "Jenny <b>Rosen</b>"},
            "payment_intent": "pi_123", "metadata": {},
            "line_items": {"object": "list", "has_more": false, "data": [
                {"id": "li_1", "object": "item", "description": "T-shirt", "quantity": 2, "amount_subtotal": 4000, "amount_total": 4000, "currency": "eur",
                 "price": {"id": "price_A", "object": "price", "currency": "eur", "unit_amount": 2000, "product": "prod_A"}}
            ]}
        })
    }

    pub async fn stripe_session(&self, id: &str, payment_status: &str) {
        Mock::given(method("GET"))
            .and(path(format!("/v1/checkout/sessions/{id}")))
            .and(query_param("expand[]", "line_items"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(self.session(id, payment_status)),
            )
            .mount(&self.stripe)
            .await;
    }

    #[must_use]
    pub fn event_store(&self) -> EventStore {
        EventStore::new(self.events.clone(), self.dynamodb.clone())
    }

    /// Stores `event` as the webhook would, so its outcome can be recorded.
    pub async fn store(&self, event: &EventRecord) {
        self.event_store().record_once(event).await.unwrap();
    }

    pub async fn stored(&self, event: &EventRecord) -> EventRecord {
        self.event_store()
            .get(&event.event_id)
            .await
            .unwrap()
            .unwrap()
    }

    #[must_use]
    pub fn orders(&self) -> OrderStore {
        OrderStore::new(self.orders.clone(), self.dynamodb.clone())
    }

    pub async fn stripe_calls(&self) -> usize {
        self.stripe
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }
}
