//! Triggered by the events table's stream (`customer.subscription.*`, `invoice.paid`,
//! `invoice.payment_failed`, `invoice.payment_action_required`, and
//! `checkout.session.completed` for the session a subscription came from).

// The handler's futures nest the AWS SDK and Stripe client futures deeper than rustc's
// default layout depth.
#![recursion_limit = "256"]

use checkout_core::{
    access::{AccessConfig, AccessTable},
    lambda, secrets,
    store::DynamoDb,
    subscriptions::{self, Subscriptions, SubscriptionsConfig},
};
use lambda_http::{Error, LambdaEvent, lambda_runtime, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    checkout_core::logging::init();
    let (sdk, env) = secrets::cold_start(&["STRIPE_SECRET_KEY"]).await?;
    let config = SubscriptionsConfig::from_env(&env)?;
    let dynamodb = DynamoDb::new(&sdk);
    // Replace AccessTable with your own `Entitle` to grant and revoke access in your app.
    let access = AccessTable::new(AccessConfig::from_env(&env)?, dynamodb.clone());
    let app = &Subscriptions::new(config, dynamodb, access);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<lambda::StreamEvent>| async move {
            let deadline = lambda::deadline(&event.context);
            Ok::<_, Error>(subscriptions::handle_stream(app, event.payload, deadline).await)
        },
    ))
    .await
}
