//! The AWS SDK configuration every function shares, built from Lambda's environment.
//!
//! By hand rather than with `aws-config`'s loader: a Lambda function's region and
//! credentials are always in its environment (`AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, valid for the life of the execution
//! environment), so the loader's profile files, IMDS, SSO and STS web-identity providers
//! are code each binary carried and each cold start probed for nothing. The operator CLI
//! (`infra/ops`), which runs on a person's machine, keeps `aws-config` for its profiles.
//! The transport is [`http::SdkHttpClient`]: the bundle's one HTTP/1.1 stack and TLS
//! configuration, shared with the Stripe client.

mod http;

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_async::time::SystemTimeSource;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
pub use aws_types::SdkConfig;
use aws_types::region::Region;

pub use self::http::SdkHttpClient;

/// Region, credentials and `AWS_ENDPOINT_URL` from the environment, over the bundle's one
/// TLS stack, with timeouts short enough that a stalled DynamoDB call fails the invocation
/// (so Stripe or the stream retries) instead of eating the Lambda timeout. Without
/// credentials in the environment every call fails with "no credentials" (never a guess).
#[must_use]
#[expect(
    clippy::unused_async,
    reason = "kept async: callers await it, and a loader that must read (a file, IMDS) can come back without changing them"
)]
pub async fn sdk_config() -> SdkConfig {
    from_env(&|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

fn from_env(var: &dyn Fn(&str) -> Option<String>) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(
            var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .map(Region::new),
        )
        .http_client(SdkHttpClient::shared())
        .sleep_impl(TokioSleep::new())
        .time_source(SystemTimeSource::new())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3));
    if let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        let credentials = Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "env");
        builder = builder.credentials_provider(SharedCredentialsProvider::new(credentials));
    }
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(endpoint);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::ProvideCredentials;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[tokio::test]
    async fn reads_lambdas_environment() {
        let config = from_env(&env(&[
            ("AWS_REGION", "eu-west-3"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]));
        assert_eq!(config.region().map(Region::as_ref), Some("eu-west-3"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        let credentials = config
            .credentials_provider()
            .expect("credentials")
            .provide_credentials()
            .await
            .expect("credentials");
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.session_token(), Some("token"));
        assert_eq!(
            config
                .timeout_config()
                .and_then(TimeoutConfig::operation_timeout),
            Some(Duration::from_secs(8))
        );
    }

    #[test]
    fn no_credentials_no_provider_and_the_default_region_variable() {
        let config = from_env(&env(&[("AWS_DEFAULT_REGION", "us-east-1")]));
        assert!(config.credentials_provider().is_none());
        assert_eq!(config.region().map(Region::as_ref), Some("us-east-1"));
        assert!(config.endpoint_url().is_none());
    }
}
