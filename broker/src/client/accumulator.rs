//! Kafka's `RecordAccumulator` and the idempotent producer's per-partition
//! sequence bookkeeping (the non-transactional part of `TransactionManager`),
//! as state without I/O: the sender in `producer.rs` asks which partitions
//! are ready, drains batches into Produce requests, and reports each
//! batch's outcome; every call takes the current time.
//!
//! - Records go to the open batch of their partition; a batch closes when
//!   the next record would take it past `batch.size` (a larger record gets
//!   a batch of its own). With compression the records already in a batch
//!   count at their estimated compressed size (Kafka's
//!   `CompressionRatioEstimator`, see [`compression_ratio`]), so batches of
//!   compressible records carry more of them.
//! - A batch is sendable when it is closed, has waited `linger.ms`, a flush
//!   or close is under way, or senders wait for buffer space; a retried
//!   batch waits out its backoff (`retry.backoff.ms` doubling up to
//!   `retry.backoff.max.ms`, ±20 % jitter: KIP-580).
//! - A drain takes at most one batch per partition for one broker, up to
//!   `max.request.size` bytes (the first batch always fits), while the
//!   broker has fewer than `max.in.flight.requests.per.connection` Produce
//!   requests outstanding. With one request in flight allowed and no
//!   idempotence, a partition with a batch in flight is muted (Kafka's
//!   `guaranteeMessageOrder`).
//! - `delivery.timeout.ms` (KIP-91) counts from the batch's creation and
//!   fails batches waiting, backing off or in flight.
//!
//! Idempotence (KIP-98, KIP-360, KAFKA-12152, KAFKA-14034):
//! - A batch gets its producer id, epoch and base sequence when first
//!   drained and keeps them across retries; a partition has at most
//!   [`MAX_IN_FLIGHT_PER_PARTITION`] batches in flight, and a retried batch
//!   is sent only when it is the partition's first unacknowledged one, so
//!   batches reach the log in sequence order.
//! - OUT_OF_ORDER_SEQUENCE_NUMBER on the batch right after the last
//!   acknowledged one, or UNKNOWN_PRODUCER_ID, asks for an epoch bump for
//!   the partition; other OUT_OF_ORDER errors are retried as they are
//!   (an earlier batch will fill the gap). DUPLICATE_SEQUENCE_NUMBER is
//!   success without an offset.
//! - A sequenced batch that fails for good (or expires) leaves the
//!   partition *unresolved*: no new batch is drained there until every
//!   sequenced batch of it finished; then, if some sequence never got
//!   acknowledged, an epoch bump is asked for.
//! - An epoch bump, and the restart of a partition's sequences at 0, only
//!   happen while the partition has nothing in flight (KAFKA-14034); a
//!   partition whose unfinished batches carry an older epoch drains no new
//!   batch until they finish, then restarts at 0 (KAFKA-12152).

use super::error::{ClientError, SendError, SendErrorKind, PRODUCE_DEFINITE_CODES};
use super::producer::RecordMetadata;
use crate::log::batch::HEADER_LEN;
use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub mod compression_ratio;
use compression_ratio::{estimated_size, CompressionRatios};

/// Batches of one partition in flight at most with idempotence: the broker
/// remembers the last 5 batches per producer for deduplication.
pub const MAX_IN_FLIGHT_PER_PARTITION: usize = 5;
/// Kafka's `RecordBatch.NO_SEQUENCE`.
const NO_SEQUENCE: i32 = -1;
/// KIP-580 jitter: each backoff is scaled by a factor in [0.8, 1.2].
const BACKOFF_JITTER: f64 = 0.2;

/// OUT_OF_ORDER_SEQUENCE_NUMBER.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// DUPLICATE_SEQUENCE_NUMBER: the broker already has the batch.
pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
/// INVALID_PRODUCER_EPOCH.
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
/// UNKNOWN_PRODUCER_ID: the broker lost this producer's state.
pub const UNKNOWN_PRODUCER_ID: i16 = 59;

/// Topic and partition.
pub type Tp = (String, i32);

/// What a send waits on.
pub type Completion = oneshot::Sender<Result<RecordMetadata, SendError>>;

/// The accumulator's settings (from `ProducerConfig`).
#[derive(Debug, Clone)]
pub struct AccumulatorConfig {
    pub batch_size: usize,
    pub linger: Duration,
    pub buffer_memory: usize,
    pub max_request_size: usize,
    pub delivery_timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// Produce requests outstanding per broker.
    pub max_in_flight: usize,
    pub idempotent: bool,
    /// acks=0: a written request completes its batches without offsets.
    pub acks: i16,
    /// `compression.type`: batches fill by their estimated compressed size.
    pub compression: Compression,
}

/// One record waiting in a batch.
pub struct PendingRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Create time (ms since the epoch).
    pub timestamp: i64,
    /// Estimated encoded size, counted against `batch.size` and `buffer.memory`.
    pub size: usize,
    pub done: Completion,
}

/// The identity an idempotent producer gives a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProducerIdEpoch {
    pub producer_id: i64,
    pub epoch: i16,
}

/// A batch's producer id, epoch and first sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSequence {
    pub producer: ProducerIdEpoch,
    pub base_sequence: i32,
}

/// Records of one partition sent together as one record batch.
pub struct Batch {
    pub id: u64,
    pub tp: Tp,
    pub records: Vec<PendingRecord>,
    /// How many records the batch holds (kept when an expired in-flight
    /// batch hands its records' sends back early).
    pub count: i32,
    /// Estimated encoded size (header + records).
    pub bytes: usize,
    pub created: Instant,
    /// No more records are added (batch.size reached, or it was drained once).
    pub closed: bool,
    /// Produce requests that carried this batch.
    pub attempts: u32,
    /// A retry waits until then (backoff).
    pub retry_at: Option<Instant>,
    /// Whether some attempt may have appended it (makes a failure indefinite).
    pub maybe_written: bool,
    /// Set when first drained with idempotence; kept across retries.
    pub sequence: Option<BatchSequence>,
    /// The records' sends already completed (delivery timeout while in
    /// flight): the response only updates sequence bookkeeping.
    pub abandoned: bool,
    /// Its compression ratio went into the estimate (at its first encoding).
    pub ratio_observed: bool,
}

impl Batch {
    fn record_count(&self) -> i32 {
        self.count
    }

    fn delivery_deadline(&self, cfg: &AccumulatorConfig) -> Instant {
        self.created + cfg.delivery_timeout
    }
}

/// How one batch's attempt ended.
#[derive(Debug, Clone)]
pub enum BatchOutcome {
    /// Appended at `base_offset` (-1 when unknown: acks=0 or a duplicate);
    /// `log_append_time_ms` -1 unless the topic uses log append time.
    Appended { base_offset: i64, log_append_time_ms: i64 },
    /// The broker answered with an error code for this partition.
    Error { code: i16, message: Option<String>, context: String },
    /// The request failed as a whole (network, timeout, malformed answer).
    RequestFailed(ClientError),
}

/// Sequence bookkeeping of one partition (Kafka's `TxnPartitionEntry`).
#[derive(Debug, Default, Clone)]
struct PartitionSequences {
    /// The producer id and epoch `next_sequence` counts under.
    producer: Option<ProducerIdEpoch>,
    next_sequence: i32,
    /// Highest sequence acknowledged under `producer`, if any.
    last_acked: Option<i32>,
    /// Base sequences of batches given a sequence and not finished (in
    /// flight or queued for retry), with their producer identity.
    unfinished: BTreeMap<i32, ProducerIdEpoch>,
    /// A sequenced batch failed or expired: drain no new batch until the
    /// unfinished ones are done, then check for a gap.
    unresolved: bool,
    /// An epoch bump was asked for while the producer had this identity.
    bump_from: Option<ProducerIdEpoch>,
}

#[derive(Default)]
struct PartitionQueue {
    /// Closed batches first, the open one (if any) last; retries go back to
    /// the front (in sequence order with idempotence).
    batches: VecDeque<Batch>,
    /// Batches of this partition in Produce requests not yet answered.
    in_flight: usize,
    seq: PartitionSequences,
}

/// Why a record was not appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendRefused {
    /// `buffer.memory` is in use: wait for batches to complete.
    BufferFull,
    /// The producer is closed.
    Closed,
}

/// What `ready` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Brokers with at least one sendable batch and room for a request.
    pub nodes: BTreeSet<i32>,
    /// Topics with sendable batches whose leader is unknown.
    pub unknown_leader_topics: BTreeSet<String>,
    /// When something may become sendable or expire next.
    pub next_wakeup: Option<Instant>,
}

/// The record accumulator with its idempotence state.
pub struct Accumulator {
    cfg: AccumulatorConfig,
    partitions: BTreeMap<Tp, PartitionQueue>,
    /// Batches in Produce requests not yet answered, by id.
    in_flight: BTreeMap<u64, Batch>,
    /// Produce requests outstanding per broker.
    node_in_flight: BTreeMap<i32, usize>,
    /// The most requests ever outstanding to one broker (observability).
    peak_node_in_flight: usize,
    buffer_used: usize,
    next_batch_id: u64,
    /// Flushes under way: every batch is sendable at once.
    flushing: usize,
    /// Sends waiting for buffer space: batches are sendable at once.
    waiting_for_space: usize,
    closed: bool,
    /// The idempotent producer's id and epoch; `None` until InitProducerId
    /// answered (or after the epoch ran out).
    producer: Option<ProducerIdEpoch>,
    /// Rotates which partition a drain starts at (Kafka's drainIndex).
    drain_start: usize,
    rng: ChaCha8Rng,
    /// Compression ratio estimates per topic and codec.
    ratios: CompressionRatios,
}

/// Estimated encoded size of one record (Kafka's DefaultRecord.sizeInBytes
/// with small offset and timestamp deltas, no headers).
pub fn record_size(key: Option<&[u8]>, value: Option<&[u8]>) -> usize {
    let field = |b: Option<&[u8]>| b.map_or(1, |b| varint_len(b.len() as i64) + b.len());
    // attributes, timestamp delta, offset delta, keys, values, header count
    let body = 1 + 1 + 2 + field(key) + field(value) + 1;
    varint_len(body as i64) + body
}

fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap to 0.
pub fn increment_sequence(sequence: i32, delta: i32) -> i32 {
    if sequence > i32::MAX - delta {
        delta - (i32::MAX - sequence) - 1
    } else {
        sequence + delta
    }
}

impl Accumulator {
    pub fn new(cfg: AccumulatorConfig, rng: ChaCha8Rng) -> Self {
        Accumulator {
            cfg,
            partitions: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            node_in_flight: BTreeMap::new(),
            peak_node_in_flight: 0,
            buffer_used: 0,
            next_batch_id: 0,
            flushing: 0,
            waiting_for_space: 0,
            closed: false,
            producer: None,
            drain_start: 0,
            rng,
            ratios: CompressionRatios::default(),
        }
    }

    pub fn config(&self) -> &AccumulatorConfig {
        &self.cfg
    }

    pub fn buffer_used(&self) -> usize {
        self.buffer_used
    }

    /// Appends a record to its partition's open batch (or a new one).
    pub fn append(&mut self, tp: Tp, record: PendingRecord, now: Instant) -> Result<(), (AppendRefused, PendingRecord)> {
        if self.closed {
            return Err((AppendRefused::Closed, record));
        }
        // A record alone may exceed what is free only if nothing else is held.
        if self.buffer_used > 0 && self.buffer_used + record.size > self.cfg.buffer_memory {
            return Err((AppendRefused::BufferFull, record));
        }
        self.buffer_used += record.size;
        let batch_size = self.cfg.batch_size;
        let (codec, ratio) = (self.cfg.compression, self.ratios.estimate(&tp.0, self.cfg.compression));
        // Kafka's MemoryRecordsBuilder: the records in the batch at their
        // estimated compressed size, the new one at its full size.
        let estimated = |bytes: usize| estimated_size(HEADER_LEN, bytes - HEADER_LEN, codec, ratio);
        let q = self.partitions.entry(tp.clone()).or_default();
        if let Some(open) = q.batches.back_mut().filter(|b| !b.closed) {
            if estimated(open.bytes) + record.size <= batch_size {
                open.bytes += record.size;
                open.count += 1;
                open.records.push(record);
                if estimated(open.bytes) >= batch_size {
                    open.closed = true;
                }
                return Ok(());
            }
            open.closed = true;
        }
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        let bytes = HEADER_LEN + record.size;
        q.batches.push_back(Batch {
            id,
            tp,
            records: vec![record],
            count: 1,
            bytes,
            created: now,
            closed: bytes >= batch_size,
            attempts: 0,
            retry_at: None,
            maybe_written: false,
            sequence: None,
            abandoned: false,
            ratio_observed: false,
        });
        Ok(())
    }

    /// A send waits for buffer space (batches become sendable at once, as
    /// Kafka's "exhausted" condition) until `space_wait_done`.
    pub fn space_wait_begin(&mut self) {
        self.waiting_for_space += 1;
    }

    pub fn space_wait_done(&mut self) {
        self.waiting_for_space = self.waiting_for_space.saturating_sub(1);
    }

    /// Ids of every batch not yet completed (what a flush waits for).
    pub fn incomplete_batches(&self) -> BTreeSet<u64> {
        let queued = self.partitions.values().flat_map(|q| q.batches.iter().map(|b| b.id));
        queued.chain(self.in_flight.keys().copied()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty() && self.partitions.values().all(|q| q.batches.is_empty())
    }

    pub fn flush_begin(&mut self) {
        self.flushing += 1;
    }

    pub fn flush_done(&mut self) {
        self.flushing = self.flushing.saturating_sub(1);
    }

    /// No more appends; everything queued becomes sendable.
    pub fn close(&mut self) {
        self.closed = true;
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Fails every batch not in flight (drop) with
    /// [`SendErrorKind::ProducerClosed`].
    pub fn abort_queued(&mut self, why: &str) {
        let queues: Vec<Tp> = self.partitions.keys().cloned().collect();
        for tp in queues {
            let batches = std::mem::take(&mut self.partitions.get_mut(&tp).expect("listed").batches);
            for b in batches {
                self.finish_failed_as(b, why.to_string(), None, SendErrorKind::ProducerClosed);
            }
        }
    }

    /// Kafka's `abortIncompleteBatches` (a forced close): fails every batch,
    /// queued or in flight, with [`SendErrorKind::ProducerClosed`]. In-flight
    /// ones are forgotten (their answers are ignored) and fail indefinite,
    /// since the broker may have appended them. Returns how many records failed.
    pub fn abort_incomplete(&mut self, why: &str) -> usize {
        let mut records = self.partitions.values().flat_map(|q| q.batches.iter()).map(|b| b.records.len()).sum::<usize>();
        self.abort_queued(why);
        for (_, mut b) in std::mem::take(&mut self.in_flight) {
            records += b.records.len();
            b.maybe_written = true;
            if let Some(q) = self.partitions.get_mut(&b.tp) {
                q.in_flight = q.in_flight.saturating_sub(1);
            }
            self.finish_failed_as(b, why.to_string(), None, SendErrorKind::ProducerClosed);
        }
        records
    }

    // ---- idempotence ----

    pub fn idempotent(&self) -> bool {
        self.cfg.idempotent
    }

    /// True while an idempotent producer has no producer id (InitProducerId needed).
    pub fn needs_producer_id(&self) -> bool {
        self.cfg.idempotent && self.producer.is_none()
    }

    pub fn producer(&self) -> Option<ProducerIdEpoch> {
        self.producer
    }

    /// InitProducerId answered.
    pub fn set_producer_id(&mut self, producer: ProducerIdEpoch) {
        self.producer = Some(producer);
    }

    /// Epoch bumps and sequence restarts that have become safe: a
    /// partition that asked for a bump and has nothing in flight gets it
    /// (once per identity), then restarts its queued sequenced batches at 0
    /// under the new epoch; an unresolved partition whose sequenced batches
    /// all finished is resolved, or asks for a bump if a sequence is missing.
    fn maintain_sequences(&mut self) {
        if !self.cfg.idempotent {
            return;
        }
        let tps: Vec<Tp> = self.partitions.keys().cloned().collect();
        for tp in tps {
            let q = self.partitions.get_mut(&tp).expect("listed");
            if q.seq.unresolved && q.seq.unfinished.is_empty() {
                q.seq.unresolved = false;
                let acked_all = match q.seq.last_acked {
                    Some(last) => increment_sequence(last, 1) == q.seq.next_sequence,
                    None => q.seq.next_sequence == 0,
                };
                if !acked_all {
                    tracing::debug!(?tp, "idempotent producer: unresolved sequence gap, asking for an epoch bump");
                    q.seq.bump_from = q.seq.producer.or(self.producer);
                }
            }
            let Some(from) = q.seq.bump_from else { continue };
            if q.in_flight > 0 {
                continue; // KAFKA-14034: never while batches of it are in flight
            }
            if self.producer == Some(from) {
                self.producer = match from.epoch {
                    i16::MAX => None, // a new producer id is needed
                    e => Some(ProducerIdEpoch { producer_id: from.producer_id, epoch: e + 1 }),
                };
                tracing::debug!(?tp, ?from, to = ?self.producer, "idempotent producer: epoch bump");
            }
            let Some(current) = self.producer else { continue };
            let q = self.partitions.get_mut(&tp).expect("listed");
            q.seq.bump_from = None;
            restart_sequences(q, current);
        }
    }

    /// Whether the head batch of `q` may be drained now (idempotence and
    /// ordering rules); may restart a stale partition's sequences at 0.
    fn may_drain(cfg: &AccumulatorConfig, producer: Option<ProducerIdEpoch>, q: &mut PartitionQueue) -> bool {
        let Some(first) = q.batches.front() else { return false };
        if !cfg.idempotent {
            // Kafka's guaranteeMessageOrder: one request in flight means one batch per partition.
            return !(cfg.max_in_flight == 1 && q.in_flight > 0);
        }
        let Some(current) = producer else { return false };
        if q.seq.bump_from.is_some() || q.in_flight >= MAX_IN_FLIGHT_PER_PARTITION {
            return false;
        }
        match first.sequence {
            Some(s) => {
                // A retry goes only when it is the first unfinished batch.
                q.seq.unfinished.keys().next().is_none_or(|first_seq| *first_seq == s.base_sequence)
                    && q.seq.unfinished.values().next().is_none_or(|p| *p == s.producer)
            }
            None => {
                if q.seq.unresolved {
                    return false;
                }
                if q.seq.producer != Some(current) {
                    if !q.seq.unfinished.is_empty() {
                        return false; // older-epoch batches still out (KAFKA-12152)
                    }
                    restart_sequences(q, current);
                }
                true
            }
        }
    }

    // ---- the sender's view ----

    /// Which brokers have sendable batches, given each partition's leader.
    pub fn ready(&mut self, now: Instant, leader_of: impl Fn(&Tp) -> Option<i32>) -> Ready {
        self.maintain_sequences();
        let mut ready = Ready::default();
        let force = self.flushing > 0 || self.closed || self.waiting_for_space > 0;
        let cfg = self.cfg.clone();
        let wake = |t: Instant, r: &mut Ready| {
            if r.next_wakeup.is_none_or(|w| t < w) {
                r.next_wakeup = Some(t);
            }
        };
        for b in self.in_flight.values().filter(|b| !b.abandoned) {
            wake(b.delivery_deadline(&cfg), &mut ready);
        }
        for (tp, q) in &self.partitions {
            for b in &q.batches {
                wake(b.delivery_deadline(&cfg), &mut ready);
            }
            let Some(first) = q.batches.front() else { continue };
            let sendable_at = match first.retry_at {
                Some(t) => t,
                None if first.closed || q.batches.len() > 1 || force => first.created,
                None => first.created + cfg.linger,
            };
            if sendable_at > now {
                wake(sendable_at, &mut ready);
                continue;
            }
            match leader_of(tp) {
                None => {
                    ready.unknown_leader_topics.insert(tp.0.clone());
                }
                Some(node) => {
                    if self.node_in_flight.get(&node).copied().unwrap_or(0) < cfg.max_in_flight {
                        ready.nodes.insert(node);
                    }
                }
            }
        }
        ready
    }

    /// Takes at most one sendable batch per partition led by `node` for one
    /// Produce request, up to `max.request.size` bytes; assigns sequences.
    /// Returns the batch ids (in request order); the request counts as in
    /// flight until `request_done`.
    pub fn drain(&mut self, now: Instant, node: i32, led: &[Tp]) -> Vec<u64> {
        if self.node_in_flight.get(&node).copied().unwrap_or(0) >= self.cfg.max_in_flight || led.is_empty() {
            return Vec::new();
        }
        let force = self.flushing > 0 || self.closed || self.waiting_for_space > 0;
        let start = self.drain_start % led.len();
        self.drain_start = self.drain_start.wrapping_add(1);
        let mut drained = Vec::new();
        let mut bytes = 0usize;
        for i in 0..led.len() {
            let tp = &led[(start + i) % led.len()];
            let Some(q) = self.partitions.get_mut(tp) else { continue };
            let Some(first) = q.batches.front() else { continue };
            let sendable = match first.retry_at {
                Some(t) => t <= now,
                None => first.closed || q.batches.len() > 1 || force || first.created + self.cfg.linger <= now,
            };
            if !sendable {
                continue;
            }
            if bytes + first.bytes > self.cfg.max_request_size && !drained.is_empty() {
                break;
            }
            if !Self::may_drain(&self.cfg, self.producer, q) {
                continue;
            }
            let mut batch = q.batches.pop_front().expect("head checked");
            batch.closed = true;
            batch.attempts += 1;
            batch.retry_at = None;
            if self.cfg.idempotent && batch.sequence.is_none() {
                let producer = q.seq.producer.expect("may_drain set the partition's producer");
                let base = q.seq.next_sequence;
                q.seq.next_sequence = increment_sequence(base, batch.record_count());
                q.seq.unfinished.insert(base, producer);
                batch.sequence = Some(BatchSequence { producer, base_sequence: base });
            }
            q.in_flight += 1;
            bytes += batch.bytes;
            drained.push(batch.id);
            self.in_flight.insert(batch.id, batch);
        }
        if !drained.is_empty() {
            let n = self.node_in_flight.entry(node).or_insert(0);
            *n += 1;
            self.peak_node_in_flight = self.peak_node_in_flight.max(*n);
        }
        drained
    }

    /// A Produce request to `node` finished (answered or failed).
    pub fn request_done(&mut self, node: i32) {
        if let Some(n) = self.node_in_flight.get_mut(&node) {
            *n = n.saturating_sub(1);
        }
    }

    /// The most Produce requests that were ever outstanding to one broker.
    pub fn peak_node_in_flight(&self) -> usize {
        self.peak_node_in_flight
    }

    pub fn node_in_flight(&self, node: i32) -> usize {
        self.node_in_flight.get(&node).copied().unwrap_or(0)
    }

    /// An in-flight batch, for encoding.
    pub fn in_flight_batch(&self, id: u64) -> Option<&Batch> {
        self.in_flight.get(&id)
    }

    /// Encodes an in-flight batch as a v2 record batch; the first encoding
    /// of a batch feeds its compression ratio into the estimate.
    pub fn encode(&mut self, id: u64, compression: Compression) -> anyhow::Result<Bytes> {
        let batch = self.in_flight.get_mut(&id).ok_or_else(|| anyhow::anyhow!("batch {id} is not in flight"))?;
        let bytes = encode_batch(batch, compression)?;
        if !batch.ratio_observed {
            batch.ratio_observed = true;
            let (compressed, uncompressed) = (bytes.len().saturating_sub(HEADER_LEN), batch.bytes.saturating_sub(HEADER_LEN));
            self.ratios.observe(&batch.tp.0, compression, compressed, uncompressed);
        }
        Ok(bytes)
    }

    /// The compression ratio estimate for `topic` under the configured codec.
    pub fn compression_ratio(&self, topic: &str) -> f32 {
        self.ratios.estimate(topic, self.cfg.compression)
    }

    /// Fails batches past `delivery.timeout.ms`: queued ones are removed,
    /// in-flight ones complete now and are forgotten when answered.
    /// Returns how many batches expired.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut expired_count = 0;
        let cfg = self.cfg.clone();
        let why = |b: &Batch| format!("delivery.timeout.ms {} expired for {}-{} after {} attempt(s)", cfg.delivery_timeout.as_millis(), b.tp.0, b.tp.1, b.attempts);
        let tps: Vec<Tp> = self.partitions.keys().cloned().collect();
        for tp in tps {
            let q = self.partitions.get_mut(&tp).expect("listed");
            let (expired, kept): (Vec<Batch>, Vec<Batch>) = q.batches.drain(..).partition(|b| b.delivery_deadline(&cfg) <= now);
            q.batches = kept.into();
            expired_count += expired.len();
            for b in expired {
                let message = why(&b);
                self.finish_failed(b, message, None);
            }
        }
        for b in self.in_flight.values_mut().filter(|b| !b.abandoned && b.delivery_deadline(&cfg) <= now) {
            b.abandoned = true;
            expired_count += 1;
            let error = SendError { indefinite: true, message: why(b), error_code: None, attempts: b.attempts, kind: SendErrorKind::Failed };
            for r in b.records.drain(..) {
                let _ = r.done.send(Err(error.clone()));
            }
        }
        expired_count
    }

    /// Records the outcome of one in-flight batch: completes its sends, or
    /// requeues it for a retry.
    pub fn complete(&mut self, id: u64, outcome: BatchOutcome, now: Instant) {
        let Some(mut batch) = self.in_flight.remove(&id) else { return };
        let q = self.partitions.entry(batch.tp.clone()).or_default();
        q.in_flight = q.in_flight.saturating_sub(1);
        let (code, error, maybe_written) = match outcome {
            BatchOutcome::Appended { base_offset, log_append_time_ms } => {
                return self.finish_appended(batch, base_offset, log_append_time_ms);
            }
            BatchOutcome::Error { code, .. } if code == DUPLICATE_SEQUENCE_NUMBER && batch.sequence.is_some() => {
                return self.finish_appended(batch, -1, -1);
            }
            BatchOutcome::Error { code, message, context } => {
                let written = !PRODUCE_DEFINITE_CODES.contains(&code);
                (Some(code), ClientError::broker(code, context, message.as_deref()), written)
            }
            BatchOutcome::RequestFailed(e) => {
                let sent = e.maybe_sent();
                (None, e, sent)
            }
        };
        batch.maybe_written |= maybe_written;
        let retriable = self.idempotence_says_retry(&batch, code).unwrap_or_else(|| error.is_retriable());
        let within_retries = batch.attempts <= self.cfg.retries;
        let within_deadline = now < batch.delivery_deadline(&self.cfg);
        if retriable && within_retries && within_deadline && !batch.abandoned {
            let backoff = self.backoff(batch.attempts);
            batch.retry_at = Some(now + backoff);
            tracing::debug!(tp = ?batch.tp, attempts = batch.attempts, "produce retry in {backoff:?}: {error}");
            self.requeue(batch);
            return;
        }
        let why = if !retriable {
            String::new()
        } else if !within_retries {
            format!(" (retries exhausted: {})", self.cfg.retries)
        } else {
            format!(" (delivery.timeout.ms {} expired)", self.cfg.delivery_timeout.as_millis())
        };
        self.finish_failed(batch, format!("{error}{why}"), code);
    }

    /// The idempotent producer's answer to OUT_OF_ORDER_SEQUENCE_NUMBER and
    /// UNKNOWN_PRODUCER_ID (Kafka's `TransactionManager.canRetry` for a
    /// non-transactional producer); `None` leaves it to the error's class.
    fn idempotence_says_retry(&mut self, batch: &Batch, code: Option<i16>) -> Option<bool> {
        let seq = batch.sequence?;
        let code = code?;
        let current = self.producer;
        let q = self.partitions.get_mut(&batch.tp).expect("partition of an in-flight batch");
        let stale = current != Some(seq.producer);
        match code {
            UNKNOWN_PRODUCER_ID => {
                if !stale {
                    q.seq.bump_from.get_or_insert(seq.producer);
                }
                Some(true)
            }
            OUT_OF_ORDER_SEQUENCE_NUMBER => {
                let expected = q.seq.last_acked.map_or(0, |l| increment_sequence(l, 1));
                let is_next = seq.base_sequence == expected && q.seq.producer == Some(seq.producer);
                if !stale && is_next {
                    // The broker misses nothing we know of, yet refuses the
                    // next batch: its state is gone; bump and restart at 0.
                    // Otherwise an earlier batch will fill the gap.
                    q.seq.bump_from.get_or_insert(seq.producer);
                }
                Some(true)
            }
            _ => None,
        }
    }

    /// KIP-580: retry.backoff.ms × 2^(attempts-1), capped at
    /// retry.backoff.max.ms, with ±20 % jitter (never above the cap).
    fn backoff(&mut self, attempts: u32) -> Duration {
        let base = self.cfg.retry_backoff.as_millis() as f64;
        let max = (self.cfg.retry_backoff_max.as_millis() as f64).max(1.0);
        if base >= max {
            return Duration::from_millis(max as u64);
        }
        let exp = base * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        let jitter = self.rng.random_range((1.0 - BACKOFF_JITTER)..(1.0 + BACKOFF_JITTER));
        Duration::from_millis((exp * jitter).min(max) as u64)
    }

    fn requeue(&mut self, batch: Batch) {
        let q = self.partitions.get_mut(&batch.tp).expect("partition of a requeued batch");
        match batch.sequence {
            // In sequence order among the other retries at the front.
            Some(s) => {
                let at = q
                    .batches
                    .iter()
                    .position(|b| b.sequence.is_none_or(|o| o.base_sequence > s.base_sequence))
                    .unwrap_or(q.batches.len());
                q.batches.insert(at, batch);
            }
            None => q.batches.push_front(batch),
        }
    }

    fn finish_appended(&mut self, batch: Batch, base_offset: i64, log_append_time_ms: i64) {
        let q = self.partitions.get_mut(&batch.tp).expect("partition of a finished batch");
        if let Some(s) = batch.sequence {
            q.seq.unfinished.remove(&s.base_sequence);
            if q.seq.producer == Some(s.producer) {
                let last = increment_sequence(s.base_sequence, batch.record_count() - 1);
                // Batches are acknowledged in order; wrap-around compares by position.
                q.seq.last_acked = Some(last);
            }
        }
        self.buffer_used = self.buffer_used.saturating_sub(batch.bytes.saturating_sub(HEADER_LEN));
        let (topic, partition) = batch.tp.clone();
        for (i, r) in batch.records.into_iter().enumerate() {
            let offset = if base_offset >= 0 && self.cfg.acks != 0 { base_offset + i as i64 } else { -1 };
            let timestamp = if log_append_time_ms >= 0 { log_append_time_ms } else { r.timestamp };
            let _ = r.done.send(Ok(RecordMetadata { topic: topic.clone(), partition, offset, timestamp }));
        }
    }

    fn finish_failed(&mut self, batch: Batch, message: String, code: Option<i16>) {
        self.finish_failed_as(batch, message, code, SendErrorKind::Failed);
    }

    fn finish_failed_as(&mut self, batch: Batch, message: String, code: Option<i16>, kind: SendErrorKind) {
        if let Some(s) = batch.sequence {
            let q = self.partitions.get_mut(&batch.tp).expect("partition of a finished batch");
            q.seq.unfinished.remove(&s.base_sequence);
            // KAFKA-14034: do not reset now; resolve once nothing is out.
            q.seq.unresolved = true;
        }
        self.buffer_used = self.buffer_used.saturating_sub(batch.bytes.saturating_sub(HEADER_LEN));
        let error = SendError { indefinite: batch.maybe_written, message, error_code: code, attempts: batch.attempts, kind };
        for r in batch.records {
            let _ = r.done.send(Err(error.clone()));
        }
    }

    /// Sequence state of a partition, for tests: (next, last acked, unfinished, unresolved, bump asked).
    pub fn sequence_state(&self, tp: &Tp) -> Option<(i32, Option<i32>, usize, bool, bool)> {
        self.partitions.get(tp).map(|q| {
            (q.seq.next_sequence, q.seq.last_acked, q.seq.unfinished.len(), q.seq.unresolved, q.seq.bump_from.is_some())
        })
    }

    /// Partitions holding queued batches.
    pub fn partitions_with_batches(&self) -> Vec<Tp> {
        self.partitions.iter().filter(|(_, q)| !q.batches.is_empty()).map(|(tp, _)| tp.clone()).collect()
    }

    /// Batches queued (not in flight) for a partition.
    pub fn queued(&self, tp: &Tp) -> usize {
        self.partitions.get(tp).map_or(0, |q| q.batches.len())
    }
}

/// Restarts a partition's sequences at 0 under `producer`: queued batches
/// that had sequences (retries) get new ones in order.
fn restart_sequences(q: &mut PartitionQueue, producer: ProducerIdEpoch) {
    assert_eq!(q.in_flight, 0, "sequences restart only with nothing in flight (KAFKA-14034)");
    q.seq.producer = Some(producer);
    q.seq.next_sequence = 0;
    q.seq.last_acked = None;
    q.seq.unfinished.clear();
    q.seq.unresolved = false;
    for b in q.batches.iter_mut().filter(|b| b.sequence.is_some()) {
        let base = q.seq.next_sequence;
        b.sequence = Some(BatchSequence { producer, base_sequence: base });
        q.seq.unfinished.insert(base, producer);
        q.seq.next_sequence = increment_sequence(base, b.count);
    }
}

/// A batch as a v2 record batch (base offset 0, `compression`).
pub fn encode_batch(batch: &Batch, compression: Compression) -> anyhow::Result<Bytes> {
    let (producer_id, producer_epoch, base_sequence) = match batch.sequence {
        Some(s) => (s.producer.producer_id, s.producer.epoch, s.base_sequence),
        None => (-1, -1, NO_SEQUENCE),
    };
    let records: Vec<Record> = batch
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence must be equal across a batch for the encoder.
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression })?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests;
