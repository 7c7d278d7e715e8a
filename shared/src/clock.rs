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
    fn a_manual_clock_started_now_is_near_the_system_time() {
        let hand = ManualClock::now();
        let drift = (hand.clock().now() - Clock::system().now()).abs();
        assert!(drift <= 1, "{drift}");
    }
}
