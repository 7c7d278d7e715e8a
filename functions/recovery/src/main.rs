//! Triggered by the events table's stream (`checkout.session.expired`, `…async_payment_failed`,
//! `…completed`) and by `GET|POST /recovery/unsubscribe` on API Gateway (HTTP API, payload v2).

// The handler's futures nest the AWS SDK, Stripe client and mailer futures deeper than
// rustc's default layout depth.
#![recursion_limit = "256"]

use checkout_core::{
    lambda,
    mail::SesMailer,
    recovery::{Recovery, RecoveryConfig},
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
    let config = RecoveryConfig::from_env(&env)?;
    let mailer = SesMailer::new(config.mail.clone(), aws_sdk_sesv2::Client::new(&sdk));
    let recovery = &Recovery::new(config, DynamoDb::new(&sdk), mailer);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<lambda::Trigger>| {
        lambda::dispatch(recovery, event)
    }))
    .await
}
