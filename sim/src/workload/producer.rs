//! A producer process: sends unique values at `rate_per_s` with keys drawn
//! from `keys`, partitioned by Kafka's murmur2 so the history knows each
//! send's partition even when the outcome is unknown.

use super::{encode_value, tp_key, ClientControl, Recorder, SendOutcome};
use ksim_broker::client::{partition_for_key, Producer, ProducerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Sends one producer process keeps outstanding at most.
pub const MAX_OUTSTANDING_SENDS: usize = 16;

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
    while rec.now_ms() < spec.stop_ms {
        let permit = outstanding.clone().acquire_owned().await.expect("semaphore open");
        let value = rec.next_value();
        let key_idx = rng.random_range(0..spec.keys.max(1));
        let key_name = format!("k{key_idx}");
        let key = bytes::Bytes::from(key_name.clone());
        let partition = partition_for_key(&key, spec.partitions);
        let producer = producer.clone();
        let rec2 = rec.clone();
        let topic = spec.topic.clone();
        let process = spec.process;
        rec.invoke_send(process, tp_key(&topic, partition), Some(key_name), value);
        tokio::spawn(async move {
            let result = producer.send(&topic, Some(partition), Some(key), Some(encode_value(value))).await;
            let outcome = match result {
                Ok(md) => SendOutcome::Ok((md.offset >= 0).then_some(md.offset)),
                Err(e) if e.indefinite => SendOutcome::Info(e.message.clone()),
                Err(e) => SendOutcome::Fail(e.message.clone()),
            };
            rec2.complete_send(process, value, outcome);
            drop(permit);
        });
        tokio::time::sleep(interval).await;
    }
    // Let outstanding sends finish (each is bounded by delivery.timeout.ms).
    let _ = outstanding.acquire_many(MAX_OUTSTANDING_SENDS as u32).await;
}
