//! The AWS SDK configuration every function shares.

use std::time::Duration;

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, retry::RetryConfig, timeout::TimeoutConfig};
use aws_smithy_http_client::{
    Builder,
    tls::{self, rustls_provider::CryptoMode},
};

/// Loads region, credentials and `AWS_ENDPOINT_URL` the standard way, over the bundle's one
/// TLS stack (rustls with ring) and with timeouts short enough that a stalled DynamoDB call
/// fails the invocation (so Stripe or the stream retries) instead of eating the Lambda timeout.
pub async fn sdk_config() -> SdkConfig {
    let http_client = Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}
