//! Nothing lost: the reconciler (backfill, re-drive), the fulfillment stream's time budget and
//! lease wait, and `ops explain`, through the real handlers against moto (DynamoDB, SES v2)
//! and a fake Stripe at the HTTP boundary. Time is a manual clock, moved by the tests.

#![recursion_limit = "256"]

use std::sync::Arc;
use std::time::Duration;

use checkout_core::{
    access::{AccessConfig, AccessTable},
    clock::ManualClock,
    config::{Secret, TableName},
    fulfillment::{ConfirmationConfig, ConfirmationEmail, FulfillmentApp, FulfillmentConfig},
    lambda::StreamAndHttp,
    mail::{EmailAddress, MailConfig, SesMailer, Templates},
    reconcile::{
        ExplainConfig, Explainer, Handlers, PassOptions, PassReport, ReconcileConfig, Reconciler,
    },
    recovery::{Recovery, RecoveryConfig},
    store::{
        Consumer, DynamoDb, EventOutcome, EventRecord, EventStore, FulfillmentState, OrderStore,
        tables,
    },
    stripe::StripeConfig,
    subscriptions::{Subscriptions, SubscriptionsConfig},
};
use integration_tests::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const GRACE: i64 = 600;

struct Harness {
    stripe: MockServer,
    dynamodb: DynamoDb,
    events: TableName,
    orders: TableName,
    fulfillment: Arc<FulfillmentApp<ConfirmationEmail<SesMailer>, AccessTable>>,
    recovery: Arc<Recovery<SesMailer>>,
    subscriptions: Arc<Subscriptions<AccessTable>>,
    reconciler: Arc<Reconciler>,
    explainer: Explainer,
    clock: ManualClock,
    buyer: EmailAddress,
}

impl Harness {
    async fn new() -> Self {
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
        let events = events_table(&dynamodb).await;
        let orders = orders_table(&dynamodb).await;
        let sessions = sessions_table(&dynamodb).await;
        let recovery_table = unique_table("recovery");
        tables::ensure(&dynamodb, recovery_table.as_str(), &tables::RECOVERY)
            .await
            .unwrap();
        let reconcile_table = unique_table("reconcile");
        tables::ensure(&dynamodb, reconcile_table.as_str(), &tables::RECONCILE)
            .await
            .unwrap();
        let mail = MailConfig {
            from_address: from,
            from_name: "Demo Shop".into(),
            configuration_set: None,
        };
        let templates = Templates::from_env(&[("UNUSED", "")]).unwrap();
        let confirmation = ConfirmationConfig {
            mail: Some(mail.clone()),
            templates: templates.clone(),
            merchant_name: "Demo Shop".into(),
            shop: Default::default(),
        };
        let subscriptions_table = subscriptions_table(&dynamodb).await;
        let access_config = AccessConfig {
            access_table: access_table(&dynamodb).await,
        };
        let access = AccessTable::new(access_config.clone(), dynamodb.clone());
        let subscriptions = Subscriptions::new(
            SubscriptionsConfig {
                stripe: stripe_config.clone(),
                events_table: events.clone(),
                subscriptions_table: subscriptions_table.clone(),
                access: access_config,
                grace_secs: 3 * 86_400,
                lease_margin_secs: 5,
                default_lease_secs: 30,
            },
            dynamodb.clone(),
            access.clone(),
        )
        .with_clock(clock.clock());
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
                fulfil_on_processing: false,
                fulfil_foreign_sessions: false,
            },
            dynamodb.clone(),
            ConfirmationEmail::new(
                confirmation,
                Some(SesMailer::new(mail.clone(), ses.clone())),
            ),
            access,
        )
        .with_clock(clock.clock());
        let recovery = Recovery::new(
            RecoveryConfig {
                stripe: stripe_config.clone(),
                recovery_table: recovery_table.clone(),
                sessions_table: sessions.clone(),
                foreign_sessions: false,
                payment_retry_url: None,
                events_table: events.clone(),
                mail: mail.clone(),
                postal_address: "Demo Shop, 1 rue de Rivoli, 75001 Paris".into(),
                cooldown_secs: 24 * 3600,
                coupon: None,
                unsubscribe_secret: Secret::new("an-unsubscribe-key-of-at-least-32-bytes"),
                public_base_url: "https://api.shop.example".into(),
                shop_url: None,
                templates,
                shop: Default::default(),
            },
            dynamodb.clone(),
            SesMailer::new(mail, ses),
        )
        .with_clock(clock.clock());
        let reconciler = Reconciler::new(
            ReconcileConfig {
                stripe: stripe_config,
                events_table: events.clone(),
                reconcile_table,
                accounts: vec![],
                grace_secs: GRACE,
                overlap_secs: 3600,
                first_lookback_secs: 72 * 3600,
                max_attempts: 30,
                retention_secs: 86_400,
            },
            dynamodb.clone(),
        )
        .with_clock(clock.clock());
        let explainer = Explainer::new(
            ExplainConfig {
                events_table: events.clone(),
                sessions_table: sessions,
                orders_table: orders.clone(),
                recovery_table,
                subscriptions_table,
            },
            dynamodb.clone(),
        );
        Self {
            stripe,
            dynamodb,
            events,
            orders,
            fulfillment: Arc::new(fulfillment),
            recovery: Arc::new(recovery),
            subscriptions: Arc::new(subscriptions),
            reconciler: Arc::new(reconciler),
            explainer,
            clock,
            buyer: unique_recipient("buyer"),
        }
    }

    fn session(&self, id: &str) -> Value {
        json!({
            "id": id, "object": "checkout.session", "mode": "payment", "status": "complete", "payment_status": "paid",
            "expires_at": self.now() + 3600, "amount_subtotal": 4000, "amount_total": 4000, "currency": "eur",
            "customer_details": {"email": self.buyer.as_str(), "name": "Jenny Rosen"},
            "payment_intent": "pi_123", "metadata": {},
            "line_items": {"object": "list", "has_more": false, "data": [
                {"id": "li_1", "object": "item", "description": "T-shirt", "quantity": 2, "amount_subtotal": 4000, "amount_total": 4000, "currency": "eur",
                 "price": {"id": "price_A", "object": "price", "currency": "eur", "unit_amount": 2000, "product": "prod_A"}}
            ]}
        })
    }

    async fn stripe_session(&self, id: &str) {
        Mock::given(method("GET"))
            .and(path(format!("/v1/checkout/sessions/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(self.session(id)))
            .mount(&self.stripe)
            .await;
    }

    fn now(&self) -> i64 {
        self.clock.clock().now()
    }

    fn event_store(&self) -> EventStore {
        EventStore::new(self.events.clone(), self.dynamodb.clone())
    }

    fn orders(&self) -> OrderStore {
        OrderStore::new(self.orders.clone(), self.dynamodb.clone())
    }

    /// An event the webhook stored `age` seconds ago.
    async fn stored(&self, id: &str, kind: &str, object: Value, age: i64) -> EventRecord {
        let mut event = stored_event(id, kind, object, None);
        event.received_at = self.now() - age;
        self.event_store().record_once(&event).await.unwrap();
        event
    }

    async fn reload(&self, event: &EventRecord) -> EventRecord {
        self.event_store()
            .get(&event.event_id)
            .await
            .unwrap()
            .unwrap()
    }

    fn handlers(&self) -> Handlers<'_, ConfirmationEmail<SesMailer>, SesMailer, AccessTable> {
        Handlers {
            fulfillment: &self.fulfillment,
            recovery: &self.recovery,
            subscriptions: &self.subscriptions,
        }
    }

    async fn pass(&self) -> PassReport {
        self.reconciler
            .pass(&self.handlers(), &PassOptions::default())
            .await
            .expect("pass")
    }

    async fn no_stripe_events(&self) {
        Mock::given(method("GET"))
            .and(path("/v1/events"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"object": "list", "has_more": false, "data": [], "url": "/v1/events"}),
            ))
            .mount(&self.stripe)
            .await;
    }
}

fn completed(id: &str, session: &str) -> (String, &'static str, Value) {
    (
        id.into(),
        "checkout.session.completed",
        json!({"id": session, "object": "checkout.session"}),
    )
}

#[tokio::test]
async fn an_event_whose_stream_record_never_came_is_fulfilled_by_the_next_pass() {
    let h = Harness::new().await;
    h.no_stripe_events().await;
    h.stripe_session("cs_test_lost").await;
    let (id, kind, object) = completed("evt_lost", "cs_test_lost");
    // Stored 11 minutes ago; its stream record never reached the function.
    let event = h.stored(&id, kind, object, GRACE + 60).await;

    let report = h.pass().await;

    let order = h.orders().get("cs_test_lost").await.unwrap().unwrap();
    assert!(matches!(order.state, FulfillmentState::Fulfilled { .. }));
    assert_eq!(outbox(&h.buyer).await.len(), 1);
    let fulfillment = &report.consumers["fulfillment"];
    assert_eq!(
        (
            fulfillment.redriven,
            fulfillment.resolved,
            fulfillment.unresolved
        ),
        (1, 1, 0)
    );
    let stored = h.reload(&event).await;
    assert!(!stored.is_pending(Consumer::Fulfillment), "{stored:?}");
    assert!(
        !stored.is_pending(Consumer::Recovery),
        "recovery recorded the purchase too"
    );

    let again = h.pass().await;
    assert_eq!(
        again.consumers["fulfillment"].redriven, 0,
        "nothing left to do"
    );
    assert_eq!(outbox(&h.buyer).await.len(), 1, "one email");
}

#[tokio::test]
async fn a_recent_unfinished_event_is_left_to_the_stream() {
    let h = Harness::new().await;
    h.no_stripe_events().await;
    let (id, kind, object) = completed("evt_recent", "cs_test_recent");
    h.stored(&id, kind, object, GRACE - 60).await;

    let report = h.pass().await;

    assert_eq!(report.consumers["fulfillment"].redriven, 0);
    assert!(h.orders().get("cs_test_recent").await.unwrap().is_none());
}

#[tokio::test]
async fn an_event_only_in_stripes_list_is_backfilled_once() {
    let h = Harness::new().await;
    h.stripe_session("cs_test_undelivered").await;
    let event: Value = serde_json::from_str(&event_json(
        "evt_undelivered",
        "checkout.session.completed",
        json!({"id": "cs_test_undelivered", "object": "checkout.session"}),
    ))
    .unwrap();
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param("types[]", "checkout.session.completed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"object": "list", "has_more": false, "data": [event], "url": "/v1/events"}),
        ))
        .mount(&h.stripe)
        .await;

    let first = h.pass().await;
    assert_eq!((first.listed, first.backfilled), (1, 1));
    let stored = h
        .event_store()
        .get(&"evt_undelivered".parse().unwrap())
        .await
        .unwrap()
        .expect("backfilled");
    // The new item flows down the stream like any delivery.
    let response = h.fulfillment.stream(stream_batch(&[stored]), None).await;
    assert!(response.batch_item_failures.is_empty());
    let order = h
        .orders()
        .get("cs_test_undelivered")
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(order.state, FulfillmentState::Fulfilled { .. }));

    let second = h.pass().await;
    assert_eq!(
        (second.listed, second.backfilled),
        (1, 0),
        "known events write nothing"
    );
    assert_eq!(outbox(&h.buyer).await.len(), 1);
    // The checkpoint moved: the second pass asked only from it, minus the overlap.
    let requests = h.stripe.received_requests().await.unwrap();
    let since: Vec<i64> = requests
        .iter()
        .filter(|r| r.url.path() == "/v1/events")
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "created[gte]")
                .and_then(|(_, v)| v.parse().ok())
        })
        .collect();
    assert_eq!(since, vec![h.now() - 72 * 3600, h.now() - 3600]);
}

#[tokio::test]
async fn a_session_stripe_does_not_find_is_failed_and_heals_once_stripe_finds_it() {
    let h = Harness::new().await;
    h.no_stripe_events().await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_404"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such checkout.session"}})))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&h.stripe)
        .await;
    h.stripe_session("cs_test_404").await;
    let (id, kind, object) = completed("evt_404", "cs_test_404");
    let event = h.stored(&id, kind, object, 0).await;

    // The stream's delivery: a 404 cannot heal by retrying at once, so it is acknowledged.
    let response = h
        .fulfillment
        .stream(stream_batch(std::slice::from_ref(&event)), None)
        .await;
    assert!(response.batch_item_failures.is_empty());
    let order = h.orders().get("cs_test_404").await.unwrap().unwrap();
    assert!(
        matches!(order.state, FulfillmentState::Failed { .. }),
        "{:?}",
        order.state
    );
    let stored = h.reload(&event).await;
    assert!(
        matches!(&stored.outcome_fulfillment, Some(EventOutcome::Failed { reason, .. }) if reason == "not_found"),
        "{stored:?}"
    );

    h.clock
        .advance(Duration::from_secs(u64::try_from(GRACE).unwrap() + 1));
    let first = h.pass().await;
    let fulfillment = &first.consumers["fulfillment"];
    assert_eq!(
        (fulfillment.redriven, fulfillment.unresolved),
        (1, 1),
        "still 404"
    );
    let backed_off = h.pass().await;
    assert_eq!(
        backed_off.consumers["fulfillment"].redriven, 0,
        "backoff: not again at once"
    );
    assert_eq!(backed_off.consumers["fulfillment"].unresolved, 1);

    h.clock
        .advance(Duration::from_secs(2 * u64::try_from(GRACE).unwrap() + 1));
    let healed = h.pass().await;
    let fulfillment = &healed.consumers["fulfillment"];
    assert_eq!(
        (fulfillment.resolved, fulfillment.unresolved),
        (1, 0),
        "{healed:?}"
    );
    let order = h.orders().get("cs_test_404").await.unwrap().unwrap();
    assert!(
        matches!(order.state, FulfillmentState::Fulfilled { .. }),
        "{:?}",
        order.state
    );
    assert_eq!(outbox(&h.buyer).await.len(), 1);
}

#[tokio::test]
async fn a_batch_without_time_for_its_first_record_fulfils_nothing() {
    let h = Harness::new().await;
    h.stripe_session("cs_test_late_a").await;
    let a = stored_event(
        "evt_a",
        "checkout.session.completed",
        json!({"id": "cs_test_late_a", "object": "checkout.session"}),
        None,
    );
    let b = stored_event(
        "evt_b",
        "checkout.session.completed",
        json!({"id": "cs_test_late_b", "object": "checkout.session"}),
        None,
    );
    let deadline = h.now() + checkout_core::fulfillment::RECORD_TIME_BUDGET_SECS - 1;

    let response = h
        .fulfillment
        .stream(stream_batch(&[a, b]), Some(deadline))
        .await;

    assert_eq!(
        response.batch_item_failures.len(),
        2,
        "both reported for retry"
    );
    assert!(
        h.orders().get("cs_test_late_a").await.unwrap().is_none(),
        "Fulfil never called"
    );
    assert!(
        h.stripe.received_requests().await.unwrap().is_empty(),
        "not even Stripe was called"
    );
}

#[tokio::test]
async fn a_claim_held_by_a_dead_owner_is_waited_for_and_fulfilled() {
    let h = Harness::new().await;
    h.stripe_session("cs_test_dead").await;
    let now = h.now();
    h.orders()
        .claim("cs_test_dead", None, "dead-invocation", now + 5, now - 25)
        .await
        .unwrap();
    let (id, kind, object) = completed("evt_dead", "cs_test_dead");
    let event = h.stored(&id, kind, object, 0).await;

    let response = h.fulfillment.stream(stream_batch(&[event]), None).await;

    assert!(
        response.batch_item_failures.is_empty(),
        "waited instead of failing"
    );
    assert!(h.now() >= now + 6, "the wait ran on the service's clock");
    let order = h.orders().get("cs_test_dead").await.unwrap().unwrap();
    assert!(
        matches!(order.state, FulfillmentState::Fulfilled { .. }),
        "{:?}",
        order.state
    );
    assert_eq!(order.attempts, 2);
    assert_eq!(outbox(&h.buyer).await.len(), 1);
}

#[tokio::test]
async fn a_pass_a_stream_delivery_and_the_landing_page_at_once_fulfil_once() {
    let h = Harness::new().await;
    h.no_stripe_events().await;
    h.stripe_session("cs_test_race").await;
    let (id, kind, object) = completed("evt_race", "cs_test_race");
    let event = h.stored(&id, kind, object, GRACE + 60).await;

    let pass = {
        let (reconciler, fulfillment, recovery, subscriptions) = (
            h.reconciler.clone(),
            h.fulfillment.clone(),
            h.recovery.clone(),
            h.subscriptions.clone(),
        );
        tokio::spawn(async move {
            let handlers = Handlers {
                fulfillment: &fulfillment,
                recovery: &recovery,
                subscriptions: &subscriptions,
            };
            reconciler
                .pass(&handlers, &PassOptions::default())
                .await
                .unwrap()
        })
    };
    let stream = {
        let fulfillment = h.fulfillment.clone();
        let event = event.clone();
        tokio::spawn(async move { fulfillment.stream(stream_batch(&[event]), None).await })
    };
    let landing = {
        let fulfillment = h.fulfillment.clone();
        tokio::spawn(async move {
            let request = http::Request::builder()
                .uri("/checkout/complete?session_id=cs_test_race")
                .body(lambda_http::Body::Empty)
                .unwrap();
            fulfillment.http(request, None).await
        })
    };
    pass.await.unwrap();
    stream.await.unwrap();
    landing.await.unwrap();

    let order = h.orders().get("cs_test_race").await.unwrap().unwrap();
    assert!(
        matches!(order.state, FulfillmentState::Fulfilled { .. }),
        "{:?}",
        order.state
    );
    assert_eq!(outbox(&h.buyer).await.len(), 1, "one Fulfil, one email");
}

#[tokio::test]
async fn explain_tells_each_step_of_a_fulfilled_and_a_failed_cart() {
    let h = Harness::new().await;
    h.stripe_session("cs_test_told").await;
    let (id, kind, object) = completed("evt_told", "cs_test_told");
    let event = h.stored(&id, kind, object, 0).await;
    h.fulfillment
        .stream(stream_batch(std::slice::from_ref(&event)), None)
        .await;
    h.recovery.stream(stream_batch(&[event]), None).await;

    let lines = h.explainer.explain("cs_test_told").await.unwrap();
    let text = lines.join("\n");
    assert_eq!(lines[0], "cs_test_told", "{text}");
    assert!(
        lines.iter().any(|l| l.contains(
            "evt_told checkout.session.completed received: fulfillment done, recovery done"
        )),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("order fulfilled, attempts 1, total 40.00 EUR")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l == "  confirmation email: sent"),
        "{text}"
    );
    // The same, asked by the event's id.
    let by_event = h.explainer.explain("evt_told").await.unwrap();
    assert_eq!(
        by_event[0],
        "evt_told checkout.session.completed about cs_test_told"
    );

    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {"type": "invalid_request_error", "message": "No such checkout.session"}})))
        .mount(&h.stripe)
        .await;
    let (id, kind, object) = completed("evt_gone", "cs_test_gone");
    let gone = h.stored(&id, kind, object, 0).await;
    h.fulfillment.stream(stream_batch(&[gone]), None).await;
    let lines = h.explainer.explain("cs_test_gone").await.unwrap();
    let text = lines.join("\n");
    assert!(
        lines.iter().any(|l| l.contains("evt_gone checkout.session.completed received: fulfillment failed (not_found, 1 attempt(s))")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("order failed (cs_test_gone not found at Stripe)")),
        "{text}"
    );
    let unknown = h.explainer.explain("cs_test_never_seen").await.unwrap();
    assert!(
        unknown.contains(&"  no event stored for it".to_string()),
        "{unknown:?}"
    );
    assert!(
        unknown.contains(&"  order: none".to_string()),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn explain_tells_an_abandoned_cart_recovered_by_its_email() {
    let h = Harness::new().await;
    let mut abandoned = h.session("cs_test_abandoned");
    abandoned["status"] = "expired".into();
    abandoned["payment_status"] = "unpaid".into();
    abandoned["consent"] = json!({"promotions": "opt_in"});
    abandoned["after_expiration"] = json!({"recovery": {"enabled": true, "url": "https://buy.stripe.com/r/live_abc", "expires_at": h.now() + 30 * 86_400, "allow_promotion_codes": false}});
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_abandoned/line_items"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "list", "has_more": false, "data": [
            {"id": "li_1", "object": "item", "description": "T-shirt", "quantity": 2, "amount_subtotal": 4000, "amount_total": 4000, "currency": "eur"}
        ]})))
        .mount(&h.stripe)
        .await;
    let expired = h
        .stored("evt_expired", "checkout.session.expired", abandoned, 0)
        .await;
    h.recovery
        .stream(stream_batch(std::slice::from_ref(&expired)), None)
        .await;
    // Fulfillment takes the expiry too, to give back stock (none is tracked here).
    h.fulfillment.stream(stream_batch(&[expired]), None).await;
    assert_eq!(outbox(&h.buyer).await.len(), 1, "the recovery email");

    let mut bought = h.session("cs_test_bought_again");
    bought["recovered_from"] = "cs_test_abandoned".into();
    h.stripe_session("cs_test_bought_again").await;
    let completed = h
        .stored("evt_bought_again", "checkout.session.completed", bought, 0)
        .await;
    h.recovery
        .stream(stream_batch(std::slice::from_ref(&completed)), None)
        .await;
    h.fulfillment.stream(stream_batch(&[completed]), None).await;

    let lines = h.explainer.explain("cs_test_abandoned").await.unwrap();
    let text = lines.join("\n");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("evt_expired checkout.session.expired received: fulfillment skipped (no_stock_reserved), recovery done")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.contains("order: none")), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  recovery email: sent at ")
                && l.contains(", recovered: bought again at ")),
        "{text}"
    );
    let lines = h.explainer.explain("cs_test_bought_again").await.unwrap();
    let text = lines.join("\n");
    assert!(
        lines.iter().any(|l| l.contains(
            "evt_bought_again checkout.session.completed received: fulfillment done, recovery done"
        )),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains("order fulfilled")),
        "{text}"
    );
}

#[tokio::test]
async fn a_given_up_event_is_counted_until_the_operator_redrives_it() {
    let h = Harness::new().await;
    h.no_stripe_events().await;
    h.stripe_session("cs_test_given_up").await;
    let (id, kind, object) = completed("evt_given_up", "cs_test_given_up");
    let mut event = stored_event(&id, kind, object, None);
    event.received_at = h.now() - 2 * 3600;
    event.attempts_fulfillment = 30;
    event.outcome_fulfillment = Some(EventOutcome::Failed {
        reason: "stripe".into(),
        error: "Stripe did not answer".into(),
        at: h.now() - 3600,
    });
    h.event_store().record_once(&event).await.unwrap();

    let report = h.pass().await;
    let fulfillment = &report.consumers["fulfillment"];
    assert_eq!(
        (
            fulfillment.redriven,
            fulfillment.given_up,
            fulfillment.over_an_hour
        ),
        (0, 1, 1),
        "{report:?}"
    );
    assert!(fulfillment.oldest_unresolved_age_secs >= Some(2 * 3600));
    assert!(h.orders().get("cs_test_given_up").await.unwrap().is_none());

    let results = h
        .reconciler
        .redrive_now(&event.event_id, &h.handlers())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        results,
        vec![
            (Consumer::Fulfillment, Ok(())),
            (Consumer::Recovery, Ok(())),
            (Consumer::Subscriptions, Ok(())),
        ]
    );
    let order = h.orders().get("cs_test_given_up").await.unwrap().unwrap();
    assert!(matches!(order.state, FulfillmentState::Fulfilled { .. }));
    let after = h.pass().await;
    assert_eq!(after.consumers["fulfillment"].unresolved, 0);
    assert_eq!(after.consumers["recovery"].unresolved, 0);
}

#[tokio::test]
async fn a_stripe_event_list_out_of_reach_does_not_stop_the_redrive() {
    let h = Harness::new().await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"type": "api_error", "message": "Something went wrong"}}),
        ))
        .mount(&h.stripe)
        .await;
    h.stripe_session("cs_test_while_down").await;
    let (id, kind, object) = completed("evt_while_down", "cs_test_while_down");
    h.stored(&id, kind, object, GRACE + 60).await;

    let report = h.pass().await;

    assert!(report.backfill_error.is_some(), "{report:?}");
    assert_eq!(report.consumers["fulfillment"].resolved, 1, "{report:?}");
    let order = h.orders().get("cs_test_while_down").await.unwrap().unwrap();
    assert!(matches!(order.state, FulfillmentState::Fulfilled { .. }));
}
