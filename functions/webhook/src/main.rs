//! `POST /webhooks/stripe` on API Gateway (HTTP API, payload v2).

use checkout_core::{
    aws,
    config::ProcessEnv,
    secrets,
    store::DynamoDb,
    webhook::{self, WebhookConfig, WebhookReceiver},
};
use lambda_http::{Error, Request, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let sdk = aws::sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let env = secrets::resolve(&ssm, ProcessEnv, &["STRIPE_WEBHOOK_SECRET"]).await?;
    let config = WebhookConfig::from_env(&env)?;
    let receiver = &WebhookReceiver::new(config, DynamoDb::new(&sdk));
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(webhook::handle(receiver, request).await)
    }))
    .await
}
