//! Abandoned-cart recovery through the real stream handler and routes, against moto (SES v2,
//! DynamoDB) and a fake Stripe at the HTTP boundary.

#![recursion_limit = "256"]

use std::time::Duration;

use checkout_core::{
    config::Secret,
    lambda::StreamAndHttp,
    recovery::{Decision, unsubscribe_token},
    store::SkipReason,
    stripe::CheckoutSession,
};
use integration_tests::*;
use lambda_http::Body;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use integration_tests::recovery::{Harness, UNSUBSCRIBE_KEY};

fn event(id: &str, kind: &str, object: &Value) -> checkout_core::store::EventRecord {
    stored_event(id, kind, object.clone(), None)
}

#[tokio::test]
async fn the_recovery_email_carries_url_items_code_unsubscribe_and_headers() {
    let h = Harness::new().await;
    let session = h.expired("cs_test_content");

    let response = h
        .recovery
        .stream(
            stream_batch(&[event("evt_c1", "checkout.session.expired", &session)]),
            None,
        )
        .await;

    assert!(response.batch_item_failures.is_empty());
    let sent = h.sent().await;
    assert_eq!(sent.len(), 1);
    let email = sent[0].parsed();
    let token = unsubscribe_token(&Secret::new(UNSUBSCRIBE_KEY), &h.buyer.hashed());
    let unsubscribe_url = format!("https://api.shop.example/recovery/unsubscribe?token={token}");
    let header = |name: &str| {
        email
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("List-Unsubscribe"),
        Some(format!("<{unsubscribe_url}>"))
    );
    assert_eq!(
        header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(
        email.subject,
        "You left something in your cart at Demo Shop"
    );
    for expected in [
        "https://buy.stripe.com/r/live_cs_test_content",
        "Blue mug x 1 (15.00 EUR)",
        "Tea <b>box</b> x 1 (25.00 EUR)",
        "COMEBACK10",
        unsubscribe_url.as_str(),
        "1 rue de Rivoli",
    ] {
        assert!(
            email.text.contains(expected),
            "missing {expected}: {}",
            email.text
        );
    }
    // Attribute values are entity-escaped (`/` as `&#x2f;`); a browser decodes them.
    let decoded_html = email.html.replace("&#x2f;", "/");
    assert!(
        decoded_html.contains("href=\"https://buy.stripe.com/r/live_cs_test_content\""),
        "{}",
        email.html
    );
    assert!(decoded_html.contains(&format!("href=\"{unsubscribe_url}\"")));
    assert!(
        email.html.contains("Tea &lt;b&gt;box&lt;") && !email.html.contains("<b>box"),
        "item names escaped"
    );

    let promo = h
        .stripe
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/v1/promotion_codes")
        .expect("promotion code created");
    assert_eq!(
        promo.headers["idempotency-key"],
        "recovery-promotion-code:cs_test_content"
    );
    let form = form_pairs(&promo.body);
    assert!(form.contains(&("coupon".into(), "COUPON_10".into())));
    assert!(form.contains(&("max_redemptions".into(), "1".into())));

    let record = h
        .store
        .session_item(&"cs_test_content".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record["state"].as_s().unwrap(), "sent");
    assert!(!record["message_id"].as_s().unwrap().is_empty());
    assert_eq!(record["promotion_code"].as_s().unwrap(), "COMEBACK10");
    assert!(
        !format!("{record:?}").contains(h.buyer.as_str()),
        "the address is stored hashed only"
    );
}

#[tokio::test]
async fn the_email_follows_the_session_locale() {
    let h = Harness::build(true, None).await;
    let mut session = h.expired("cs_test_french");
    session["locale"] = json!("fr");
    session["after_expiration"]["recovery"]["allow_promotion_codes"] = json!(true);

    assert!(matches!(h.expire(&session).await, Decision::Sent { .. }));

    let email = h.sent().await.remove(0).parsed();
    assert!(
        email.subject.starts_with("Vous avez oublié quelque chose"),
        "{}",
        email.subject
    );
    assert!(email.html.contains("Finaliser ma commande") && email.text.contains("Se désabonner"));
    assert!(
        !email.text.contains("COMEBACK10"),
        "no coupon configured: no promotion code"
    );
    assert!(
        h.stripe
            .received_requests()
            .await
            .unwrap()
            .iter()
            .all(|r| r.url.path() != "/v1/promotion_codes")
    );
}

#[tokio::test]
async fn every_skip_reason_sends_nothing() {
    let h = Harness::new().await;
    let now = unix_now();
    let mut cases: Vec<(&str, Value, SkipReason)> = Vec::new();
    let mut s = h.expired("cs_test_no_email");
    s["customer_details"]["email"] = Value::Null;
    cases.push(("no email", s, SkipReason::NoEmail));
    let mut s = h.expired("cs_test_no_url");
    s["after_expiration"] = Value::Null;
    cases.push(("no recovery url", s, SkipReason::NoRecoveryUrl));
    let mut s = h.expired("cs_test_url_expired");
    s["after_expiration"]["recovery"]["expires_at"] = json!(now - 1);
    cases.push(("url expired", s, SkipReason::RecoveryUrlExpired));
    let mut s = h.expired("cs_test_opt_out");
    s["consent"]["promotions"] = json!("opt_out");
    cases.push(("opted out", s, SkipReason::NoConsent));
    let mut s = h.expired("cs_test_no_consent");
    s["consent"] = Value::Null;
    cases.push(("no consent collected", s, SkipReason::NoConsent));
    for (name, session, reason) in cases {
        assert_eq!(
            h.expire(&session).await,
            Decision::Skipped(reason),
            "{name}"
        );
    }
    assert!(h.sent().await.is_empty());

    // Sent once; the same session again, then another session within the cooldown.
    assert!(matches!(
        h.expire(&h.expired("cs_test_first")).await,
        Decision::Sent { .. }
    ));
    assert_eq!(
        h.expire(&h.expired("cs_test_first")).await,
        Decision::Skipped(SkipReason::AlreadySent)
    );
    assert_eq!(
        h.expire(&h.expired("cs_test_second")).await,
        Decision::Skipped(SkipReason::Cooldown)
    );
    assert_eq!(h.sent().await.len(), 1);
}

#[tokio::test]
async fn ten_concurrent_deliveries_of_one_expiry_send_one_email() {
    let h = Harness::new().await;
    let record = event(
        "evt_dup",
        "checkout.session.expired",
        &h.expired("cs_test_dup"),
    );
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (recovery, batch) = (
                h.recovery.clone(),
                stream_batch(std::slice::from_ref(&record)),
            );
            tokio::spawn(async move { recovery.stream(batch, None).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().batch_item_failures.is_empty());
    }
    assert_eq!(h.sent().await.len(), 1);
}

#[tokio::test]
async fn three_sessions_of_one_address_expiring_together_send_one_email() {
    let h = Harness::new().await;
    let tasks: Vec<_> = ["cs_test_a", "cs_test_b", "cs_test_c"]
        .into_iter()
        .map(|id| {
            let (recovery, batch) = (
                h.recovery.clone(),
                stream_batch(&[event(
                    &format!("evt_{id}"),
                    "checkout.session.expired",
                    &h.expired(id),
                )]),
            );
            tokio::spawn(async move { recovery.stream(batch, None).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().batch_item_failures.is_empty());
    }
    assert_eq!(
        h.sent().await.len(),
        1,
        "one email per address per cooldown window"
    );
}

#[tokio::test]
async fn no_email_after_a_purchase() {
    let h = Harness::new().await;
    let abandoned = h.expired("cs_test_abandoned");
    let mut bought = h.expired("cs_test_bought");
    bought["status"] = json!("complete");
    bought["payment_status"] = json!("paid");
    // Opened before the abandoned cart, paid after it was created: still a purchase since.
    bought["created"] = json!(unix_now() - 9000);

    let batch = stream_batch(&[
        event("evt_p1", "checkout.session.completed", &bought),
        event("evt_p2", "checkout.session.expired", &abandoned),
    ]);
    assert!(
        h.recovery
            .stream(batch, None)
            .await
            .batch_item_failures
            .is_empty()
    );

    assert!(h.sent().await.is_empty());
    assert_eq!(
        h.expire(&abandoned).await,
        Decision::Skipped(SkipReason::PurchasedSince)
    );
}

#[tokio::test]
async fn no_email_after_unsubscribing_and_forged_tokens_are_refused() {
    let h = Harness::new().await;
    let token = unsubscribe_token(&Secret::new(UNSUBSCRIBE_KEY), &h.buyer.hashed());
    let request = |method: &str, query: &str| {
        http::Request::builder()
            .method(method)
            .uri(format!("/recovery/unsubscribe?{query}"))
            .body(Body::Empty)
            .unwrap()
    };

    let forged = unsubscribe_token(
        &Secret::new("a-different-key-a-different-key-!!"),
        &h.buyer.hashed(),
    );
    // One hex digit changed, in the address hash and in the HMAC.
    let flip = |at: usize| {
        let digit = if &token[at..at + 1] == "0" { "1" } else { "0" };
        format!("{}{digit}{}", &token[..at], &token[at + 1..])
    };
    let (tampered_hash, tampered_mac) = (flip(10), flip(token.len() - 1));
    for bad in [
        format!("token={forged}"),
        format!("token={tampered_hash}"),
        format!("token={tampered_mac}"),
        "token=".into(),
        String::new(),
        "token=abc.def".into(),
    ] {
        let response = h.recovery.http(request("GET", &bad), None).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(
            serde_json::from_slice::<Value>(response.body()).unwrap()["error"]["param"],
            "token"
        );
    }
    assert!(!h.store.is_unsubscribed(&h.buyer.hashed()).await.unwrap());

    let page = h
        .recovery
        .http(request("GET", &format!("token={token}")), None)
        .await;
    assert_eq!(page.status(), 200);
    let one_click = h
        .recovery
        .http(request("POST", &format!("token={token}")), None)
        .await;
    assert_eq!(one_click.status(), 200, "RFC 8058 one-click POST");
    assert!(h.store.is_unsubscribed(&h.buyer.hashed()).await.unwrap());
    let address = h
        .store
        .item(aws_sdk_dynamodb::types::AttributeValue::S(format!(
            "address#{}",
            h.buyer.hashed()
        )))
        .await
        .unwrap()
        .unwrap();
    assert!(!address.contains_key("ttl"), "an opt-out never expires");

    assert_eq!(
        h.expire(&h.expired("cs_test_after_unsub")).await,
        Decision::Skipped(SkipReason::Unsubscribed)
    );
    assert!(h.sent().await.is_empty());
}

#[tokio::test]
async fn an_ses_failure_releases_the_claim_and_the_retry_sends_exactly_once() {
    let h = Harness::build(false, None).await;
    let record = event(
        "evt_ses",
        "checkout.session.expired",
        &h.expired("cs_test_ses"),
    );

    let first = h
        .recovery
        .stream(stream_batch(std::slice::from_ref(&record)), None)
        .await;
    assert_eq!(
        first.batch_item_failures.len(),
        1,
        "SES refused: the stream retries"
    );
    assert!(
        h.store
            .session_item(&"cs_test_ses".parse().unwrap())
            .await
            .unwrap()
            .is_none(),
        "claim released"
    );

    h.ses
        .create_email_identity()
        .email_identity(h.from.as_str())
        .send()
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(
            h.recovery
                .stream(stream_batch(std::slice::from_ref(&record)), None)
                .await
                .batch_item_failures
                .is_empty()
        );
    }
    assert_eq!(h.sent().await.len(), 1);
}

#[tokio::test]
async fn a_failed_delayed_payment_gets_one_transactional_notice() {
    let h = Harness::new().await;
    let mut session = h.expired("cs_test_async_failed");
    session["consent"] = Value::Null; // transactional: no consent needed
    let record = event("evt_af", "checkout.session.async_payment_failed", &session);

    for _ in 0..3 {
        assert!(
            h.recovery
                .stream(stream_batch(std::slice::from_ref(&record)), None)
                .await
                .batch_item_failures
                .is_empty()
        );
    }
    let sent = h.sent().await;
    assert_eq!(sent.len(), 1);
    let email = sent[0].parsed();
    assert_eq!(email.subject, "Demo Shop: your payment did not go through");
    assert!(email.text.contains("https://shop.example"));
}

#[tokio::test]
async fn a_purchase_from_a_recovered_session_is_counted_as_converted() {
    let h = Harness::new().await;
    assert!(matches!(
        h.expire(&h.expired("cs_test_emailed")).await,
        Decision::Sent { .. }
    ));
    let mut recovered = h.expired("cs_test_recovered");
    recovered["status"] = json!("complete");
    recovered["payment_status"] = json!("paid");
    recovered["recovered_from"] = json!("cs_test_emailed");
    recovered["amount_total"] = json!(3600);

    let batch = stream_batch(&[
        event("evt_conv", "checkout.session.completed", &recovered),
        event("evt_conv_dup", "checkout.session.completed", &recovered),
    ]);
    assert!(
        h.recovery
            .stream(batch, None)
            .await
            .batch_item_failures
            .is_empty()
    );

    let record = h
        .store
        .session_item(&"cs_test_emailed".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record["converted_amount"].as_n().unwrap(), "3600");
    assert_eq!(record["converted_currency"].as_s().unwrap(), "eur");
}

#[tokio::test]
async fn connect_sessions_read_line_items_on_the_connected_account() {
    let h = Harness::build(true, None).await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_connected/line_items"))
        .and(header("stripe-account", "acct_1Merchant"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "has_more": false, "data": []})),
        )
        .expect(1)
        .with_priority(1)
        .mount(&h.stripe)
        .await;
    let record = stored_event(
        "evt_connected",
        "checkout.session.expired",
        h.expired("cs_test_connected"),
        Some("acct_1Merchant"),
    );
    created_here(
        &h.dynamodb,
        &h.sessions,
        "cs_test_connected",
        Some("acct_1Merchant"),
    )
    .await;
    assert!(
        h.recovery
            .stream(stream_batch(&[record]), None)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(h.sent().await.len(), 1);
}

/// The binary's entry point as Lambda calls it: a DynamoDB stream batch and an API Gateway
/// HTTP API (payload v2) request, as JSON, through `lambda::dispatch`.
#[tokio::test]
async fn the_lambda_entry_point_answers_stream_and_api_gateway_payloads() {
    use checkout_core::lambda::{Trigger, dispatch};
    use lambda_http::{Context, LambdaEvent};

    let h = Harness::new().await;
    let expired = h.expired("cs_test_dispatch");
    let batch = stream_batch(&[event("evt_dispatch", "checkout.session.expired", &expired)]);
    let payload: Trigger = serde_json::from_value(serde_json::to_value(&batch).unwrap())
        .expect("a stream batch is a Trigger");
    let mut context = Context::default();
    context.deadline = u64::try_from(unix_now() + 180).unwrap() * 1000; // as Lambda sets it, in ms
    let answer = dispatch(&*h.recovery, LambdaEvent::new(payload, context))
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(h.sent().await.len(), 1);

    let token = unsubscribe_token(&Secret::new(UNSUBSCRIBE_KEY), &h.buyer.hashed());
    let request = api_gateway_v2_event(
        "POST",
        "/recovery/unsubscribe",
        &format!("token={token}"),
        Some("List-Unsubscribe=One-Click"),
    );
    let payload: Trigger =
        serde_json::from_value(request).expect("an HTTP API request is a Trigger");
    let answer = dispatch(&*h.recovery, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(answer["isBase64Encoded"], false, "JSON goes out as text");
    assert_eq!(
        serde_json::from_str::<Value>(answer["body"].as_str().unwrap()).unwrap(),
        json!({"unsubscribed": true})
    );
    assert!(h.store.is_unsubscribed(&h.buyer.hashed()).await.unwrap());
}

#[tokio::test]
async fn records_are_not_started_without_time_to_finish_them() {
    let h = Harness::new().await;
    let batch = stream_batch(&[
        event(
            "evt_late_1",
            "checkout.session.expired",
            &h.expired("cs_test_late_1"),
        ),
        event(
            "evt_late_2",
            "checkout.session.expired",
            &h.expired("cs_test_late_2"),
        ),
    ]);
    let deadline = unix_now() + checkout_core::recovery::RECORD_TIME_BUDGET_SECS - 1;
    let response = h.recovery.stream(batch, Some(deadline)).await;
    let retried: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(retried, ["1000", "1001"], "both reported for retry");
    assert!(h.sent().await.is_empty());
    assert!(
        h.store
            .session_item(&"cs_test_late_1".parse().unwrap())
            .await
            .unwrap()
            .is_none(),
        "nothing claimed"
    );
}

/// An SES endpoint that accepts connections and never answers: the send's outcome is unknown.
async fn silent_ses() -> aws_sdk_sesv2::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    ses_at(&format!("http://{address}"), Duration::from_millis(500)).await
}

#[tokio::test]
async fn an_unanswered_send_keeps_the_claim_so_no_retry_can_send_twice() {
    let h = Harness::build_with(true, None, Some(silent_ses().await)).await;
    let expired: CheckoutSession = serde_json::from_value(h.expired("cs_test_silent")).unwrap();
    let err = h
        .recovery
        .session_expired(&expired, None, unix_now())
        .await
        .expect_err("SES never answered");
    assert!(err.to_string().contains("may have been sent"), "{err}");
    let claim = h
        .store
        .session_item(&expired.id)
        .await
        .unwrap()
        .expect("the claim is kept");
    assert_eq!(claim["state"].as_s().unwrap(), "claimed");
    assert_eq!(
        h.recovery
            .session_expired(&expired, None, unix_now())
            .await
            .unwrap(),
        Decision::Skipped(SkipReason::AlreadySent),
        "the retry sends nothing"
    );
}

/// Stripe answering 404 for a session's line items cannot be healed by the stream's own
/// retries: the record is acknowledged, nothing sent, and the event left to the reconciler's
/// backoff, instead of failing every retry of the batch.
#[tokio::test]
async fn line_items_unknown_to_stripe_are_acknowledged_and_left_for_the_reconciler() {
    let h = Harness::new().await;
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_test_gone_items/line_items"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "type": "invalid_request_error", "code": "resource_missing",
            "message": "No such checkout.session: 'cs_test_gone_items'", "param": "id"}})))
        .expect(1)
        .with_priority(1)
        .mount(&h.stripe)
        .await;
    let record = event(
        "evt_gone_items",
        "checkout.session.expired",
        &h.expired("cs_test_gone_items"),
    );
    let response = h.recovery.stream(stream_batch(&[record]), None).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "retried by the stream: {:?}",
        response.batch_item_failures
    );
    assert!(h.sent().await.is_empty());
}
