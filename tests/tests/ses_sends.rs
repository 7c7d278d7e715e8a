//! `SesMailer::send` over the bundle's own SDK configuration (its transport, timeouts and
//! retry policy), against an SES stand-in on loopback that answers late or refuses.
//!
//! Regression (found by `make storm`): SendEmail has no idempotency key, and the SDK's
//! standard retry sent an email again after an unanswered attempt, so a customer whose first
//! send SES took but answered late got two confirmations, against the "unknown counts as
//! sent" policy. Every send is now one attempt; the consumer's retry owns a refusal.

use std::time::{Duration, Instant};

use checkout_core::aws;
use checkout_core::mail::{Email, MailConfig, MailError, Mailer, SesMailer};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The bundle's SES client (as `aws::sdk_config` builds it for every function), at `endpoint`.
async fn bundle_ses_at(endpoint: &str) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::config::Builder::from(&aws::sdk_config().await)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

fn email() -> Email {
    Email {
        from_name: "Demo Shop".into(),
        from_address: "orders@shop.example".parse().unwrap(),
        to: "jenny@example.com".parse().unwrap(),
        subject: "Demo Shop: your order is confirmed".into(),
        html: "<p>Thank you</p>".into(),
        text: "Thank you".into(),
        headers: Vec::new(),
    }
}

fn mailer(client: aws_sdk_sesv2::Client) -> SesMailer {
    SesMailer::new(
        MailConfig {
            from_address: "orders@shop.example".parse().unwrap(),
            from_name: "Demo Shop".into(),
            configuration_set: None,
        },
        client,
    )
}

#[tokio::test]
async fn a_send_ses_answers_too_late_is_unknown_and_never_sent_twice() {
    let ses = MockServer::start().await;
    // Taken, but answered after the SDK's 3 s attempt timeout.
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"MessageId": "late"}))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&ses)
        .await;
    let mailer = mailer(bundle_ses_at(&ses.uri()).await);

    let started = Instant::now();
    let result = mailer.send(&email()).await;

    assert!(matches!(result, Err(MailError::Unknown(_))), "{result:?}");
    let sends = ses.received_requests().await.unwrap().len();
    assert_eq!(sends, 1, "one attempt: a second would be a second email");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the attempt timeout ended it"
    );
}

#[tokio::test]
async fn a_throttled_send_is_unavailable_after_one_attempt_for_the_consumer_to_retry() {
    let ses = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-amzn-ErrorType", "TooManyRequestsException")
                .set_body_json(json!({"message": "Maximum sending rate exceeded."})),
        )
        .mount(&ses)
        .await;
    let mailer = mailer(bundle_ses_at(&ses.uri()).await);

    let result = mailer.send(&email()).await;

    assert!(
        matches!(result, Err(MailError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(ses.received_requests().await.unwrap().len(), 1);
}
