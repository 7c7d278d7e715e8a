//! Run by EventBridge Scheduler every few minutes: one reconcile pass (backfill from Stripe's
//! event list, re-drive of unfinished events through the consumers' own handlers, metrics).

// The handler's futures nest the AWS SDK, Stripe client and mailer futures deeper than
// rustc's default layout depth.
#![recursion_limit = "256"]

use checkout_core::{
    reconcile::{Consumers, ConsumersConfig, PassOptions, ReconcileConfig, Reconciler},
    secrets,
    store::DynamoDb,
};
use lambda_http::{Error, LambdaEvent, lambda_runtime, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    checkout_core::logging::init();
    let (sdk, env) = secrets::cold_start(&[
        "STRIPE_SECRET_KEY",
        "UNSUBSCRIBE_SECRET",
        "PUBLIC_BASE_URL",
        "SHOP_POLICY",
    ])
    .await?;
    let dynamodb = DynamoDb::new(&sdk);
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    // The consumers exactly as their own functions build them: a re-drive runs their code.
    let consumers = &Consumers::new(ConsumersConfig::from_env(&env)?, &dynamodb, &ses);
    let reconciler = &Reconciler::new(ReconcileConfig::from_env(&env)?, dynamodb);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let options = PassOptions {
                deadline: i64::try_from(event.context.deadline / 1000).ok(),
                ..PassOptions::default()
            };
            let report = reconciler.pass(&consumers.handlers(), &options).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        },
    ))
    .await
}
