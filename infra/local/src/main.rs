//! The local stack: serves every HTTP route of the bundle on loopback, at API Gateway's paths,
//! from the same handlers the Lambda binaries run, against the DynamoDB endpoint in
//! `AWS_ENDPOINT_URL` (moto, started by `make dev`).

mod server;

use checkout_core::{
    aws,
    checkout::{CheckoutConfig, SessionCreator},
    config::{self, ConfigError, ProcessEnv},
    store::{DynamoDb, tables},
    webhook::{WebhookConfig, WebhookReceiver},
};
use tracing_subscriber::EnvFilter;

/// Everything the bundle's routes need, built once at start like each Lambda's cold start.
pub struct Bundle {
    pub webhook: WebhookReceiver,
    /// `None` until Stripe is configured (`STRIPE_SECRET_KEY`): the route then says so.
    pub checkout: Option<SessionCreator>,
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

    let checkout = match config::optional(&ProcessEnv, "STRIPE_SECRET_KEY") {
        None => {
            tracing::warn!("STRIPE_SECRET_KEY is not set: POST /checkout/sessions answers 503");
            None
        }
        Some(_) => {
            let config = CheckoutConfig::from_env(&ProcessEnv)?;
            tables::ensure(&dynamodb, config.sessions_table.as_str(), &tables::SESSIONS).await?;
            tracing::info!(stripe = config.stripe.api_base, table = %config.sessions_table, "checkout sessions ready");
            Some(SessionCreator::from_config(config, dynamodb.clone()))
        }
    };
    let bundle = Bundle {
        webhook: WebhookReceiver::new(webhook_config, dynamodb),
        checkout,
    };
    server::serve(bundle, port).await
}
