//! Secrets from SSM Parameter Store (moto), as each function reads them at cold start.

use aws_sdk_ssm::types::ParameterType;
use checkout_core::{
    config::Source,
    secrets::{self, SecretError},
    webhook::WebhookConfig,
};
use integration_tests::*;

async fn secure_parameter(ssm: &aws_sdk_ssm::Client, value: &str) -> String {
    let name = format!("/{}/secret", unique_table("params"));
    ssm.put_parameter()
        .name(&name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .expect("put parameter");
    name
}

/// An SSM client whose endpoint refuses connections: proves no call is made.
fn unreachable_ssm() -> aws_sdk_ssm::Client {
    let config = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .http_client(checkout_core::aws::SdkHttpClient::shared())
        .build();
    aws_sdk_ssm::Client::from_conf(config)
}

#[tokio::test]
async fn secure_strings_fill_the_variables_their_parameter_names() {
    let ssm = ssm().await;
    let webhook_secret = secure_parameter(&ssm, "whsec_from_parameter_store").await;
    let stripe_key = secure_parameter(&ssm, "sk_test_from_parameter_store").await;
    let env = [
        ("STRIPE_WEBHOOK_SECRET_PARAMETER", webhook_secret.as_str()),
        ("STRIPE_SECRET_KEY_PARAMETER", stripe_key.as_str()),
        ("STRIPE_WEBHOOK_SECRET", "whsec_plain_value_is_overridden"),
        ("EVENTS_TABLE", "checkout-events"),
    ];
    let resolved = secrets::resolve(
        &ssm,
        env,
        &[
            "STRIPE_WEBHOOK_SECRET",
            "STRIPE_SECRET_KEY",
            "UNSUBSCRIBE_SECRET",
        ],
    )
    .await
    .expect("resolved");
    assert_eq!(
        resolved.get("STRIPE_SECRET_KEY").as_deref(),
        Some("sk_test_from_parameter_store")
    );
    assert_eq!(
        resolved.get("UNSUBSCRIBE_SECRET"),
        None,
        "no parameter named"
    );
    assert_eq!(
        resolved.get("EVENTS_TABLE").as_deref(),
        Some("checkout-events")
    );

    assert_eq!(
        resolved.get("STRIPE_WEBHOOK_SECRET").as_deref(),
        Some("whsec_from_parameter_store")
    );
    let config = WebhookConfig::from_env(&resolved).expect("config");
    assert!(!format!("{config:?}").contains("from_parameter_store"));
}

#[tokio::test]
async fn more_parameters_than_one_call_takes_are_all_read() {
    let ssm = ssm().await;
    const VARS: [&str; 12] = [
        "S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11",
    ];
    let mut names = Vec::new();
    for (i, _) in VARS.iter().enumerate() {
        names.push(secure_parameter(&ssm, &format!("value-{i}")).await);
    }
    let env: Vec<(String, String)> = VARS
        .iter()
        .zip(&names)
        .map(|(var, name)| (format!("{var}_PARAMETER"), name.clone()))
        .collect();
    struct Pairs(Vec<(String, String)>);
    impl Source for Pairs {
        fn get(&self, var: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| k == var)
                .map(|(_, v)| v.clone())
        }
    }
    let resolved = secrets::resolve(&ssm, Pairs(env), &VARS)
        .await
        .expect("resolved");
    for (i, var) in VARS.iter().enumerate() {
        assert_eq!(resolved.get(var), Some(format!("value-{i}")), "{var}");
    }
}

#[tokio::test]
async fn a_missing_or_unreadable_parameter_fails_the_cold_start_naming_it() {
    let ssm = ssm().await;
    let env = [("STRIPE_SECRET_KEY_PARAMETER", "/nowhere/stripe-secret-key")];
    let err = secrets::resolve(&ssm, env, &["STRIPE_SECRET_KEY"])
        .await
        .err()
        .expect("missing parameter");
    assert!(
        matches!(&err, SecretError::NotFound { var, parameter } if var == "STRIPE_SECRET_KEY" && parameter == "/nowhere/stripe-secret-key"),
        "{err}"
    );

    let err = secrets::resolve(&unreachable_ssm(), env, &["STRIPE_SECRET_KEY"])
        .await
        .err()
        .expect("SSM unreachable");
    assert!(matches!(err, SecretError::Ssm(_)), "{err}");
}

#[tokio::test]
async fn without_parameter_names_the_plain_environment_is_used_and_ssm_is_not_called() {
    let env = [
        ("STRIPE_WEBHOOK_SECRET", "whsec_plain"),
        ("STRIPE_WEBHOOK_SECRET_PARAMETER", " "),
    ];
    let resolved = secrets::resolve(&unreachable_ssm(), env, &["STRIPE_WEBHOOK_SECRET"])
        .await
        .expect("no SSM call");
    assert_eq!(
        resolved.get("STRIPE_WEBHOOK_SECRET").as_deref(),
        Some("whsec_plain")
    );
}
