//! A producer process: sends unique values at `rate_per_s` with keys drawn
//! from `keys`, partitioned by Kafka's murmur2 so the history knows each
//! send's partition even when the outcome is unknown.
//!
//! With an [`Outbox`] (`resend_unacked_on_restart`), the producer behaves
//! like an at-least-once application: every send stays in the outbox until
//! it is acknowledged or definitely fails, the outbox survives a crash of
//! the process, and the restarted process (a new producer session: a new
//! producer id from InitProducerId) first sends its values again. The
//! broker's idempotence deduplicates retries within one producer session
//! only, so a value the crashed session had written comes back as a
//! duplicate.

use super::{encode_value, tp_key, ClientControl, Recorder, SendOutcome};
use ksim_broker::client::{partition_for_key, Producer, ProducerConfig, ProducerRecord};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sends one producer process keeps outstanding at most.
pub const MAX_OUTSTANDING_SENDS: usize = 16;

/// A value the application still owes the log: where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unacked {
    pub partition: i32,
    /// The record key's name (`k{idx}`).
    pub key: String,
}

/// The application's outbox, shared by every process of one producer
/// machine (it outlives crashes, as a database table would): value →
/// where it goes, for every send not yet acknowledged and not definitely
/// failed. Ordered by value, which is invocation order, so a restarted
/// process resends in the order the values were first sent.
#[derive(Debug, Default)]
pub struct Outbox(Mutex<BTreeMap<i64, Unacked>>);

impl Outbox {
    fn put(&self, value: i64, u: Unacked) {
        self.0.lock().unwrap().insert(value, u);
    }

    /// The send of `value` was acknowledged or definitely failed.
    fn settle(&self, value: i64) {
        self.0.lock().unwrap().remove(&value);
    }

    /// Everything still owed, in value order, leaving the outbox empty
    /// (each value goes back in when it is sent again).
    pub fn take(&self) -> Vec<(i64, Unacked)> {
        std::mem::take(&mut *self.0.lock().unwrap()).into_iter().collect()
    }
}

pub struct ProducerSpec {
    pub process: u64,
    pub topic: String,
    pub partitions: i32,
    pub rate_per_s: f64,
    pub keys: u64,
    pub config: BTreeMap<String, String>,
    pub seed: u64,
    /// Stop sending at this time (ms since the main phase started).
    pub stop_ms: u64,
    /// Client faults' handle (the producer's wall clock).
    pub control: Arc<ClientControl>,
    /// `resend_unacked_on_restart`: the outbox this machine's processes
    /// share; `None` sends every value once, whatever happens.
    pub outbox: Option<Arc<Outbox>>,
}

pub async fn run(spec: ProducerSpec, bootstrap: Vec<SocketAddr>, rec: Arc<Recorder>) {
    let config = match ProducerConfig::from_map(&spec.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("producer {}: bad config: {e}", spec.process);
            return;
        }
    };
    let producer = Arc::new(Producer::new(bootstrap, config.with_clock(spec.control.clock.clone())));
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ (spec.process.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let interval = Duration::from_secs_f64(1.0 / spec.rate_per_s.max(0.001));
    let outstanding = Arc::new(tokio::sync::Semaphore::new(MAX_OUTSTANDING_SENDS));
    let sender = Sender { producer, rec: rec.clone(), topic: spec.topic.clone(), process: spec.process, outbox: spec.outbox.clone() };
    // What a crashed predecessor left unacknowledged goes first, at once
    // (bounded by the outstanding sends), whatever the time.
    let owed = spec.outbox.as_ref().map(|o| o.take()).unwrap_or_default();
    if !owed.is_empty() {
        tracing::info!("producer {}: resending {} unacknowledged values of a crashed session", spec.process, owed.len());
    }
    for (value, u) in owed {
        let permit = outstanding.clone().acquire_owned().await.expect("semaphore open");
        sender.send(value, u, permit);
    }
    while rec.now_ms() < spec.stop_ms {
        let permit = outstanding.clone().acquire_owned().await.expect("semaphore open");
        let value = rec.next_value();
        let key_idx = rng.random_range(0..spec.keys.max(1));
        let key = format!("k{key_idx}");
        let partition = partition_for_key(key.as_bytes(), spec.partitions);
        sender.send(value, Unacked { partition, key }, permit);
        tokio::time::sleep(interval).await;
    }
    // Let outstanding sends finish (each is bounded by delivery.timeout.ms).
    let _ = outstanding.acquire_many(MAX_OUTSTANDING_SENDS as u32).await;
}

/// What every send of one process needs.
struct Sender {
    producer: Arc<Producer>,
    rec: Arc<Recorder>,
    topic: String,
    process: u64,
    outbox: Option<Arc<Outbox>>,
}

impl Sender {
    /// Records the invocation and hands the record to the producer; the
    /// callback records the outcome and releases `permit`.
    fn send(&self, value: i64, u: Unacked, permit: tokio::sync::OwnedSemaphorePermit) {
        let (rec, process, outbox) = (self.rec.clone(), self.process, self.outbox.clone());
        rec.invoke_send(process, tp_key(&self.topic, u.partition), Some(u.key.clone()), value);
        let key = bytes::Bytes::from(u.key.clone());
        let record = ProducerRecord::new(self.topic.clone(), Some(key), Some(encode_value(value))).with_partition(u.partition);
        if let Some(o) = &outbox {
            o.put(value, u);
        }
        // Appended now, in invocation order; concurrent sends may share a
        // batch, and each callback gets its own record's offset.
        self.producer.send_with_callback(record, move |result| {
            let outcome = match result {
                Ok(md) => SendOutcome::Ok((md.offset >= 0).then_some(md.offset)),
                Err(e) if e.indefinite => SendOutcome::Info(e.message.clone()),
                Err(e) => SendOutcome::Fail(e.message.clone()),
            };
            // An unknown outcome stays owed: only a restart resends it.
            let settled = !matches!(outcome, SendOutcome::Info(_));
            if let Some(o) = outbox.as_ref().filter(|_| settled) {
                o.settle(value);
            }
            rec.complete_send(process, value, outcome);
            drop(permit);
        });
    }
}
