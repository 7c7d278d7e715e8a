//! Starting a function's binary as Lambda starts a custom runtime, and watching it.
//!
//! Pinning: Lambda at 128 MB gives a function a fraction of one vCPU, so the function runs on
//! core 1 alone and the bench (Runtime API, stub, simulator, moto) on core 0. A `taskset -c 1
//! <binary>` wrapper would put taskset's own start (about 3 ms on the reference machine) into
//! every init; instead one launcher thread of the bench is pinned to core 1 (`taskset -p` on
//! its thread id, the bench may not call `sched_setaffinity` itself: no `unsafe`) and spawns
//! every function, which inherits that thread's affinity from its first instruction.
//!
//! Logs: the function's stdout and stderr are pipes the bench drains, as Lambda's are. With
//! the template's `LogFormat: JSON` each line is a JSON record; WARN and ERROR records the
//! invocation does not expect fail the row (a store error swallowed into a log line must not
//! pass for a success).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::{oneshot, watch};

type SpawnRequest = (Command, oneshot::Sender<std::io::Result<(Child, Instant)>>);

/// The thread every function is spawned from.
pub struct Launcher {
    requests: std_mpsc::Sender<SpawnRequest>,
    /// How functions are pinned, for the report.
    pub pinning: String,
}

/// Clock ticks per second of `/proc/stat` and `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
pub const TICKS_PER_SEC: f64 = 100.0;

/// Busy time of one CPU so far (everything but idle and iowait), in clock ticks.
#[must_use]
pub fn cpu_busy_ticks(core: usize) -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&format!("cpu{core}")))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = values.get(3)? + values.get(4)?;
    Some(values.iter().take(8).sum::<u64>() - idle)
}

/// Whether `taskset` is on the PATH.
#[must_use]
pub fn has_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pins the calling thread (by its id, read from `/proc/thread-self`) to `core`.
fn pin_this_thread(core: usize) -> Result<(), String> {
    let link =
        std::fs::read_link("/proc/thread-self").map_err(|e| format!("/proc/thread-self: {e}"))?;
    let tid = link
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("/proc/thread-self: no thread id")?
        .to_string();
    let status = Command::new("taskset")
        .args(["-p", "-c", &core.to_string(), &tid])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset -p -c {core} {tid}: {status}"))
    }
}

/// Pins the whole bench (every thread it has so far) to `core`.
///
/// # Errors
/// `taskset` failed.
pub fn pin_process(core: usize) -> Result<(), String> {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset -a -p -c {core}: {status}"))
    }
}

impl Launcher {
    /// `core`: where functions run; `None` leaves them unpinned.
    #[must_use]
    pub fn start(core: Option<usize>) -> Self {
        let (requests, incoming) = std_mpsc::channel::<SpawnRequest>();
        let (pinned_tx, pinned_rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            let pinning = match core {
                None => "not pinned".to_string(),
                Some(core) => match pin_this_thread(core) {
                    Ok(()) => format!("functions pinned to core {core}"),
                    Err(e) => format!("not pinned ({e})"),
                },
            };
            let _ = pinned_tx.send(pinning);
            for (mut command, reply) in incoming {
                // The clock starts as Lambda's would: just before the process is created.
                let started = Instant::now();
                let _ = reply.send(command.spawn().map(|child| (child, started)));
            }
        });
        let pinning = pinned_rx
            .recv()
            .unwrap_or_else(|_| "not pinned (launcher died)".into());
        Self { requests, pinning }
    }

    /// Spawns `binary` with exactly `env` (nothing inherited), in `dir`, output piped.
    ///
    /// # Errors
    /// The binary could not be started.
    pub async fn spawn(
        &self,
        binary: &Path,
        dir: &Path,
        env: &BTreeMap<String, String>,
        expected_warning: Option<&'static str>,
    ) -> Result<Running, String> {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(env)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((command, reply))
            .map_err(|_| "the launcher thread is gone".to_string())?;
        let (mut child, started) = answer
            .await
            .map_err(|_| "the launcher thread is gone".to_string())?
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let logs = Arc::new(Mutex::new(Logs::new(expected_warning)));
        let (exited_tx, exited) = watch::channel(false);
        let open = Arc::new(Mutex::new(2u8));
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        for (fd, is_stdout) in [
            (std::os::fd::OwnedFd::from(stdout), true),
            (std::os::fd::OwnedFd::from(stderr), false),
        ] {
            let receiver = pipe::Receiver::from_owned_fd(fd).map_err(|e| format!("pipe: {e}"))?;
            let logs = logs.clone();
            let open = open.clone();
            let exited_tx = exited_tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(receiver).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().expect("lock").record(&line, is_stdout);
                }
                // Both pipes closed: the process is gone (nothing else holds them).
                let mut open = open.lock().expect("lock");
                *open -= 1;
                if *open == 0 {
                    let _ = exited_tx.send(true);
                }
            });
        }
        Ok(Running {
            child,
            started,
            logs,
            exited,
        })
    }
}

/// What the function wrote, kept small: counts, the unexpected warnings, the last lines.
pub struct Logs {
    expected_warning: Option<&'static str>,
    pub lines: u64,
    pub unexpected: u64,
    pub first_unexpected: Vec<String>,
    tail: VecDeque<String>,
}

impl Logs {
    fn new(expected_warning: Option<&'static str>) -> Self {
        Self {
            expected_warning,
            lines: 0,
            unexpected: 0,
            first_unexpected: Vec::new(),
            tail: VecDeque::new(),
        }
    }

    fn record(&mut self, line: &str, is_stdout: bool) {
        self.lines += 1;
        let level = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["level"].as_str().map(str::to_string));
        let serious = match level.as_deref() {
            Some("WARN" | "ERROR") => true,
            Some(_) => false,
            // Not a JSON record: a panic message or a runtime's fallback eprintln.
            None => !is_stdout,
        };
        let expected = self.expected_warning.is_some_and(|w| line.contains(w));
        if serious && !expected {
            self.unexpected += 1;
            if self.first_unexpected.len() < 3 {
                self.first_unexpected.push(truncate(line, 600));
            }
        }
        if self.tail.len() == 12 {
            self.tail.pop_front();
        }
        self.tail.push_back(truncate(line, 400));
    }

    #[must_use]
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}

#[must_use]
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

pub struct Running {
    child: Child,
    /// Just before the process was created.
    pub started: Instant,
    pub logs: Arc<Mutex<Logs>>,
    exited: watch::Receiver<bool>,
}

impl Running {
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resolves when the process has exited (its pipes closed), with its status.
    pub async fn exited(&mut self) -> String {
        let _ = self.exited.wait_for(|gone| *gone).await;
        match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(e) => format!("wait: {e}"),
        }
    }

    /// `VmHWM`, the peak resident set, in KiB.
    #[must_use]
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// CPU time the process has used (utime + stime), in clock ticks.
    #[must_use]
    pub fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    }

    /// SIGKILL, as Lambda ends an execution environment, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
