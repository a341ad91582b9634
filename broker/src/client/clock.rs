//! The client's wall clock: the system clock (simulated under madsim) plus
//! an offset, so a harness can make one client's clock jump (NTP steps,
//! VM migrations) while brokers keep the true time. Kafka clients read the
//! wall clock (`Time.milliseconds()`) for record timestamps (CreateTime)
//! and for their timers: a consumer's poll deadline ([`Timer`], which, as
//! Kafka's, ignores readings that go backwards) and its backoffs, kept as
//! wall-clock instants, so a clock stepped back holds a backoff until the
//! clock has caught up again.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A shared handle: clones see (and move) the same offset.
#[derive(Debug, Clone, Default)]
pub struct ClientClock {
    /// Milliseconds added to the system clock.
    offset_ms: Arc<AtomicI64>,
}

impl ClientClock {
    /// Milliseconds since the epoch as this client sees them.
    pub fn now_ms(&self) -> i64 {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        system.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock by `delta_ms` (negative: back in time).
    pub fn jump(&self, delta_ms: i64) {
        self.offset_ms.fetch_add(delta_ms, Ordering::Relaxed);
    }

    /// How far this clock is from the system clock.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

/// A deadline on a client's wall clock, as Kafka's `Timer`: it caches the
/// time it last read and ignores readings that go backwards, so a clock
/// stepped back holds the deadline (until the clock passes the cached time
/// again), and a clock stepped forward expires it at once.
#[derive(Debug, Clone)]
pub struct Timer {
    clock: ClientClock,
    /// The latest reading seen.
    current_ms: i64,
    deadline_ms: i64,
}

impl Timer {
    /// Expires `timeout` after the clock's current reading.
    pub fn new(clock: &ClientClock, timeout: Duration) -> Timer {
        let current_ms = clock.now_ms();
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        Timer { clock: clock.clone(), current_ms, deadline_ms: current_ms.saturating_add(timeout_ms) }
    }

    /// Reads the clock; a reading below the last one is ignored.
    pub fn update(&mut self) {
        self.current_ms = self.current_ms.max(self.clock.now_ms());
    }

    /// Time left at the last reading.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.deadline_ms.saturating_sub(self.current_ms).max(0) as u64)
    }

    pub fn is_expired(&self) -> bool {
        self.current_ms >= self.deadline_ms
    }
}

/// Two clocks are equal when they are offset alike (configs compare so).
impl PartialEq for ClientClock {
    fn eq(&self, other: &Self) -> bool {
        self.offset_ms() == other.offset_ms()
    }
}

impl Eq for ClientClock {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_moves_every_clone_and_can_go_back() {
        let clock = ClientClock::default();
        let seen_by_producer = clock.clone();
        let before = seen_by_producer.now_ms();
        clock.jump(-3_600_000);
        let after = seen_by_producer.now_ms();
        assert!(after <= before - 3_600_000 + 1_000, "{before} -> {after}");
        assert_eq!(seen_by_producer.offset_ms(), -3_600_000);
        clock.jump(3_600_000);
        assert_eq!(seen_by_producer.offset_ms(), 0);
    }

    /// Kafka's `Timer.update`: a reading below the cached time is ignored,
    /// so a clock stepped back does not add time; one stepped forward
    /// expires the timer.
    #[test]
    fn a_timer_ignores_a_clock_stepped_back_and_expires_on_one_stepped_forward() {
        let clock = ClientClock::default();
        let mut timer = Timer::new(&clock, Duration::from_millis(5_000));
        clock.jump(-60_000);
        timer.update();
        assert!(timer.remaining() <= Duration::from_millis(5_000) && timer.remaining() >= Duration::from_millis(4_000));
        assert!(!timer.is_expired());
        clock.jump(60_000 + 10_000);
        timer.update();
        assert!(timer.is_expired());
        assert_eq!(timer.remaining(), Duration::ZERO);
    }
}
