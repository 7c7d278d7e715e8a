//! The two processes the storm runs: moto, started once so it outlives every crash of the
//! stack (as DynamoDB and SES outlive a Lambda's), and the local stack, which the storm
//! kills with SIGKILL mid-run and starts again, as Lambda does after a crash or a timeout.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::client::{Http, wait_until_up};

/// A child killed when dropped, so an aborted storm leaves no server behind.
pub struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (the OS picks; a race with another process is possible but rare).
///
/// # Errors
/// No port could be bound.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Starts moto (the project's launcher, which applies each request atomically as DynamoDB
/// does) and waits until it answers.
///
/// # Errors
/// It could not be started or did not come up.
pub async fn moto(root: &Path, dir: &Path, http: &Http) -> Result<(Owned, u16), String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let log = File::create(dir.join("moto.log")).map_err(|e| e.to_string())?;
    let child = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("infra/moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("moto: {e} (run `make .venv/bin/moto_server` first)"))?;
    let owned = Owned(child);
    wait_until_up(
        http,
        &format!("http://127.0.0.1:{port}/moto-api/"),
        Duration::from_secs(30),
    )
    .await?;
    Ok((owned, port))
}

/// The local stack: its binary, environment and log directory, the running process, and how
/// often it was started.
pub struct Stack {
    binary: PathBuf,
    env: Vec<(String, String)>,
    dir: PathBuf,
    pub port: u16,
    child: Mutex<Option<Child>>,
    pub starts: AtomicU32,
}

impl Stack {
    pub fn new(binary: PathBuf, env: Vec<(String, String)>, dir: PathBuf, port: u16) -> Self {
        Self {
            binary,
            env,
            dir,
            port,
            child: Mutex::new(None),
            starts: AtomicU32::new(0),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the stack and waits until it serves (its tables made, its stream followed).
    ///
    /// # Errors
    /// It could not be spawned, or did not answer within a minute.
    pub async fn start(&self, http: &Http) -> Result<(), String> {
        let n = self.starts.fetch_add(1, Ordering::SeqCst) + 1;
        let log =
            File::create(self.dir.join(format!("stack-{n}.log"))).map_err(|e| e.to_string())?;
        let child = Command::new(&self.binary)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.binary.display()))?;
        *self.lock() = Some(child);
        wait_until_up(http, &format!("{}/", self.url()), Duration::from_secs(60)).await
    }

    /// `kill -9`: no shutdown, claims and leases left as they were. Returns the pid.
    pub fn kill(&self) -> Option<u32> {
        let mut child = self.lock().take()?;
        let pid = child.id();
        let _ = child.kill();
        let _ = child.wait();
        Some(pid)
    }

    /// Whether the stack exited on its own (a failed start, a crash): it is then restarted.
    pub fn exited(&self) -> bool {
        self.lock()
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_some())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.kill();
    }
}
