//! `POST /webhooks/stripe` on API Gateway (HTTP API, payload v2).

use checkout_core::{
    aws,
    config::ProcessEnv,
    store::DynamoDb,
    webhook::{self, WebhookConfig, WebhookReceiver},
};
use lambda_http::{Error, Request, service_fn, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = WebhookConfig::from_env(&ProcessEnv)?;
    let dynamodb = DynamoDb::new(&aws::sdk_config().await);
    let receiver = &WebhookReceiver::new(config, dynamodb);
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(webhook::handle(receiver, request).await)
    }))
    .await
}
