//! The Stripe simulator's contract: the bundle's own Stripe client (and so its own types)
//! reads every answer the simulator gives, the simulator enforces what real Stripe enforces
//! where the bundle relies on it (bearer key, `Stripe-Account`, `Idempotency-Key`, paging),
//! and its webhooks are signed so the bundle's verifier accepts them.

use std::time::Duration;

use checkout_core::{
    ids::{AccountId, SessionId},
    stripe::{
        ErrorKind, Event, Form, IdempotencyKey, LineItem, List, PaymentStatus, PromotionsConsent,
        RequestOptions, SessionStatus, StripeClient, StripeError,
    },
};
use integration_tests::simulator::*;
use integration_tests::unix_now;
use stripe_simulator::demo_catalog;

#[tokio::test]
async fn sessions_line_items_and_prices_parse_in_the_clients_types() {
    let h = Harness::start().await;
    let client = h.client(KEY);
    let items: Vec<(&str, u64)> = (0..12)
        .map(|i| {
            (
                ["price_mug", "price_tea", "price_poster"][i % 3],
                1 + i as u64 % 2,
            )
        })
        .collect();
    let options = RequestOptions {
        account: None,
        idempotency_key: None,
    };
    let created = client
        .create_checkout_session(&Harness::session_form(&items), options)
        .await
        .expect("create parses as CheckoutSession");
    assert!(created.id.as_str().starts_with("cs_test_"));
    assert_eq!(
        created.url.as_deref(),
        Some(format!("{}/c/pay/{}", h.url, created.id).as_str())
    );
    assert_eq!(created.status, Some(SessionStatus::Open));
    assert_eq!(created.payment_status, PaymentStatus::Unpaid);
    assert_eq!(created.metadata["cart"], "c-1");
    let expected_total: i64 = items
        .iter()
        .map(|(p, q)| {
            demo_catalog()
                .iter()
                .find(|c| c.price == *p)
                .unwrap()
                .unit_amount
                * i64::try_from(*q).unwrap()
        })
        .sum();
    assert_eq!(created.amount_total, Some(expected_total));

    let retrieved = client
        .retrieve_checkout_session(&created.id, None)
        .await
        .unwrap();
    let first_page = retrieved.line_items.expect("expand[]=line_items");
    assert_eq!(first_page.data.len(), 10);
    assert!(
        first_page.has_more,
        "12 items: the expanded list is the first page"
    );

    let all = client.list_line_items(&created.id, None).await.unwrap();
    assert_eq!(all.len(), 12);
    assert!(
        all.iter()
            .all(|i| i.price.as_ref().unwrap().product.as_ref().unwrap()["name"].is_string()),
        "expand[]=data.price.product gives product objects"
    );

    // Paging by hand with a small limit reaches every item exactly once.
    let raw = api_get(
        &h.url,
        &format!("/v1/checkout/sessions/{}/line_items?limit=5", created.id),
    )
    .await;
    let page: List<LineItem> = serde_json::from_value(raw).unwrap();
    assert_eq!(page.data.len(), 5);
    assert!(page.has_more);
    let mut seen: Vec<String> = page.data.iter().map(|i| i.id.clone()).collect();
    loop {
        let query = format!(
            "/v1/checkout/sessions/{}/line_items?limit=5&starting_after={}",
            created.id,
            seen.last().unwrap()
        );
        let page: List<LineItem> = serde_json::from_value(api_get(&h.url, &query).await).unwrap();
        seen.extend(page.data.iter().map(|i| i.id.clone()));
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, all.iter().map(|i| i.id.clone()).collect::<Vec<_>>());

    let price = client
        .retrieve_price(&"price_tea".parse().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(price.unit_amount, Some(2500));
    assert_eq!(
        (price.product_id(), price.product_name()),
        (Some("prod_tea"), Some("Tea box")),
        "the product expanded, as the client asks"
    );
    let missing = client
        .retrieve_price(&"price_nope".parse().unwrap(), None)
        .await
        .unwrap_err();
    assert!(missing.is_not_found());

    let mut code = Form::new();
    code.push("coupon", "SPRING").push("max_redemptions", 1);
    let promotion = client
        .create_promotion_code(
            &code,
            RequestOptions {
                account: None,
                idempotency_key: None,
            },
        )
        .await
        .expect("parses as PromotionCode");
    assert_eq!(promotion.code.len(), 8);
}

#[tokio::test]
async fn bearer_key_account_and_idempotency_are_enforced() {
    let h = Harness::start().await;
    let wrong = h
        .client("sk_test_wrong")
        .retrieve_price(&"price_mug".parse().unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), Some(ErrorKind::Authentication), "{wrong}");

    let client = h.client(KEY);
    let account: AccountId = "acct_simulated1".parse().unwrap();
    let key = IdempotencyKey::derived("contract", "order-1");
    let on_account = RequestOptions {
        account: Some(&account),
        idempotency_key: Some(&key),
    };
    let form = Harness::session_form(&[("price_mug", 1)]);
    let first = client
        .create_checkout_session(&form, on_account)
        .await
        .unwrap();
    let replay = client
        .create_checkout_session(&form, on_account)
        .await
        .unwrap();
    assert_eq!(
        replay.id, first.id,
        "same key, same parameters: the first answer again"
    );

    let other = Harness::session_form(&[("price_tea", 1)]);
    let refused = client
        .create_checkout_session(&other, on_account)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), Some(ErrorKind::Idempotency), "{refused}");

    // The same key on another account is another request.
    let elsewhere = client
        .create_checkout_session(
            &form,
            RequestOptions {
                account: None,
                idempotency_key: Some(&key),
            },
        )
        .await
        .unwrap();
    assert_ne!(elsewhere.id, first.id);

    assert!(
        client
            .retrieve_checkout_session(&first.id, None)
            .await
            .unwrap_err()
            .is_not_found(),
        "a connected account's session is not on the platform"
    );
    let found = client
        .retrieve_checkout_session(&first.id, Some(&account))
        .await
        .unwrap();
    assert_eq!(found.id, first.id);

    // A request refused on its parameters is not saved: the key works once they are fixed.
    let retry_key = IdempotencyKey::derived("contract", "order-2");
    let with_retry_key = RequestOptions {
        account: None,
        idempotency_key: Some(&retry_key),
    };
    let unknown_price = client
        .create_checkout_session(
            &Harness::session_form(&[("price_unknown", 1)]),
            with_retry_key,
        )
        .await
        .unwrap_err();
    client
        .create_checkout_session(&Harness::session_form(&[("price_mug", 1)]), with_retry_key)
        .await
        .expect("the key was not used up by the refused request");
    assert!(
        matches!(&unknown_price, checkout_core::stripe::StripeError::Api { param: Some(p), .. } if p == "line_items[0][price]"),
        "{unknown_price}"
    );
}

#[tokio::test]
async fn paying_sends_signed_webhooks_and_lands_on_the_success_url() {
    let h = Harness::start().await;
    let client = h.client(KEY);
    let none = RequestOptions {
        account: None,
        idempotency_key: None,
    };
    let session = client
        .create_checkout_session(&Harness::session_form(&[("price_mug", 2)]), none)
        .await
        .unwrap();

    let (status, location) = h
        .act(
            &session.id,
            &[
                ("action", "pay"),
                ("email", "ada@example.com"),
                ("name", "Ada"),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        location.unwrap(),
        format!("http://shop.test/thanks?session_id={}", session.id)
    );

    let events = h.webhooks(1).await;
    assert_eq!(types(&events), ["checkout.session.completed"]);
    let paid = client
        .retrieve_checkout_session(&session.id, None)
        .await
        .unwrap();
    assert_eq!(paid.payment_status, PaymentStatus::Paid);
    assert_eq!(paid.status, Some(SessionStatus::Complete));
    assert_eq!(
        paid.customer_details.unwrap().email.as_deref(),
        Some("ada@example.com")
    );
    assert_eq!(
        paid.consent.unwrap().promotions,
        Some(PromotionsConsent::OptIn)
    );
    let intent = client
        .retrieve_payment_intent(paid.payment_intent.as_ref().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        (intent.status.as_str(), intent.amount_received),
        ("succeeded", 3000)
    );
    let by_intent = client
        .session_for_payment_intent(&intent.id, None)
        .await
        .unwrap();
    assert_eq!(by_intent.unwrap().id, session.id);

    let (status, _) = h
        .act(
            &session.id,
            &[("action", "pay"), ("email", "ada@example.com")],
        )
        .await;
    assert_eq!(status, 409, "a completed session cannot be paid again");
}

#[tokio::test]
async fn delayed_payments_can_be_duplicated_and_delivered_out_of_order() {
    let h = Harness::start().await;
    let client = h.client(KEY);
    let none = RequestOptions {
        account: None,
        idempotency_key: None,
    };
    let session = client
        .create_checkout_session(&Harness::session_form(&[("price_tea", 1)]), none)
        .await
        .unwrap();
    let (status, _) = h
        .act(
            &session.id,
            &[
                ("action", "pay-delayed"),
                ("email", "bo@example.com"),
                ("delayed_outcome", "succeeded"),
                ("duplicate", "on"),
                ("out_of_order", "on"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let events = h.webhooks(4).await;
    assert_eq!(
        types(&events),
        [
            "checkout.session.async_payment_succeeded",
            "checkout.session.async_payment_succeeded",
            "checkout.session.completed",
            "checkout.session.completed"
        ]
    );
    assert_eq!(
        events[0]["id"], events[1]["id"],
        "a duplicate is the same event"
    );
    assert_eq!(
        events[2]["data"]["object"]["payment_status"], "unpaid",
        "completed carries its own snapshot"
    );
    assert_eq!(events[0]["data"]["object"]["payment_status"], "paid");
}

#[tokio::test]
async fn an_expired_session_carries_a_recovery_url_that_recreates_the_cart() {
    let h = Harness::start().await;
    let client = h.client(KEY);
    let none = RequestOptions {
        account: None,
        idempotency_key: None,
    };
    let session = client
        .create_checkout_session(&Harness::session_form(&[("price_poster", 3)]), none)
        .await
        .unwrap();
    let (status, _) = h
        .act(
            &session.id,
            &[
                ("action", "expire"),
                ("email", "sam@example.com"),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let events = h.webhooks(1).await;
    assert_eq!(types(&events), ["checkout.session.expired"]);
    let expired: checkout_core::stripe::CheckoutSession =
        serde_json::from_value(events[0]["data"]["object"].clone())
            .expect("the event object parses");
    assert_eq!(expired.status, Some(SessionStatus::Expired));
    assert_eq!(
        expired.consent.unwrap().promotions,
        Some(PromotionsConsent::OptIn)
    );
    let recovery = expired.after_expiration.unwrap().recovery.unwrap();
    assert!(recovery.expires_at.unwrap() > unix_now() + 29 * 86_400);
    let recovery_url = recovery.url.unwrap();

    let (status, headers, _) = call(
        http::Request::get(recovery_url)
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 303);
    let new_url = headers["location"].to_str().unwrap().to_string();
    let new_id: SessionId = new_url.rsplit('/').next().unwrap().parse().unwrap();
    let recovered = client
        .retrieve_checkout_session(&new_id, None)
        .await
        .unwrap();
    assert_eq!(recovered.recovered_from.as_ref(), Some(&session.id));
    assert_eq!(recovered.status, Some(SessionStatus::Open));
    assert_eq!(recovered.customer_email.as_deref(), Some("sam@example.com"));
    assert_eq!(
        client.list_line_items(&new_id, None).await.unwrap()[0].quantity,
        Some(3)
    );
}

/// A new hosted session on the platform account.
async fn new_session(client: &StripeClient, price: &str) -> SessionId {
    let none = RequestOptions {
        account: None,
        idempotency_key: None,
    };
    client
        .create_checkout_session(&Harness::session_form(&[(price, 1)]), none)
        .await
        .unwrap()
        .id
}

/// One page of `GET /v1/events` through the bundle's client, with these query parameters.
async fn list_events(client: &StripeClient, query: &[(&str, &str)]) -> List<Event> {
    let mut form = Form::new();
    for (key, value) in query {
        form.push(*key, value);
    }
    client
        .list_events(&form, None)
        .await
        .unwrap_or_else(|e| panic!("{query:?}: {e}"))
}

fn event_ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.id.to_string()).collect()
}

fn event_types(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

/// The id of the session an event is about.
fn session_of(event: &Event) -> String {
    event.object_ref().unwrap().id.unwrap()
}

#[tokio::test]
async fn the_event_list_filters_by_type_and_created_before_paging() {
    let h = Harness::start().await;
    let client = h.client(KEY);
    let first = new_session(&client, "price_mug").await;
    let (status, _) = h
        .act(
            &first,
            &[
                ("action", "pay-delayed"),
                ("email", "ada@example.com"),
                ("delayed_outcome", "succeeded"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let early = list_events(&client, &[("limit", "100")]).await.data;
    assert_eq!(early.len(), 2);
    // The later events are created at a later second than every earlier one.
    let last_early = early.iter().map(|e| e.created).max().unwrap();
    while unix_now() <= last_early {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = new_session(&client, "price_tea").await;
    let (status, _) = h.act(&second, &[("action", "expire")]).await;
    assert_eq!(status, 200);
    let third = new_session(&client, "price_poster").await;
    let (status, _) = h
        .act(
            &third,
            &[
                ("action", "pay-delayed"),
                ("email", "bo@example.com"),
                ("delayed_outcome", "failed"),
            ],
        )
        .await;
    assert_eq!(status, 303);

    let all = list_events(&client, &[("limit", "100")]).await;
    assert!(!all.has_more);
    let all = all.data;
    assert_eq!(
        event_types(&all),
        [
            "checkout.session.async_payment_failed",
            "checkout.session.completed",
            "checkout.session.expired",
            "checkout.session.async_payment_succeeded",
            "checkout.session.completed",
        ],
        "newest first"
    );
    let ids = event_ids(&all);
    let pick = |at: &[usize]| at.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>();
    let where_ = |keep: &dyn Fn(&Event) -> bool| {
        all.iter()
            .filter(|e| keep(e))
            .map(|e| e.id.to_string())
            .collect::<Vec<_>>()
    };

    // types[]: any of two types, interleaved with events of other types.
    let two_types = [
        ("types[]", "checkout.session.completed"),
        ("types[]", "checkout.session.expired"),
    ];
    let mut query = two_types.to_vec();
    query.push(("limit", "100"));
    let listed = list_events(&client, &query).await.data;
    assert_eq!(event_ids(&listed), pick(&[1, 2, 4]));
    assert_eq!(session_of(&listed[0]), third.as_str());
    assert_eq!(session_of(&listed[2]), first.as_str());

    // type: exact, or a group with a trailing `.*` that ends on a dot.
    for (pattern, expected) in [
        ("checkout.session.*", pick(&[0, 1, 2, 3, 4])),
        ("checkout.*", pick(&[0, 1, 2, 3, 4])),
        ("checkout.session.expired", pick(&[2])),
        ("payment_intent.*", vec![]),
        ("checkout.sess.*", vec![]),
        ("checkout.session", vec![]),
    ] {
        let listed = list_events(&client, &[("type", pattern), ("limit", "100")]).await;
        assert_eq!(event_ids(&listed.data), expected, "type={pattern}");
    }

    // created bounds, in unix seconds, each splitting the list in two non-empty parts.
    let first_late = all[..3].iter().map(|e| e.created).min().unwrap();
    assert!(first_late > last_early);
    let (late, early_s) = (first_late.to_string(), last_early.to_string());
    for (key, bound, expected) in [
        ("created[gte]", late.as_str(), pick(&[0, 1, 2])),
        ("created[lt]", late.as_str(), pick(&[3, 4])),
        ("created[gt]", early_s.as_str(), pick(&[0, 1, 2])),
        ("created[lte]", early_s.as_str(), pick(&[3, 4])),
    ] {
        let listed = list_events(&client, &[(key, bound), ("limit", "100")]).await;
        assert_eq!(event_ids(&listed.data), expected, "{key}={bound}");
    }
    let exact = list_events(&client, &[("created", early_s.as_str()), ("limit", "100")]).await;
    assert_eq!(
        event_ids(&exact.data),
        where_(&|e| e.created == last_early),
        "created={last_early}"
    );
    assert!(!exact.data.is_empty());
    let between = list_events(
        &client,
        &[
            ("created[gte]", early_s.as_str()),
            ("created[lt]", late.as_str()),
            ("type", "checkout.session.completed"),
        ],
    )
    .await;
    assert_eq!(
        event_ids(&between.data),
        where_(&|e| e.created == last_early && e.kind.as_str() == "checkout.session.completed"),
        "bounds and type together"
    );

    // Paging a filtered list: has_more and starting_after count only what the filter keeps.
    let mut query = two_types.to_vec();
    query.push(("limit", "2"));
    let page = list_events(&client, &query).await;
    assert_eq!(event_ids(&page.data), pick(&[1, 2]));
    assert!(page.has_more);
    let cursor = page.data[1].id.to_string();
    query.push(("starting_after", cursor.as_str()));
    let page = list_events(&client, &query).await;
    assert_eq!(event_ids(&page.data), pick(&[4]));
    assert!(!page.has_more, "nothing the filter keeps is left");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = two_types.to_vec();
        query.push(("limit", "1"));
        if let Some(after) = &cursor {
            query.push(("starting_after", after.as_str()));
        }
        let page = list_events(&client, &query).await;
        assert_eq!(page.data.len(), 1);
        seen.extend(event_ids(&page.data));
        if !page.has_more {
            break;
        }
        cursor = seen.last().cloned();
    }
    assert_eq!(seen, pick(&[1, 2, 4]));
}

#[tokio::test]
async fn bad_event_filters_answer_stripes_400_with_the_param() {
    let h = Harness::start().await;
    let client = h.client(KEY);
    for (query, blamed) in [
        (vec![("created[gte]", "yesterday")], "created[gte]"),
        (vec![("created[lt]", "1.5")], "created[lt]"),
        (vec![("created", "now")], "created"),
        (
            vec![
                ("type", "checkout.session.*"),
                ("types[]", "checkout.session.expired"),
            ],
            "types",
        ),
    ] {
        let mut form = Form::new();
        for (key, value) in &query {
            form.push(*key, value);
        }
        let refused = client.list_events(&form, None).await.unwrap_err();
        assert!(
            matches!(
                &refused,
                StripeError::Api { status: 400, kind: ErrorKind::InvalidRequest, param: Some(p), .. }
                    if p == blamed
            ),
            "{query:?}: {refused:?}"
        );
    }
    let refused = client
        .list_events(Form::new().push("created[gte]", "soon"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StripeError::Api { code: Some(c), .. } if c == "parameter_invalid_integer"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn withheld_webhooks_stay_in_the_event_list_and_are_never_sent() {
    let h = Harness::start().await;
    let client = h.client(KEY);
    let paid = new_session(&client, "price_mug").await;
    let (status, _, page) = call(
        http::Request::get(format!("{}/c/pay/{paid}", h.url))
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains(r#"<input type="checkbox" id="withhold" name="withhold">"#),
        "the hosted page offers the switch: {page}"
    );

    let withhold = ("withhold", "on");
    let email = ("email", "ada@example.com");
    let (status, _) = h.act(&paid, &[("action", "pay"), email, withhold]).await;
    assert_eq!(status, 303);
    let failed = new_session(&client, "price_tea").await;
    let (status, _) = h
        .act(
            &failed,
            &[
                ("action", "pay-delayed"),
                email,
                ("delayed_outcome", "failed"),
                withhold,
                ("duplicate", "on"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let settled = new_session(&client, "price_poster").await;
    let (status, _) = h
        .act(
            &settled,
            &[
                ("action", "pay-delayed"),
                email,
                ("delayed_outcome", "later"),
                withhold,
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (status, _) = h.settle(&settled, "succeeded").await;
    assert_eq!(status, 303, "settled later, still withheld");
    let expired = new_session(&client, "price_mug").await;
    let (status, _) = h.act(&expired, &[("action", "expire"), withhold]).await;
    assert_eq!(status, 200);

    let listed = list_events(&client, &[("limit", "100")]).await.data;
    let recorded: Vec<(String, &str)> = listed
        .iter()
        .map(|e| (session_of(e), e.kind.as_str()))
        .collect();
    let s = |id: &SessionId| id.to_string();
    assert_eq!(
        recorded,
        [
            (s(&expired), "checkout.session.expired"),
            (s(&settled), "checkout.session.async_payment_succeeded"),
            (s(&settled), "checkout.session.completed"),
            (s(&failed), "checkout.session.async_payment_failed"),
            (s(&failed), "checkout.session.completed"),
            (s(&paid), "checkout.session.completed"),
        ],
        "recorded for GET /v1/events exactly as when sent"
    );

    // A payment without the switch is delivered, and it is the only webhook the endpoint got:
    // the withheld events, recorded before it, were not merely late.
    let sent = new_session(&client, "price_tea").await;
    let (status, _) = h.act(&sent, &[("action", "pay"), email]).await;
    assert_eq!(status, 303);
    let received = h.webhooks(1).await;
    assert_eq!(types(&received), ["checkout.session.completed"]);
    assert_eq!(received[0]["data"]["object"]["id"], sent.as_str());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.endpoint.received_requests().await.unwrap().len(),
        1,
        "nothing withheld arrives later"
    );
}
