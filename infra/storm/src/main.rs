//! `make storm`: the local stack (the real handlers, stream poller and reconciler) under a
//! seeded random workload, webhooks delivered 1 to 5 times out of order, Stripe, SES and
//! DynamoDB failing on the wire, and a `kill -9` of the stack mid-run; then, once the run has
//! settled, the bundle's promises checked from outside (checks.rs) and a table printed.
//! Exits 1 if any invariant fails. docs/storm.md explains each part.
//!
//! - `processes`: moto (outlives the stack) and the stack (killed and restarted).
//! - `proxy`, `faults`: the fault proxies in front of the simulator and of moto.
//! - `webhooks`: catches the simulator's events and delivers them as a bad day at Stripe.
//! - `workload`: the shoppers; `observe`: what is read back; `checks`, `report`.

mod checks;
mod client;
mod faults;
mod observe;
mod processes;
mod proxy;
mod report;
mod webhooks;
mod workload;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checkout_core::config::{self, ProcessEnv, Secret, TableName};
use checkout_core::store::{DynamoDb, EventRecord, EventStore, FulfillmentState, OrderRecord};
use stripe_simulator::{Simulator, SimulatorConfig};
use tokio::sync::Semaphore;

use crate::client::Http;
use crate::faults::{AwsFaults, RATES, StripeFaults, Switches};
use crate::processes::Stack;
use crate::webhooks::Webhooks;
use crate::workload::{Cart, Kind, Shop};

/// The connected accounts Connect carts use (`CONNECT_ACCOUNTS` of the stack).
const ACCOUNTS: [&str; 2] = ["acct_1StormConnectedA", "acct_1StormConnectedB"];
/// When, in carts finished, DynamoDB goes away and when the stack is killed.
const OUTAGE_AT_PERCENT: usize = 30;
const KILL_AT_PERCENT: usize = 55;
const OUTAGE: Duration = Duration::from_secs(5);
/// How long the stack stays dead before it is started again.
const DOWN_FOR: Duration = Duration::from_secs(1);
/// The longest the run may take to settle once the shoppers are done.
const SETTLE_WITHIN: Duration = Duration::from_secs(300);

struct StormConfig {
    carts: usize,
    seed: u64,
    concurrency: usize,
    root: PathBuf,
    stack_binary: PathBuf,
    webhook_secret: String,
}

impl StormConfig {
    fn from_env(env: &ProcessEnv) -> Result<Self, Box<dyn std::error::Error>> {
        let root = std::env::current_dir()?;
        let stack_binary = config::optional(env, "STORM_STACK_BIN")
            .map_or_else(|| root.join("target/debug/local-stack"), PathBuf::from);
        Ok(Self {
            carts: config::parsed_or(env, "STORM_CARTS", 300)?,
            seed: config::parsed_or(env, "STORM_SEED", 42)?,
            concurrency: config::parsed_or(env, "STORM_CONCURRENCY", 8)?,
            root,
            stack_binary,
            webhook_secret: config::optional(env, "STRIPE_WEBHOOK_SECRET")
                .unwrap_or_else(|| "whsec_local_development_secret".into()),
        })
    }
}

/// The table names the stack uses, as the Makefile sets them.
fn table(
    env: &ProcessEnv,
    var: &'static str,
    default: &str,
) -> Result<TableName, Box<dyn std::error::Error>> {
    Ok(config::optional(env, var)
        .unwrap_or_else(|| default.into())
        .parse()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = &ProcessEnv;
    let cfg = StormConfig::from_env(env)?;
    let started = Instant::now();
    let dir = cfg.root.join(format!(".local/storm-{}", cfg.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let http = Http::new();
    eprintln!(
        "storm: {} carts, seed {}, {} at a time; logs in {}",
        cfg.carts,
        cfg.seed,
        cfg.concurrency,
        dir.display()
    );

    let (moto_process, moto_port) = processes::moto(&cfg.root, &dir, &http).await?;
    let moto = format!("http://127.0.0.1:{moto_port}");
    let switches = Arc::new(Switches::new(cfg.seed, RATES));
    let aws_proxy = proxy::start(moto.clone(), Arc::new(AwsFaults(switches.clone()))).await?;

    let secret = Secret::new(
        cfg.webhook_secret
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
    );
    let port = processes::free_port()?;
    let stack_url = format!("http://127.0.0.1:{port}");
    let webhooks = Webhooks::new(
        http.clone(),
        format!("{stack_url}/webhooks/stripe"),
        secret.clone(),
        cfg.seed,
    );
    let capture = webhooks.capture().await?;
    let sim_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let simulator_url = format!("http://127.0.0.1:{}", sim_listener.local_addr()?.port());
    let simulator = Simulator::new(SimulatorConfig {
        api_key: Secret::new(stripe_simulator::DEV_API_KEY),
        public_url: simulator_url.clone(),
        webhook_url: capture,
        webhook_secret: secret,
        catalog: stripe_simulator::demo_catalog(),
        shipping_rates: stripe_simulator::demo_shipping_rates(),
    });
    tokio::spawn(simulator.serve(sim_listener));
    let stripe_proxy = proxy::start(
        simulator_url.clone(),
        Arc::new(StripeFaults(switches.clone())),
    )
    .await?;

    let origin = stack_url.clone();
    let stack_env = stack_env(&cfg, &dir, port, aws_proxy.port, stripe_proxy.port, &origin);
    let stack = Arc::new(Stack::new(
        cfg.stack_binary.clone(),
        stack_env,
        dir.clone(),
        port,
    ));
    stack.start(&http).await?;

    // The storm's own reads go to moto directly: the proxy's faults are for the stack.
    let dynamodb = observer(&moto).await;
    let orders_table = table(env, "ORDERS_TABLE", "checkout-orders")?;
    let events_table = table(env, "EVENTS_TABLE", "checkout-events")?;
    let supervisor = supervise(stack.clone(), http.clone());

    let shop = Arc::new(Shop {
        http: http.clone(),
        stack: stack_url.clone(),
        simulator: simulator_url,
        origin,
        accounts: ACCOUNTS.iter().map(|a| (*a).to_string()).collect(),
        events: EventStore::new(events_table.clone(), dynamodb.clone()),
    });
    let plan = workload::plan(cfg.seed, cfg.carts, &shop.accounts);
    let killed: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let carts = run_carts(&cfg, shop, plan, &switches, &stack, &http, &killed).await;
    eprintln!(
        "storm: shoppers done after {:.0} s; faults off, settling",
        started.elapsed().as_secs_f64()
    );

    switches.stop();
    let settle_start = Instant::now();
    settle(&webhooks, &dynamodb, &events_table, &orders_table, &carts).await;
    let settle = settle_start.elapsed();
    supervisor.abort();

    let orders: HashMap<String, OrderRecord> =
        observe::scan::<OrderRecord>(&dynamodb, &orders_table)
            .await?
            .into_iter()
            .map(|o| (o.order_id.clone(), o))
            .collect();
    let events: Vec<EventRecord> = observe::scan(&dynamodb, &events_table).await?;
    let emails = observe::outbox(&http, &moto).await?;
    let calls = observe::fulfil_calls(&dir.join("fulfil.jsonl"));
    let killed = killed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let stats = std::mem::take(
        &mut *webhooks
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let (checks, allowed) = checks::run(&checks::Evidence {
        carts: &carts,
        orders: &orders,
        events: &events,
        emails: &emails,
        calls: &calls,
        killed: &killed,
        lost_deliveries: stats.lost,
    });

    let moto_busy = aws_proxy
        .tally
        .upstream()
        .get("dynamodb calls")
        .copied()
        .unwrap_or_default();
    let mut faults = stripe_proxy.tally.snapshot();
    faults.extend(aws_proxy.tally.snapshot());
    faults.remove("forwarded");
    let mut figures = report::Figures {
        seed: cfg.seed,
        carts: carts.iter().fold(BTreeMap::new(), |mut m, c| {
            *m.entry(c.kind.name()).or_default() += 1;
            m
        }),
        events: stats.events,
        copies: stats.copies,
        refused: stats.refused,
        faults,
        webhook: stats.latencies,
        to_fulfilled: to_fulfilled(&carts, &webhooks, &calls),
        orders: orders
            .values()
            .filter(|o| matches!(o.state, FulfillmentState::Fulfilled { .. }))
            .count(),
        fulfil_calls: calls.iter().filter(|c| c.phase == "start").count(),
        emails: BTreeMap::from([
            (
                "confirmations",
                emails.iter().filter(|m| checks::is_confirmation(m)).count(),
            ),
            (
                "recovery",
                emails.iter().filter(|m| checks::is_recovery(m)).count(),
            ),
            (
                "failed-payment notices",
                emails
                    .iter()
                    .filter(|m| checks::is_payment_failed(m))
                    .count(),
            ),
            ("all", emails.len()),
        ]),
        redrives: count_in_logs(&dir, "re-driving an unfinished event"),
        given_up_batches: observe::failures(&dir.join("stream-failures.jsonl")),
        stack_starts: stack.starts.load(Ordering::SeqCst),
        kills: killed.len(),
        elapsed: started.elapsed(),
        settle,
        moto_busy,
    };
    let table = report::render(&mut figures, &checks, &allowed);
    {
        use std::io::Write as _;
        writeln!(std::io::stdout(), "{table}")?;
    }
    std::fs::write(dir.join("report.txt"), &table)?;
    // Before any exit: `process::exit` runs no destructor, and these own the processes.
    drop(stack);
    drop(moto_process);
    if checks.iter().any(|c| !c.failures.is_empty()) {
        eprintln!(
            "storm: invariants failed; the stack's logs are in {}",
            dir.display()
        );
        std::process::exit(1);
    }
    Ok(())
}

/// The stack's environment: the Makefile's (inherited), pointed at the proxies, with short
/// reconcile, grace and lease times so crashes heal within the run.
fn stack_env(
    cfg: &StormConfig,
    dir: &Path,
    port: u16,
    aws: u16,
    stripe: u16,
    origin: &str,
) -> Vec<(String, String)> {
    let file = |name: &str| dir.join(name).display().to_string();
    [
        ("PORT", port.to_string()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{aws}")),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("STRIPE_SECRET_KEY", stripe_simulator::DEV_API_KEY.into()),
        ("STRIPE_API_BASE", format!("http://127.0.0.1:{stripe}")),
        ("STRIPE_WEBHOOK_SECRET", cfg.webhook_secret.clone()),
        ("CONNECT_ACCOUNTS", ACCOUNTS.join(",")),
        ("RECONCILE_INTERVAL_SECS", "5".into()),
        ("RECONCILE_GRACE_SECS", "15".into()),
        ("FULFILLMENT_DEFAULT_LEASE_SECS", "10".into()),
        ("STREAM_CHECKPOINT_FILE", file("stream-positions.json")),
        ("STREAM_FAILURES_FILE", file("stream-failures.jsonl")),
        ("FULFIL_LOG_FILE", file("fulfil.jsonl")),
        // The demo shop's policy asks for shipping and terms on the hosted page; the storm's
        // shoppers fill in only an email.
        ("SHOP_POLICY_FILE", String::new()),
        ("ALLOWED_ORIGINS", origin.into()),
        ("PUBLIC_BASE_URL", origin.into()),
        ("MERCHANT_SHOP_URL", format!("{origin}/")),
        (
            "CHECKOUT_SUCCESS_URL",
            format!("{origin}/thanks?session_id={{CHECKOUT_SESSION_ID}}"),
        ),
        (
            "CHECKOUT_RETURN_URL",
            format!("{origin}/thanks?session_id={{CHECKOUT_SESSION_ID}}"),
        ),
        ("CHECKOUT_CANCEL_URL", format!("{origin}/")),
        (
            "PAYMENT_RETRY_URL",
            format!("{origin}/returning?retry={{PAYMENT_INTENT_ID}}"),
        ),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A DynamoDB client for moto itself (the storm's reads), from the bundle's own SDK
/// configuration (its transport and timeouts) with moto's endpoint.
async fn observer(moto: &str) -> DynamoDb {
    let sdk = checkout_core::aws::sdk_config().await;
    DynamoDb::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(moto)
            .build(),
    )
}

/// Restarts the stack whenever it exits on its own (a start that met the DynamoDB outage, a
/// crash), as Lambda starts a new execution environment.
fn supervise(stack: Arc<Stack>, http: Http) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if stack.exited() {
                eprintln!("storm: the stack exited on its own; starting it again");
                tokio::time::sleep(DOWN_FOR).await;
                if let Err(err) = stack.start(&http).await {
                    eprintln!("storm: restart failed: {err}");
                }
            }
        }
    })
}

/// Plays every cart, `concurrency` at a time; at `OUTAGE_AT_PERCENT` of them DynamoDB goes
/// away for a few seconds, at `KILL_AT_PERCENT` the stack is killed and started again.
async fn run_carts(
    cfg: &StormConfig,
    shop: Arc<Shop>,
    plan: Vec<Cart>,
    switches: &Arc<Switches>,
    stack: &Arc<Stack>,
    http: &Http,
    killed: &Arc<Mutex<HashSet<u32>>>,
) -> Vec<Cart> {
    let total = plan.len();
    let done = Arc::new(AtomicUsize::new(0));
    let slots = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let tasks: Vec<_> = plan
        .into_iter()
        .enumerate()
        .map(|(i, cart)| {
            let (shop, slots, done) = (shop.clone(), slots.clone(), done.clone());
            let seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            tokio::spawn(async move {
                let _slot = slots.acquire().await.expect("never closed");
                let cart = workload::play(shop, cart, seed).await;
                done.fetch_add(1, Ordering::SeqCst);
                cart
            })
        })
        .collect();
    let phases = {
        let (switches, stack, http, killed, done) = (
            switches.clone(),
            stack.clone(),
            http.clone(),
            killed.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            let reached = |percent: usize| {
                let at = total * percent / 100;
                let done = done.clone();
                async move {
                    while done.load(Ordering::SeqCst) < at {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            reached(OUTAGE_AT_PERCENT).await;
            eprintln!("storm: DynamoDB unavailable for {OUTAGE:?}");
            switches.dynamodb_outage(OUTAGE);
            // Apart from the outage, so the kill meets claims in flight rather than a stack
            // already failing on DynamoDB.
            tokio::time::sleep(OUTAGE + Duration::from_secs(3)).await;
            reached(KILL_AT_PERCENT).await;
            if let Some(pid) = stack.kill() {
                eprintln!("storm: kill -9 of the stack (pid {pid})");
                killed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(pid);
            }
            tokio::time::sleep(DOWN_FOR).await;
            if let Err(err) = stack.start(&http).await {
                eprintln!("storm: restart failed: {err}");
            }
        })
    };
    let mut carts = Vec::with_capacity(total);
    for task in tasks {
        if let Ok(cart) = task.await {
            carts.push(cart);
        }
    }
    let _ = phases.await;
    carts
}

/// Waits until nothing is left to happen: no webhook copy in flight, no stored event
/// pending, every paid cart's order fulfilled; or `SETTLE_WITHIN` passes (the checks then
/// say what is missing).
async fn settle(
    webhooks: &Webhooks,
    dynamodb: &DynamoDb,
    events: &TableName,
    orders: &TableName,
    carts: &[Cart],
) {
    let start = Instant::now();
    while start.elapsed() < SETTLE_WITHIN {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if webhooks.in_flight.load(Ordering::SeqCst) > 0 {
            continue;
        }
        let Ok(stored) = observe::scan::<EventRecord>(dynamodb, events).await else {
            continue;
        };
        if !observe::unfinished(&stored).is_empty() {
            continue;
        }
        let Ok(orders) = observe::scan::<OrderRecord>(dynamodb, orders).await else {
            continue;
        };
        let fulfilled: HashSet<&str> = orders
            .iter()
            .filter(|o| matches!(o.state, FulfillmentState::Fulfilled { .. }))
            .map(|o| o.order_id.as_str())
            .collect();
        let all_paid = carts
            .iter()
            .filter(|c| c.kind.pays() && c.error.is_none())
            .filter_map(|c| c.session.as_deref())
            .all(|s| fulfilled.contains(s));
        if all_paid {
            return;
        }
    }
}

/// From the first copy of the paying event caught to the first successful `Fulfil` of its
/// order (the fulfiller's log), both in wall-clock milliseconds.
fn to_fulfilled(
    carts: &[Cart],
    webhooks: &Webhooks,
    calls: &[observe::FulfilCall],
) -> Vec<Duration> {
    let mut fulfilled: HashMap<&str, u64> = HashMap::new();
    for call in calls.iter().filter(|c| c.phase == "ok") {
        fulfilled
            .entry(call.order_id.as_str())
            .or_insert(call.at_ms);
    }
    carts
        .iter()
        .filter(|c| c.kind.pays())
        .filter_map(|c| {
            let session = c.session.as_deref()?;
            let kind = match c.kind {
                Kind::DelayedSucceeded => "checkout.session.async_payment_succeeded",
                _ => "checkout.session.completed",
            };
            let sent = webhooks.first(session, kind)?;
            Some(Duration::from_millis(
                fulfilled.get(session)?.saturating_sub(sent),
            ))
        })
        .collect()
}

/// Lines of the stacks' logs containing `needle`.
fn count_in_logs(dir: &Path, needle: &str) -> u32 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let lines = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("stack-"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|log| log.lines().filter(|l| l.contains(needle)).count())
        .sum::<usize>();
    u32::try_from(lines).unwrap_or(u32::MAX)
}
