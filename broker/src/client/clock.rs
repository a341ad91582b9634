//! The client's wall clock: the system clock (simulated under madsim) plus
//! an offset, so a harness can make one client's clock jump (NTP steps,
//! VM migrations) while brokers keep the true time. Kafka clients read the
//! wall clock for record timestamps (CreateTime); that is what a jump moves.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

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
}
