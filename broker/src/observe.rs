//! Observations a broker reports about its replicas, for the harness's
//! broker-side checkers (`replica-divergence`, `hw-regression`,
//! `epoch-regression`, `leader-per-epoch`).
//!
//! The harness passes one [`Observer`] per run in `BrokerConfig`; there is no
//! global registry (statics would leak across seeds, see MADSIM-FACTS.md).
//! In real mode there is no observer and nothing is built.
//!
//! Every observation names the broker, its process incarnation and the
//! partition, so a checker can replay each replica's log and high watermark
//! over time without reading any disk.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One record batch as stored: offsets, the leader epoch stamped in it and
/// its CRC-32C (which covers the records, not the offset or epoch fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMark {
    pub base_offset: i64,
    pub last_offset: i64,
    pub leader_epoch: i32,
    pub crc: u32,
}

/// What happened to one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ObsEvent {
    /// The replica was opened (recovered) by this process: the log holds
    /// `batches` (`[log_start, log_end)`) and the HW starts at `hw`.
    Opened { log_start: i64, log_end: i64, hw: i64, batches: Vec<BatchMark> },
    /// Batches appended at the log end (as leader or follower).
    Append { batches: Vec<BatchMark> },
    /// Everything at and after `to` was removed.
    Truncate { to: i64 },
    /// The replica's high watermark is now `value`.
    Hw { value: i64 },
    /// The controller's record for the partition now has this leader epoch.
    Epoch { leader_epoch: i32 },
    /// The controller's record for the partition, as this replica applied
    /// it, names another leader or ISR than before (reports show ISR
    /// shrinks and expands; every live replica reports the same change).
    PartitionState { leader: i32, isr: Vec<i32> },
    /// This broker became the partition's leader in `epoch`.
    BecameLeader { epoch: i32 },
    /// The replica's log dir failed; the replica is offline in this process.
    Offline { dir: String },
}

/// One observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub broker: i32,
    /// The process start that made it (restarts change it).
    pub incarnation: u64,
    pub topic: String,
    pub partition: i32,
    pub event: ObsEvent,
}

/// Receives observations. Called with broker locks held: must not block.
pub trait Observer: Send + Sync + 'static {
    fn observe(&self, obs: Observation);
}

/// An observer plus the identity of the process reporting to it.
#[derive(Clone)]
pub struct ObserverHandle {
    pub observer: Arc<dyn Observer>,
    pub broker: i32,
    pub incarnation: u64,
}

impl std::fmt::Debug for ObserverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserverHandle").field("broker", &self.broker).field("incarnation", &self.incarnation).finish()
    }
}

impl ObserverHandle {
    pub fn emit(&self, topic: &str, partition: i32, event: ObsEvent) {
        self.observer.observe(Observation {
            broker: self.broker,
            incarnation: self.incarnation,
            topic: topic.to_string(),
            partition,
            event,
        });
    }
}

/// Collects observations in memory (tests; the harness has its own).
#[derive(Default)]
pub struct VecObserver {
    pub seen: std::sync::Mutex<Vec<Observation>>,
}

impl Observer for VecObserver {
    fn observe(&self, obs: Observation) {
        self.seen.lock().unwrap().push(obs);
    }
}
