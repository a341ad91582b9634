//! Assign-mode consumer processes: poll every partition of their topics
//! from the beginning and record each non-empty poll; and the final reader
//! that, after heal, reads every partition to its end.

use super::{decode_value, tp_key, ClientControl, Event, Recorder};
use ksim_broker::client::{Consumer, ConsumerConfig, ConsumerRecord};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Poll timeout of the workload's consumers.
pub const POLL_TIMEOUT_MS: u64 = 200;
/// Pause after a failed poll.
pub const POLL_BACKOFF_MS: u64 = 100;

pub struct ConsumerSpec {
    pub process: u64,
    /// (topic, partitions) to read.
    pub topics: Vec<(String, i32)>,
    pub config: BTreeMap<String, String>,
    /// Simulated processing time per poll.
    pub process_ms: u64,
    pub stop_ms: u64,
    /// Client faults' handle (slow-consumer stalls, the wall clock).
    pub control: Arc<ClientControl>,
}

fn all_partitions(topics: &[(String, i32)]) -> Vec<(String, i32)> {
    topics.iter().flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p))).collect()
}

pub(crate) fn record_poll(rec: &Recorder, process: u64, records: &[ConsumerRecord]) {
    if records.is_empty() {
        return;
    }
    let mut by_tp: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for r in records {
        let Some(v) = r.value.as_deref().and_then(decode_value) else { continue };
        by_tp.entry(tp_key(&r.topic, r.partition)).or_default().push((r.offset, v));
    }
    rec.record(Event::Poll { process, t_ms: rec.now_ms(), reads: by_tp.into_iter().collect() });
}

fn make_consumer(spec: &ConsumerSpec, bootstrap: Vec<SocketAddr>, rec: &Recorder) -> Option<Consumer> {
    let config = match ConsumerConfig::from_map(&spec.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("consumer {}: bad config: {e}", spec.process);
            return None;
        }
    };
    let mut consumer = Consumer::new(bootstrap, config.with_clock(spec.control.clock.clone()));
    let parts = all_partitions(&spec.topics);
    consumer.assign(parts.clone());
    for (t, p) in &parts {
        consumer.seek(t, *p, 0);
    }
    rec.record(Event::Assign {
        process: spec.process,
        t_ms: rec.now_ms(),
        partitions: parts.iter().map(|(t, p)| tp_key(t, *p)).collect(),
    });
    Some(consumer)
}

/// The main-phase consumer loop.
pub async fn run(spec: ConsumerSpec, bootstrap: Vec<SocketAddr>, rec: Arc<Recorder>) {
    let Some(mut consumer) = make_consumer(&spec, bootstrap, &rec) else { return };
    while rec.now_ms() < spec.stop_ms {
        match consumer.poll(Duration::from_millis(POLL_TIMEOUT_MS)).await {
            Ok(records) => {
                record_poll(&rec, spec.process, &records);
                if spec.process_ms > 0 && !records.is_empty() {
                    tokio::time::sleep(Duration::from_millis(spec.process_ms)).await;
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(POLL_BACKOFF_MS)).await,
        }
        // slow-consumer: processing stalls after every poll, data or not.
        let stall_ms = spec.control.stall_ms();
        if stall_ms > 0 {
            tokio::time::sleep(Duration::from_millis(stall_ms)).await;
        }
    }
}

/// The final reader: learns every partition's end offset, then polls from
/// the beginning until it has reached all of them or `deadline_ms` passes.
/// Returns true when it reached the end of every partition.
pub async fn final_poll(spec: ConsumerSpec, bootstrap: Vec<SocketAddr>, rec: Arc<Recorder>, deadline_ms: u64) -> bool {
    let Some(mut consumer) = make_consumer(&spec, bootstrap, &rec) else { return false };
    let parts = all_partitions(&spec.topics);
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    while ends.len() < parts.len() && rec.now_ms() < deadline_ms {
        let missing: Vec<(String, i32)> = parts.iter().filter(|tp| !ends.contains_key(*tp)).cloned().collect();
        match consumer.end_offsets(&missing).await {
            Ok(got) => {
                for (tp, end) in got {
                    ends.insert(tp, end);
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(POLL_BACKOFF_MS)).await,
        }
    }
    loop {
        let done = ends.len() == parts.len()
            && ends.iter().all(|((t, p), end)| consumer.position(t, *p).is_some_and(|pos| pos >= *end));
        if done {
            return true;
        }
        if rec.now_ms() >= deadline_ms {
            return false;
        }
        match consumer.poll(Duration::from_millis(POLL_TIMEOUT_MS)).await {
            Ok(records) => record_poll(&rec, spec.process, &records),
            Err(_) => tokio::time::sleep(Duration::from_millis(POLL_BACKOFF_MS)).await,
        }
    }
}
