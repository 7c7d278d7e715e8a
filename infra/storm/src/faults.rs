//! The faults the storm injects, as policies for the two proxies (proxy.rs). Each draw comes
//! from one seeded generator, so a seed fixes which fraction of calls fail; which calls they
//! are depends on timing, as in production.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::proxy::{Canned, Fault, Faults, Seen};

/// How often each fault strikes, per eligible call, while faults are on.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// Stripe API calls answered 500 without reaching Stripe.
    pub stripe_500: f64,
    /// Stripe API calls answered 429 (rate limited) without reaching Stripe.
    pub stripe_429: f64,
    /// Stripe API calls that reach Stripe, whose answer is replaced by a 500 (the create
    /// happened; the caller must replay it with its idempotency key).
    pub stripe_lost_answer: f64,
    /// SES sends answered 429 TooManyRequestsException (nothing sent).
    pub ses_throttle: f64,
    /// SES sends that reach SES (the email goes out) and whose answer never comes back in time.
    pub ses_silence: f64,
}

pub const RATES: Rates = Rates {
    stripe_500: 0.04,
    stripe_429: 0.04,
    stripe_lost_answer: 0.02,
    ses_throttle: 0.08,
    ses_silence: 0.03,
};

/// Longer than the bundle's SDK attempt timeout (3 s), so the send ends without an answer.
const SES_SILENCE: Duration = Duration::from_secs(6);

/// The switches both policies read: faults on or off (off while the run settles), and the
/// DynamoDB outage window.
pub struct Switches {
    rng: Mutex<fastrand::Rng>,
    on: AtomicBool,
    dynamodb_down_until: Mutex<Option<Instant>>,
    rates: Rates,
}

impl Switches {
    pub fn new(seed: u64, rates: Rates) -> Self {
        Self {
            rng: Mutex::new(fastrand::Rng::with_seed(seed ^ 0xfa17)),
            on: AtomicBool::new(true),
            dynamodb_down_until: Mutex::new(None),
            rates,
        }
    }

    pub fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    /// DynamoDB (tables and streams) answers 500 to everyone for `how_long`.
    pub fn dynamodb_outage(&self, how_long: Duration) {
        *lock(&self.dynamodb_down_until) = Some(Instant::now() + how_long);
    }

    fn dynamodb_down(&self) -> bool {
        lock(&self.dynamodb_down_until).is_some_and(|until| Instant::now() < until)
    }

    /// `Some(i)` for the first of `rates` the draw falls in.
    fn draw(&self, rates: &[f64]) -> Option<usize> {
        if !self.on.load(Ordering::SeqCst) {
            return None;
        }
        let x = lock(&self.rng).f64();
        let mut edge = 0.0;
        rates.iter().position(|rate| {
            edge += rate;
            x < edge
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// In front of the simulator's API (`/v1/…`); its pages are the storm's own shoppers.
pub struct StripeFaults(pub Arc<Switches>);

const STRIPE_500: Canned = Canned {
    status: StatusCode::INTERNAL_SERVER_ERROR,
    content_type: "application/json",
    headers: &[],
    body: r#"{"error":{"type":"api_error","message":"storm: Stripe failed"}}"#,
};

const STRIPE_429: Canned = Canned {
    status: StatusCode::TOO_MANY_REQUESTS,
    content_type: "application/json",
    headers: &[],
    body: r#"{"error":{"type":"invalid_request_error","code":"rate_limit","message":"storm: too many requests"}}"#,
};

impl Faults for StripeFaults {
    fn decide(&self, request: &Seen<'_>) -> (Fault, Option<&'static str>) {
        if !request.path.starts_with("/v1/") {
            return (Fault::Forward, None);
        }
        let r = self.0.rates;
        match self
            .0
            .draw(&[r.stripe_500, r.stripe_429, r.stripe_lost_answer])
        {
            Some(0) => (Fault::Answer(STRIPE_500), Some("stripe 500")),
            Some(1) => (Fault::Answer(STRIPE_429), Some("stripe 429")),
            Some(_) => (
                Fault::ForwardThenAnswer(STRIPE_500),
                Some("stripe 500 after acting"),
            ),
            None => (Fault::Forward, Some("stripe api calls")),
        }
    }
}

/// In front of moto: DynamoDB and its streams by `X-Amz-Target`, SES v2 by path.
pub struct AwsFaults(pub Arc<Switches>);

const DYNAMODB_500: Canned = Canned {
    status: StatusCode::INTERNAL_SERVER_ERROR,
    content_type: "application/x-amz-json-1.0",
    headers: &[],
    body: r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"storm: DynamoDB unavailable"}"#,
};

const SES_THROTTLED: Canned = Canned {
    status: StatusCode::TOO_MANY_REQUESTS,
    content_type: "application/json",
    headers: &[("x-amzn-errortype", "TooManyRequestsException")],
    body: r#"{"message":"storm: Maximum sending rate exceeded."}"#,
};

impl Faults for AwsFaults {
    fn decide(&self, request: &Seen<'_>) -> (Fault, Option<&'static str>) {
        let target = request
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if target.starts_with("DynamoDB") {
            if self.0.on.load(Ordering::SeqCst) && self.0.dynamodb_down() {
                return (Fault::Answer(DYNAMODB_500), Some("dynamodb 500 (outage)"));
            }
            return (Fault::Forward, Some("dynamodb calls"));
        }
        if request.method == http::Method::POST && request.path == "/v2/email/outbound-emails" {
            let r = self.0.rates;
            return match self.0.draw(&[r.ses_throttle, r.ses_silence]) {
                Some(0) => (Fault::Answer(SES_THROTTLED), Some("ses 429")),
                Some(_) => (
                    Fault::ForwardThenHang(SES_SILENCE),
                    Some("ses sent, no answer"),
                ),
                None => (Fault::Forward, Some("ses sends")),
            };
        }
        (Fault::Forward, None)
    }
}
