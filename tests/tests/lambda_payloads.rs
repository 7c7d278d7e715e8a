//! API Gateway payloads lambda_http cannot turn into a request, through the functions' entry
//! points (`lambda::dispatch_webhook`, `lambda::dispatch`).
//!
//! Regression (found by fuzzing): lambda_http's conversion unwraps the base64 decoding of the
//! body, the URL it builds from the Host header and `rawPath`, and the URI it adds the raw
//! query to, so each of these payloads panicked the function. They are answered
//! `400 malformed_request` before the conversion, and nothing is stored or asked of Stripe.

use checkout_core::lambda::{self, Trigger};
use checkout_core::stripe::StripeMode;
use checkout_core::webhook::{self, WebhookConfig, WebhookReceiver, WebhookSecrets};
use integration_tests::fulfillment::Harness;
use integration_tests::*;
use lambda_http::{Context, LambdaEvent};
use serde_json::Value;

/// The four payloads that panicked, each a well-formed one with one field broken.
fn malformed(
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
) -> Vec<(&'static str, Value)> {
    let valid = || api_gateway_v2_event(method, path, query, body);
    let mut base64 = valid();
    base64["isBase64Encoded"] = true.into();
    base64["body"] = "not base64 at all!".into();
    let mut host = valid();
    host["headers"]["host"] = "bad host.example".into();
    let mut raw_query = valid();
    raw_query["rawQueryString"] = r#"a="<b>""#.into();
    let mut raw_path = valid();
    raw_path["rawPath"] = path.trim_start_matches('/').into();
    vec![
        ("isBase64Encoded with a body that is not base64", base64),
        ("a Host header with a space", host),
        ("a rawQueryString that is not a URI query", raw_query),
        ("a rawPath without its leading /", raw_path),
    ]
}

fn assert_malformed(case: &str, answer: &Value) {
    assert_eq!(answer["statusCode"], 400, "{case}: {answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().expect("a body")).unwrap();
    assert_eq!(body["error"]["code"], "malformed_request", "{case}: {body}");
}

#[tokio::test]
async fn the_webhook_answers_400_to_a_payload_api_gateway_never_sends() {
    let client = dynamodb().await;
    let table = events_table(&client).await;
    let receiver = WebhookReceiver::new(
        WebhookConfig {
            secrets: WebhookSecrets::parse(WEBHOOK_SECRET).unwrap(),
            tolerance_secs: webhook::DEFAULT_TOLERANCE_SECS,
            events_table: table.clone(),
            retention_days: 30,
            mode: StripeMode::Test,
        },
        client.clone(),
    );
    let body = event_json(
        "evt_malformed_payload",
        "checkout.session.completed",
        serde_json::json!({"id": "cs_test_a1", "object": "checkout.session"}),
    );

    for (case, payload) in malformed("POST", "/webhooks/stripe", "", Some(&body)) {
        let answer =
            lambda::dispatch_webhook(&receiver, LambdaEvent::new(payload, Context::default()))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));

        assert_malformed(case, &answer);
    }
    assert_eq!(item_count(&client, &table).await, 0, "nothing stored");
}

#[tokio::test]
async fn the_success_page_answers_400_to_a_payload_api_gateway_never_sends() {
    let h = Harness::new().await;

    for (case, payload) in malformed("GET", "/checkout/complete", "session_id=cs_test_a1", None) {
        let trigger: Trigger = serde_json::from_value(payload).unwrap();
        let answer = lambda::dispatch(&*h.app, LambdaEvent::new(trigger, Context::default()))
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));

        assert_malformed(case, &answer);
    }
    assert_eq!(h.stripe_calls().await, 0, "Stripe not asked");
    assert_eq!(item_count(&h.dynamodb, &h.orders).await, 0, "no order");
}
