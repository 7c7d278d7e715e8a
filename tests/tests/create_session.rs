//! `POST /checkout/sessions` through the real handler and Stripe client, against a fake Stripe
//! at the HTTP boundary (wiremock) and moto's DynamoDB.

use checkout_core::{
    checkout,
    store::SessionStore,
    stripe::{API_VERSION, Mode},
};
use integration_tests::checkout::*;
use integration_tests::*;
use lambda_http::Body;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

/// content type, body, extra headers, expected status, expected `param`.
type BadRequest<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16, &'a str);

const ONE_ITEM: &str = r#"{"line_items":[{"price":"price_A","quantity":2}],"mode":"payment"}"#;

#[tokio::test]
async fn a_hosted_session_sends_the_exact_form_and_is_recorded() {
    let h = Harness::new().await;
    h.mock_create(created("cs_test_hosted")).await;
    let request = r#"{"line_items":[{"price":"price_A","quantity":2},{"price":"price_B","quantity":1}],"mode":"payment","ui_mode":"hosted",
        "customer_email":"jenny@example.com","locale":"fr","metadata":{"cart":"42"},"client_reference_id":"user-42"}"#;

    let before = unix_now();
    let response = checkout::handle(
        &h.creator(h.config()),
        checkout_request("application/json", request, &[]),
    )
    .await;

    assert_eq!(response.status(), 201, "{}", body_json(&response));
    let answer = body_json(&response);
    assert_eq!(answer["id"], "cs_test_hosted");
    assert_eq!(
        answer["url"],
        "https://checkout.stripe.com/c/pay/cs_test_hosted"
    );
    assert!(answer.get("client_secret").is_none());
    let sent = h.stripe_requests().await;
    assert_eq!(sent.len(), 1);
    let stripe = &sent[0];
    assert_eq!(stripe.headers["authorization"], "Bearer sk_test_fake");
    assert_eq!(stripe.headers["stripe-version"], API_VERSION);
    assert!(
        stripe.headers["idempotency-key"]
            .to_str()
            .unwrap()
            .starts_with("create-session:")
    );
    assert!(!stripe.headers.contains_key("stripe-account"));
    let mut form = form_pairs(&stripe.body);
    let expires_at: i64 = form
        .iter()
        .find(|(k, _)| k == "expires_at")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!((before + 3600..=unix_now() + 3600).contains(&expires_at));
    form.retain(|(k, _)| k != "expires_at");
    let expected: Vec<(String, String)> = [
        ("line_items[0][price]", "price_A"),
        ("line_items[0][quantity]", "2"),
        ("line_items[1][price]", "price_B"),
        ("line_items[1][quantity]", "1"),
        ("mode", "payment"),
        ("ui_mode", "hosted"),
        ("success_url", SUCCESS_URL),
        ("cancel_url", "https://shop.example/cart"),
        ("customer_email", "jenny@example.com"),
        ("locale", "fr"),
        ("client_reference_id", "user-42"),
        ("consent_collection[promotions]", "auto"),
        ("allow_promotion_codes", "true"),
        ("after_expiration[recovery][enabled]", "true"),
        ("after_expiration[recovery][allow_promotion_codes]", "true"),
        ("metadata[cart]", "42"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    assert_eq!(form, expected);

    let record = SessionStore::new(h.table.clone(), h.dynamodb.clone())
        .get(&"cs_test_hosted".parse().unwrap())
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(record.customer_email.as_deref(), Some("jenny@example.com"));
    assert_eq!(record.items.len(), 2);
    assert_eq!(record.mode, Mode::Payment);
    assert_eq!(record.account, None);
}

#[tokio::test]
async fn an_embedded_session_uses_return_url_and_answers_the_client_secret() {
    let h = Harness::new().await;
    h.mock_create(
        ResponseTemplate::new(200).set_body_json(session_json("cs_test_embedded", "embedded")),
    )
    .await;
    let mut config = h.config();
    config.collect_promotions_consent = false;
    config.recovery = false;
    config.allow_promotion_codes = false;
    let request = r#"{"line_items":[{"price":"price_R","quantity":1},{"price":"price_O","quantity":1}],"mode":"subscription","ui_mode":"embedded","customer":"cus_1"}"#;

    // A raw customer comes from the merchant's server, with its key.
    let response = checkout::handle(
        &h.creator(config),
        checkout_request(
            "application/json",
            request,
            &[("authorization", &format!("Bearer {MERCHANT_KEY}"))],
        ),
    )
    .await;

    assert_eq!(response.status(), 201);
    assert_eq!(
        body_json(&response)["client_secret"],
        "cs_test_embedded_secret_abc"
    );
    let form = form_pairs(&h.stripe_requests().await[0].body);
    let keys: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "line_items[0][price]",
            "line_items[0][quantity]",
            "line_items[1][price]",
            "line_items[1][quantity]",
            "mode",
            "ui_mode",
            "return_url",
            "expires_at",
            "customer"
        ]
    );
    assert!(
        form.contains(&("mode".into(), "subscription".into())),
        "mixed carts pass through"
    );
    assert!(form.contains(&("return_url".into(), RETURN_URL.into())));
}

#[tokio::test]
async fn a_retried_500_reuses_the_idempotency_key_and_makes_one_session() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(stripe_error(500, "api_error", "boom"))
        .up_to_n_times(1)
        .mount(&h.stripe)
        .await;
    h.mock_create(created("cs_test_retried")).await;

    let response = checkout::handle(
        &h.creator(h.config()),
        checkout_request(
            "application/json",
            ONE_ITEM,
            &[("idempotency-key", "order-77")],
        ),
    )
    .await;

    assert_eq!(response.status(), 201);
    let sent = h.stripe_requests().await;
    assert_eq!(sent.len(), 2);
    let keys: Vec<_> = sent
        .iter()
        .map(|r| r.headers["idempotency-key"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "create-session:caller:order-77",
            "create-session:caller:order-77"
        ]
    );
    assert_eq!(sent[0].body, sent[1].body);
    assert_eq!(item_count(&h.dynamodb, &h.table).await, 1);
}

#[tokio::test]
async fn rate_limits_are_retried_with_backoff_until_stripe_says_stop() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(stripe_error(
            429,
            "invalid_request_error",
            "Too many requests",
        ))
        .up_to_n_times(2)
        .mount(&h.stripe)
        .await;
    h.mock_create(created("cs_test_after_429")).await;
    let response = checkout::handle(
        &h.creator(h.config()),
        checkout_request("application/json", ONE_ITEM, &[]),
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(h.stripe_requests().await.len(), 3);

    let h = Harness::new().await;
    h.mock_create(stripe_error(
        429,
        "invalid_request_error",
        "Too many requests",
    ))
    .await;
    let response = checkout::handle(
        &h.creator(h.config()),
        checkout_request("application/json", ONE_ITEM, &[]),
    )
    .await;
    assert_eq!(response.status(), 503, "rate limited after every retry");
    assert_eq!(h.stripe_requests().await.len(), 3, "1 try + max_retries");

    let h = Harness::new().await;
    h.mock_create(
        stripe_error(500, "api_error", "do not retry")
            .insert_header("Stripe-Should-Retry", "false"),
    )
    .await;
    let response = checkout::handle(
        &h.creator(h.config()),
        checkout_request("application/json", ONE_ITEM, &[]),
    )
    .await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        h.stripe_requests().await.len(),
        1,
        "Stripe-Should-Retry: false is honoured"
    );
}

#[tokio::test]
async fn stripe_4xx_are_not_retried_and_map_to_clear_errors() {
    let cases = [
        (ResponseTemplate::new(400).set_body_json(json!({"error": {"type": "invalid_request_error", "message": "No such price: 'price_A'", "param": "line_items[0][price]"}})), 400, "invalid_request"),
        (stripe_error(401, "invalid_request_error", "Invalid API Key provided"), 502, "stripe_unavailable"),
        (stripe_error(400, "idempotency_error", "Keys for idempotent requests can only be used with the same parameters"), 409, "idempotency_conflict"),
    ];
    for (answer, status, code) in cases {
        let h = Harness::new().await;
        h.mock_create(answer).await;
        let response = checkout::handle(
            &h.creator(h.config()),
            checkout_request("application/json", ONE_ITEM, &[]),
        )
        .await;
        assert_eq!(response.status(), status, "{code}");
        assert_eq!(body_json(&response)["error"]["code"], code);
        assert_eq!(h.stripe_requests().await.len(), 1, "{code}: not retried");
        assert_eq!(item_count(&h.dynamodb, &h.table).await, 0);
        assert!(!String::from_utf8_lossy(response.body()).contains("sk_test_fake"));
    }
}

#[tokio::test]
async fn bad_requests_get_a_400_naming_the_field_and_stripe_is_not_called() {
    let h = Harness::new().await;
    h.mock_create(created("cs_never")).await;
    let creator = h.creator(h.config());
    let cases: [BadRequest; 11] = [
        (
            "application/json",
            r#"{"line_items":[{"price":"price_A","quantity":1,"price_data":{"unit_amount":1}}],"mode":"payment"}"#,
            &[],
            400,
            "line_items[0].price_data",
        ),
        (
            "application/json",
            r#"{"line_items":[{"price":"price_A","quantity":1}],"mode":"payment","amount_total":1}"#,
            &[],
            400,
            "amount_total",
        ),
        (
            "application/json",
            r#"{"line_items":[{"price":"price_A","quantity":11}],"mode":"payment"}"#,
            &[],
            400,
            "line_items[0].quantity",
        ),
        (
            "application/json",
            r#"{"line_items":[],"mode":"payment"}"#,
            &[],
            400,
            "line_items",
        ),
        (
            "application/json",
            r#"{"line_items":[{"price":"price_A","quantity":1}],"mode":"payment","customer_email":"nope"}"#,
            &[],
            400,
            "customer_email",
        ),
        (
            "application/json",
            r#"{"line_items":[{"price":"price_A","quantity":1}],"mode":"payment","account":"acct_1Stranger"}"#,
            &[],
            400,
            "account",
        ),
        ("application/json", "{", &[], 400, "body"),
        (
            "application/json",
            ONE_ITEM,
            &[("idempotency-key", "has spaces")],
            400,
            "Idempotency-Key",
        ),
        (
            "application/x-www-form-urlencoded",
            "price=price_A&ui_mode=embedded",
            &[],
            400,
            "ui_mode",
        ),
        ("text/plain", ONE_ITEM, &[], 415, ""),
        ("application/json", &"x".repeat(70_000), &[], 413, ""),
    ];
    // curl's `-d '{…}'` without `-H 'Content-Type: application/json'` sends JSON as a form.
    for content_type in ["application/x-www-form-urlencoded", "text/plain"] {
        let response =
            checkout::handle(&creator, checkout_request(content_type, ONE_ITEM, &[])).await;
        assert_eq!(response.status(), 415, "{content_type}");
        assert_eq!(
            body_json(&response)["error"]["code"],
            "unsupported_media_type"
        );
        let message = body_json(&response)["error"]["message"].to_string();
        assert!(
            message.contains("Content-Type: application/json"),
            "the answer says what to send: {message}"
        );
    }
    let too_large = checkout::handle(
        &creator,
        checkout_request("application/json", &"x".repeat(70_000), &[]),
    )
    .await;
    assert!(
        body_json(&too_large)["error"]["message"]
            .to_string()
            .contains("64 KB limit (65536 bytes)"),
        "the limit the README gives (64 KB): {}",
        body_json(&too_large)
    );
    for (content_type, body, headers, status, param) in cases {
        let response =
            checkout::handle(&creator, checkout_request(content_type, body, headers)).await;
        assert_eq!(response.status(), status, "{body:.80}");
        if !param.is_empty() {
            assert_eq!(body_json(&response)["error"]["param"], param, "{body:.80}");
        }
    }
    let get = http::Request::builder()
        .method("GET")
        .uri("/checkout/sessions")
        .body(Body::Empty)
        .unwrap();
    let not_post = checkout::handle(&creator, get).await;
    assert_eq!(not_post.status(), 405);
    assert_eq!(body_json(&not_post)["error"]["code"], "method_not_allowed");
    assert!(
        h.stripe_requests().await.is_empty(),
        "Stripe is not called for invalid input"
    );
}

#[tokio::test]
async fn connect_sessions_carry_the_account_header_and_a_server_side_fee() {
    let h = Harness::new().await;
    Mock::given(method("GET"))
        .and(path("/v1/prices/price_A"))
        .and(header("stripe-account", "acct_1Merchant"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "price_A", "object": "price", "currency": "eur", "unit_amount": 1000, "type": "one_time"})))
        .mount(&h.stripe)
        .await;
    h.mock_create(created("cs_test_connect")).await;
    let request = r#"{"line_items":[{"price":"price_A","quantity":2}],"mode":"payment","account":"acct_1Merchant"}"#;

    let response = checkout::handle(
        &h.creator(h.config()),
        checkout_request("application/json", request, &[]),
    )
    .await;

    assert_eq!(response.status(), 201, "{}", body_json(&response));
    let sent = h.stripe_requests().await;
    let create = sent.iter().find(|r| r.method.as_str() == "POST").unwrap();
    assert_eq!(create.headers["stripe-account"], "acct_1Merchant");
    // 2.5 % of 2 x 1000 = 50, plus 30 fixed.
    assert!(form_pairs(&create.body).contains(&(
        "payment_intent_data[application_fee_amount]".into(),
        "80".into()
    )));
    let record = SessionStore::new(h.table.clone(), h.dynamodb.clone())
        .get(&"cs_test_connect".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.account.unwrap().as_str(), "acct_1Merchant");

    let h = Harness::new().await;
    h.mock_create(created("cs_test_connect_sub")).await;
    let request = r#"{"line_items":[{"price":"price_R","quantity":1}],"mode":"subscription","account":"acct_1Merchant"}"#;
    let response = checkout::handle(
        &h.creator(h.config()),
        checkout_request("application/json", request, &[]),
    )
    .await;
    assert_eq!(response.status(), 201);
    let sent = h.stripe_requests().await;
    assert_eq!(
        sent.len(),
        1,
        "no price lookup: Stripe applies a percent to subscriptions"
    );
    assert!(form_pairs(&sent[0].body).contains(&(
        "subscription_data[application_fee_percent]".into(),
        "2.5".into()
    )));
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let h = Harness::new().await;
    h.mock_create(created("cs_test_cors")).await;
    let creator = h.creator(h.config());

    let allowed = checkout::handle(
        &creator,
        checkout_request("application/json", ONE_ITEM, &[("origin", SHOP)]),
    )
    .await;
    assert_eq!(allowed.status(), 201);
    assert_eq!(allowed.headers()["access-control-allow-origin"], SHOP);

    let refused = checkout::handle(
        &creator,
        checkout_request(
            "application/json",
            ONE_ITEM,
            &[("origin", "https://evil.example")],
        ),
    )
    .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(body_json(&refused)["error"]["code"], "origin_not_allowed");
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );

    let preflight = |origin: &str| {
        http::Request::builder()
            .method("OPTIONS")
            .uri("/checkout/sessions")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::Empty)
            .unwrap()
    };
    let ok = checkout::handle(&creator, preflight(SHOP)).await;
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], SHOP);
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("idempotency-key")
    );
    let no = checkout::handle(&creator, preflight("https://shop.example.evil.example")).await;
    assert_eq!(no.status(), 403);
    assert_eq!(
        h.stripe_requests().await.len(),
        1,
        "only the allowed origin reached Stripe"
    );
}

#[tokio::test]
async fn an_html_form_post_is_redirected_to_checkout() {
    let h = Harness::new().await;
    h.mock_create(created("cs_test_form")).await;

    let response = checkout::handle(
        &h.creator(h.config()),
        checkout_request(
            "application/x-www-form-urlencoded",
            "price=price_A&quantity=1",
            &[("origin", SHOP)],
        ),
    )
    .await;

    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "https://checkout.stripe.com/c/pay/cs_test_form"
    );
    let form = form_pairs(&h.stripe_requests().await[0].body);
    assert!(form.contains(&("line_items[0][price]".into(), "price_A".into())));
    assert!(form.contains(&("mode".into(), "payment".into())));
}

#[tokio::test]
async fn stripe_unreachable_is_a_503() {
    let h = Harness::new().await;
    let mut config = h.config();
    config.stripe.api_base = "http://127.0.0.1:9".into();
    let response = checkout::handle(
        &h.creator(config),
        checkout_request("application/json", ONE_ITEM, &[]),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert_eq!(body_json(&response)["error"]["code"], "stripe_unavailable");
}

/// Regression: the caller's `Idempotency-Key` was recorded before checks that refuse the
/// request (a token's `client_reference_id` contradicted, an account not in
/// `CONNECT_ACCOUNTS`), so the corrected retry with the same key got `409
/// idempotency_conflict`. A refused request releases its key: nothing stays in the requests
/// table, Stripe is not called, and the corrected retry is answered.
#[tokio::test]
async fn a_refused_request_releases_its_idempotency_key_for_the_corrected_retry() {
    let h = Harness::new().await;
    h.mock_create(created("cs_test_corrected")).await;
    let price = json!({"id": "price_A", "object": "price", "currency": "eur", "unit_amount": 1500, "type": "one_time", "active": true,
                       "product": {"id": "prod_A", "object": "product", "name": "Mug"}});
    Mock::given(method("GET"))
        .and(path("/v1/prices/price_A"))
        .respond_with(ResponseTemplate::new(200).set_body_json(price))
        .mount(&h.stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "pi_corrected", "object": "payment_intent", "amount": 3000, "currency": "eur",
            "status": "requires_payment_method", "client_secret": "pi_corrected_secret", "metadata": {}
        })))
        .mount(&h.stripe)
        .await;
    let creator = h.creator(h.config());
    let token = checkout_core::callers::mint(
        TOKEN_SECRET.as_bytes(),
        &checkout_core::callers::CustomerClaims {
            customer: "cus_token".parse().unwrap(),
            client_reference_id: Some("user-42".into()),
            exp: unix_now() + 600,
        },
    );
    let session_with = |extra: &str| {
        format!(r#"{{"line_items":[{{"price":"price_A","quantity":2}}],"mode":"payment"{extra}}}"#)
    };
    let cases: Vec<(&str, &str, String, String, &str)> = vec![
        (
            "/checkout/sessions",
            "key-reference",
            session_with(&format!(
                r#","customer_token":"{token}","client_reference_id":"user-7""#
            )),
            session_with(&format!(r#","customer_token":"{token}""#)),
            "client_reference_id",
        ),
        (
            "/checkout/sessions",
            "key-account",
            session_with(r#","account":"acct_1NotConnected""#),
            session_with(""),
            "account",
        ),
        (
            "/payments",
            "key-payment-account",
            r#"{"line_items":[{"price":"price_A","quantity":2}],"account":"acct_1NotConnected"}"#
                .into(),
            r#"{"line_items":[{"price":"price_A","quantity":2}]}"#.into(),
            "account",
        ),
    ];
    let mut recorded = 0;
    for (route, key, refused, corrected, param) in cases {
        let call = |body: &str| {
            let mut request =
                checkout_request("application/json", body, &[("idempotency-key", key)]);
            *request.uri_mut() = route.parse().unwrap();
            checkout::handle(&creator, request)
        };
        let stripe_before = h.stripe_requests().await.len();

        let response = call(&refused).await;

        assert_eq!(response.status(), 400, "{route} {key}");
        assert_eq!(
            body_json(&response)["error"]["param"],
            param,
            "{route} {key}"
        );
        assert_eq!(
            h.stripe_requests().await.len(),
            stripe_before,
            "{key}: no Stripe call"
        );
        assert_eq!(
            item_count(&h.dynamodb, &h.requests).await,
            recorded,
            "{key}: the refused request's key is released"
        );

        let retried = call(&corrected).await;

        assert_eq!(
            retried.status(),
            201,
            "{key}: the corrected retry with the same key is answered: {}",
            body_json(&retried)
        );
        recorded += 1;
        assert_eq!(item_count(&h.dynamodb, &h.requests).await, recorded);
    }
}
