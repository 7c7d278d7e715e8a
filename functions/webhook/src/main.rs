//! `POST /webhooks/stripe` on API Gateway (HTTP API, payload v2), and, when the template's
//! `StripeEventBusName` is set, Stripe events from an Amazon EventBridge partner bus.

use checkout_core::{
    lambda, secrets,
    store::DynamoDb,
    webhook::{WebhookConfig, WebhookReceiver},
};
use lambda_http::{Error, LambdaEvent, lambda_runtime, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    checkout_core::logging::init();
    let (sdk, env) = secrets::cold_start(&["STRIPE_WEBHOOK_SECRET"]).await?;
    let config = WebhookConfig::from_env(&env)?;
    let receiver = &WebhookReceiver::new(config, DynamoDb::new(&sdk));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        lambda::dispatch_webhook(receiver, event)
    }))
    .await
}
