//! Webhook deliveries as a bad day at Stripe makes them: the simulator's events are caught
//! here (its webhook URL is this capture endpoint) and each is delivered to the stack 1 to 5
//! times, after random delays (so in random order), 32 at a time, each copy signed afresh
//! and retried with backoff until the stack answers 2xx, as Stripe retries for three days.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use checkout_core::config::Secret;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::client::Http;

/// Stripe's limit on concurrent deliveries is the endpoint's; the issue asks for 32.
const CONCURRENT: usize = 32;
/// A copy still refused after this is counted as lost (the invariants then fail).
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// An event the simulator sent: what the invariants and latencies need of it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub kind: String,
    pub object_id: String,
    /// Milliseconds since the epoch (compared with the fulfiller's log, another process).
    pub at_ms: u64,
}

#[derive(Default)]
pub struct Stats {
    pub events: u64,
    pub copies: u64,
    /// Answers other than 2xx, by status (0: no answer: the stack was down).
    pub refused: BTreeMap<u16, u64>,
    pub lost: u64,
    /// Time to each 2xx answer.
    pub latencies: Vec<Duration>,
}

pub struct Webhooks {
    http: Http,
    target: String,
    secret: Secret,
    rng: Mutex<fastrand::Rng>,
    slots: Semaphore,
    pub in_flight: AtomicU64,
    pub stats: Mutex<Stats>,
    /// Every event caught, by its object's id (a session, a subscription, an invoice).
    pub captured: Mutex<HashMap<String, Vec<Captured>>>,
}

impl Webhooks {
    pub fn new(http: Http, target: String, secret: Secret, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            http,
            target,
            secret,
            rng: Mutex::new(fastrand::Rng::with_seed(seed ^ 0x3e6)),
            slots: Semaphore::new(CONCURRENT),
            in_flight: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
            captured: Mutex::new(HashMap::new()),
        })
    }

    /// The capture endpoint the simulator posts to: it answers 200 at once and schedules the
    /// deliveries. Returns its URL.
    ///
    /// # Errors
    /// No port could be bound.
    pub async fn capture(self: &Arc<Self>) -> std::io::Result<String> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://127.0.0.1:{}/", listener.local_addr()?.port());
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let this = this.clone();
                        async move {
                            let body = request
                                .into_body()
                                .collect()
                                .await
                                .map(http_body_util::Collected::to_bytes)
                                .unwrap_or_default();
                            this.schedule(body);
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(url)
    }

    fn schedule(self: &Arc<Self>, body: Bytes) {
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let captured = Captured {
            kind: event["type"].as_str().unwrap_or_default().to_string(),
            object_id: event["data"]["object"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            at_ms: epoch_ms(),
        };
        let delays: Vec<Duration> = {
            let mut rng = lock(&self.rng);
            let copies = rng.usize(1..=5);
            (0..copies)
                .map(|_| Duration::from_millis(rng.u64(0..2_000)))
                .collect()
        };
        {
            let mut stats = lock(&self.stats);
            stats.events += 1;
            stats.copies += delays.len() as u64;
        }
        lock(&self.captured)
            .entry(captured.object_id.clone())
            .or_default()
            .push(captured);
        for delay in delays {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            let this = self.clone();
            let body = body.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                this.deliver(&body).await;
                this.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }

    /// One copy, until a 2xx: 250 ms, doubling to 8 s between attempts.
    async fn deliver(&self, body: &Bytes) {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(250);
        loop {
            let answer = {
                let _slot = self.slots.acquire().await.expect("never closed");
                let signature = checkout_core::webhook::sign(
                    &self.secret,
                    checkout_core::clock::Clock::system().now(),
                    body,
                );
                let sent = Instant::now();
                let answer = self
                    .http
                    .send(
                        Method::POST,
                        &self.target,
                        &[
                            ("content-type", "application/json; charset=utf-8"),
                            ("stripe-signature", &signature),
                        ],
                        body.clone(),
                    )
                    .await;
                (answer.map(|(status, _)| status), sent.elapsed())
            };
            match answer {
                (Ok(status), took) if status.is_success() => {
                    lock(&self.stats).latencies.push(took);
                    return;
                }
                (answer, _) => {
                    let status = answer.map_or(0, |s: StatusCode| s.as_u16());
                    *lock(&self.stats).refused.entry(status).or_default() += 1;
                }
            }
            if start.elapsed() > GIVE_UP_AFTER {
                lock(&self.stats).lost += 1;
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(8));
        }
    }

    /// When the first event of `kind` about `object_id` was caught (ms since the epoch).
    pub fn first(&self, object_id: &str, kind: &str) -> Option<u64> {
        lock(&self.captured)
            .get(object_id)?
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.at_ms)
            .min()
    }
}

pub fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
