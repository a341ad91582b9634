//! Client workloads that drive the cluster and record what they saw.
//!
//! Each process runs on its own madsim node (so faults can target clients).
//! Processes append raw events to a shared `Recorder`; after the run the
//! events become the history of the DESIGN.md contract.
//!
//! # Lifecycle (FoundationDB style)
//! setup (topics, leaders) → start (producers, consumers) → stop at
//! `duration_ms` → final polls to the end of every partition → check.

pub mod consumer;
pub mod group_consumer;
pub mod producer;

use ksim_broker::client::ClientClock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Reason recorded on sends still in flight when their process crashed.
pub const CRASHED_IN_FLIGHT: &str = "client process crashed with the send in flight";

/// Outcome of one send, classified as Kafka's errors demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Acknowledged at this offset (None with acks=0).
    Ok(Option<i64>),
    /// Definitely not written.
    Fail(String),
    /// Unknown: may or may not have been written.
    Info(String),
}

/// One recorded completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `invoke_t_ms`: when the send was called; `t_ms`: when it completed;
    /// `key`: the record key (`k{idx}`), for the per-key order checker.
    Send { process: u64, invoke_t_ms: u64, t_ms: u64, partition: String, key: Option<String>, value: i64, outcome: SendOutcome },
    /// One ok poll: per partition, (offset, value) pairs in offset order.
    Poll { process: u64, t_ms: u64, reads: Vec<(String, Vec<(i64, i64)>)> },
    Assign { process: u64, t_ms: u64, partitions: Vec<String> },
    /// The process was killed (a client crash fault); it never runs again
    /// (a restarted client is a new process).
    Crash { process: u64, t_ms: u64 },
    /// A group member subscribed to `topics`.
    Subscribe { process: u64, t_ms: u64, group: String, topics: Vec<String> },
    /// A group member's rebalance: its whole assignment in `generation`
    /// and what it gave up (revoked or lost).
    Rebalance { process: u64, t_ms: u64, group: String, generation: i64, assigned: Vec<String>, revoked: Vec<String> },
    /// An offset commit (partition → next offset to consume) and how it
    /// ended: `Ok(None)` committed, `Fail` definitely not (CommitFailed,
    /// rebalance in progress), `Info` unknown (timeouts, lost connection).
    Commit { process: u64, t_ms: u64, group: String, offsets: Vec<(String, i64)>, outcome: SendOutcome },
}

/// The harness's handle on one client process, shared across its restarts:
/// what client faults change while it runs.
#[derive(Debug, Default)]
pub struct ClientControl {
    /// The wall clock the client reads (clock-jump moves it).
    pub clock: ClientClock,
    /// slow-consumer: extra wait after every poll, 0 when healthy.
    stall_ms: AtomicU64,
    /// A group member's latest view of its membership: the generation it
    /// joined and what it owns there (`None`: in no generation). Read by
    /// the liveness watch after heal.
    membership: Mutex<Option<(i64, Vec<String>)>>,
}

impl ClientControl {
    pub fn stall_ms(&self) -> u64 {
        self.stall_ms.load(Ordering::Relaxed)
    }

    pub fn set_stall_ms(&self, ms: u64) {
        self.stall_ms.store(ms, Ordering::Relaxed);
    }

    pub fn membership(&self) -> Option<(i64, Vec<String>)> {
        self.membership.lock().unwrap().clone()
    }

    pub fn set_membership(&self, joined: Option<(i64, Vec<String>)>) {
        *self.membership.lock().unwrap() = joined;
    }
}

/// A send invoked and not yet completed.
#[derive(Debug, Clone)]
struct PendingSend {
    invoke_t_ms: u64,
    partition: String,
    key: Option<String>,
}

/// The shared log of events (completion order = simulated time order).
pub struct Recorder {
    start: tokio::time::Instant,
    events: Mutex<Vec<Event>>,
    next_value: Mutex<i64>,
    /// (process, value) of sends in flight, so a crash can close them as `info`.
    pending: Mutex<BTreeMap<(u64, i64), PendingSend>>,
}

impl Recorder {
    pub fn new(start: tokio::time::Instant) -> Self {
        Recorder { start, events: Mutex::new(Vec::new()), next_value: Mutex::new(0), pending: Mutex::new(BTreeMap::new()) }
    }

    pub fn now_ms(&self) -> u64 {
        tokio::time::Instant::now().saturating_duration_since(self.start).as_millis() as u64
    }

    /// A value never used before in this run (unique per partition a
    /// fortiori).
    pub fn next_value(&self) -> i64 {
        let mut v = self.next_value.lock().unwrap();
        *v += 1;
        *v
    }

    pub fn record(&self, e: Event) {
        self.events.lock().unwrap().push(e);
    }

    /// A send of `value` (with `key`) to `partition` starts now; returns
    /// its invoke time.
    pub fn invoke_send(&self, process: u64, partition: String, key: Option<String>, value: i64) -> u64 {
        let invoke_t_ms = self.now_ms();
        self.pending.lock().unwrap().insert((process, value), PendingSend { invoke_t_ms, partition, key });
        invoke_t_ms
    }

    /// Records the completion of a send started with `invoke_send` (nothing
    /// when its process was declared crashed meanwhile).
    pub fn complete_send(&self, process: u64, value: i64, outcome: SendOutcome) {
        let Some(p) = self.pending.lock().unwrap().remove(&(process, value)) else { return };
        self.record(Event::Send {
            process,
            invoke_t_ms: p.invoke_t_ms,
            t_ms: self.now_ms(),
            partition: p.partition,
            key: p.key,
            value,
            outcome,
        });
    }

    /// The process was killed: its sends in flight complete as `info`
    /// (they may or may not have been written), then the crash itself.
    pub fn crash(&self, process: u64) {
        let in_flight: Vec<((u64, i64), PendingSend)> = {
            let mut pending = self.pending.lock().unwrap();
            let keys: Vec<(u64, i64)> = pending.range((process, i64::MIN)..=(process, i64::MAX)).map(|(k, _)| *k).collect();
            keys.into_iter().filter_map(|k| pending.remove(&k).map(|p| (k, p))).collect()
        };
        let t_ms = self.now_ms();
        for ((_, value), p) in in_flight {
            self.record(Event::Send {
                process,
                invoke_t_ms: p.invoke_t_ms,
                t_ms,
                partition: p.partition,
                key: p.key,
                value,
                outcome: SendOutcome::Info(CRASHED_IN_FLIGHT.into()),
            });
        }
        self.record(Event::Crash { process, t_ms });
    }

    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut self.events.lock().unwrap())
    }
}

/// "topic/partition", the history's partition key.
pub fn tp_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Record values are the decimal text of the value (readable by real tools).
pub fn encode_value(v: i64) -> bytes::Bytes {
    bytes::Bytes::from(v.to_string())
}

pub fn decode_value(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}
