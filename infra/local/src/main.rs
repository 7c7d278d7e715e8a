//! The local stack: serves every HTTP route of the bundle on loopback, at API Gateway's paths,
//! from the same handlers the Lambda binaries run, against the DynamoDB endpoint in
//! `AWS_ENDPOINT_URL` (moto, started by `make dev`).

mod server;

use checkout_core::{
    aws,
    config::{self, ConfigError, ProcessEnv},
    store::{DynamoDb, tables},
    webhook::{WebhookConfig, WebhookReceiver},
};
use tracing_subscriber::EnvFilter;

/// Everything the bundle's routes need, built once at start like each Lambda's cold start.
pub struct Bundle {
    pub webhook: WebhookReceiver,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let port: u16 = config::parsed_or(&ProcessEnv, "PORT", 9000)?;
    let webhook_config = WebhookConfig::from_env(&ProcessEnv)?;
    if config::optional(&ProcessEnv, "AWS_ENDPOINT_URL").is_none() {
        return Err(ConfigError::Missing("AWS_ENDPOINT_URL").into());
    }
    let dynamodb = DynamoDb::new(&aws::sdk_config().await);
    tables::ensure(
        &dynamodb,
        webhook_config.events_table.as_str(),
        &tables::EVENTS,
    )
    .await?;
    tracing::info!(table = %webhook_config.events_table, "events table ready");

    let bundle = Bundle {
        webhook: WebhookReceiver::new(webhook_config, dynamodb),
    };
    server::serve(bundle, port).await
}
