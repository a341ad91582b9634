//! Per-partition producer state for idempotent produce (KIP-98): for each
//! producer id, its epoch and the metadata of its last
//! [`NUM_BATCHES_TO_RETAIN`] batches. A pure state machine: the log feeds it
//! batch headers and persists its snapshots.
//!
//! Kafka semantics kept (`ProducerStateManager`, `ProducerAppendInfo`,
//! `ProducerStateEntry`, `UnifiedLog.analyzeAndValidateProducerState`):
//! - Leader appends (origin Client) are checked before anything is written.
//!   A batch whose epoch and sequence range equal one of the producer's
//!   cached batches is a duplicate: nothing is appended and the original
//!   batch's offsets are answered (Produce v3+). Otherwise a lower epoch is
//!   INVALID_PRODUCER_EPOCH; a higher epoch must start at sequence 0; the
//!   same epoch must continue at last sequence + 1 (wrapping from
//!   `i32::MAX` to 0), else OUT_OF_ORDER_SEQUENCE_NUMBER. A retry older
//!   than the cached batches is therefore out of order, not a duplicate.
//! - A producer the partition does not know (new, expired, or whose state
//!   was lost) is accepted at any sequence: since KIP-360 (Kafka 2.5) the
//!   broker no longer answers UNKNOWN_PRODUCER_ID on produce.
//! - Followers and recovery (origin Replication) apply batches without
//!   sequence checks; a lower epoch is only logged.
//! - A producer expires `producer.id.expiration.ms` after the max
//!   timestamp of its last batch.
//!
//! Unlike Kafka, whose snapshot keeps only each producer's last batch,
//! snapshots here keep all cached batches, so duplicates of any of them are
//! still found after a restart from a snapshot.
//!
//! # Format of a snapshot file (`<offset>.snapshot`, big-endian)
//!
//! ```text
//! version i16 (= 1) | crc u32 (CRC-32C of everything after it)
//! end_offset i64 (the log end offset the state reflects)
//! producer_count i32, then per producer (ascending id):
//!   producer_id i64 | epoch i16 | last_timestamp i64 | batch_count i8
//!   batch_count × (first_seq i32 | last_seq i32 | first_offset i64 | last_offset i64 | timestamp i64)
//! ```

use super::batch::BatchHeader;
use std::collections::{BTreeMap, VecDeque};

/// Batches remembered per producer for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`; the producer keeps at most 5 in flight).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
/// Batches without idempotence carry producer id -1.
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_SEQUENCE: i32 = -1;
/// Kafka's `producer.id.expiration.ms` default (one day).
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: i64 = 86_400_000;
/// Kafka's `producer.id.expiration.check.interval.ms` default (10 minutes).
pub const PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS_DEFAULT: u64 = 600_000;

const SNAPSHOT_VERSION: i16 = 1;
/// version + crc + end offset + producer count.
const SNAPSHOT_HEADER_LEN: usize = 2 + 4 + 8 + 4;
const SNAPSHOT_ENTRY_LEN: usize = 8 + 2 + 8 + 1;
const SNAPSHOT_BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;

/// One batch a producer appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp (what expiry is measured from).
    pub timestamp: i64,
}

/// What the partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    /// The latest epoch seen; batches of older epochs are fenced.
    pub epoch: i16,
    /// The last batches of `epoch`, oldest first, at most
    /// [`NUM_BATCHES_TO_RETAIN`]: duplicates are looked for among these.
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of the last batch, for `producer.id.expiration.ms`.
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn unknown(producer_id: i64) -> Self {
        ProducerEntry { producer_id, epoch: NO_PRODUCER_EPOCH, batches: VecDeque::new(), last_timestamp: -1 }
    }

    /// The sequence of the last cached batch's last record.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// The cached batch with exactly this epoch and sequence range.
    pub fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches.iter().copied().find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
    }

    /// A new epoch forgets the old epoch's batches (Kafka's
    /// `maybeUpdateProducerEpoch`).
    fn update_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }

    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        self.update_epoch(epoch);
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = batch.timestamp;
        assert!(self.batches.len() <= NUM_BATCHES_TO_RETAIN, "producer {} caches too many batches", self.producer_id);
    }
}

/// `seq + by` with Kafka's wrap past `i32::MAX` to 0.
pub fn increment_sequence(seq: i32, by: i32) -> i32 {
    assert!(by >= 0, "negative sequence increment {by}");
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

/// Whether `next` directly follows `last` (wrapping at `i32::MAX`).
fn in_sequence(last: i32, next: i32) -> bool {
    next as i64 == last as i64 + 1 || (next == 0 && last == i32::MAX)
}

/// A batch with a producer id, at its offsets in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    pub last_offset_delta: i32,
    pub first_offset: i64,
    pub max_timestamp: i64,
    /// Control batches (transaction markers) move the epoch but are not
    /// data batches with sequences.
    pub is_control: bool,
}

impl ProducerBatch {
    /// The batch of `header` placed at `first_offset`; None without a
    /// producer id (non-idempotent batches have no producer state).
    pub fn from_header(header: &BatchHeader, first_offset: i64) -> Option<ProducerBatch> {
        (header.producer_id > NO_PRODUCER_ID).then_some(ProducerBatch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            last_offset_delta: header.last_offset_delta,
            first_offset,
            max_timestamp: header.max_timestamp,
            is_control: header.is_control(),
        })
    }

    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    pub fn last_offset(&self) -> i64 {
        self.first_offset + self.last_offset_delta as i64
    }

    fn metadata(&self) -> BatchMetadata {
        BatchMetadata {
            first_seq: self.base_sequence,
            last_seq: self.last_sequence(),
            first_offset: self.first_offset,
            last_offset: self.last_offset(),
            timestamp: self.max_timestamp,
        }
    }
}

/// Why a leader append is refused (nothing of it is written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: a gap, a retry older than the cached
    /// batches, or a new epoch not starting at 0.
    #[error("producer {producer_id} epoch {epoch}: sequence {sequence} does not follow {last_sequence}")]
    OutOfOrderSequence { producer_id: i64, epoch: i16, sequence: i32, last_sequence: i32 },
    /// INVALID_PRODUCER_EPOCH: an epoch older than the latest seen (fenced).
    #[error("producer {producer_id}: epoch {epoch} is older than {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    /// INVALID_RECORD: a batch with a producer id and a negative sequence
    /// (Kafka's LogValidator).
    #[error("producer {producer_id}: invalid base sequence {sequence}")]
    InvalidSequence { producer_id: i64, sequence: i32 },
}

/// Where an append comes from (Kafka's `AppendOrigin`): what is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A producer's request on the leader: epochs and sequences checked.
    Client,
    /// Replication or recovery: the leader already checked.
    Replication,
}

/// A validated leader append: the producer entries as they will be once
/// the batches are written. Applied with [`ProducerState::apply`] only
/// after the write succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingAppend {
    updated: BTreeMap<i64, ProducerEntry>,
}

/// The outcome of checking a leader append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderCheck {
    /// Write the batches, then apply this.
    Append(PendingAppend),
    /// A retry of a batch already in the log: write nothing, answer its offsets.
    Duplicate(BatchMetadata),
}

/// Why a snapshot cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot too short ({0} bytes)")]
    Short(usize),
    #[error("unknown snapshot version {0}")]
    Version(i16),
    #[error("snapshot CRC mismatch")]
    Crc,
    #[error("malformed snapshot: {0}")]
    Malformed(String),
}

/// Every producer's state in one partition replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// Checks a leader append (Kafka's `analyzeAndValidateProducerState`
    /// with origin Client) without changing anything. The first batch that
    /// duplicates a cached one makes the whole append a duplicate.
    pub fn check_leader_append(&self, batches: &[ProducerBatch]) -> Result<LeaderCheck, ProducerError> {
        let mut pending = PendingAppend::default();
        for b in batches {
            if b.base_sequence < 0 && !b.is_control {
                return Err(ProducerError::InvalidSequence { producer_id: b.producer_id, sequence: b.base_sequence });
            }
            // Duplicates are looked for in the state before this append, as Kafka does.
            let current = self.producers.get(&b.producer_id);
            if let Some(dup) = current.and_then(|e| e.find_duplicate(b.epoch, b.base_sequence, b.last_sequence())) {
                return Ok(LeaderCheck::Duplicate(dup));
            }
            let unknown_before = current.is_none_or(|e| e.epoch == NO_PRODUCER_EPOCH);
            let entry = pending
                .updated
                .entry(b.producer_id)
                .or_insert_with(|| current.cloned().unwrap_or_else(|| ProducerEntry::unknown(b.producer_id)));
            apply_batch(entry, b, Origin::Client, unknown_before)?;
        }
        Ok(LeaderCheck::Append(pending))
    }

    /// Makes a checked leader append part of the state (after the write).
    pub fn apply(&mut self, pending: PendingAppend) {
        for (id, entry) in pending.updated {
            self.producers.insert(id, entry);
        }
    }

    /// A batch that is in the log (follower append, recovery, rebuild after
    /// truncation): no sequence checks.
    pub fn replay(&mut self, batch: &ProducerBatch) {
        let entry = self.producers.entry(batch.producer_id).or_insert_with(|| ProducerEntry::unknown(batch.producer_id));
        let unknown_before = entry.epoch == NO_PRODUCER_EPOCH;
        apply_batch(entry, batch, Origin::Replication, unknown_before).expect("replication appends are not checked");
    }

    /// Forgets producers whose last batch is `expiration_ms` older than
    /// `now_ms` (Kafka's `removeExpiredProducers`). Returns how many went.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// The snapshot file's bytes for a state reflecting the log up to
    /// `end_offset` (exclusive).
    pub fn encode_snapshot(&self, end_offset: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + self.producers.len() * (SNAPSHOT_ENTRY_LEN + SNAPSHOT_BATCH_LEN));
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // crc, filled below
        out.extend_from_slice(&end_offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as i32).to_be_bytes());
        for e in self.producers.values() {
            out.extend_from_slice(&e.producer_id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[6..]);
        out[2..6].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses and checks a snapshot: (state, end offset). Anything off
    /// (length, version, CRC, counts, ordering) is an error: a snapshot is
    /// never trusted partly.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<(ProducerState, i64), SnapshotError> {
        if bytes.len() < SNAPSHOT_HEADER_LEN {
            return Err(SnapshotError::Short(bytes.len()));
        }
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.i16()?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(version));
        }
        let stored_crc = r.i32()? as u32;
        if crc32c::crc32c(&bytes[6..]) != stored_crc {
            return Err(SnapshotError::Crc);
        }
        let end_offset = r.i64()?;
        let count = r.i32()?;
        if count < 0 || count as usize > bytes.len() / SNAPSHOT_ENTRY_LEN {
            return Err(SnapshotError::Malformed(format!("producer count {count}")));
        }
        let mut state = ProducerState::new();
        for _ in 0..count {
            let producer_id = r.i64()?;
            let epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let n = r.u8()? as usize;
            if producer_id < 0 || n > NUM_BATCHES_TO_RETAIN {
                return Err(SnapshotError::Malformed(format!("producer {producer_id} with {n} batches")));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                let b = BatchMetadata { first_seq: r.i32()?, last_seq: r.i32()?, first_offset: r.i64()?, last_offset: r.i64()?, timestamp: r.i64()? };
                if b.first_offset > b.last_offset || b.last_offset >= end_offset {
                    return Err(SnapshotError::Malformed(format!("producer {producer_id} batch {b:?} beyond end offset {end_offset}")));
                }
                batches.push_back(b);
            }
            let entry = ProducerEntry { producer_id, epoch, batches, last_timestamp };
            if state.producers.insert(producer_id, entry).is_some() {
                return Err(SnapshotError::Malformed(format!("producer {producer_id} twice")));
            }
        }
        if r.pos != bytes.len() {
            return Err(SnapshotError::Malformed(format!("{} trailing bytes", bytes.len() - r.pos)));
        }
        Ok((state, end_offset))
    }
}

/// Checks (for Client) and applies one batch to a producer's entry
/// (Kafka's `ProducerAppendInfo.append`). `unknown_before`: the partition
/// knew no epoch for this producer before the current append.
fn apply_batch(entry: &mut ProducerEntry, b: &ProducerBatch, origin: Origin, unknown_before: bool) -> Result<(), ProducerError> {
    if b.epoch < entry.epoch {
        if origin == Origin::Client {
            return Err(ProducerError::InvalidProducerEpoch { producer_id: b.producer_id, epoch: b.epoch, current: entry.epoch });
        }
        tracing::warn!(producer_id = b.producer_id, epoch = b.epoch, current = entry.epoch, offset = b.first_offset, "replicated batch with an older producer epoch");
    }
    if b.is_control {
        entry.update_epoch(b.epoch);
        return Ok(());
    }
    if origin == Origin::Client {
        let out_of_order = if b.epoch != entry.epoch {
            // A new epoch starts at sequence 0, unless the producer was unknown.
            b.base_sequence != 0 && entry.epoch != NO_PRODUCER_EPOCH
        } else {
            !(unknown_before || in_sequence(entry.last_seq(), b.base_sequence))
        };
        if out_of_order {
            return Err(ProducerError::OutOfOrderSequence {
                producer_id: b.producer_id,
                epoch: b.epoch,
                sequence: b.base_sequence,
                last_sequence: if b.epoch == entry.epoch { entry.last_seq() } else { NO_SEQUENCE },
            });
        }
    }
    entry.add_batch(b.epoch, b.metadata());
    Ok(())
}

/// Big-endian reads that fail instead of panicking on short input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let end = self.pos + N;
        let bytes = self.buf.get(self.pos..end).ok_or(SnapshotError::Short(self.buf.len()))?;
        self.pos = end;
        Ok(bytes.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: i64 = 7;

    /// A data batch of `n` records from sequence `seq` at `offset`.
    fn b(epoch: i16, seq: i32, n: i32, offset: i64) -> ProducerBatch {
        ProducerBatch { producer_id: PID, epoch, base_sequence: seq, last_offset_delta: n - 1, first_offset: offset, max_timestamp: 1_000 + offset, is_control: false }
    }

    /// Checks and applies one leader append, as the log does after writing.
    fn append(s: &mut ProducerState, batch: ProducerBatch) -> Result<LeaderCheck, ProducerError> {
        let check = s.check_leader_append(&[batch])?;
        if let LeaderCheck::Append(p) = &check {
            s.apply(p.clone());
        }
        Ok(check)
    }

    fn is_append(r: Result<LeaderCheck, ProducerError>) -> bool {
        matches!(r, Ok(LeaderCheck::Append(_)))
    }

    fn out_of_order(r: Result<LeaderCheck, ProducerError>) -> bool {
        matches!(r, Err(ProducerError::OutOfOrderSequence { .. }))
    }

    // KIP-98: a retry of a cached batch is answered with the original offsets.
    #[test]
    fn kip_98_retry_of_a_cached_batch_is_a_duplicate_with_its_original_offsets() {
        let mut s = ProducerState::new();
        assert!(is_append(append(&mut s, b(0, 0, 3, 10))));
        let dup = append(&mut s, b(0, 0, 3, 99)).unwrap();
        assert_eq!(dup, LeaderCheck::Duplicate(BatchMetadata { first_seq: 0, last_seq: 2, first_offset: 10, last_offset: 12, timestamp: 1_010 }));
        assert_eq!(s.entry(PID).unwrap().batches.len(), 1, "a duplicate changes nothing");
    }

    // Kafka ProducerStateEntry: the last 5 batches are cached; a retry of the
    // 6th-oldest is not found and, being behind the last sequence, is out of order.
    #[test]
    fn duplicates_of_the_last_five_batches_are_found_the_sixth_oldest_is_out_of_order() {
        let mut s = ProducerState::new();
        for i in 0..6 {
            assert!(is_append(append(&mut s, b(0, i * 2, 2, 100 + i as i64 * 2))));
        }
        for i in 1..6 {
            match append(&mut s, b(0, i * 2, 2, 0)).unwrap() {
                LeaderCheck::Duplicate(m) => assert_eq!(m.first_offset, 100 + i as i64 * 2),
                other => panic!("batch {i} not a duplicate: {other:?}"),
            }
        }
        assert!(out_of_order(append(&mut s, b(0, 0, 2, 0))));
        // Same first sequence but a different range is no duplicate either.
        assert!(out_of_order(append(&mut s, b(0, 10, 1, 0))));
    }

    #[test]
    fn sequence_gap_is_out_of_order_and_changes_nothing() {
        let mut s = ProducerState::new();
        append(&mut s, b(0, 0, 1, 0)).unwrap();
        let before = s.clone();
        assert_eq!(
            append(&mut s, b(0, 2, 1, 1)),
            Err(ProducerError::OutOfOrderSequence { producer_id: PID, epoch: 0, sequence: 2, last_sequence: 0 })
        );
        assert_eq!(s, before);
        assert!(is_append(append(&mut s, b(0, 1, 1, 1))));
    }

    // KIP-360 / Kafka 2.7+: an older epoch is INVALID_PRODUCER_EPOCH; a bumped
    // epoch must start at sequence 0 and forgets the old epoch's batches.
    #[test]
    fn older_epoch_is_fenced_and_a_new_epoch_starts_at_zero() {
        let mut s = ProducerState::new();
        append(&mut s, b(1, 0, 1, 0)).unwrap();
        append(&mut s, b(1, 1, 1, 1)).unwrap();
        assert_eq!(append(&mut s, b(0, 2, 1, 2)), Err(ProducerError::InvalidProducerEpoch { producer_id: PID, epoch: 0, current: 1 }));
        assert!(out_of_order(append(&mut s, b(2, 2, 1, 2))));
        assert!(is_append(append(&mut s, b(2, 0, 1, 2))));
        let e = s.entry(PID).unwrap();
        assert_eq!((e.epoch, e.batches.len()), (2, 1));
        // A retry of the old epoch's batch is fenced, not a duplicate.
        assert!(matches!(append(&mut s, b(1, 1, 1, 3)), Err(ProducerError::InvalidProducerEpoch { .. })));
    }

    // KIP-360 (Kafka 2.5+): the broker accepts an unknown producer at any
    // sequence instead of answering UNKNOWN_PRODUCER_ID.
    #[test]
    fn unknown_producer_is_accepted_at_any_sequence() {
        let mut s = ProducerState::new();
        assert!(is_append(append(&mut s, b(3, 42, 2, 0))));
        assert_eq!(s.entry(PID).unwrap().last_seq(), 43);
        assert!(out_of_order(append(&mut s, b(3, 45, 1, 2))));
        assert!(is_append(append(&mut s, b(3, 44, 1, 2))));
    }

    #[test]
    fn sequence_wraps_after_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 0), 5);
        let mut s = ProducerState::new();
        append(&mut s, b(0, 0, 1, 0)).unwrap();
        s.producers.get_mut(&PID).unwrap().batches.back_mut().unwrap().last_seq = i32::MAX - 2;
        let wrapping = b(0, i32::MAX - 1, 4, 1); // sequences MAX-1, MAX, 0, 1
        assert_eq!(wrapping.last_sequence(), 1);
        assert!(is_append(append(&mut s, wrapping)));
        assert!(matches!(append(&mut s, wrapping), Ok(LeaderCheck::Duplicate(_))));
        assert!(is_append(append(&mut s, b(0, 2, 1, 5))));
    }

    #[test]
    fn rejected_batch_in_a_multi_batch_append_rejects_all() {
        let mut s = ProducerState::new();
        append(&mut s, b(0, 0, 1, 0)).unwrap();
        let before = s.clone();
        let r = s.check_leader_append(&[b(0, 1, 1, 1), b(0, 2, 1, 2), b(0, 5, 1, 3)]);
        assert!(out_of_order(r));
        assert_eq!(s, before, "nothing applied");
        let LeaderCheck::Append(p) = s.check_leader_append(&[b(0, 1, 1, 1), b(0, 2, 1, 2)]).unwrap() else { panic!() };
        s.apply(p);
        assert_eq!(s.entry(PID).unwrap().last_seq(), 2);
        // Kafka: while a producer is unknown (no epoch before this request)
        // every batch of the request is accepted at any sequence.
        assert!(is_append(ProducerState::new().check_leader_append(&[ProducerBatch { producer_id: 99, ..b(0, 0, 1, 0) }, ProducerBatch { producer_id: 99, ..b(0, 9, 1, 1) }])));
        assert!(s.check_leader_append(&[ProducerBatch { base_sequence: -1, ..b(0, 0, 1, 2) }]).is_err(), "negative sequence");
    }

    // Followers apply what the leader wrote without checks, so a new leader
    // holds the same state and finds the same duplicates.
    #[test]
    fn replayed_state_equals_the_leaders() {
        let mut leader = ProducerState::new();
        let mut follower = ProducerState::new();
        for i in 0..8 {
            let batch = b(0, i, 1, i as i64);
            append(&mut leader, batch).unwrap();
            follower.replay(&batch);
        }
        assert_eq!(leader, follower);
        assert!(matches!(append(&mut follower, b(0, 7, 1, 0)), Ok(LeaderCheck::Duplicate(_))));
    }

    #[test]
    fn expiry_removes_idle_producers() {
        let mut s = ProducerState::new();
        append(&mut s, b(0, 0, 1, 0)).unwrap(); // timestamp 1_000
        append(&mut s, ProducerBatch { producer_id: 8, ..b(0, 0, 1, 1) }).unwrap();
        s.producers.get_mut(&8).unwrap().last_timestamp = 5_000;
        assert_eq!(s.remove_expired(1_000 + 3_999, 4_000), 0);
        assert_eq!(s.remove_expired(1_000 + 4_000, 4_000), 1);
        assert!(s.entry(PID).is_none() && s.entry(8).is_some());
    }

    #[test]
    fn snapshot_round_trips_and_damage_is_detected() {
        let mut s = ProducerState::new();
        for i in 0..7 {
            append(&mut s, b(0, i, 1, i as i64)).unwrap();
        }
        append(&mut s, ProducerBatch { producer_id: 9, ..b(4, 0, 3, 7) }).unwrap();
        let bytes = s.encode_snapshot(10);
        assert_eq!(ProducerState::decode_snapshot(&bytes), Ok((s.clone(), 10)));
        for at in [0, 3, 7, 20, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(ProducerState::decode_snapshot(&bad).is_err(), "flip at {at} accepted");
        }
        assert!(ProducerState::decode_snapshot(&bytes[..bytes.len() - 3]).is_err());
        assert!(ProducerState::decode_snapshot(&[]).is_err());
        assert_eq!(ProducerState::decode_snapshot(&ProducerState::new().encode_snapshot(0)), Ok((ProducerState::new(), 0)));
    }
}
