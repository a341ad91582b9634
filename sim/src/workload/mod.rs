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
pub mod producer;

use std::sync::Mutex;

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
}

/// The shared log of events (completion order = simulated time order).
pub struct Recorder {
    start: tokio::time::Instant,
    events: Mutex<Vec<Event>>,
    next_value: Mutex<i64>,
}

impl Recorder {
    pub fn new(start: tokio::time::Instant) -> Self {
        Recorder { start, events: Mutex::new(Vec::new()), next_value: Mutex::new(0) }
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
