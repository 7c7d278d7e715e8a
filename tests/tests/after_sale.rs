//! After the sale: subscriptions (first payment, renewals, failed renewals, cancellation),
//! refunds and disputes, through the real fulfillment, subscriptions and recovery handlers,
//! against moto (DynamoDB, SES v2) and a fake Stripe at the HTTP boundary. `Fulfil` and
//! `Entitle` are the merchant's seams: the tests count calls to them, and the default
//! `AccessTable` behind the counter still writes the real access table.

#![recursion_limit = "256"]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkout_core::{
    access::{AccessConfig, AccessTable, Entitle, EntitleError, Grant, Revoke},
    config::Secret,
    fulfillment::{Fulfil, FulfilError, Fulfilled, FulfillmentApp, FulfillmentConfig, Order},
    lambda::StreamAndHttp,
    mail::{EmailAddress, MailConfig, SesMailer, Templates},
    reconcile::{ExplainConfig, Explainer},
    recovery::{Recovery, RecoveryConfig},
    store::{
        AccessState, AfterSaleState, DynamoDb, EventRecord, FulfillmentState, OrderStore,
        SubscriptionStore, tables,
    },
    stripe::{StripeConfig, SubscriptionStatus},
    subscriptions::{self, Subscriptions, SubscriptionsConfig},
};
use integration_tests::*;
use lambda_http::Body;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const GRACE: i64 = 3 * 86_400;
const DAY: i64 = 86_400;

/// The merchant's `Fulfil`, counting its calls per order.
#[derive(Clone, Default)]
struct CountingFulfil(Arc<Mutex<BTreeMap<String, u32>>>);

impl Fulfil for CountingFulfil {
    async fn fulfil(&self, order: &Order) -> Result<Fulfilled, FulfilError> {
        *self
            .0
            .lock()
            .unwrap()
            .entry(order.order_id.clone())
            .or_default() += 1;
        Ok(Fulfilled::default())
    }
}

/// The default `AccessTable`, with every call counted per key.
#[derive(Clone)]
struct CountingAccess {
    table: AccessTable,
    grants: Arc<Mutex<Vec<Grant>>>,
    revokes: Arc<Mutex<Vec<Revoke>>>,
}

impl Entitle for CountingAccess {
    async fn grant(&self, grant: &Grant) -> Result<(), EntitleError> {
        self.grants.lock().unwrap().push(grant.clone());
        self.table.grant(grant).await
    }

    async fn revoke(&self, revoke: &Revoke) -> Result<(), EntitleError> {
        self.revokes.lock().unwrap().push(revoke.clone());
        self.table.revoke(revoke).await
    }
}

impl CountingAccess {
    fn grants_of(&self, key: &str) -> Vec<Grant> {
        self.grants
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.key == key)
            .cloned()
            .collect()
    }

    fn revokes_of(&self, key: &str) -> usize {
        self.revokes
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.key == key)
            .count()
    }
}

struct Harness {
    stripe: MockServer,
    dynamodb: DynamoDb,
    fulfillment: Arc<FulfillmentApp<CountingFulfil, CountingAccess>>,
    subscriptions: Arc<Subscriptions<CountingAccess>>,
    recovery: Arc<Recovery<SesMailer>>,
    fulfilled: CountingFulfil,
    access: CountingAccess,
    orders: OrderStore,
    buyer: EmailAddress,
    /// Stripe's clock for the events of this test.
    t0: i64,
    explain: ExplainConfig,
}

impl Harness {
    async fn new() -> Self {
        let dynamodb = dynamodb().await;
        let ses = ses().await;
        let from = verified_sender(&ses).await;
        let stripe = MockServer::start().await;
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
        let subscriptions_table = subscriptions_table(&dynamodb).await;
        let access_config = AccessConfig {
            access_table: access_table(&dynamodb).await,
        };
        let access = CountingAccess {
            table: AccessTable::new(access_config.clone(), dynamodb.clone()),
            grants: Arc::default(),
            revokes: Arc::default(),
        };
        let fulfilled = CountingFulfil::default();
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
            fulfilled.clone(),
            access.clone(),
        );
        let subscriptions = Subscriptions::new(
            SubscriptionsConfig {
                stripe: stripe_config.clone(),
                events_table: events.clone(),
                subscriptions_table: subscriptions_table.clone(),
                access: access_config,
                grace_secs: GRACE,
                lease_margin_secs: 5,
                default_lease_secs: 30,
            },
            dynamodb.clone(),
            access.clone(),
        );
        let recovery_table = unique_table("recovery");
        tables::ensure(&dynamodb, recovery_table.as_str(), &tables::RECOVERY)
            .await
            .unwrap();
        let mail = MailConfig {
            from_address: from,
            from_name: "Demo Shop".into(),
            configuration_set: None,
        };
        let recovery = Recovery::new(
            RecoveryConfig {
                stripe: stripe_config,
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
                shop_url: Some("https://shop.example".into()),
                templates: Templates::from_env(&[("UNUSED", "")]).unwrap(),
                shop: Default::default(),
            },
            dynamodb.clone(),
            SesMailer::new(mail, ses),
        );
        let h = Self {
            stripe,
            explain: ExplainConfig {
                events_table: events,
                sessions_table: sessions,
                orders_table: orders.clone(),
                recovery_table,
                subscriptions_table,
            },
            orders: OrderStore::new(orders, dynamodb.clone()),
            dynamodb,
            fulfillment: Arc::new(fulfillment),
            subscriptions: Arc::new(subscriptions),
            recovery: Arc::new(recovery),
            fulfilled,
            access,
            buyer: unique_recipient("subscriber"),
            t0: unix_now(),
        };
        h.mock_stripe(None).await;
        h
    }

    /// Stripe's answers, echoing the id asked for: a subscription (active, period from
    /// `t0`), a subscription-mode session, a customer, the session of a PaymentIntent.
    async fn mock_stripe(&self, account: Option<&str>) {
        let fake = FakeStripe {
            t0: self.t0,
            buyer: self.buyer.as_str().to_string(),
        };
        let mut routes = vec![
            Mock::given(method("GET")).and(path_regex(r"^/v1/subscriptions/sub_\w+$")),
            Mock::given(method("GET")).and(path_regex(r"^/v1/checkout/sessions/cs_\w+$")),
            Mock::given(method("GET")).and(path_regex(r"^/v1/customers/cus_\w+$")),
            Mock::given(method("GET")).and(path_regex(r"^/v1/checkout/sessions$")),
        ];
        for route in routes.drain(..) {
            let route = match account {
                Some(account) => route.and(wiremock::matchers::header("Stripe-Account", account)),
                None => route,
            };
            route.respond_with(fake.clone()).mount(&self.stripe).await;
        }
    }

    /// Stores `records` as the webhook does (once per event id) and delivers each to every
    /// consumer's stream handler, as Lambda does.
    async fn deliver(&self, records: &[EventRecord]) {
        let events = checkout_core::store::EventStore::new(
            self.explain.events_table.clone(),
            self.dynamodb.clone(),
        );
        for record in records {
            events.record_once(record).await.unwrap();
            let batch = || stream_batch(std::slice::from_ref(record));
            let failed = self
                .fulfillment
                .stream(batch(), None)
                .await
                .batch_item_failures
                .len()
                + subscriptions::handle_stream(&self.subscriptions, batch(), None)
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

    fn subscriptions_store(&self) -> &SubscriptionStore {
        self.subscriptions.store()
    }

    fn fulfil_calls(&self, order: &str) -> u32 {
        self.fulfilled
            .0
            .lock()
            .unwrap()
            .get(order)
            .copied()
            .unwrap_or(0)
    }

    async fn access_item(&self, holder: &str, product: &str) -> Option<(bool, Option<i64>)> {
        let store = checkout_core::store::AccessStore::new(
            self.subscriptions.config().access.access_table.clone(),
            self.dynamodb.clone(),
        );
        store
            .get(holder, product)
            .await
            .unwrap()
            .map(|a| (a.active, a.until))
    }
}

/// A fake Stripe at the HTTP boundary whose answers name the object asked for.
#[derive(Clone)]
struct FakeStripe {
    t0: i64,
    buyer: String,
}

impl Respond for FakeStripe {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        let id = path.rsplit('/').next().unwrap_or_default();
        let body = if let Some(n) = id.strip_prefix("sub_") {
            subscription(n, "active", self.t0 + 30 * DAY, self.t0)
        } else if let Some(n) = id.strip_prefix("cs_once") {
            one_time_session(n, &self.buyer)
        } else if let Some(n) = id.strip_prefix("cs_") {
            session(n, &self.buyer)
        } else if id.starts_with("cus_") {
            json!({"id": id, "object": "customer", "email": self.buyer, "preferred_locales": ["fr-FR"]})
        } else {
            // `GET /v1/checkout/sessions?payment_intent=pi_<n>`: one-time orders' sessions.
            let intent = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "payment_intent")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let data = match intent.strip_prefix("pi_once") {
                Some(n) => vec![one_time_session(n, &self.buyer)],
                None => vec![],
            };
            json!({"object": "list", "has_more": false, "data": data})
        };
        ResponseTemplate::new(200).set_body_json(body)
    }
}

fn subscription(n: &str, status: &str, period_end: i64, created: i64) -> Value {
    json!({
        "id": format!("sub_{n}"), "object": "subscription", "status": status, "customer": format!("cus_{n}"),
        "cancel_at_period_end": false, "created": created, "latest_invoice": format!("in_{n}_1"), "metadata": {},
        "canceled_at": if status == "canceled" { json!(created) } else { Value::Null },
        "ended_at": if status == "canceled" { json!(created) } else { Value::Null },
        "items": {"object": "list", "has_more": false, "data": [{
            "id": format!("si_{n}"), "object": "subscription_item", "quantity": 1,
            "current_period_start": period_end - 30 * DAY, "current_period_end": period_end,
            "price": {"id": "price_plan", "object": "price", "currency": "eur", "unit_amount": 900, "product": "prod_plan", "type": "recurring"}
        }]}
    })
}

fn session(n: &str, buyer: &str) -> Value {
    json!({
        "id": format!("cs_{n}"), "object": "checkout.session", "mode": "subscription", "status": "complete",
        "payment_status": "paid", "expires_at": unix_now() + 3600, "amount_subtotal": 900, "amount_total": 900,
        "currency": "eur", "customer": format!("cus_{n}"), "customer_details": {"email": buyer, "name": "Sub Scriber"},
        "payment_intent": null, "subscription": format!("sub_{n}"), "client_reference_id": format!("user-{n}"),
        "metadata": {"plan": "pro"},
        "line_items": {"object": "list", "has_more": false, "data": [
            {"id": "li_plan", "object": "item", "description": "Pro plan", "quantity": 1, "amount_subtotal": 900, "amount_total": 900, "currency": "eur",
             "price": {"id": "price_plan", "object": "price", "currency": "eur", "unit_amount": 900, "product": "prod_plan", "type": "recurring"}}
        ]}
    })
}

fn one_time_session(n: &str, buyer: &str) -> Value {
    json!({
        "id": format!("cs_once{n}"), "object": "checkout.session", "mode": "payment", "status": "complete",
        "payment_status": "paid", "expires_at": unix_now() + 3600, "amount_subtotal": 2000, "amount_total": 2000,
        "currency": "eur", "customer": format!("cus_once{n}"), "customer_details": {"email": buyer},
        "payment_intent": format!("pi_once{n}"), "metadata": {},
        "line_items": {"object": "list", "has_more": false, "data": [
            {"id": "li_ebook", "object": "item", "description": "E-book", "quantity": 1, "amount_subtotal": 2000, "amount_total": 2000, "currency": "eur",
             "price": {"id": "price_ebook", "object": "price", "currency": "eur", "unit_amount": 2000, "product": "prod_ebook"}}
        ]}
    })
}

fn invoice(
    n: &str,
    number: u32,
    reason: &str,
    status: &str,
    period_end: i64,
    attempt: u32,
) -> Value {
    json!({
        "id": format!("in_{n}_{number}"), "object": "invoice", "status": status, "billing_reason": reason,
        "customer": format!("cus_{n}"), "customer_email": null, "attempt_count": attempt,
        "amount_due": 900, "amount_paid": if status == "paid" { 900 } else { 0 }, "currency": "eur",
        "hosted_invoice_url": format!("https://invoice.stripe.com/i/in_{n}_{number}"),
        "next_payment_attempt": null, "subscription": null,
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": format!("sub_{n}"), "metadata": {}}, "quote_details": null},
        "lines": {"object": "list", "has_more": false, "data": [{"id": "il_1", "object": "line_item", "period": {"start": period_end - 30 * DAY, "end": period_end}}]}
    })
}

/// An event as the webhook stores it, created at `created` by Stripe's clock.
fn event(id: &str, kind: &str, object: Value, created: i64, account: Option<&str>) -> EventRecord {
    let mut record = stored_event(id, kind, object, account);
    record.created = created;
    record
}

/// The five events of a subscription checkout, in Stripe's order.
fn subscription_checkout(n: &str, t0: i64, buyer: &str) -> Vec<EventRecord> {
    let end = t0 + 30 * DAY;
    vec![
        event(
            &format!("evt_{n}_created"),
            "customer.subscription.created",
            subscription(n, "incomplete", end, t0),
            t0,
            None,
        ),
        event(
            &format!("evt_{n}_paid"),
            "invoice.paid",
            invoice(n, 1, "subscription_create", "paid", end, 1),
            t0 + 1,
            None,
        ),
        event(
            &format!("evt_{n}_pi"),
            "payment_intent.succeeded",
            json!({"id": format!("pi_{n}_inv"), "object": "payment_intent", "amount": 900, "amount_received": 900, "currency": "eur", "status": "succeeded", "customer": format!("cus_{n}"), "metadata": {}}),
            t0 + 1,
            None,
        ),
        event(
            &format!("evt_{n}_active"),
            "customer.subscription.updated",
            subscription(n, "active", end, t0),
            t0 + 1,
            None,
        ),
        event(
            &format!("evt_{n}_completed"),
            "checkout.session.completed",
            session(n, buyer),
            t0 + 2,
            None,
        ),
    ]
}

/// Every order of `items` (Heap's algorithm).
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    fn heap<T: Clone>(k: usize, items: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
        if k <= 1 {
            out.push(items.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, items, out);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            items.swap(j, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(items.len(), &mut items.to_vec(), &mut out);
    out
}

#[tokio::test]
async fn a_subscription_checkout_in_any_order_and_duplicated_is_one_order_one_fulfil_one_grant() {
    let h = Harness::new().await;
    let orders = permutations(&[0usize, 1, 2, 3]);
    assert_eq!(orders.len(), 24);
    for (p, order) in orders.iter().enumerate() {
        let n = format!("perm{p}");
        let events = subscription_checkout(&n, h.t0, h.buyer.as_str());
        // The others in this order, with the invoice's PaymentIntent at each place in
        // turn, then every one of them again in reverse.
        let mut sequence: Vec<EventRecord> = order
            .iter()
            .map(|&i| events[[0, 1, 3, 4][i]].clone())
            .collect();
        sequence.insert(p % 5, events[2].clone());
        let again: Vec<EventRecord> = sequence.iter().rev().cloned().collect();
        h.deliver(&sequence).await;
        h.deliver(&again).await;

        let session = format!("cs_{n}");
        let sub = format!("sub_{n}");
        assert_eq!(h.fulfil_calls(&session), 1, "{order:?}: one Fulfil");
        assert_eq!(h.fulfil_calls(&format!("pi_{n}_inv")), 0, "{order:?}");
        assert_eq!(
            h.orders.get(&format!("pi_{n}_inv")).await.unwrap(),
            None,
            "{order:?}: the invoice's PaymentIntent is no order"
        );
        let grants = h.access.grants_of(&sub);
        assert_eq!(grants.len(), 1, "{order:?}: one grant: {grants:?}");
        assert_eq!(grants[0].until, Some(h.t0 + 30 * DAY + GRACE));
        assert_eq!(grants[0].holder, format!("cus_{n}"));
        assert_eq!(grants[0].products, ["prod_plan"]);

        let record = h
            .subscriptions_store()
            .get(&sub.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let state = record.state.expect("state");
        assert_eq!(state.status, SubscriptionStatus::Active, "{order:?}");
        assert_eq!(
            record.session.as_ref().map(|s| s.as_str()),
            Some(session.as_str())
        );
        assert_eq!(
            record.client_reference_id.as_deref(),
            Some(format!("user-{n}").as_str())
        );
        assert_eq!(record.renewals, 0);
        assert_eq!(record.access, Some(AccessState::Granted));
    }
    // The order of one of them, as `Fulfil` saw it: the buyer's identity flowed through.
    let order = h.orders.get("cs_perm0").await.unwrap().unwrap();
    let details = order.details.unwrap();
    assert_eq!(details.customer.as_deref(), Some("cus_perm0"));
    assert_eq!(details.client_reference_id.as_deref(), Some("user-perm0"));
    assert_eq!(
        details.metadata.get("plan").map(String::as_str),
        Some("pro")
    );
    assert_eq!(details.subscription.as_deref(), Some("sub_perm0"));
    assert_eq!(
        h.access_item("cus_perm0", "prod_plan").await,
        Some((true, Some(h.t0 + 30 * DAY + GRACE)))
    );
}

#[tokio::test]
async fn concurrent_deliveries_of_a_first_payment_grant_once() {
    let h = Harness::new().await;
    let events = subscription_checkout("race", h.t0, h.buyer.as_str());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        for record in &events {
            let (subscriptions, record) = (h.subscriptions.clone(), record.clone());
            tasks.push(tokio::spawn(async move {
                subscriptions::handle_stream(&subscriptions, stream_batch(&[record]), None)
                    .await
                    .batch_item_failures
                    .len()
            }));
        }
    }
    let mut retried = 0;
    for task in tasks {
        retried += task.await.unwrap();
    }
    // Those that met a live access claim are retried by the stream; do so now.
    for _ in 0..retried {
        h.deliver(&events).await;
    }
    assert_eq!(h.access.grants_of("sub_race").len(), 1);
}

#[tokio::test]
async fn a_renewal_extends_access_without_an_order_and_counts_once() {
    let h = Harness::new().await;
    let n = "renew";
    h.deliver(&subscription_checkout(n, h.t0, h.buyer.as_str()))
        .await;
    let end2 = h.t0 + 60 * DAY;
    let t1 = h.t0 + 30 * DAY;
    let renewal = [
        event(
            "evt_renew_inv2",
            "invoice.paid",
            invoice(n, 2, "subscription_cycle", "paid", end2, 1),
            t1,
            None,
        ),
        event(
            "evt_renew_pi2",
            "payment_intent.succeeded",
            json!({"id": "pi_renew_2", "object": "payment_intent", "amount": 900, "amount_received": 900, "currency": "eur", "status": "succeeded", "metadata": {}}),
            t1,
            None,
        ),
        event(
            "evt_renew_upd2",
            "customer.subscription.updated",
            subscription(n, "active", end2, h.t0),
            t1,
            None,
        ),
    ];
    h.deliver(&renewal).await;
    h.deliver(&renewal).await;

    let record = h
        .subscriptions_store()
        .get(&"sub_renew".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.renewals, 1,
        "one renewal, however often its events came"
    );
    assert_eq!(record.paid_through, Some(end2));
    assert_eq!(record.access_until, Some(end2 + GRACE));
    let grants = h.access.grants_of("sub_renew");
    assert_eq!(
        grants.iter().map(|g| g.until).collect::<Vec<_>>(),
        [Some(h.t0 + 30 * DAY + GRACE), Some(end2 + GRACE)],
        "granted, then extended once"
    );
    assert_eq!(
        h.orders.get("pi_renew_2").await.unwrap(),
        None,
        "no order for a renewal"
    );
    assert_eq!(h.fulfil_calls("cs_renew"), 1);
    assert_eq!(
        h.access_item("cus_renew", "prod_plan").await,
        Some((true, Some(end2 + GRACE)))
    );
}

#[tokio::test]
async fn a_failed_renewal_sends_one_notice_per_attempt_and_keeps_access_through_the_grace() {
    let h = Harness::new().await;
    let n = "dunning";
    h.deliver(&subscription_checkout(n, h.t0, h.buyer.as_str()))
        .await;
    let t1 = h.t0 + 30 * DAY;
    let end2 = h.t0 + 60 * DAY;
    let failed = |attempt: u32, at: i64| {
        event(
            &format!("evt_dun_fail{attempt}"),
            "invoice.payment_failed",
            invoice(n, 2, "subscription_cycle", "open", end2, attempt),
            at,
            None,
        )
    };
    let past_due = event(
        "evt_dun_pastdue",
        "customer.subscription.updated",
        subscription(n, "past_due", end2, h.t0),
        t1,
        None,
    );
    for _ in 0..3 {
        h.deliver(&[failed(1, t1), past_due.clone()]).await;
    }
    let after_first = outbox(&h.buyer).await;
    assert_eq!(
        after_first.len(),
        1,
        "one email for attempt 1, though its event came three times"
    );
    let email = after_first[0].parsed();
    assert!(
        email.subject.contains("le paiement de votre abonnement"),
        "the customer's language: {}",
        email.subject
    );
    assert!(
        email
            .text
            .contains("https://invoice.stripe.com/i/in_dunning_2"),
        "{}",
        email.text
    );

    h.deliver(&[failed(2, t1 + 3 * DAY), failed(2, t1 + 3 * DAY)])
        .await;
    let action = event(
        "evt_dun_action",
        "invoice.payment_action_required",
        invoice(n, 2, "subscription_cycle", "open", end2, 2),
        t1 + 3 * DAY,
        None,
    );
    h.deliver(&[action.clone(), action]).await;
    let all = outbox(&h.buyer).await;
    assert_eq!(
        all.len(),
        3,
        "attempt 1, attempt 2, and the action-required notice"
    );
    assert!(
        all.iter()
            .any(|m| m.parsed().subject.contains("confirmez le paiement"))
    );

    let record = h
        .subscriptions_store()
        .get(&"sub_dunning".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state.unwrap().status, SubscriptionStatus::PastDue);
    assert_eq!(
        record.access,
        Some(AccessState::Granted),
        "past_due keeps access"
    );
    assert_eq!(h.access.revokes_of("sub_dunning"), 0);
    assert_eq!(
        record.access_until,
        Some(h.t0 + 30 * DAY + GRACE),
        "the paid period plus the grace, which ends by itself"
    );

    // Stripe gives up: unpaid ends access.
    h.deliver(&[event(
        "evt_dun_unpaid",
        "customer.subscription.updated",
        subscription(n, "unpaid", end2, h.t0),
        t1 + 10 * DAY,
        None,
    )])
    .await;
    assert_eq!(h.access.revokes_of("sub_dunning"), 1);
    assert_eq!(
        h.access_item("cus_dunning", "prod_plan").await.map(|a| a.0),
        Some(false)
    );
}

#[tokio::test]
async fn a_deleted_subscription_stays_deleted_after_a_stale_update_and_is_revoked_once() {
    let h = Harness::new().await;
    let n = "gone";
    h.deliver(&subscription_checkout(n, h.t0, h.buyer.as_str()))
        .await;
    let end = h.t0 + 30 * DAY;
    let deleted = event(
        "evt_gone_deleted",
        "customer.subscription.deleted",
        subscription(n, "canceled", end, h.t0 + 5 * DAY),
        h.t0 + 5 * DAY,
        None,
    );
    let stale = event(
        "evt_gone_stale",
        "customer.subscription.updated",
        subscription(n, "active", end, h.t0),
        h.t0 + 4 * DAY,
        None,
    );
    let stale_paid = event(
        "evt_gone_stale_paid",
        "invoice.paid",
        invoice(n, 2, "subscription_cycle", "paid", end + 30 * DAY, 1),
        h.t0 + 4 * DAY,
        None,
    );
    h.deliver(&[deleted.clone(), stale, deleted, stale_paid])
        .await;

    let record = h
        .subscriptions_store()
        .get(&"sub_gone".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.state.unwrap().status,
        SubscriptionStatus::Canceled,
        "a stale update never reactivates"
    );
    assert_eq!(record.access, Some(AccessState::Revoked));
    assert_eq!(h.access.revokes_of("sub_gone"), 1);
    assert_eq!(
        h.access.grants_of("sub_gone").len(),
        1,
        "the late invoice grants nothing"
    );
    assert_eq!(
        h.access_item("cus_gone", "prod_plan").await.map(|a| a.0),
        Some(false)
    );
}

#[tokio::test]
async fn bad_subscription_events_are_skipped_or_left_for_the_reconciler() {
    let h = Harness::new().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/invoices/in_\w+$"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such invoice"}})))
        .mount(&h.stripe)
        .await;
    let outcome = |record: EventRecord| {
        let subscriptions = h.subscriptions.clone();
        async move {
            subscriptions::handle_event(&subscriptions, &record, None)
                .await
                .map(|o| serde_json::to_value(o).unwrap())
                .map_err(|e| e.to_string())
        }
    };
    let mut no_object = event(
        "evt_bad_noobj",
        "invoice.paid",
        json!({"id": "in_missing_1", "object": "invoice"}),
        h.t0,
        None,
    );
    no_object.object = None;
    let cases: Vec<(EventRecord, &str, &str)> = vec![
        (
            event(
                "evt_bad_id",
                "customer.subscription.updated",
                json!({"id": "not-a-sub", "object": "subscription"}),
                h.t0,
                None,
            ),
            "skipped",
            "malformed_object_id",
        ),
        (
            event(
                "evt_bad_oneoff",
                "invoice.paid",
                json!({"id": "in_oneoff", "object": "invoice", "parent": null}),
                h.t0,
                None,
            ),
            "skipped",
            "not_a_subscription_invoice",
        ),
        (
            event(
                "evt_bad_mode",
                "checkout.session.completed",
                one_time_session("x", h.buyer.as_str()),
                h.t0,
                None,
            ),
            "skipped",
            "not_a_subscription",
        ),
        (no_object, "failed", "not_found"),
    ];
    for (record, status, reason) in cases {
        let kind = record.kind.to_string();
        let outcome = outcome(record).await.expect("acknowledged");
        assert_eq!(
            (outcome["status"].as_str(), outcome["reason"].as_str()),
            (Some(status), Some(reason)),
            "{kind}"
        );
    }
    assert!(
        h.access.grants.lock().unwrap().is_empty(),
        "nothing granted for bad input"
    );
}

/// A one-time digital order, fulfilled and granted, for the refund tests.
async fn fulfilled_order(h: &Harness, n: &str, account: Option<&str>) -> (String, String) {
    let session = format!("cs_once{n}");
    created_here(&h.dynamodb, &h.explain.sessions_table, &session, account).await;
    let completed = event(
        &format!("evt_{n}_done"),
        "checkout.session.completed",
        json!({"id": session, "object": "checkout.session"}),
        h.t0,
        account,
    );
    h.deliver(&[completed]).await;
    let order = h.orders.get(&session).await.unwrap().expect("order");
    assert!(matches!(order.state, FulfillmentState::Fulfilled { .. }));
    assert_eq!(order.access, Some(AccessState::Granted));
    (session, format!("pi_once{n}"))
}

fn charge(intent: &str, amount_refunded: i64) -> Value {
    json!({"id": format!("ch_{intent}"), "object": "charge", "amount": 2000, "amount_refunded": amount_refunded,
           "refunded": amount_refunded >= 2000, "payment_intent": intent})
}

fn dispute(intent: &str, status: &str) -> Value {
    json!({"id": format!("dp_{intent}"), "object": "dispute", "amount": 2000, "status": status,
           "charge": format!("ch_{intent}"), "payment_intent": intent})
}

#[tokio::test]
async fn a_full_refund_revokes_once_and_a_partial_one_keeps_access() {
    let h = Harness::new().await;
    let (session, intent) = fulfilled_order(&h, "full", None).await;
    assert_eq!(
        h.access_item("cus_oncefull", "prod_ebook").await,
        Some((true, None))
    );
    let partial = event(
        "evt_full_r1",
        "charge.refunded",
        charge(&intent, 500),
        h.t0 + 10,
        None,
    );
    h.deliver(&[partial.clone(), partial]).await;
    let order = h.orders.get(&session).await.unwrap().unwrap();
    assert_eq!(
        order.after.after_sale,
        Some(AfterSaleState::PartiallyRefunded)
    );
    assert_eq!(order.after.amount_refunded, 500);
    assert_eq!(order.status(), "partially_refunded");
    assert_eq!(
        h.access.revokes_of(&session),
        0,
        "a partial refund keeps access"
    );

    let full = event(
        "evt_full_r2",
        "charge.refunded",
        charge(&intent, 2000),
        h.t0 + 20,
        None,
    );
    let late_partial = event(
        "evt_full_r1b",
        "charge.refunded",
        charge(&intent, 500),
        h.t0 + 10,
        None,
    );
    // Concurrent deliveries of the full refund, and a late partial one.
    let mut tasks = Vec::new();
    for record in [full.clone(), full.clone(), full, late_partial] {
        let fulfillment = h.fulfillment.clone();
        tasks.push(tokio::spawn(async move {
            fulfillment
                .stream(stream_batch(&[record]), None)
                .await
                .batch_item_failures
                .len()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 0);
    }
    let order = h.orders.get(&session).await.unwrap().unwrap();
    assert_eq!(order.after.after_sale, Some(AfterSaleState::Refunded));
    assert_eq!(order.after.amount_refunded, 2000);
    assert_eq!(order.access, Some(AccessState::Revoked));
    assert_eq!(h.access.revokes_of(&session), 1, "revoked once");
    assert_eq!(
        h.access_item("cus_oncefull", "prod_ebook")
            .await
            .map(|a| a.0),
        Some(false)
    );

    let page = h
        .fulfillment
        .http(
            http::Request::builder()
                .uri(format!("/checkout/complete?session_id={session}"))
                .body(Body::Empty)
                .unwrap(),
            None,
        )
        .await;
    let page: Value = serde_json::from_slice(page.body()).unwrap();
    assert_eq!(page["status"], "refunded", "the landing page reports it");
}

#[tokio::test]
async fn a_lost_dispute_stays_lost_after_a_late_refund_and_a_won_one_is_fulfilled_again() {
    let h = Harness::new().await;
    let (lost, lost_pi) = fulfilled_order(&h, "lost", None).await;
    h.deliver(&[
        event(
            "evt_lost_open",
            "charge.dispute.created",
            dispute(&lost_pi, "needs_response"),
            h.t0 + 10,
            None,
        ),
        event(
            "evt_lost_close",
            "charge.dispute.closed",
            dispute(&lost_pi, "lost"),
            h.t0 + 20,
            None,
        ),
        event(
            "evt_lost_refund",
            "charge.refunded",
            charge(&lost_pi, 2000),
            h.t0 + 30,
            None,
        ),
        event(
            "evt_lost_reopen",
            "charge.dispute.created",
            dispute(&lost_pi, "needs_response"),
            h.t0 + 10,
            None,
        ),
    ])
    .await;
    let order = h.orders.get(&lost).await.unwrap().unwrap();
    assert_eq!(order.after.after_sale, Some(AfterSaleState::DisputeLost));
    assert_eq!(h.access.revokes_of(&lost), 1);

    let (won, won_pi) = fulfilled_order(&h, "won", None).await;
    // Out of order: the close arrives before the opening.
    h.deliver(&[
        event(
            "evt_won_close",
            "charge.dispute.closed",
            dispute(&won_pi, "won"),
            h.t0 + 20,
            None,
        ),
        event(
            "evt_won_open",
            "charge.dispute.created",
            dispute(&won_pi, "needs_response"),
            h.t0 + 10,
            None,
        ),
    ])
    .await;
    let order = h.orders.get(&won).await.unwrap().unwrap();
    assert_eq!(order.after.after_sale, None, "back to fulfilled");
    assert_eq!(order.status(), "fulfilled");
    assert_eq!(h.access.revokes_of(&won), 0);

    // A refund of something that is no order here (an invoice's payment) is skipped.
    let other = event(
        "evt_other_refund",
        "charge.refunded",
        charge("pi_unknown", 2000),
        h.t0,
        None,
    );
    let outcome =
        checkout_core::fulfillment::handle_event(&h.fulfillment.fulfillment, &other, None)
            .await
            .unwrap();
    assert_eq!(
        serde_json::to_value(outcome).unwrap()["reason"],
        "not_an_order"
    );
}

#[tokio::test]
async fn on_a_connected_account_every_retrieve_names_the_account() {
    let h = Harness::new().await;
    h.stripe.reset().await;
    let account = "acct_1Connected";
    h.mock_stripe(Some(account)).await;
    let on = |mut record: EventRecord| {
        record.account = Some(account.parse().unwrap());
        record
    };
    // The subscription checkout, with the invoice first (so the subscription is retrieved).
    let events = subscription_checkout("conn", h.t0, h.buyer.as_str());
    created_here(
        &h.dynamodb,
        &h.explain.sessions_table,
        "cs_conn",
        Some(account),
    )
    .await;
    let order: Vec<EventRecord> = [1, 2, 0, 3, 4]
        .iter()
        .map(|&i| on(events[i].clone()))
        .collect();
    h.deliver(&order).await;
    let end2 = h.t0 + 60 * DAY;
    h.deliver(&[
        on(event(
            "evt_conn_inv2",
            "invoice.paid",
            invoice("conn", 2, "subscription_cycle", "paid", end2, 1),
            h.t0 + 30 * DAY,
            None,
        )),
        on(event(
            "evt_conn_fail",
            "invoice.payment_failed",
            invoice("conn", 3, "subscription_cycle", "open", end2 + 30 * DAY, 1),
            h.t0 + 60 * DAY,
            None,
        )),
        on(event(
            "evt_conn_del",
            "customer.subscription.deleted",
            subscription("conn", "canceled", end2, h.t0 + 70 * DAY),
            h.t0 + 70 * DAY,
            None,
        )),
    ])
    .await;
    let (session, intent) = fulfilled_order(&h, "conn", Some(account)).await;
    h.deliver(&[on(event(
        "evt_conn_refund",
        "charge.refunded",
        charge(&intent, 2000),
        h.t0 + 80 * DAY,
        None,
    ))])
    .await;

    assert_eq!(h.fulfil_calls("cs_conn"), 1);
    assert_eq!(h.access.grants_of("sub_conn").len(), 2);
    assert_eq!(h.access.revokes_of("sub_conn"), 1);
    assert_eq!(h.access.revokes_of(&session), 1);
    assert_eq!(
        outbox(&h.buyer).await.len(),
        1,
        "the failed renewal's notice"
    );
    let grant = &h.access.grants_of("sub_conn")[0];
    assert_eq!(grant.account.as_ref().map(|a| a.as_str()), Some(account));
    let requests = h.stripe.received_requests().await.unwrap();
    assert!(
        requests.len() >= 4,
        "subscription, session, customer and PaymentIntent lookups: {}",
        requests.len()
    );
    for request in &requests {
        assert_eq!(
            request
                .headers
                .get("stripe-account")
                .and_then(|v| v.to_str().ok()),
            Some(account),
            "{} {}",
            request.method,
            request.url
        );
    }
}

#[tokio::test]
async fn ops_explain_tells_a_subscription_and_a_refunded_order() {
    let h = Harness::new().await;
    h.deliver(&subscription_checkout("told", h.t0, h.buyer.as_str()))
        .await;
    let (session, intent) = fulfilled_order(&h, "told", None).await;
    h.deliver(&[event(
        "evt_told_refund",
        "charge.refunded",
        charge(&intent, 2000),
        h.t0 + 5,
        None,
    )])
    .await;
    let explainer = Explainer::new(h.explain.clone(), h.dynamodb.clone());

    let lines = explainer.explain("sub_told").await.unwrap().join("\n");
    assert!(
        lines.contains("customer.subscription.created received: subscriptions done"),
        "{lines}"
    );
    assert!(lines.contains("subscription active"), "{lines}");
    assert!(lines.contains("from cs_told"), "{lines}");
    assert!(lines.contains("access granted until"), "{lines}");

    let lines = explainer.explain(&session).await.unwrap().join("\n");
    assert!(lines.contains("order refunded"), "{lines}");
    assert!(lines.contains("refunded 20.00 EUR"), "{lines}");
    assert!(lines.contains("access revoked"), "{lines}");
}
