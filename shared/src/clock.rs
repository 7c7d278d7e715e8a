//! The time every decision is taken at: unix seconds, from the system in production and from
//! a hand-moved clock in tests.
//!
//! Services hold a [`Clock`] and read it once per request or record, then pass that `now`
//! down, so one decision never sees two times. Tests that need time to pass (a lease running
//! out, a caller retrying a minute later) build the service with [`ManualClock::clock`] and
//! move it with [`ManualClock::advance`], instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time. Cheap to clone; clones of a manual clock share its hands.
#[derive(Debug, Clone, Default)]
pub struct Clock(Hands);

#[derive(Debug, Clone, Default)]
enum Hands {
    #[default]
    System,
    /// Unix milliseconds, moved only by the `ManualClock` that made it.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// The system's clock.
    #[must_use]
    pub fn system() -> Self {
        Self(Hands::System)
    }

    /// Unix seconds.
    #[must_use]
    pub fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// Unix milliseconds (metrics timestamps).
    #[must_use]
    pub fn now_millis(&self) -> i64 {
        match &self.0 {
            Hands::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or_default(),
            Hands::Manual(millis) => millis.load(Ordering::SeqCst),
        }
    }
}

impl Clock {
    /// Waits `duration`: for real on the system clock; a manual clock is moved forward by
    /// it instead, so a test of a wait (a lease running out) takes no time.
    pub async fn sleep(&self, duration: Duration) {
        match &self.0 {
            Hands::System => tokio::time::sleep(duration).await,
            Hands::Manual(millis) => {
                let by = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
                millis.fetch_add(by, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    }
}

/// A clock that stands still until it is moved: the handle a test keeps while the services
/// under test hold its [`Clock`].
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// Stopped at `unix_secs`.
    #[must_use]
    pub fn at(unix_secs: i64) -> Self {
        Self(Arc::new(AtomicI64::new(unix_secs.saturating_mul(1000))))
    }

    /// Stopped at the system's current time.
    #[must_use]
    pub fn now() -> Self {
        Self(Arc::new(AtomicI64::new(Clock::system().now_millis())))
    }

    /// The clock to give the services; it reads whatever this handle sets.
    #[must_use]
    pub fn clock(&self) -> Clock {
        Clock(Hands::Manual(self.0.clone()))
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }

    pub fn set(&self, unix_secs: i64) {
        self.0
            .store(unix_secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

/// `2026-12-01T21:22:52Z` for a unix time in seconds, for what operators read (`ops
/// explain`). Hand-written (days to civil date, after Howard Hinnant's algorithm) because a
/// date crate would be a dependency for this one format.
#[must_use]
pub fn iso8601(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_after_this_code_was_written() {
        // 2026-01-01T00:00:00Z: a clock reading seconds as milliseconds, or returning zero,
        // fails this.
        let now = Clock::system().now();
        assert!(now > 1_767_225_600, "{now}");
        assert!(now < 4_102_444_800, "{now}");
    }

    #[test]
    fn a_manual_clock_moves_only_when_told_and_every_clone_sees_it() {
        let hand = ManualClock::at(1_000);
        let clock = hand.clock();
        let clone = clock.clone();
        assert_eq!(clock.now(), 1_000);
        hand.advance(Duration::from_millis(1_500));
        assert_eq!((clock.now(), clone.now_millis()), (1_001, 1_001_500));
        hand.advance(Duration::from_secs(59));
        assert_eq!(clone.now(), 1_060);
        hand.set(5);
        assert_eq!(clock.now(), 5);
    }

    #[test]
    fn unix_times_read_as_utc_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_796_160_172), "2026-12-01T21:22:52Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59Z");
    }

    #[tokio::test]
    async fn sleeping_on_a_manual_clock_moves_it_at_once() {
        let hand = ManualClock::at(100);
        let started = std::time::Instant::now();
        hand.clock().sleep(Duration::from_secs(3_600)).await;
        assert_eq!(hand.clock().now(), 3_700);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_manual_clock_started_now_is_near_the_system_time() {
        let hand = ManualClock::now();
        let drift = (hand.clock().now() - Clock::system().now()).abs();
        assert!(drift <= 1, "{drift}");
    }
}
