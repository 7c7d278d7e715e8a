//! Triggered by the events table's stream (`checkout.session.*`, `payment_intent.*`,
//! `charge.refunded`, `charge.dispute.*`) and by
//! `GET /checkout/complete?session_id=…` on API Gateway (HTTP API, payload v2).

// The handler's futures nest the AWS SDK, Stripe client and mailer futures deeper than
// rustc's default layout depth.
#![recursion_limit = "256"]

use checkout_core::{
    access::{AccessConfig, AccessTable},
    fulfillment::{ConfirmationConfig, ConfirmationEmail, FulfillmentApp, FulfillmentConfig},
    lambda,
    mail::SesMailer,
    secrets,
    store::DynamoDb,
};
use lambda_http::{Error, LambdaEvent, lambda_runtime, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    checkout_core::logging::init();
    let (sdk, env) = secrets::cold_start(&["STRIPE_SECRET_KEY", "SHOP_POLICY"]).await?;
    let config = FulfillmentConfig::from_env(&env)?;
    let confirmation = ConfirmationConfig::from_env(&env)?;
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    let mailer = confirmation
        .mail
        .clone()
        .map(|mail| SesMailer::new(mail, ses));
    // Replace ConfirmationEmail with your own `Fulfil` implementation to ship or notify,
    // and AccessTable with your own `Entitle` to grant and revoke access in your app.
    let fulfiller = ConfirmationEmail::new(confirmation, mailer);
    let dynamodb = DynamoDb::new(&sdk);
    let access = AccessTable::new(AccessConfig::from_env(&env)?, dynamodb.clone());
    let app = &FulfillmentApp::new(config, dynamodb, fulfiller, access);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<lambda::Trigger>| {
        lambda::dispatch(app, event)
    }))
    .await
}
