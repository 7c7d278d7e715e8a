//! `make bench-lambda`: each function's release binary started the way Lambda starts a
//! custom runtime (a clean environment, the Runtime API on loopback), timed from process
//! creation to its first `/next` (init) and its first answer (cold), over N warm invocations,
//! with its peak RSS, against moto and against an in-process stub. See docs/bench-lambda.md.
//!
//! Options (environment): `BENCH_INVOCATIONS` (1000), `BENCH_COLD_STARTS` (5, fresh
//! processes per row for init and cold), `BENCH_FUNCTIONS` (comma list, all),
//! `BENCH_BACKENDS` (`stub,moto`), `BENCH_SECRETS` (`ssm` or `env`), `BENCH_BIN_DIR` (the
//! release binaries, `target/release`), `BENCH_TEMPLATE` (`infra/template.yaml`),
//! `BENCH_MOTO_RESET=1` (the bench started that moto: empty it before each row).
//!
//! Exit status: 0 when every row ran and every answer was the expected one (a budget over is
//! reported, not failed), 1 when a function failed to start or answered wrongly, 2 on bad
//! options.

mod backend_stub;
mod events;
mod functions;
mod measure;
mod process;
mod report;
mod runtime_api;
mod template;

use std::path::PathBuf;
use std::process::ExitCode;

use functions::{ALL, Function, Secrets};
use measure::{Backend, Settings};

struct Options {
    invocations: usize,
    cold_starts: usize,
    functions: Vec<&'static Function>,
    backends: Vec<Backend>,
    secrets: Secrets,
    bin_dir: PathBuf,
    template: PathBuf,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn options() -> Result<Options, String> {
    let invocations = match var("BENCH_INVOCATIONS") {
        None => 1000,
        Some(n) => n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("BENCH_INVOCATIONS={n}: a positive number"))?,
    };
    let cold_starts = match var("BENCH_COLD_STARTS") {
        None => 5,
        Some(n) => n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("BENCH_COLD_STARTS={n}: a positive number"))?,
    };
    let functions = match var("BENCH_FUNCTIONS") {
        None => ALL.iter().collect(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|name| {
                ALL.iter().find(|f| f.name == name).ok_or_else(|| {
                    let names: Vec<&str> = ALL.iter().map(|f| f.name).collect();
                    format!(
                        "BENCH_FUNCTIONS: no function {name:?} (one of {})",
                        names.join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let backends = var("BENCH_BACKENDS")
        .unwrap_or_else(|| "stub,moto".into())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|b| match b {
            "stub" => Ok(Backend::Stub),
            "moto" => Ok(Backend::Moto),
            other => Err(format!(
                "BENCH_BACKENDS: {other:?} is neither stub nor moto"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secrets = match var("BENCH_SECRETS").as_deref() {
        None | Some("ssm") => Secrets::Ssm,
        Some("env") => Secrets::Env,
        Some(other) => return Err(format!("BENCH_SECRETS: {other:?} is neither ssm nor env")),
    };
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    Ok(Options {
        invocations,
        cold_starts,
        functions,
        backends,
        secrets,
        bin_dir: var("BENCH_BIN_DIR").map_or_else(|| root.join("target/release"), PathBuf::from),
        template: var("BENCH_TEMPLATE")
            .map_or_else(|| root.join("infra/template.yaml"), PathBuf::from),
    })
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The machine, as the report states it: every CPU (not only those this process may use),
/// the model, the kernel, and the load when the bench started (others may be compiling).
fn machine() -> (usize, String) {
    let cpuinfo = read("/proc/cpuinfo");
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = read("/proc/sys/kernel/osrelease");
    let load = read("/proc/loadavg");
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    (
        cpus,
        format!(
            "machine: {cpus} CPUs ({model}), Linux {}, load average at start {}",
            kernel.trim(),
            load.join(" ")
        ),
    )
}

/// Today (UTC) as `YYYY-MM-DD`: the date part of the bundle's own ISO 8601 formatting.
fn today() -> String {
    let mut stamp = checkout_core::clock::iso8601(checkout_core::clock::Clock::system().now());
    stamp.truncate("YYYY-MM-DD".len());
    stamp
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("bench-lambda: {e}");
            return ExitCode::from(2);
        }
    };
    let (cpus, machine) = machine();
    // The bench on core 0, every function on core 1 (see process.rs); set before the runtime
    // starts so every thread the bench makes inherits it.
    let taskset = process::has_taskset();
    let pinning = if !taskset {
        "not pinned: taskset is not installed".to_string()
    } else if cpus < 2 {
        "not pinned: one CPU".to_string()
    } else {
        match process::pin_process(0) {
            Ok(()) => String::new(),
            Err(e) => format!("not pinned: {e}"),
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench-lambda: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(options, machine, pinning))
}

async fn run(options: Options, machine: String, pinning: String) -> ExitCode {
    let template = match template::Template::load(&options.template) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench-lambda: {e}");
            return ExitCode::from(2);
        }
    };
    let function_core = pinning.is_empty().then_some(1);
    let launcher = process::Launcher::start(function_core);
    let function_core = function_core.filter(|_| launcher.pinning.starts_with("functions pinned"));
    let pinning = if pinning.is_empty() {
        format!(
            "{}, the bench (Runtime API, stub, simulator) and moto on core 0",
            launcher.pinning
        )
    } else {
        pinning
    };
    // Absolute: each function runs in its own directory (LAMBDA_TASK_ROOT), as in Lambda.
    let bin_dir = std::fs::canonicalize(&options.bin_dir).unwrap_or(options.bin_dir);
    let settings = Settings {
        invocations: options.invocations,
        cold_starts: options.cold_starts,
        function_core,
        secrets: options.secrets,
        bin_dir,
        template,
        moto: var("AWS_ENDPOINT_URL"),
        moto_reset: var("BENCH_MOTO_RESET").as_deref() == Some("1"),
    };
    let mut rows = Vec::new();
    for (f, function) in options.functions.iter().enumerate() {
        for (b, backend) in options.backends.iter().enumerate() {
            eprintln!(
                "bench-lambda: {} against {} …",
                function.name,
                backend.name()
            );
            // Tables, ids and parameters apart per row, so rows never see each other's data.
            let tag = format!("{}r{f}{b}", std::process::id());
            let row = measure::row(function, *backend, &settings, &launcher, &tag).await;
            if let Err(reason) = &row.outcome {
                eprintln!(
                    "bench-lambda: {} against {} FAILED: {reason}",
                    function.name,
                    backend.name()
                );
            }
            rows.push(row);
        }
    }
    let secrets = match options.secrets {
        Secrets::Ssm => "SSM (one GetParameters at init)",
        Secrets::Env => "environment variables",
    };
    let memory: Vec<String> = rows
        .iter()
        .filter_map(|r| r.memory_mb.map(|m| format!("{} {m} MB", r.function.name)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let header = vec![
        format!(
            "bench-lambda {}: release binaries; per row {} fresh processes (init and cold: medians), then {} warm invocations in the last one; secrets from {secrets}",
            today(),
            options.cold_starts,
            options.invocations
        ),
        machine,
        format!("pinning: {pinning}"),
        format!(
            "memory size (template, not enforced): {}",
            memory.join(", ")
        ),
    ];
    let table = report::render(&rows, &header);
    #[expect(clippy::print_stdout, reason = "the table is the program's output")]
    {
        print!("{table}");
    }
    if rows.iter().all(|r| r.outcome.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
