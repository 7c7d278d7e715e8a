//! Fulfilment exactly once: the stream handler and the landing page through the real
//! `Fulfillment`, against moto (DynamoDB, SES v2) and a fake Stripe at the HTTP boundary.

#![recursion_limit = "256"]

use std::time::Duration;

use checkout_core::{
    lambda::StreamAndHttp,
    mail::EmailStatus,
    store::{EventOutcome, FulfillmentState},
};
use integration_tests::*;
use lambda_http::Body;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use integration_tests::fulfillment::Harness;

fn completed(id: &str, session: &str) -> checkout_core::store::EventRecord {
    stored_event(
        id,
        "checkout.session.completed",
        json!({"id": session, "object": "checkout.session"}),
        None,
    )
}

fn landing(session: &str) -> lambda_http::Request {
    http::Request::builder()
        .uri(format!("/checkout/complete?session_id={session}"))
        .body(Body::Empty)
        .unwrap()
}

fn json_of(response: &lambda_http::Response<Body>) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

#[tokio::test]
async fn ten_stream_deliveries_and_five_landing_calls_fulfil_once_and_send_one_email() {
    let h = Harness::new().await;
    h.stripe_session("cs_test_race", "paid").await;
    // Created here, so the landing page may ask Stripe before any delivery has run.
    created_here(&h.dynamodb, &h.sessions, "cs_test_race", None).await;
    let record = completed("evt_race", "cs_test_race");

    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (app, batch) = (h.app.clone(), stream_batch(std::slice::from_ref(&record)));
        tasks.push(tokio::spawn(async move {
            app.stream(batch, None).await.batch_item_failures.len()
        }));
    }
    let mut pages = Vec::new();
    for _ in 0..5 {
        let app = h.app.clone();
        pages.push(tokio::spawn(async move {
            app.http(landing("cs_test_race"), None).await
        }));
    }
    let mut retried = 0;
    for task in tasks {
        retried += task.await.unwrap();
    }
    for page in pages {
        let response = page.await.unwrap();
        assert_eq!(response.status(), 200);
        let status = json_of(&response)["status"].as_str().unwrap().to_string();
        assert!(
            ["fulfilled", "processing"].contains(&status.as_str()),
            "{status}"
        );
    }
    // Deliveries that met a live claim asked Lambda to retry them; retry those now.
    for _ in 0..retried {
        assert!(
            h.app
                .stream(stream_batch(std::slice::from_ref(&record)), None)
                .await
                .batch_item_failures
                .is_empty()
        );
    }

    let order = h
        .orders()
        .get("cs_test_race")
        .await
        .unwrap()
        .expect("order");
    assert!(
        matches!(order.state, FulfillmentState::Fulfilled { .. }),
        "{:?}",
        order.state
    );
    assert_eq!(order.attempts, 1, "claimed exactly once");
    let details = order.details.expect("details");
    assert_eq!(
        (
            details.amount_total,
            details.currency.as_ref().map(|c| c.as_str())
        ),
        (4000, Some("eur"))
    );
    assert_eq!(details.line_items[0].product.as_deref(), Some("prod_A"));
    assert_eq!(details.payment_intent.as_deref(), Some("pi_123"));
    let sent = outbox(&h.buyer).await;
    assert_eq!(sent.len(), 1, "one confirmation email");
    let email = sent[0].parsed();
    assert_eq!(email.subject, "Demo Shop: your order is confirmed");
    assert!(
        email.html.contains("Jenny &lt;b&gt;Rosen&lt;") && !email.html.contains("<b>Rosen"),
        "customer input is escaped in HTML"
    );
    assert!(
        email.text.contains("T-shirt x 2: 40.00 EUR"),
        "{}",
        email.text
    );

    let page = h.app.http(landing("cs_test_race"), None).await;
    let page = json_of(&page);
    assert_eq!(page["status"], "fulfilled");
    assert_eq!(page["amount_total"], 4000);
    assert_eq!(page["line_items"][0]["description"], "T-shirt");
}

#[tokio::test]
async fn an_expired_claim_is_taken_over_and_a_live_one_is_retried_later() {
    let h = Harness::new().await;
    h.stripe_session("cs_test_crash", "paid").await;
    let now = unix_now();
    // An invocation claimed the order and died: its lease ran out a minute ago.
    assert_eq!(
        h.orders()
            .claim(
                "cs_test_crash",
                None,
                "crashed-invocation",
                now - 60,
                now - 120
            )
            .await
            .unwrap(),
        checkout_core::store::Claim::Acquired
    );

    let response = h
        .app
        .stream(
            stream_batch(&[completed("evt_crash", "cs_test_crash")]),
            None,
        )
        .await;

    assert!(response.batch_item_failures.is_empty());
    let order = h.orders().get("cs_test_crash").await.unwrap().unwrap();
    assert!(matches!(order.state, FulfillmentState::Fulfilled { .. }));
    assert_eq!(order.attempts, 2);
    assert_eq!(outbox(&h.buyer).await.len(), 1);

    h.stripe_session("cs_test_busy", "paid").await;
    h.orders()
        .claim("cs_test_busy", None, "live-invocation", now + 600, now)
        .await
        .unwrap();
    let response = h
        .app
        .stream(stream_batch(&[completed("evt_busy", "cs_test_busy")]), None)
        .await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "a live claim is retried, not dropped"
    );
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some("1000")
    );
}

#[tokio::test]
async fn a_dead_owners_claim_is_respected_until_its_lease_runs_out_on_the_clock() {
    let h = Harness::new().await;
    h.stripe_session("cs_test_lease", "paid").await;
    let now = h.clock.clock().now();
    // An invocation claimed the order 10 s ago under a 30 s lease, then died.
    h.orders()
        .claim("cs_test_lease", None, "dead-invocation", now + 20, now - 10)
        .await
        .unwrap();

    let page = json_of(&h.app.http(landing("cs_test_lease"), None).await);
    assert_eq!(
        page["status"], "processing",
        "a live lease is not taken over"
    );
    assert!(outbox(&h.buyer).await.is_empty());

    h.clock.advance(Duration::from_secs(21));
    let page = json_of(&h.app.http(landing("cs_test_lease"), None).await);
    assert_eq!(page["status"], "fulfilled", "an expired lease is");
    let order = h.orders().get("cs_test_lease").await.unwrap().unwrap();
    assert_eq!(order.attempts, 2);
    assert_eq!(outbox(&h.buyer).await.len(), 1);
}

#[tokio::test]
async fn an_unpaid_session_waits_for_async_payment_succeeded() {
    let h = Harness::new().await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_delayed"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(h.session("cs_test_delayed", "unpaid")),
        )
        .up_to_n_times(1)
        .mount(&h.stripe)
        .await;
    h.stripe_session("cs_test_delayed", "paid").await;

    assert!(
        h.app
            .stream(
                stream_batch(&[completed("evt_delayed_1", "cs_test_delayed")]),
                None
            )
            .await
            .batch_item_failures
            .is_empty()
    );
    let order = h.orders().get("cs_test_delayed").await.unwrap().unwrap();
    assert_eq!(order.state, FulfillmentState::AwaitingPayment);
    assert!(outbox(&h.buyer).await.is_empty());

    let succeeded = stored_event(
        "evt_delayed_2",
        "checkout.session.async_payment_succeeded",
        json!({"id": "cs_test_delayed", "object": "checkout.session"}),
        None,
    );
    assert!(
        h.app
            .stream(stream_batch(&[succeeded]), None)
            .await
            .batch_item_failures
            .is_empty()
    );
    let order = h.orders().get("cs_test_delayed").await.unwrap().unwrap();
    assert!(matches!(order.state, FulfillmentState::Fulfilled { .. }));
    assert_eq!(outbox(&h.buyer).await.len(), 1);
}

#[tokio::test]
async fn out_of_order_and_duplicated_events_converge() {
    let h = Harness::new().await;
    h.stripe_session("cs_test_order", "paid").await;
    let succeeded = stored_event(
        "evt_o1",
        "checkout.session.async_payment_succeeded",
        json!({"id": "cs_test_order", "object": "checkout.session"}),
        None,
    );
    let completed = completed("evt_o2", "cs_test_order");
    let failed_late = stored_event(
        "evt_o3",
        "checkout.session.async_payment_failed",
        json!({"id": "cs_test_order", "object": "checkout.session"}),
        None,
    );
    let expired = stored_event(
        "evt_o4",
        "checkout.session.expired",
        json!({"id": "cs_test_order", "object": "checkout.session"}),
        None,
    );

    let batch = stream_batch(&[
        succeeded.clone(),
        completed.clone(),
        succeeded,
        failed_late,
        expired,
        completed,
    ]);
    assert!(
        h.app
            .stream(batch, None)
            .await
            .batch_item_failures
            .is_empty()
    );

    let order = h.orders().get("cs_test_order").await.unwrap().unwrap();
    assert!(
        matches!(order.state, FulfillmentState::Fulfilled { .. }),
        "a late failure never undoes a fulfilment: {:?}",
        order.state
    );
    assert_eq!(outbox(&h.buyer).await.len(), 1);

    // A failed delayed payment is recorded, and a late "processing" does not hide it.
    let h = Harness::new().await;
    let failed = stored_event(
        "evt_f1",
        "checkout.session.async_payment_failed",
        json!({"id": "cs_test_failed", "object": "checkout.session"}),
        None,
    );
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_failed"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(h.session("cs_test_failed", "unpaid")),
        )
        .mount(&h.stripe)
        .await;
    let batch = stream_batch(&[failed, completed_for("evt_f2", "cs_test_failed")]);
    assert!(
        h.app
            .stream(batch, None)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(
        h.orders()
            .get("cs_test_failed")
            .await
            .unwrap()
            .unwrap()
            .state,
        FulfillmentState::PaymentFailed
    );
}

fn completed_for(id: &str, session: &str) -> checkout_core::store::EventRecord {
    completed(id, session)
}

#[tokio::test]
async fn stripe_errors_are_retried_or_recorded() {
    let h = Harness::new().await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_flaky"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"type": "api_error", "message": "boom"}})),
        )
        .up_to_n_times(1)
        .mount(&h.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_flaky"))
        .respond_with(ResponseTemplate::new(429).set_body_json(
            json!({"error": {"type": "invalid_request_error", "message": "slow down"}}),
        ))
        .up_to_n_times(1)
        .mount(&h.stripe)
        .await;
    h.stripe_session("cs_test_flaky", "paid").await;
    assert!(
        h.app
            .stream(
                stream_batch(&[completed("evt_flaky", "cs_test_flaky")]),
                None
            )
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(matches!(
        h.orders()
            .get("cs_test_flaky")
            .await
            .unwrap()
            .unwrap()
            .state,
        FulfillmentState::Fulfilled { .. }
    ));
    assert_eq!(
        h.stripe_calls().await,
        3,
        "500 and 429 retried by the client"
    );

    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_missing"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such checkout.session"}})))
        .mount(&h.stripe)
        .await;
    let response = h
        .app
        .stream(
            stream_batch(&[completed("evt_missing", "cs_test_missing")]),
            None,
        )
        .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a permanent error is recorded, not retried forever"
    );
    let order = h.orders().get("cs_test_missing").await.unwrap().unwrap();
    assert!(
        matches!(order.state, FulfillmentState::Failed { .. }),
        "{:?}",
        order.state
    );

    let page = h.app.http(landing("cs_test_missing"), None).await;
    assert_eq!(page.status(), 404);
    // The same through the Lambda entry point, from an HTTP API (payload v2) event.
    let api_gateway = api_gateway_v2_event(
        "GET",
        "/checkout/complete",
        "session_id=cs_test_missing",
        None,
    );
    let payload: checkout_core::lambda::Trigger = serde_json::from_value(api_gateway).unwrap();
    let answer = checkout_core::lambda::dispatch(
        &*h.app,
        lambda_http::LambdaEvent::new(payload, lambda_http::Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(answer["statusCode"], 404, "{answer}");
    assert_eq!(answer["isBase64Encoded"], false);
    for bad in [
        "/checkout/complete",
        "/checkout/complete?session_id=",
        "/checkout/complete?session_id=pi_123",
        "/checkout/complete?session_id=cs_%27%3B",
    ] {
        let request = http::Request::builder().uri(bad).body(Body::Empty).unwrap();
        let response = h.app.http(request, None).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(json_of(&response)["error"]["param"], "session_id");
    }
}

#[tokio::test]
async fn a_failed_fulfilment_releases_the_claim_for_the_retry() {
    // SES answers "not now" (throttling): the fulfilment fails and the trigger retries.
    let h = Harness::with_sender(true, Some(throttling_ses().await)).await;
    h.stripe_session("cs_test_ses_down", "paid").await;

    let response = h
        .app
        .stream(
            stream_batch(&[completed("evt_ses", "cs_test_ses_down")]),
            None,
        )
        .await;

    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "retried by the stream"
    );
    let order = h.orders().get("cs_test_ses_down").await.unwrap().unwrap();
    let FulfillmentState::InProgress {
        lease_expires_at, ..
    } = order.state
    else {
        panic!("{:?}", order.state)
    };
    assert_eq!(
        lease_expires_at, 0,
        "released: the retry can take it at once"
    );
}

#[tokio::test]
async fn a_confirmation_refused_for_good_never_blocks_the_order() {
    // moto, like SES, refuses to send from an unverified identity: a permanent refusal.
    let h = Harness::with_sender(false, None).await;
    h.stripe_session("cs_test_refused", "paid").await;
    let event = completed("evt_refused", "cs_test_refused");
    h.store(&event).await;

    let response = h
        .app
        .stream(stream_batch(std::slice::from_ref(&event)), None)
        .await;

    assert!(response.batch_item_failures.is_empty(), "no retry loop");
    let order = h.orders().get("cs_test_refused").await.unwrap().unwrap();
    assert!(
        matches!(order.state, FulfillmentState::Fulfilled { .. }),
        "{:?}",
        order.state
    );
    assert!(
        matches!(order.email, Some(EmailStatus::Failed { .. })),
        "{:?}",
        order.email
    );
    let stored = h.stored(&event).await;
    assert!(matches!(
        stored.outcome_fulfillment,
        Some(EventOutcome::Done { .. })
    ));
    assert!(
        stored.pending_fulfillment.is_none(),
        "finished: off the pending index"
    );
    assert!(outbox(&h.buyer).await.is_empty());
}

#[tokio::test]
async fn connect_sessions_are_retrieved_on_the_connected_account_with_every_line_item() {
    let h = Harness::new().await;
    let mut session = h.session("cs_test_connect", "paid");
    session["line_items"]["has_more"] = json!(true);
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_connect"))
        .and(header("stripe-account", "acct_1Merchant"))
        .respond_with(ResponseTemplate::new(200).set_body_json(session))
        .mount(&h.stripe)
        .await;
    let item = |id: &str| json!({"id": id, "object": "item", "description": id, "quantity": 1, "amount_subtotal": 100, "amount_total": 100, "currency": "eur"});
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_connect/line_items"))
        .and(header("stripe-account", "acct_1Merchant"))
        .and(query_param("starting_after", "li_2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"object": "list", "has_more": false, "data": [item("li_3")]}),
            ),
        )
        .mount(&h.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_connect/line_items"))
        .and(header("stripe-account", "acct_1Merchant"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"object": "list", "has_more": true, "data": [item("li_1"), item("li_2")]}),
        ))
        .mount(&h.stripe)
        .await;
    let event = stored_event(
        "evt_connect",
        "checkout.session.completed",
        json!({"id": "cs_test_connect", "object": "checkout.session"}),
        Some("acct_1Merchant"),
    );
    created_here(
        &h.dynamodb,
        &h.sessions,
        "cs_test_connect",
        Some("acct_1Merchant"),
    )
    .await;

    assert!(
        h.app
            .stream(stream_batch(&[event]), None)
            .await
            .batch_item_failures
            .is_empty()
    );

    let order = h.orders().get("cs_test_connect").await.unwrap().unwrap();
    assert_eq!(order.account.unwrap().as_str(), "acct_1Merchant");
    let lines: Vec<String> = order
        .details
        .unwrap()
        .line_items
        .into_iter()
        .map(|l| l.description)
        .collect();
    assert_eq!(lines, ["li_1", "li_2", "li_3"]);
}

#[tokio::test]
async fn only_marked_payment_intents_are_orders_of_their_own() {
    let h = Harness::new().await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions"))
        .and(query_param("payment_intent", "pi_of_session"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"object": "list", "has_more": false, "data": [h.session("cs_test_pi", "paid")]}),
        ))
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
    // Marked as the bundle's (a Payment Element flow), except the invoice's, which Stripe
    // made for a subscription's renewal and no one marked.
    let intent = |id: &str, status: &str| {
        let metadata = if id == "pi_of_invoice" {
            json!({})
        } else {
            json!({"checkout_lambda_fulfil": "true"})
        };
        json!({"id": id, "object": "payment_intent", "amount": 1500, "amount_received": 1500, "currency": "usd", "status": status, "receipt_email": h.buyer.as_str(), "metadata": metadata})
    };

    let batch = stream_batch(&[
        stored_event(
            "evt_pi1",
            "payment_intent.succeeded",
            intent("pi_of_session", "succeeded"),
            None,
        ),
        stored_event(
            "evt_pi2",
            "payment_intent.processing",
            intent("pi_standalone", "processing"),
            None,
        ),
        stored_event(
            "evt_pi3",
            "payment_intent.succeeded",
            intent("pi_standalone", "succeeded"),
            None,
        ),
        stored_event(
            "evt_pi4",
            "payment_intent.succeeded",
            intent("pi_standalone", "succeeded"),
            None,
        ),
        stored_event(
            "evt_pi5",
            "payment_intent.payment_failed",
            intent("pi_failed", "requires_payment_method"),
            None,
        ),
        stored_event(
            "evt_pi6",
            "payment_intent.succeeded",
            intent("pi_of_invoice", "succeeded"),
            None,
        ),
        stored_event(
            "evt_pi7",
            "payment_intent.processing",
            intent("pi_of_invoice", "processing"),
            None,
        ),
    ]);
    assert!(
        h.app
            .stream(batch, None)
            .await
            .batch_item_failures
            .is_empty()
    );

    assert_eq!(
        h.orders().get("pi_of_session").await.unwrap(),
        None,
        "left to its Checkout Session"
    );
    let standalone = h.orders().get("pi_standalone").await.unwrap().unwrap();
    assert!(matches!(
        standalone.state,
        FulfillmentState::Fulfilled { .. }
    ));
    assert_eq!(standalone.details.unwrap().amount_total, 1500);
    assert_eq!(
        h.orders().get("pi_failed").await.unwrap().unwrap().state,
        FulfillmentState::PaymentFailed
    );
    assert_eq!(
        outbox(&h.buyer).await.len(),
        1,
        "one confirmation for the standalone payment"
    );
    assert_eq!(
        h.orders().get("pi_of_invoice").await.unwrap(),
        None,
        "an invoice's PaymentIntent is never an order"
    );
    let asked_about_invoice = h
        .stripe
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.as_str().contains("pi_of_invoice"))
        .count();
    assert_eq!(asked_about_invoice, 0, "decided without calling Stripe");
}

/// An SES that answers every send with throttling: a refusal worth retrying.
async fn throttling_ses() -> aws_sdk_sesv2::Client {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-amzn-ErrorType", "TooManyRequestsException")
                .set_body_json(json!({"message": "Maximum sending rate exceeded."})),
        )
        .mount(&server)
        .await;
    let client = ses_at(&server.uri(), Duration::from_secs(2)).await;
    // The mock must outlive the client, which the harness keeps for the whole test.
    std::mem::forget(server);
    client
}

#[tokio::test]
async fn the_landing_page_asks_stripe_only_about_sessions_it_knows() {
    let h = Harness::new().await;
    // Made-up ids, as a loop would send them: 404 from DynamoDB reads, no Stripe call.
    for id in [
        "cs_test_made_up_1",
        "cs_live_made_up_2",
        "cs_test_a1b2c3d4e5f6",
    ] {
        let response = h.app.http(landing(id), None).await;
        assert_eq!(response.status(), 404, "{id}");
        assert_eq!(json_of(&response)["error"]["code"], "not_found");
    }
    let asked = h.stripe.received_requests().await.unwrap_or_default();
    assert!(
        asked.is_empty(),
        "Stripe was asked about made-up ids: {asked:?}"
    );

    // A session Stripe made from a recovery link is known by its stored, verified event.
    h.stripe_session("cs_test_recovered", "paid").await;
    let completed = stored_event(
        "evt_recovered_completed",
        "checkout.session.completed",
        json!({"id": "cs_test_recovered", "object": "checkout.session", "recovered_from": "cs_test_origin"}),
        None,
    );
    h.event_store().record_once(&completed).await.unwrap();
    let page = h.app.http(landing("cs_test_recovered"), None).await;
    assert_eq!(page.status(), 200);
    assert_eq!(json_of(&page)["status"], "fulfilled");
}
