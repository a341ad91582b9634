//! Choosing a record's partition, as Kafka's producer does.
//!
//! - [`murmur2`] / [`partition_for_key`]: Kafka's keyed hash, bit for bit
//!   the Java client's, so the harness knows which partition a keyed send
//!   goes to even when its outcome is unknown.
//! - [`BuiltInPartitioner`]: what Kafka 3.3+ does when `partitioner.class`
//!   is unset (KIP-794): keyed records by murmur2, keyless records to a
//!   sticky partition that changes after `batch.size` bytes (KIP-480/794).
//! - [`Partitioner`]: the pluggable interface (`partitioner.class`), with
//!   [`RoundRobinPartitioner`], [`RandomPartitioner`] and any user type
//!   installed with `ProducerConfig::with_partitioner`.
//!
//! All randomness comes from a ChaCha rng seeded when the producer is
//! created, so a madsim run with the same seed partitions identically.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// `partitioner.class` value naming Kafka's round-robin partitioner.
pub const ROUND_ROBIN_CLASS: &str = "org.apache.kafka.clients.producer.RoundRobinPartitioner";
/// `partitioner.class` value for [`RandomPartitioner`] (a ksim name, like
/// librdkafka's `partitioner=random`; Kafka has no such class).
pub const RANDOM_CLASS: &str = "random";
/// Kafka's deprecated pre-3.3 default (KIP-480 sticky); mapped to the built-in one.
pub const DEFAULT_PARTITIONER_CLASS: &str = "org.apache.kafka.clients.producer.internals.DefaultPartitioner";
/// Kafka's deprecated keyless sticky partitioner; mapped to the built-in
/// one with `partitioner.ignore.keys=true` (it ignores keys).
pub const UNIFORM_STICKY_CLASS: &str = "org.apache.kafka.clients.producer.UniformStickyPartitioner";

/// Kafka's `Partitioner` interface (`partitioner.class`): picks the
/// partition of a record that has none, out of `partitions` (all partitions
/// of the topic, numbered from 0). Returning a partition outside
/// `0..partitions` fails the send without sending it.
///
/// Kafka's `onNewBatch` hook is left out on purpose: calling it is what
/// makes Kafka's RoundRobinPartitioner skip partitions (KAFKA-9965).
pub trait Partitioner: Send + Sync {
    fn partition(&self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, partitions: i32) -> i32;
}

/// Kafka's `Utils.murmur2` (seed 0x9747b28c), returned as a Java `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a keyed record:
/// `toPositive(murmur2(key)) % partitions`, over all partitions of the topic.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "partition_for_key: partitions must be positive, got {partitions}");
    to_positive(murmur2(key)) % partitions
}

/// Kafka's `RoundRobinPartitioner`: a counter per topic,
/// `toPositive(counter++) % partitions`, keys ignored.
///
/// Kafka's class skips partitions (KAFKA-9965: `onNewBatch` makes the
/// producer call `partition` twice for one record, each call advancing the
/// counter). That bug is not reproduced: every record advances the counter
/// exactly once, so N consecutive records cover N distinct partitions.
/// Kafka also cycles over partitions with a leader when there are some;
/// this one cycles over all partitions (a partition without a leader is
/// retried by the send until it has one or delivery.timeout.ms passes).
#[derive(Debug, Default)]
pub struct RoundRobinPartitioner {
    /// Next counter value per topic (a Java `int`, wrapping).
    counters: Mutex<BTreeMap<String, i32>>,
}

impl RoundRobinPartitioner {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Partitioner for RoundRobinPartitioner {
    fn partition(&self, topic: &str, _key: Option<&[u8]>, _value: Option<&[u8]>, partitions: i32) -> i32 {
        assert!(partitions > 0, "RoundRobinPartitioner: partitions must be positive, got {partitions}");
        let mut counters = self.counters.lock().unwrap();
        let counter = counters.entry(topic.to_string()).or_insert(0);
        let n = *counter;
        *counter = n.wrapping_add(1);
        to_positive(n) % partitions
    }
}

/// A uniformly random partition per record, keys ignored, from a seeded rng.
#[derive(Debug)]
pub struct RandomPartitioner {
    rng: Mutex<ChaCha8Rng>,
}

impl RandomPartitioner {
    pub fn new(seed: u64) -> Self {
        RandomPartitioner { rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)) }
    }
}

impl Partitioner for RandomPartitioner {
    fn partition(&self, _topic: &str, _key: Option<&[u8]>, _value: Option<&[u8]>, partitions: i32) -> i32 {
        assert!(partitions > 0, "RandomPartitioner: partitions must be positive, got {partitions}");
        self.rng.lock().unwrap().random_range(0..partitions)
    }
}

/// Kafka 3.3+'s built-in partitioning (KIP-794), used when
/// `partitioner.class` is unset.
///
/// - Keyed records (unless `partitioner.ignore.keys`): `partition_for_key`.
/// - Keyless records: one sticky partition per topic (KIP-480). Each record's
///   bytes are counted toward it; once `batch.size` bytes went there, the
///   next record goes to a new partition drawn at random among those with a
///   leader. Kafka counts bytes appended to its batches; this one counts
///   each record's estimated size as it is assigned, which is where the
///   producer appends it.
///
/// Differences from Kafka, on purpose: a switch never re-draws the current
/// partition when another one is available (Kafka 3.3's draw may, the
/// KIP-480 cache did not), so a switch is always visible; adaptive
/// partitioning by broker queue size (`partitioner.adaptive.partitioning.enable`)
/// is not modelled.
#[derive(Debug)]
pub struct BuiltInPartitioner {
    /// `batch.size`: bytes a sticky partition takes before the switch.
    batch_size: usize,
    /// `partitioner.ignore.keys`: keyed records take the sticky path too.
    ignore_keys: bool,
    state: Mutex<StickyState>,
}

#[derive(Debug)]
struct StickyState {
    rng: ChaCha8Rng,
    /// Sticky partition per topic.
    topics: BTreeMap<String, Sticky>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sticky {
    partition: i32,
    /// Bytes assigned to `partition` since it became sticky.
    produced_bytes: usize,
}

impl BuiltInPartitioner {
    pub fn new(batch_size: usize, ignore_keys: bool, seed: u64) -> Self {
        BuiltInPartitioner {
            batch_size,
            ignore_keys,
            state: Mutex::new(StickyState { rng: ChaCha8Rng::seed_from_u64(seed), topics: BTreeMap::new() }),
        }
    }

    /// The partition of one record of `record_bytes` bytes. `available`
    /// lists the partitions with a leader (all of them are used when empty).
    pub fn partition(&self, topic: &str, key: Option<&[u8]>, record_bytes: usize, available: &[i32], partitions: i32) -> i32 {
        assert!(partitions > 0, "BuiltInPartitioner: partitions must be positive, got {partitions}");
        if let (Some(k), false) = (key, self.ignore_keys) {
            return partition_for_key(k, partitions);
        }
        let available: Vec<i32> = available.iter().copied().filter(|p| (0..partitions).contains(p)).collect();
        let all: Vec<i32> = (0..partitions).collect();
        let candidates = if available.is_empty() { &all } else { &available };
        let mut st = self.state.lock().unwrap();
        let StickyState { rng, topics } = &mut *st;
        let current = topics.get(topic).copied().filter(|s| s.partition < partitions);
        let mut sticky = match current {
            Some(s) => s,
            None => Sticky { partition: draw(rng, candidates, None), produced_bytes: 0 },
        };
        let chosen = sticky.partition;
        sticky.produced_bytes += record_bytes;
        if sticky.produced_bytes >= self.batch_size {
            sticky = Sticky { partition: draw(rng, candidates, Some(chosen)), produced_bytes: 0 };
        }
        topics.insert(topic.to_string(), sticky);
        chosen
    }

    /// The sticky partition of a topic, if one was chosen (for tests).
    pub fn sticky_partition(&self, topic: &str) -> Option<i32> {
        self.state.lock().unwrap().topics.get(topic).map(|s| s.partition)
    }
}

/// A random member of `candidates` (non-empty), other than `except` when
/// there is another choice.
fn draw(rng: &mut ChaCha8Rng, candidates: &[i32], except: Option<i32>) -> i32 {
    assert!(!candidates.is_empty(), "draw: no candidate partitions");
    let others: Vec<i32> = candidates.iter().copied().filter(|p| Some(*p) != except).collect();
    let pool = if others.is_empty() { candidates } else { &others };
    pool[rng.random_range(0..pool.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from Kafka's UtilsTest.testMurmur2 (clients/src/test/.../UtilsTest.java).
    #[test]
    fn murmur2_matches_kafka_utils_test_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), *want, "murmur2({:?})", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn to_positive_clears_the_sign_bit_rather_than_negating() {
        assert_eq!(to_positive(-1), 0x7fff_ffff);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn partition_for_key_is_in_range_and_matches_the_formula() {
        for p in 1..=7 {
            let got = partition_for_key(b"foobar", p);
            assert_eq!(got, (-790_332_482i32 & 0x7fff_ffff) % p);
            assert!((0..p).contains(&got));
        }
    }

    // Keyed records of one key always land on one partition (KIP-794: the
    // built-in partitioner keeps murmur2 for keys), whatever was sent before.
    #[test]
    fn builtin_keyed_records_of_one_key_stay_on_one_partition() {
        let p = BuiltInPartitioner::new(100, false, 7);
        for key in ["a", "b", "foobar", "k17"] {
            let want = partition_for_key(key.as_bytes(), 6);
            for bytes in [1, 50, 500, 5000] {
                assert_eq!(p.partition("t", Some(key.as_bytes()), bytes, &[0, 1, 2, 3, 4, 5], 6), want, "key {key}");
            }
        }
        assert_eq!(p.sticky_partition("t"), None, "keyed records do not touch the sticky state");
    }

    // KIP-480/KIP-794: keyless records stick to one partition until batch.size
    // bytes went there, then move to another one.
    #[test]
    fn builtin_keyless_records_stick_until_batch_size_bytes_then_move() {
        let p = BuiltInPartitioner::new(1000, false, 42);
        let all = [0, 1, 2, 3];
        let mut runs: Vec<(i32, usize)> = Vec::new();
        for _ in 0..40 {
            let got = p.partition("t", None, 100, &all, 4);
            match runs.last_mut() {
                Some((part, n)) if *part == got => *n += 1,
                _ => runs.push((got, 1)),
            }
        }
        // 100-byte records, batch.size 1000: exactly ten per partition, then a switch.
        assert_eq!(runs.len(), 4, "{runs:?}");
        assert!(runs.iter().all(|(_, n)| *n == 10), "{runs:?}");
        assert!(runs.windows(2).all(|w| w[0].0 != w[1].0), "a switch moves: {runs:?}");
        // A record crossing the limit still goes to the old partition.
        let q = BuiltInPartitioner::new(1000, false, 42);
        let first = q.partition("t", None, 999, &all, 4);
        assert_eq!(q.partition("t", None, 5, &all, 4), first);
        assert_ne!(q.partition("t", None, 5, &all, 4), first);
    }

    #[test]
    fn builtin_sticky_state_is_per_topic_and_prefers_available_partitions() {
        let p = BuiltInPartitioner::new(10, false, 3);
        for _ in 0..50 {
            assert!([1, 3].contains(&p.partition("a", None, 4, &[1, 3], 5)));
        }
        let b = p.partition("b", None, 1, &[], 5);
        assert!((0..5).contains(&b));
        assert_eq!(p.sticky_partition("b"), Some(b));
    }

    // partitioner.ignore.keys=true (KIP-794): keyed records take the sticky path.
    #[test]
    fn builtin_ignore_keys_makes_keyed_records_sticky() {
        let p = BuiltInPartitioner::new(16384, true, 9);
        let parts: Vec<i32> = (0..20).map(|i| p.partition("t", Some(format!("k{i}").as_bytes()), 10, &[], 8)).collect();
        assert!(parts.iter().all(|x| *x == parts[0]), "{parts:?}");
    }

    #[test]
    fn builtin_is_deterministic_for_a_seed() {
        let run = |seed| {
            let p = BuiltInPartitioner::new(50, false, seed);
            (0..100).map(|_| p.partition("t", None, 10, &[], 16)).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    // Kafka's RoundRobinPartitioner without the KAFKA-9965 skip: each record
    // advances the per-topic counter once.
    #[test]
    fn round_robin_cycles_through_all_partitions() {
        let p = RoundRobinPartitioner::new();
        let got: Vec<i32> = (0..10).map(|_| p.partition("t", Some(b"k"), None, 4)).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
        assert_eq!(p.partition("other", None, None, 4), 0, "counters are per topic");
        assert_eq!(p.partition("t", None, None, 4), 2);
    }

    #[test]
    fn round_robin_counter_wraps_like_a_java_int() {
        let p = RoundRobinPartitioner::new();
        p.counters.lock().unwrap().insert("t".into(), i32::MAX);
        assert_eq!(p.partition("t", None, None, 3), i32::MAX % 3);
        // toPositive(i32::MIN) = 0.
        assert_eq!(p.partition("t", None, None, 3), 0);
    }

    #[test]
    fn random_partitioner_stays_in_range_reaches_all_and_is_seeded() {
        let p = RandomPartitioner::new(1);
        let got: Vec<i32> = (0..200).map(|_| p.partition("t", None, None, 5)).collect();
        assert!(got.iter().all(|x| (0..5).contains(x)));
        for want in 0..5 {
            assert!(got.contains(&want), "partition {want} never drawn");
        }
        let q = RandomPartitioner::new(1);
        assert_eq!(got, (0..200).map(|_| q.partition("t", None, None, 5)).collect::<Vec<_>>());
    }
}
