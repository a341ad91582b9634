//! `liveness`: after heal (every fault stops at `heal_ms`) the system must
//! recover within the scenario's bound. The measure is the final reader: it
//! starts when the workload stops, learns every partition's end (the high
//! watermark) and must read up to it within `final_poll_ms`. A partition
//! left without a leader, a consumer that cannot fetch, or an end that
//! cannot be learned all show up here.
//!
//! This is a run-level fact, not in the history: `ksim check` on a stored
//! history always counts 0.

use super::Anomaly;

pub const KEY: &str = "liveness";

/// One anomaly when the final reader did not reach the end of every
/// partition within `final_poll_ms`.
pub fn check(final_reads_complete: bool, final_poll_ms: u64) -> Vec<Anomaly> {
    if final_reads_complete {
        return Vec::new();
    }
    vec![Anomaly {
        key: KEY,
        partition: String::new(),
        value: None,
        offset: None,
        detail: format!("after heal the final reader did not reach the end of every partition within {final_poll_ms} ms"),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_reader_that_reached_every_end_is_live() {
        assert!(check(true, 20_000).is_empty());
    }

    #[test]
    fn a_final_reader_stuck_below_some_end_is_a_liveness_failure() {
        let a = check(false, 20_000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].key, KEY);
        assert!(a[0].detail.contains("20000 ms"));
    }
}
