//! Fault points inside the broker (FoundationDB's BUGGIFY, through madsim's
//! `buggify`). Each point fires with a small probability when the harness
//! has switched buggify on (`[faults] buggify = true`, main phase only);
//! off, a point costs one flag check and draws no randomness, so runs
//! without buggify are unchanged. Outside the simulation they never fire.
//!
//! Every point is something a real broker may do on a bad day — a slow
//! disk, a slow response, a dropped connection, a late message to the
//! controller — so none may break Kafka's guarantees under safe configs.

use std::time::Duration;

/// A fault point: where it is and how often it fires.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// Named in logs.
    pub name: &'static str,
    /// Chance per pass while buggify is on.
    pub probability: f64,
    /// The delay it adds, drawn uniformly below this (0: not a delay).
    pub delay_ms_max: u64,
}

/// Produce handling waits before appending (a slow disk / fsync).
pub const SLOW_APPEND: Point = Point { name: "slow-append", probability: 0.02, delay_ms_max: 300 };
/// A Fetch response (consumer or follower) is held back.
pub const SLOW_FETCH_RESPONSE: Point = Point { name: "slow-fetch-response", probability: 0.02, delay_ms_max: 500 };
/// The connection closes after a request was handled, before the response
/// is written: the client sees a network error with an unknown outcome.
pub const SPURIOUS_CLOSE: Point = Point { name: "spurious-close", probability: 0.002, delay_ms_max: 0 };
/// A heartbeat to the controller leaves late.
pub const LATE_HEARTBEAT: Point = Point { name: "late-heartbeat", probability: 0.05, delay_ms_max: 1_500 };
/// An ISR change request (AlterPartition) leaves late.
pub const LATE_ALTER_PARTITION: Point = Point { name: "late-alter-partition", probability: 0.1, delay_ms_max: 1_000 };
/// A follower's fetcher pauses before its next fetch (replication lags).
pub const SLOW_FOLLOWER_FETCH: Point = Point { name: "slow-follower-fetch", probability: 0.01, delay_ms_max: 2_000 };

/// Whether `point` fires now.
pub fn fires(point: Point) -> bool {
    let fired = madsim::buggify::buggify_with_prob(point.probability);
    if fired {
        tracing::debug!(point = point.name, "buggify");
    }
    fired
}

/// Sleeps a random time below `point.delay_ms_max` when the point fires.
pub async fn maybe_delay(point: Point) {
    if point.delay_ms_max > 0 && fires(point) {
        let ms = madsim::rand::random::<u64>() % point.delay_ms_max;
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
