//! One row: a function's binary started fresh against one backend, timed from process
//! creation to its first `/next` (init) and to its first answer (cold), then over N warm
//! invocations handed out back to back, and its peak RSS read just before it is killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use checkout_core::config::Secret;
use checkout_core::store::{DynamoDb, EventStore, tables};
use stripe_simulator::{Simulator, SimulatorConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::backend_stub::Stub;
use crate::functions::{self, Deployed, Endpoints, Function, Kind, Secrets};
use crate::process::{Launcher, Running};
use crate::runtime_api::{Answer, Lifecycle, RuntimeApi};
use crate::template::Template;

/// Lambda gives a runtime 10 s to initialize.
const INIT_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Stub,
    Moto,
}

impl Backend {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Stub => "stub",
            Self::Moto => "moto",
        }
    }
}

pub struct Settings {
    pub invocations: usize,
    /// Fresh processes per row; init and cold are their medians.
    pub cold_starts: usize,
    /// The core functions are pinned to, if they are.
    pub function_core: Option<usize>,
    pub secrets: Secrets,
    pub bin_dir: PathBuf,
    pub template: Template,
    /// moto's endpoint (`AWS_ENDPOINT_URL` of the bench's own environment).
    pub moto: Option<String>,
    /// The bench owns that moto and may empty it between rows.
    pub moto_reset: bool,
}

#[derive(Debug, Clone)]
pub struct Measured {
    /// Medians over the row's cold starts.
    pub init: Duration,
    pub cold: Duration,
    /// Every start's init, sorted.
    pub inits: Vec<Duration>,
    pub warm_p50: Duration,
    pub warm_p99: Duration,
    /// Of the process that ran the warm invocations.
    pub peak_rss_kib: Option<u64>,
    /// Share of the function's core used by other processes during the warm invocations
    /// (the machine is shared: others compile on it).
    pub others_on_core: Option<f64>,
}

pub struct Row {
    pub function: &'static Function,
    pub backend: Backend,
    pub binary_bytes: Option<u64>,
    pub memory_mb: Option<u64>,
    pub outcome: Result<Measured, String>,
    /// The stub's calls by operation over the whole row (init, cold and warm).
    pub stub_calls: Option<BTreeMap<String, u64>>,
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank among at most millions of samples"
    )]
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn unix_now() -> i64 {
    checkout_core::clock::Clock::system().now()
}

/// The Stripe simulator in this process, with the demo catalog (`price_mug`, …) and the
/// bench's key; its webhooks go nowhere (port 9), no invocation here needs them.
async fn start_simulator() -> Result<(String, Arc<Simulator>, JoinHandle<()>), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let simulator = Simulator::new(SimulatorConfig {
        api_key: Secret::new(
            functions::SECRETS
                .iter()
                .find(|(v, _)| *v == "STRIPE_SECRET_KEY")
                .map_or("", |(_, k)| *k),
        ),
        public_url: url.clone(),
        webhook_url: "http://127.0.0.1:9/webhooks/stripe".into(),
        webhook_secret: Secret::new("whsec_bench_simulator_unused"),
        catalog: stripe_simulator::demo_catalog(),
        shipping_rates: stripe_simulator::demo_shipping_rates(),
    });
    let task = tokio::spawn(simulator.clone().serve(listener));
    Ok((url, simulator, task))
}

/// moto holds nothing a function needs until the bench creates its tables (from the same
/// specs the local stack uses), its secrets, and for subscriptions the stored event the
/// stream record stands for.
async fn prepare_moto(
    endpoint: &str,
    reset: bool,
    deployed: &Deployed,
    function: &Function,
    row: &str,
    now: i64,
) -> Result<(), String> {
    if reset {
        reset_moto(endpoint).await?;
    }
    let sdk = checkout_core::aws::sdk_config().await;
    let dynamodb = DynamoDb::new(&sdk);
    for (name, spec) in &deployed.tables {
        tables::ensure(&dynamodb, name, spec)
            .await
            .map_err(|e| format!("moto: creating {name}: {e}"))?;
    }
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    for (name, value) in &deployed.parameters {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "moto: PutParameter {name}: {}",
                    aws_sdk_ssm::error::DisplayErrorContext(e)
                )
            })?;
    }
    if function.kind == Kind::Subscriptions {
        let table = deployed
            .env
            .get("EVENTS_TABLE")
            .ok_or("no EVENTS_TABLE")?
            .parse()
            .map_err(|e| format!("EVENTS_TABLE: {e:?}"))?;
        EventStore::new(table, dynamodb)
            .record_once(&crate::events::subscriptions_event(row, now)?)
            .await
            .map_err(|e| format!("moto: storing the stream's event: {e}"))?;
    }
    Ok(())
}

/// Empties moto (`POST /moto-api/reset`): moto slows down as it accumulates the earlier rows'
/// tables and calls, so each row starts from an empty one. Only a moto the bench's own
/// `make` target started (`BENCH_MOTO_RESET=1`): never someone's `make dev` moto.
async fn reset_moto(endpoint: &str) -> Result<(), String> {
    use hyper_util::client::legacy::Client;
    let client = Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let request = http::Request::post(format!("{endpoint}/moto-api/reset"))
        .body(http_body_util::Empty::new())
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("moto reset: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("moto reset: {}", response.status()))
    }
}

/// Runs one row; never panics on the function's behalf: whatever went wrong is the row's
/// outcome.
pub async fn row(
    function: &'static Function,
    backend: Backend,
    settings: &Settings,
    launcher: &Launcher,
    row_tag: &str,
) -> Row {
    let binary = settings.bin_dir.join(function.name);
    let mut row = Row {
        function,
        backend,
        binary_bytes: std::fs::metadata(&binary).ok().map(|m| m.len()),
        memory_mb: None,
        outcome: Err(String::new()),
        stub_calls: None,
    };
    let stub = match backend {
        Backend::Stub => match Stub::start().await {
            Ok(stub) => Some(stub),
            Err(e) => {
                row.outcome = Err(format!("stub: {e}"));
                return row;
            }
        },
        Backend::Moto => None,
    };
    row.outcome = run(
        function,
        backend,
        settings,
        launcher,
        row_tag,
        &binary,
        stub.as_ref(),
        &mut row.memory_mb,
    )
    .await;
    if let Some(stub) = &stub {
        row.stub_calls = Some(stub.calls());
        let unsupported = stub.unsupported();
        if !unsupported.is_empty() {
            let cannot = format!("the stub could not serve: {}", unsupported.join("; "));
            row.outcome = Err(match &row.outcome {
                Ok(_) => cannot,
                Err(reason) => format!("{cannot}\n    {reason}"),
            });
        }
    }
    row
}

#[expect(clippy::too_many_arguments, reason = "one row's context, used once")]
async fn run(
    function: &'static Function,
    backend: Backend,
    settings: &Settings,
    launcher: &Launcher,
    row_tag: &str,
    binary: &Path,
    stub: Option<&Stub>,
    memory_mb: &mut Option<u64>,
) -> Result<Measured, String> {
    if !binary.exists() {
        return Err(format!("{} not built", binary.display()));
    }
    let aws = match (backend, stub) {
        (Backend::Stub, Some(stub)) => stub.url.clone(),
        (Backend::Moto, _) => settings
            .moto
            .clone()
            .ok_or("moto: AWS_ENDPOINT_URL is not set (run under infra/with-moto.sh)")?,
        (Backend::Stub, None) => return Err("no stub".into()),
    };
    let simulator = if function.uses_stripe {
        Some(start_simulator().await?)
    } else {
        None
    };
    // The Runtime API address is per start; everything else in the environment is the same.
    let deployed = function.deploy(
        &settings.template,
        row_tag,
        settings.secrets,
        &Endpoints {
            runtime_api: String::new(),
            aws: &aws,
            stripe: simulator.as_ref().map(|(url, _, _)| url.as_str()),
        },
        &settings.bin_dir,
    )?;
    *memory_mb = Some(deployed.memory_mb);
    let now = unix_now();
    match stub {
        Some(stub) => stub.set_parameters(deployed.parameters.clone()),
        None => prepare_moto(&aws, settings.moto_reset, &deployed, function, row_tag, now).await?,
    }
    // Every event built before the clock starts, so the bench does no work between them:
    // one per cold start, then the warm ones (each distinct: the webhook's ids must be new).
    let starts = settings.cold_starts;
    let mut payloads = (0..starts + settings.invocations)
        .map(|i| function.payload(i, row_tag, now).map(Bytes::from))
        .collect::<Result<Vec<_>, _>>()?;
    let warm_payloads = payloads.split_off(starts);
    let mut inits = Vec::with_capacity(starts);
    let mut colds = Vec::with_capacity(starts);
    let mut last = None;
    for (k, cold_payload) in payloads.into_iter().enumerate() {
        // Only the last process stays warm; the others answer their cold invocation and are
        // killed, so init and cold are medians over `starts` fresh processes.
        let mut events = vec![cold_payload];
        if k + 1 == starts {
            events.extend(warm_payloads.iter().cloned());
        }
        let started = start_once(function, launcher, settings, binary, &deployed, events).await;
        let (init, cold, warm, peak_rss_kib, others) = started?;
        inits.push(init);
        colds.push(cold);
        last = Some((warm, peak_rss_kib, others));
    }
    if let Some((_, _, task)) = simulator {
        task.abort();
    }
    let (mut warm, peak_rss_kib, others_on_core) = last.ok_or("no start")?;
    warm.sort();
    inits.sort();
    colds.sort();
    Ok(Measured {
        init: percentile(&inits, 0.50),
        cold: percentile(&colds, 0.50),
        inits,
        warm_p50: percentile(&warm, 0.50),
        warm_p99: percentile(&warm, 0.99),
        peak_rss_kib,
        others_on_core,
    })
}

/// What one process gave: init, cold, the warm latencies, its peak RSS and the share of its
/// core other processes used meanwhile.
type Started = (Duration, Duration, Vec<Duration>, Option<u64>, Option<f64>);

/// Starts the binary once and hands it `events` (the first is its cold invocation).
async fn start_once(
    function: &'static Function,
    launcher: &Launcher,
    settings: &Settings,
    binary: &Path,
    deployed: &Deployed,
    events: Vec<Bytes>,
) -> Result<Started, String> {
    let (mut api, mut lifecycle) = RuntimeApi::start(function.arn())
        .await
        .map_err(|e| format!("runtime API: {e}"))?;
    api.set_timeout(deployed.timeout_secs);
    let mut env = deployed.env.clone();
    env.insert("AWS_LAMBDA_RUNTIME_API".into(), api.addr.to_string());
    let mut running = launcher
        .spawn(binary, &settings.bin_dir, &env, function.expected_warning)
        .await?;
    let timeout = Duration::from_secs(deployed.timeout_secs);
    let result = drive(
        &mut api,
        &mut lifecycle,
        &mut running,
        events,
        function,
        timeout,
        settings.function_core,
    )
    .await;
    let peak_rss_kib = running.peak_rss_kib();
    running.kill();
    let logs = running.logs.lock().expect("lock");
    let with_logs = |reason: String| {
        let tail = logs.tail().join("\n      ");
        format!("{reason}\n    last log lines:\n      {tail}")
    };
    let (init, cold, warm, others) = result.map_err(with_logs)?;
    if logs.unexpected > 0 {
        return Err(with_logs(format!(
            "{} unexpected WARN/ERROR log lines, first: {}",
            logs.unexpected,
            logs.first_unexpected.join(" | ")
        )));
    }
    Ok((init, cold, warm, peak_rss_kib, others))
}

type Timings = (Duration, Duration, Vec<Duration>, Option<f64>);

/// Where the warm phase began: the core's busy ticks, the function's, and the time.
struct CoreSnapshot {
    core: usize,
    busy: u64,
    own: u64,
    at: Instant,
}

impl CoreSnapshot {
    fn take(core: usize, running: &Running) -> Option<Self> {
        Some(Self {
            core,
            busy: crate::process::cpu_busy_ticks(core)?,
            own: running.cpu_ticks()?,
            at: Instant::now(),
        })
    }

    /// Busy ticks of the core not spent by the function, over the elapsed ticks.
    #[expect(clippy::cast_precision_loss, reason = "clock ticks of one run")]
    fn others(&self, running: &Running) -> Option<f64> {
        let busy = crate::process::cpu_busy_ticks(self.core)?.checked_sub(self.busy)?;
        let own = running.cpu_ticks()?.checked_sub(self.own)?;
        let elapsed = self.at.elapsed().as_secs_f64() * crate::process::TICKS_PER_SEC;
        // Ticks are 10 ms: under a quarter of a second says too little.
        (elapsed >= crate::process::TICKS_PER_SEC / 4.0)
            .then(|| (busy.saturating_sub(own) as f64 / elapsed).clamp(0.0, 1.0))
    }
}

async fn drive(
    api: &mut RuntimeApi,
    lifecycle: &mut tokio::sync::mpsc::UnboundedReceiver<Lifecycle>,
    running: &mut Running,
    payloads: Vec<Bytes>,
    function: &Function,
    timeout: Duration,
    core: Option<usize>,
) -> Result<Timings, String> {
    let started: Instant = running.started;
    let first_next = tokio::select! {
        event = lifecycle.recv() => match event {
            Some(Lifecycle::FirstNext(at)) => at,
            Some(Lifecycle::InitError(body)) => {
                return Err(format!("init error: {}", String::from_utf8_lossy(&body)));
            }
            Some(Lifecycle::Protocol(what)) => return Err(format!("protocol: {what}")),
            None => return Err("the Runtime API stopped".into()),
        },
        status = running.exited() => return Err(format!("exited during init ({status})")),
        () = tokio::time::sleep(INIT_LIMIT) => return Err("no /next within 10 s of the start".into()),
    };
    let init = first_next - started;
    let mut cold = Duration::ZERO;
    let mut warm = Vec::with_capacity(payloads.len());
    let mut snapshot = None;
    for (i, payload) in payloads.into_iter().enumerate() {
        let done = api.invoke(payload);
        let completion = tokio::select! {
            completion = done => completion.map_err(|_| format!("invocation {i}: dropped"))?,
            status = running.exited() => return Err(format!("exited during invocation {i} ({status})")),
            event = lifecycle.recv() => return Err(format!("during invocation {i}: {event:?}")),
            () = tokio::time::sleep(timeout) => return Err(format!("invocation {i}: no answer within the function's Timeout")),
        };
        match completion.answer {
            Answer::Error(body) => {
                return Err(format!(
                    "invocation {i} failed: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            Answer::Response(body) => function
                .check(&body)
                .map_err(|e| format!("invocation {i}: {e}"))?,
        }
        if i == 0 {
            cold = completion.answered - started;
            snapshot = core.and_then(|core| CoreSnapshot::take(core, running));
        } else {
            warm.push(completion.answered - completion.handed_out);
        }
    }
    let others = snapshot.and_then(|s| s.others(running));
    Ok((init, cold, warm, others))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&samples[..1], 0.99), Duration::from_millis(1));
    }
}
