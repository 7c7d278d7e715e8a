//! The local stack: serves every HTTP route of the bundle on loopback, at API Gateway's paths,
//! from the same handlers the Lambda binaries run, against the AWS endpoint in
//! `AWS_ENDPOINT_URL` (moto, started by `make dev`), and feeds the events table's stream to
//! the stream handlers as Lambda would.

// The bundle's handler futures nest deeply (see functions/fulfillment).
#![recursion_limit = "256"]

mod fulfil_log;
mod server;
mod storefront;
mod streams;

use std::sync::Arc;

use checkout_core::{
    access::AccessTable,
    aws,
    checkout::{CheckoutConfig, SessionCreator},
    config::{self, Layered, ProcessEnv, Secret},
    fulfillment::{ConfirmationEmail, FulfillmentApp},
    ids::PriceId,
    lambda::StreamAndHttp,
    mail::{MailConfig, SesMailer},
    money::Money,
    reconcile::{Consumers, ConsumersConfig, Handlers, PassOptions, ReconcileConfig, Reconciler},
    recovery::Recovery,
    stock::{StockConfig, StockTable},
    store::{DynamoDb, tables},
    subscriptions::{self, Subscriptions},
    webhook::{WebhookConfig, WebhookReceiver},
};
use stripe_simulator::{Simulator, SimulatorConfig};
use tracing_subscriber::EnvFilter;

use crate::fulfil_log::Logged;
use crate::storefront::{Product, ReturningCustomer, Storefront, StorefrontConfig};

pub type Fulfillment = FulfillmentApp<Logged<ConfirmationEmail<SesMailer>>, AccessTable>;

/// The functions that call Stripe (or the simulator).
pub struct StripeFunctions {
    pub checkout: SessionCreator,
    pub fulfillment: Fulfillment,
    pub recovery: Recovery<SesMailer>,
    pub subscriptions: Subscriptions<AccessTable>,
}

impl StripeFunctions {
    /// The stream consumers, for the reconciler's re-drive.
    fn handlers(
        &self,
    ) -> Handlers<'_, Logged<ConfirmationEmail<SesMailer>>, SesMailer, AccessTable> {
        Handlers {
            fulfillment: &self.fulfillment,
            recovery: &self.recovery,
            subscriptions: &self.subscriptions,
        }
    }
}

/// Everything the bundle's routes need, built once at start like each Lambda's cold start.
pub struct Bundle {
    pub webhook: WebhookReceiver,
    pub stripe: StripeFunctions,
    pub storefront: Storefront,
}

/// The process environment, with what the Stripe simulator sets when it stands in for Stripe.
type DevEnv = Layered<ProcessEnv>;

/// Without `STRIPE_SECRET_KEY`, starts the simulator and points the functions at it with a
/// key of its own; with the key, real Stripe (test mode) is used.
async fn stripe_or_simulator(
    port: u16,
) -> Result<(DevEnv, Option<std::sync::Arc<Simulator>>), Box<dyn std::error::Error>> {
    if config::optional(&ProcessEnv, "STRIPE_SECRET_KEY").is_some() {
        return Ok((Layered::new(ProcessEnv, []), None));
    }
    let env = &ProcessEnv;
    let sim_port: u16 = config::parsed_or(env, "STRIPE_SIMULATOR_PORT", 12111)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", sim_port)).await?;
    let public_url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let api_key = stripe_simulator::DEV_API_KEY.to_string();
    let webhook_secret = config::required(env, "STRIPE_WEBHOOK_SECRET")?
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let simulator = Simulator::new(SimulatorConfig {
        api_key: Secret::new(api_key.clone()),
        public_url: public_url.clone(),
        webhook_url: format!("http://127.0.0.1:{port}/webhooks/stripe"),
        webhook_secret: Secret::new(webhook_secret),
        catalog: stripe_simulator::demo_catalog(),
        shipping_rates: stripe_simulator::demo_shipping_rates(),
    });
    tokio::spawn(simulator.clone().serve(listener));
    tracing::info!(
        simulator = public_url,
        "STRIPE_SECRET_KEY is not set: Stripe simulator started"
    );
    Ok((
        Layered::new(
            ProcessEnv,
            [
                ("STRIPE_SECRET_KEY", api_key),
                ("STRIPE_API_BASE", public_url),
            ],
        ),
        Some(simulator),
    ))
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
    // Never against a real account: the local stack needs a local endpoint (moto).
    let aws_endpoint = config::required(env, "AWS_ENDPOINT_URL")?;
    let sdk = aws::sdk_config().await;
    let dynamodb = DynamoDb::new(&sdk);
    let webhook_config = WebhookConfig::from_env(env)?;
    let events_table = webhook_config.events_table.to_string();
    tables::ensure(&dynamodb, &events_table, &tables::EVENTS).await?;

    let (dev_env, simulator) = stripe_or_simulator(port).await?;
    let demo_catalog = simulator.as_ref().map(|s| s.config().catalog.as_slice());
    stock(&dynamodb, &dev_env, demo_catalog).await?;
    let stripe = stripe_functions(&sdk, &dynamodb, &dev_env).await?;
    let products = match &simulator {
        Some(simulator) => simulator
            .config()
            .catalog
            .iter()
            .map(|p| Product {
                price: p.price.clone(),
                name: p.name.clone(),
                amount: Money::new(p.unit_amount, &p.currency).to_string(),
                recurring: p.recurring.map(str::to_string),
            })
            .collect(),
        None => config::optional(env, "STOREFRONT_PRICES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Product {
                price: p.into(),
                name: p.into(),
                amount: String::new(),
                // Prices named in STOREFRONT_PRICES are sold one-time.
                recurring: None,
            })
            .collect(),
    };
    let storefront = Storefront::new(StorefrontConfig {
        merchant: config::optional(env, "MERCHANT_NAME").unwrap_or_else(|| "Demo Shop".into()),
        shop_url: config::optional(env, "MERCHANT_SHOP_URL"),
        products,
        simulator: simulator.as_ref().map(|s| s.config().public_url.clone()),
        publishable_key: config::optional(env, "STRIPE_PUBLISHABLE_KEY"),
        aws_endpoint,
        dynamodb: dynamodb.clone(),
        events_table: Some(events_table.clone()),
        orders_table: config::optional(env, "ORDERS_TABLE"),
        subscriptions_table: config::optional(env, "SUBSCRIPTIONS_TABLE"),
        access_table: config::optional(env, "ACCESS_TABLE"),
        // The simulator's demo customer, or with real Stripe the one STOREFRONT_CUSTOMER names.
        returning: config::optional(env, "CUSTOMER_TOKEN_SECRET").and_then(|token_secret| {
            let customer = match &simulator {
                Some(_) => Some(stripe_simulator::DEMO_CUSTOMER.to_string()),
                None => config::optional(env, "STOREFRONT_CUSTOMER"),
            }?;
            Some(ReturningCustomer {
                customer,
                name: "Robin".into(),
                token_secret,
            })
        }),
    });
    let bundle = Arc::new(Bundle {
        webhook: WebhookReceiver::new(webhook_config, dynamodb.clone()),
        stripe,
        storefront,
    });
    tracing::info!(
        "storefront: http://127.0.0.1:{port}/  (outbox: http://127.0.0.1:{port}/dev/outbox)"
    );

    // One consumer per function subscribed to the events stream, each following its event
    // source mapping in the SAM template (a mapping the poller cannot follow stops the start).
    let for_fulfillment = bundle.clone();
    let for_recovery = bundle.clone();
    let for_subscriptions = bundle.clone();
    let functions = vec![
        streams::Function::from_template(
            "FulfillmentFunction",
            Box::new(move |batch| {
                let bundle = for_fulfillment.clone();
                Box::pin(async move { bundle.stripe.fulfillment.stream(batch, None).await })
            }),
        )?,
        streams::Function::from_template(
            "RecoveryFunction",
            Box::new(move |batch| {
                let bundle = for_recovery.clone();
                Box::pin(async move { bundle.stripe.recovery.stream(batch, None).await })
            }),
        )?,
        streams::Function::from_template(
            "SubscriptionsFunction",
            Box::new(move |batch| {
                let bundle = for_subscriptions.clone();
                Box::pin(async move {
                    subscriptions::handle_stream(&bundle.stripe.subscriptions, batch, None).await
                })
            }),
        )?,
    ];
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    tokio::spawn(streams::follow(
        dynamodb.clone(),
        streams,
        events_table,
        functions,
        streams::Files::from_env(env),
    ));
    tokio::spawn(reconcile_every(
        bundle.clone(),
        reconciler(&dynamodb, &dev_env).await?,
    ));
    server::serve(bundle, port).await
}

/// The demo shop's limited stock: the poster's units, so the storefront shows one running out.
const DEMO_STOCK: (&str, i64) = ("price_poster", 3);

/// With `STOCK_TABLE`, creates the stock table, and with the simulator's demo catalog gives
/// the poster its units, once: a restart against the same moto does not refill it.
async fn stock(
    dynamodb: &DynamoDb,
    env: &DevEnv,
    demo_catalog: Option<&[stripe_simulator::CatalogPrice]>,
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(table) = StockConfig::from_env(env)?.table else {
        return Ok(());
    };
    tables::ensure(dynamodb, table.as_str(), &tables::STOCK).await?;
    let (price, units) = DEMO_STOCK;
    if !demo_catalog.is_some_and(|catalog| catalog.iter().any(|p| p.price == price)) {
        return Ok(());
    }
    let stock = StockTable::new(table, dynamodb.clone());
    let price: PriceId = price.parse()?;
    if stock.level(None, &price).await?.is_none() {
        stock.set(None, &price, units).await?;
        tracing::info!(price = price.as_str(), units, "demo stock seeded");
    }
    Ok(())
}

/// The reconciler, as the scheduled function runs it in AWS.
async fn reconciler(
    dynamodb: &DynamoDb,
    env: &DevEnv,
) -> Result<(Reconciler, u64), Box<dyn std::error::Error>> {
    let config = ReconcileConfig::from_env(env)?;
    tables::ensure(
        dynamodb,
        config.reconcile_table.as_str(),
        &tables::RECONCILE,
    )
    .await?;
    let interval = config::parsed_or(env, "RECONCILE_INTERVAL_SECS", 30)?;
    Ok((Reconciler::new(config, dynamodb.clone()), interval))
}

/// One reconcile pass every `interval` seconds, like EventBridge Scheduler in AWS, so the
/// offline flow heals the way production does.
async fn reconcile_every(bundle: Arc<Bundle>, (reconciler, interval): (Reconciler, u64)) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(interval.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let options = PassOptions::default();
        if let Err(err) = reconciler.pass(&bundle.stripe.handlers(), &options).await {
            tracing::warn!(error = %err, "reconcile pass failed; the next one starts again");
        }
    }
}

async fn stripe_functions(
    sdk: &aws::SdkConfig,
    dynamodb: &DynamoDb,
    env: &DevEnv,
) -> Result<StripeFunctions, Box<dyn std::error::Error>> {
    let checkout = CheckoutConfig::from_env(env)?;
    let consumers = ConsumersConfig::from_env(env)?;
    tables::ensure(
        dynamodb,
        checkout.sessions_table.as_str(),
        &tables::SESSIONS,
    )
    .await?;
    tables::ensure(
        dynamodb,
        checkout.requests_table.as_str(),
        &tables::REQUESTS,
    )
    .await?;
    tables::ensure(
        dynamodb,
        consumers.fulfillment.orders_table.as_str(),
        &tables::ORDERS,
    )
    .await?;
    tables::ensure(
        dynamodb,
        consumers.recovery.recovery_table.as_str(),
        &tables::RECOVERY,
    )
    .await?;
    tables::ensure(
        dynamodb,
        consumers.subscriptions.subscriptions_table.as_str(),
        &tables::SUBSCRIPTIONS,
    )
    .await?;
    tables::ensure(
        dynamodb,
        consumers.subscriptions.access.access_table.as_str(),
        &tables::ACCESS,
    )
    .await?;
    // `make storm` counts the fulfilment's calls in this file (fulfil_log.rs).
    let fulfil_log = Logged::<()>::open(config::optional(env, "FULFIL_LOG_FILE"))?;
    let ses = aws_sdk_sesv2::Client::new(sdk);
    // moto, like SES in the sandbox, only sends from a verified identity.
    let mail = MailConfig::from_env(env)?;
    let created = ses
        .create_email_identity()
        .email_identity(mail.from_address.as_str())
        .send()
        .await;
    if let Err(err) = created {
        // A moto that outlived an earlier run already has it.
        if !err
            .as_service_error()
            .is_some_and(|e| e.is_already_exists_exception())
        {
            return Err(err.into());
        }
    }
    tracing::info!(
        stripe = checkout.stripe.api_base,
        "checkout, fulfillment, recovery and subscriptions ready"
    );
    let Consumers {
        fulfillment,
        recovery,
        subscriptions,
    } = Consumers::with_fulfiller(consumers, dynamodb, &ses, |confirmation| {
        Logged::new(confirmation, fulfil_log)
    });
    Ok(StripeFunctions {
        checkout: SessionCreator::new(checkout, dynamodb.clone()),
        fulfillment,
        recovery,
        subscriptions,
    })
}
