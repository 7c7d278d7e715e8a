//! A `Fulfil` that writes one line per call to a file before and after the real one, so a
//! run that kills the stack (`make storm`) can count what `Fulfil` was asked to do from
//! outside the process: the file outlives a `kill -9`, the process's memory does not.
//! Without `FULFIL_LOG_FILE` it only calls the fulfilment it wraps.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use checkout_core::fulfillment::{Fulfil, FulfilError, Fulfilled, Order};

pub struct Logged<F> {
    inner: F,
    log: Option<Mutex<File>>,
}

impl<F> Logged<F> {
    /// `log`: the file named by `FULFIL_LOG_FILE`, opened for appending, or `None`.
    pub fn new(inner: F, log: Option<File>) -> Self {
        Self {
            inner,
            log: log.map(Mutex::new),
        }
    }

    /// Opens `FULFIL_LOG_FILE` for appending, when it is set.
    pub fn open(path: Option<String>) -> std::io::Result<Option<File>> {
        path.map(|path| File::options().create(true).append(true).open(path))
            .transpose()
    }

    /// One line, written with one `write` call on an `O_APPEND` file: lines from two
    /// processes (a killed stack and its successor) never interleave.
    fn line(&self, order: &Order, phase: &str) {
        let Some(log) = &self.log else { return };
        let line = serde_json::json!({
            "order_id": order.order_id,
            "pid": std::process::id(),
            "phase": phase,
            // Milliseconds since the epoch: the storm's event-to-fulfilled latency ends here.
            "at_ms": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
        })
        .to_string()
            + "\n";
        let mut file = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(err) = file.write_all(line.as_bytes()) {
            tracing::error!(error = %err, "FULFIL_LOG_FILE not written");
        }
    }
}

impl<F: Fulfil> Fulfil for Logged<F> {
    async fn fulfil(&self, order: &Order) -> Result<Fulfilled, FulfilError> {
        self.line(order, "start");
        let result = self.inner.fulfil(order).await;
        self.line(order, if result.is_ok() { "ok" } else { "error" });
        result
    }
}
