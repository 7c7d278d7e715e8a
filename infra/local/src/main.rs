//! The local stack: serves every HTTP route of the bundle on loopback, at API Gateway's paths,
//! from the same handlers the Lambda binaries run, against the AWS endpoint in
//! `AWS_ENDPOINT_URL` (moto, started by `make dev`), and feeds the events table's stream to
//! the stream handlers as Lambda would.

// The bundle's handler futures nest deeply (see functions/fulfillment).
#![recursion_limit = "256"]

mod server;
mod streams;

use std::sync::Arc;

use checkout_core::{
    aws,
    checkout::{CheckoutConfig, SessionCreator},
    config::{self, ConfigError, ProcessEnv},
    fulfillment::{ConfirmationEmail, FulfillmentApp, FulfillmentConfig},
    lambda::StreamAndHttp,
    mail::{MailConfig, SesMailer},
    recovery::Recovery,
    store::{DynamoDb, tables},
    webhook::{WebhookConfig, WebhookReceiver},
};
use tracing_subscriber::EnvFilter;

pub type Fulfillment = FulfillmentApp<ConfirmationEmail<SesMailer>>;

/// The functions that need Stripe; absent until `STRIPE_SECRET_KEY` is set.
pub struct StripeFunctions {
    pub checkout: SessionCreator,
    pub fulfillment: Fulfillment,
    pub recovery: Recovery<SesMailer>,
}

/// Everything the bundle's routes need, built once at start like each Lambda's cold start.
pub struct Bundle {
    pub webhook: WebhookReceiver,
    pub stripe: Option<StripeFunctions>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let env = &ProcessEnv;
    let port: u16 = config::parsed_or(env, "PORT", 9000)?;
    if config::optional(env, "AWS_ENDPOINT_URL").is_none() {
        return Err(ConfigError::Missing("AWS_ENDPOINT_URL").into());
    }
    let sdk = aws::sdk_config().await;
    let dynamodb = DynamoDb::new(&sdk);
    let webhook_config = WebhookConfig::from_env(env)?;
    let events_table = webhook_config.events_table.to_string();
    tables::ensure(&dynamodb, &events_table, &tables::EVENTS).await?;

    let stripe = match config::optional(env, "STRIPE_SECRET_KEY") {
        None => {
            tracing::warn!(
                "STRIPE_SECRET_KEY is not set: checkout, fulfillment and recovery answer 503"
            );
            None
        }
        Some(_) => Some(stripe_functions(&sdk, &dynamodb).await?),
    };
    let bundle = Arc::new(Bundle {
        webhook: WebhookReceiver::new(webhook_config, dynamodb.clone()),
        stripe,
    });

    // One consumer per function subscribed to the events stream, as in the SAM template.
    let mut consumers: Vec<streams::Consumer> = Vec::new();
    if bundle.stripe.is_some() {
        let for_fulfillment = bundle.clone();
        consumers.push(Box::new(move |batch| {
            let bundle = for_fulfillment.clone();
            Box::pin(async move {
                bundle
                    .stripe
                    .as_ref()
                    .expect("checked")
                    .fulfillment
                    .stream(batch, None)
                    .await
            })
        }));
        let for_recovery = bundle.clone();
        consumers.push(Box::new(move |batch| {
            let bundle = for_recovery.clone();
            Box::pin(async move {
                bundle
                    .stripe
                    .as_ref()
                    .expect("checked")
                    .recovery
                    .stream(batch, None)
                    .await
            })
        }));
    }
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    tokio::spawn(streams::follow(dynamodb, streams, events_table, consumers));
    server::serve(bundle, port).await
}

async fn stripe_functions(
    sdk: &aws_config::SdkConfig,
    dynamodb: &DynamoDb,
) -> Result<StripeFunctions, Box<dyn std::error::Error>> {
    let env = &ProcessEnv;
    let checkout = CheckoutConfig::from_env(env)?;
    let fulfillment = FulfillmentConfig::from_env(env)?;
    let recovery_table = config::required(env, "RECOVERY_TABLE")?;
    tables::ensure(
        dynamodb,
        checkout.sessions_table.as_str(),
        &tables::SESSIONS,
    )
    .await?;
    tables::ensure(dynamodb, fulfillment.orders_table.as_str(), &tables::ORDERS).await?;
    tables::ensure(dynamodb, &recovery_table, &tables::RECOVERY).await?;
    let ses = aws_sdk_sesv2::Client::new(sdk);
    // moto, like SES in the sandbox, only sends from a verified identity.
    let mail = MailConfig::from_env(env)?;
    ses.create_email_identity()
        .email_identity(mail.from_address.as_str())
        .send()
        .await?;
    tracing::info!(
        stripe = checkout.stripe.api_base,
        "checkout, fulfillment and recovery ready"
    );
    Ok(StripeFunctions {
        checkout: SessionCreator::from_config(checkout, dynamodb.clone()),
        fulfillment: FulfillmentApp::new(
            fulfillment,
            dynamodb.clone(),
            ConfirmationEmail::from_env(env, ses.clone())?,
        ),
        recovery: Recovery::from_env(env, dynamodb.clone(), ses)?,
    })
}
