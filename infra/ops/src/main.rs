//! `ops`: the operator's commands, against the tables and Stripe account the environment
//! names (the same variables as the functions; `make dev`'s when run through `make ops`).
//!
//! ```text
//! ops reconcile [--since 72h] [--account acct_…]   one reconcile pass, its report as JSON
//! ops explain cs_…|pi_…|evt_…                      what happened to one cart or payment
//! ops redrive evt_…                                 put one event back through its consumers
//! ops customer-token cus_… [--reference user-42] [--ttl 600]
//!                                                   a customer token, as your server mints it
//! ops stock set price_… 10 [--account acct_…]      a price's stock level (STOCK_TABLE)
//! ops stock get price_… [--account acct_…]         its units left, or untracked
//! ```

// The consumers' futures nest deeply (see functions/fulfillment).
#![recursion_limit = "256"]

use std::process::ExitCode;

use checkout_core::{
    aws, callers, clock,
    config::{self, Layered, ProcessEnv},
    ids::{AccountId, EventId, PriceId},
    reconcile::{
        Consumers, ConsumersConfig, ExplainConfig, Explainer, PassOptions, ReconcileConfig,
        Reconciler,
    },
    stock::{StockConfig, StockTable},
    store::DynamoDb,
};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: ops reconcile [--since 72h] [--account acct_…] | ops explain cs_…|pi_…|sub_…|evt_… | ops redrive evt_… | ops customer-token cus_… [--reference ID] [--ttl SECS] | ops stock set price_… UNITS [--account acct_…] | ops stock get price_… [--account acct_…]";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(lines) => {
            #[expect(clippy::print_stdout, reason = "a CLI prints its answer")]
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ops: {err}");
            ExitCode::FAILURE
        }
    }
}

type Fail = Box<dyn std::error::Error>;

/// `CUSTOMER_TOKEN_SECRET` signs a token for `customer`, valid `--ttl` seconds (at most an
/// hour): what the merchant's server does after its own login, for a test or a script.
fn customer_token(args: &[String]) -> Result<Vec<String>, Fail> {
    let customer = args
        .get(1)
        .ok_or(USAGE)?
        .parse()
        .map_err(|e| format!("customer: {e}"))?;
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let ttl: i64 = flag("--ttl").map_or(Ok(600), |t| t.parse())?;
    if !(1..=callers::MAX_LIFETIME_SECS).contains(&ttl) {
        return Err(format!("--ttl: 1 to {} seconds", callers::MAX_LIFETIME_SECS).into());
    }
    let secret = config::required(&ProcessEnv, "CUSTOMER_TOKEN_SECRET")?;
    let claims = callers::CustomerClaims {
        customer,
        client_reference_id: flag("--reference"),
        exp: clock::Clock::system().now() + ttl,
    };
    Ok(vec![callers::mint(secret.as_bytes(), &claims)])
}

async fn run(args: &[String]) -> Result<Vec<String>, Fail> {
    if args.first().map(String::as_str) == Some("customer-token") {
        return customer_token(args);
    }
    let env = stripe_or_simulator();
    // A person's machine: profiles, SSO and assumed roles through aws-config's loader, over
    // the bundle's transport.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws::SdkHttpClient::shared())
        .load()
        .await;
    let dynamodb = DynamoDb::new(&sdk);
    match args.first().map(String::as_str) {
        Some("explain") => {
            let id = args.get(1).ok_or(USAGE)?;
            let explainer = Explainer::new(ExplainConfig::from_env(&env)?, dynamodb);
            Ok(explainer.explain(id).await?)
        }
        Some("reconcile") => {
            let options = PassOptions {
                since_secs: flag(args, "--since").map(duration_secs).transpose()?,
                account: flag(args, "--account")
                    .map(|a| a.parse::<AccountId>())
                    .transpose()?,
                deadline: None,
            };
            let (consumers, reconciler) = running(&env, &sdk, &dynamodb)?;
            let report = reconciler.pass(&consumers.handlers(), &options).await?;
            Ok(vec![serde_json::to_string_pretty(&report)?])
        }
        Some("redrive") => {
            let id: EventId = args.get(1).ok_or(USAGE)?.parse()?;
            let (consumers, reconciler) = running(&env, &sdk, &dynamodb)?;
            let results = reconciler
                .redrive_now(&id, &consumers.handlers())
                .await?
                .ok_or_else(|| format!("{id}: no such event stored"))?;
            let mut lines: Vec<String> = results
                .into_iter()
                .map(|(consumer, result)| match result {
                    Ok(()) => format!("{id}: {consumer} ran"),
                    Err(err) => format!("{id}: {consumer} failed: {err}"),
                })
                .collect();
            let explainer = Explainer::new(ExplainConfig::from_env(&env)?, dynamodb);
            lines.extend(explainer.explain(id.as_str()).await?);
            Ok(lines)
        }
        Some("stock") => stock(args, &env, dynamodb).await,
        _ => Err(USAGE.into()),
    }
}

/// `ops stock set price_… UNITS` sets a price's level (tracking it from then on, whatever
/// carts hold); `ops stock get price_…` reads it. `--account` for a connected account's.
async fn stock(
    args: &[String],
    env: &Layered<ProcessEnv>,
    dynamodb: DynamoDb,
) -> Result<Vec<String>, Fail> {
    let table = StockConfig::from_env(env)?
        .table
        .ok_or("STOCK_TABLE is not set: stock is not tracked")?;
    let stock = StockTable::new(table, dynamodb);
    let price: PriceId = args
        .get(2)
        .ok_or(USAGE)?
        .parse()
        .map_err(|e| format!("price: {e}"))?;
    let account = flag(args, "--account")
        .map(|a| a.parse::<AccountId>())
        .transpose()?;
    let on = account
        .as_ref()
        .map_or(String::new(), |a| format!(" on {a}"));
    match args.get(1).map(String::as_str) {
        Some("set") => {
            let units: i64 = args
                .get(3)
                .and_then(|u| u.parse().ok())
                .filter(|u| *u >= 0)
                .ok_or("units: a whole number, 0 or more")?;
            stock.set(account.as_ref(), &price, units).await?;
            Ok(vec![format!("{price}{on}: {units} available")])
        }
        Some("get") => Ok(vec![match stock.level(account.as_ref(), &price).await? {
            Some(units) => format!("{price}{on}: {units} available"),
            None => format!("{price}{on}: untracked (no stock level: unlimited)"),
        }]),
        _ => Err(USAGE.into()),
    }
}

/// The consumers and the reconciler, exactly as the reconcile function builds them.
fn running(
    env: &Layered<ProcessEnv>,
    sdk: &aws::SdkConfig,
    dynamodb: &DynamoDb,
) -> Result<(Consumers, Reconciler), Fail> {
    let ses = aws_sdk_sesv2::Client::new(sdk);
    let consumers = Consumers::new(ConsumersConfig::from_env(env)?, dynamodb, &ses);
    let reconciler = Reconciler::new(ReconcileConfig::from_env(env)?, dynamodb.clone());
    Ok((consumers, reconciler))
}

/// Without `STRIPE_SECRET_KEY`, the Stripe simulator of `make dev`, as the local stack sets it.
fn stripe_or_simulator() -> Layered<ProcessEnv> {
    if config::optional(&ProcessEnv, "STRIPE_SECRET_KEY").is_some() {
        return Layered::new(ProcessEnv, []);
    }
    let port =
        config::optional(&ProcessEnv, "STRIPE_SIMULATOR_PORT").unwrap_or_else(|| "12111".into());
    Layered::new(
        ProcessEnv,
        [
            (
                "STRIPE_SECRET_KEY",
                stripe_simulator::DEV_API_KEY.to_string(),
            ),
            ("STRIPE_API_BASE", format!("http://127.0.0.1:{port}")),
        ],
    )
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// `72h`, `30m`, `90s`, `2d`.
fn duration_secs(text: &str) -> Result<i64, Fail> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected e.g. 72h"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d").into()),
    };
    Ok(number * unit)
}
