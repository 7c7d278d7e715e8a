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
    mail::{MailConfig, SesMailer},
    store::{DynamoDb, tables},
    webhook::{WebhookConfig, WebhookReceiver},
};
use tracing_subscriber::EnvFilter;

pub type Fulfillment = FulfillmentApp<ConfirmationEmail<SesMailer>>;

/// Everything the bundle's routes need, built once at start like each Lambda's cold start.
pub struct Bundle {
    pub webhook: WebhookReceiver,
    /// `None` until Stripe is configured (`STRIPE_SECRET_KEY`): those routes then say so.
    pub checkout: Option<SessionCreator>,
    pub fulfillment: Option<Fulfillment>,
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

    let (checkout, fulfillment) = if config::optional(env, "STRIPE_SECRET_KEY").is_none() {
        tracing::warn!("STRIPE_SECRET_KEY is not set: checkout and fulfillment routes answer 503");
        (None, None)
    } else {
        let checkout = CheckoutConfig::from_env(env)?;
        let fulfillment = FulfillmentConfig::from_env(env)?;
        tables::ensure(
            &dynamodb,
            checkout.sessions_table.as_str(),
            &tables::SESSIONS,
        )
        .await?;
        tables::ensure(
            &dynamodb,
            fulfillment.orders_table.as_str(),
            &tables::ORDERS,
        )
        .await?;
        let ses = aws_sdk_sesv2::Client::new(&sdk);
        // moto, like SES in the sandbox, only sends from a verified identity.
        let mail = MailConfig::from_env(env)?;
        let _ = ses
            .create_email_identity()
            .email_identity(mail.from_address.as_str())
            .send()
            .await;
        tracing::info!(
            stripe = checkout.stripe.api_base,
            "checkout and fulfillment ready"
        );
        (
            Some(SessionCreator::from_config(checkout, dynamodb.clone())),
            Some(FulfillmentApp::new(
                fulfillment,
                dynamodb.clone(),
                ConfirmationEmail::from_env(env, ses)?,
            )),
        )
    };
    let bundle = Arc::new(Bundle {
        webhook: WebhookReceiver::new(webhook_config, dynamodb.clone()),
        checkout,
        fulfillment,
    });

    let mut consumers: Vec<streams::Consumer> = Vec::new();
    if bundle.fulfillment.is_some() {
        let bundle = bundle.clone();
        consumers.push(Box::new(move |batch| {
            let bundle = bundle.clone();
            Box::pin(async move {
                let app = bundle.fulfillment.as_ref().expect("checked above");
                app.handle_stream(batch, None).await
            })
        }));
    }
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    tokio::spawn(streams::follow(dynamodb, streams, events_table, consumers));
    server::serve(bundle, port).await
}
