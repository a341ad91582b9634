//! One partition replica's log: segmented files of raw record batches with a
//! sparse offset index and the leader-epoch cache, on a [`Storage`].
//!
//! # Layout of a partition directory
//!
//! ```text
//! 00000000000000000000.log     batches, as received (offsets rewritten)
//! 00000000000000000000.index   sparse index: (offset - base) u32, position u32
//! 00000000000000004096.log     next segment, named by its base offset
//! leader-epoch-checkpoint      see epoch_cache
//! 00000000000000004096.snapshot producer state at offset 4096 (see producer_state)
//! ```
//!
//! # Invariants (asserted at the boundaries)
//!
//! - Every batch in a segment is v2 with a valid CRC-32C (checked before the
//!   append and again after every read); corrupt bytes are never served.
//! - Offsets are contiguous: each batch starts at the previous batch's last
//!   offset + 1, segment after segment, up to the log end offset.
//! - Recovery (`Log::open`) trusts nothing but the data: it scans every
//!   segment, truncates at the first invalid or partial batch, deletes any
//!   later segment, and rebuilds the index.
//! - After a clean shutdown ([`Log::close`], then the broker's
//!   `.kafka_cleanshutdown` marker in the log dir), `Log::open_with(..,
//!   LogRecovery::CleanShutdown)` trusts the files as Kafka does: no batch
//!   is read whole or CRC-checked, only batch headers are walked (Kafka
//!   reads its offset and time indexes; we have no time index), and the
//!   producer state comes from the snapshot `close` wrote at the log end,
//!   with nothing replayed. Headers that do not chain up fall back to full
//!   recovery. [`Log::load_stats`] says which way the log was loaded.
//!
//! # Layout
//!
//! - [`batch`]: record batch v2 header parsing and validation.
//! - [`epoch_cache`]: the leader-epoch cache (KIP-101/279).
//! - [`producer_state`]: idempotent producers' epochs and last batches
//!   (KIP-98): duplicate, gap and fencing checks before a leader append;
//!   snapshots at every segment roll, loaded at recovery and rebuilt from
//!   the log after truncation.
//! - [`records`]: decoding and re-encoding batches (recompression, cleaner).
//! - [`cleaner`]: the log cleaner (compaction).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::storage::{join, Storage};

pub mod batch;
pub mod cleaner;
pub mod epoch_cache;
pub mod producer_state;
pub mod records;

pub use batch::{BatchError, BatchHeader};
pub use epoch_cache::{EpochEntry, LeaderEpochCache};

use batch::{iter_batches, HEADER_LEN};
use producer_state::{LeaderCheck, ProducerBatch, ProducerError, ProducerState};

/// Digits in a segment file name (Kafka's zero-padded base offset).
const SEGMENT_NAME_DIGITS: usize = 20;
const LOG_SUFFIX: &str = ".log";
const INDEX_SUFFIX: &str = ".index";
const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Producer state snapshots kept per partition (the newest ones): enough to
/// rebuild after a truncation below the last roll without replaying the
/// whole log.
pub const PRODUCER_SNAPSHOTS_KEPT: usize = 3;
/// Bytes per index entry: relative offset u32 + position u32.
const INDEX_ENTRY_LEN: usize = 8;
/// A segment holds at most this many offsets past its base (the index stores
/// relative offsets as u32; Kafka rolls at Int.MaxValue).
const SEGMENT_OFFSETS_MAX: i64 = i32::MAX as i64;

/// Per-partition settings, under Kafka's topic-config meanings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment when an append would pass this.
    pub segment_bytes: u64,
    /// `index.interval.bytes`: add an index entry after this many bytes.
    pub index_interval_bytes: u64,
    /// `flush.messages`: fsync after this many unflushed records (None: never).
    pub flush_messages: Option<u64>,
    /// `flush.ms`: fsync when unflushed data is this old (None: never).
    pub flush_ms: Option<u64>,
}

impl Default for LogConfig {
    /// Kafka's defaults: 1 GiB segments, an index entry per 4 KiB, no fsync
    /// policy (the OS writes back).
    fn default() -> Self {
        LogConfig { segment_bytes: 1 << 30, index_interval_bytes: 4096, flush_messages: None, flush_ms: None }
    }
}

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    pub record_count: u32,
    /// Largest batch maxTimestamp (-1 if none).
    pub max_timestamp: i64,
    /// A leader append that retried a batch already in the log (KIP-98):
    /// nothing was written, the offsets are the original batch's and
    /// `record_count` is 0.
    pub duplicate: bool,
}

/// How [`Log::open_with`] loads the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRecovery {
    /// After a crash or power loss (no clean-shutdown marker): every batch
    /// is read and validated, the log truncated at the first bad one.
    Full,
    /// After a clean shutdown (Kafka's `.kafka_cleanshutdown`): everything
    /// was fsynced and the producer state snapshotted at the log end by
    /// [`Log::close`]; only batch headers are walked.
    CleanShutdown,
}

/// What opening the log did (observable proof of a skipped recovery).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// The segments were loaded as after a clean shutdown (false also when
    /// a clean load was asked for but the headers did not chain up).
    pub clean_shutdown: bool,
    /// Batches read whole and CRC-checked while opening (0 after a clean load).
    pub batches_validated: u64,
    /// The producer state snapshot loaded (its offset), if any.
    pub producer_snapshot: Option<i64>,
    /// Idempotent producers' batches replayed from the log into the
    /// producer state by the last load (0 when the snapshot was at the end).
    pub producer_batches_replayed: u64,
}

/// Everything that can go wrong in the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, log_end_offset: i64 },
    /// A batch failed validation (bad CRC, magic, length, partial): Kafka's
    /// CORRUPT_MESSAGE.
    #[error("corrupt batch: {0}")]
    CorruptBatch(#[from] BatchError),
    /// Well-formed bytes that the log refuses (no batches, record count
    /// inconsistent with lastOffsetDelta): Kafka's INVALID_RECORD.
    #[error("invalid records: {0}")]
    InvalidRecords(String),
    /// A follower append that does not start at the log end offset, or
    /// batches that are not contiguous.
    #[error("non-contiguous append: expected offset {expected}, got {got}")]
    NonContiguous { expected: i64, got: i64 },
    /// A leader append with an epoch older than the log's latest: the caller
    /// is a stale leader (Kafka's FENCED_LEADER_EPOCH).
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    StaleLeaderEpoch { epoch: i32, latest: i32 },
    /// An idempotent producer's batch refused by its producer state
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, INVALID_RECORD).
    #[error("producer state: {0}")]
    Producer(#[from] ProducerError),
    #[error("corrupt checkpoint {path}: {reason}")]
    CorruptCheckpoint { path: String, reason: String },
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// An earlier I/O failure left the files in an unknown state; the log
    /// must be reopened (recovered) before use, as Kafka takes the dir offline.
    #[error("log {0} is offline after an I/O failure")]
    Offline(String),
}

/// One segment: `<base>.log` and its sparse `<base>.index`.
#[derive(Debug, Clone)]
struct Segment {
    base_offset: i64,
    /// Offset after the last batch (== base_offset when empty).
    next_offset: i64,
    /// Bytes in the .log file.
    size: u64,
    /// Sparse (batch base offset, byte position), increasing in both.
    index: Vec<(i64, u64)>,
    /// Bytes appended since the last index entry.
    bytes_since_index: u64,
    /// Largest batch maxTimestamp in the segment (-1 if none): what
    /// `retention.ms` is measured from (Kafka's segment largestTimestamp).
    max_timestamp: i64,
}

impl Segment {
    fn new(base_offset: i64) -> Self {
        Segment { base_offset, next_offset: base_offset, size: 0, index: Vec::new(), bytes_since_index: 0, max_timestamp: -1 }
    }

    /// Position from which to scan for `offset`: the last indexed batch
    /// starting at or before it, else the segment start.
    fn scan_start(&self, offset: i64) -> u64 {
        let i = self.index.partition_point(|&(o, _)| o <= offset);
        if i == 0 {
            0
        } else {
            self.index[i - 1].1
        }
    }

    /// Notes a batch of `len` bytes at `position`, indexing it if due.
    /// Returns the index entry to persist, if any.
    fn track_batch(&mut self, header: &BatchHeader, position: u64, index_interval_bytes: u64) -> Option<(i64, u64)> {
        let mut entry = None;
        if self.bytes_since_index > index_interval_bytes {
            entry = Some((header.base_offset, position));
            self.index.push((header.base_offset, position));
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.total_len() as u64;
        self.next_offset = header.next_offset();
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        entry
    }
}

fn segment_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:0width$}{suffix}", width = SEGMENT_NAME_DIGITS)
}

fn index_bytes(seg: &Segment, entries: &[(i64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * INDEX_ENTRY_LEN);
    for &(offset, position) in entries {
        let relative = offset - seg.base_offset;
        assert!((0..=SEGMENT_OFFSETS_MAX).contains(&relative), "index offset {offset} outside segment {}", seg.base_offset);
        assert!(position <= u32::MAX as u64, "index position {position} beyond u32");
        out.extend_from_slice(&(relative as u32).to_be_bytes());
        out.extend_from_slice(&(position as u32).to_be_bytes());
    }
    out
}

/// Checks what a leader or follower is asked to append, returning each
/// batch's header and range. Input errors are errors, not panics.
fn validate_input(records: &[u8]) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, LogError> {
    let mut batches = Vec::new();
    for item in iter_batches(records) {
        let (header, range) = item?;
        header.validate(&records[range.clone()])?;
        batches.push((header, range));
    }
    if batches.is_empty() {
        return Err(LogError::InvalidRecords("no record batches".into()));
    }
    Ok(batches)
}

/// One partition replica's log in directory `dir`.
pub struct Log {
    storage: Arc<dyn Storage>,
    dir: String,
    config: LogConfig,
    /// By base offset; never empty (the last is the active segment).
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    epochs: LeaderEpochCache,
    /// Records appended since the last flush (`flush.messages`).
    unflushed_messages: u64,
    /// Segments with appends or truncations not yet fsynced.
    dirty_segments: BTreeSet<i64>,
    /// Time of the last flush, as given to `maybe_flush` (`flush.ms`).
    last_flush_ms: Option<u64>,
    /// Set when an I/O failure left the files unknown; every later call fails.
    offline: bool,
    /// Idempotent producers' state, reflecting the log up to its end.
    producers: ProducerState,
    /// How the log was opened and its producer state last loaded.
    load_stats: LoadStats,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset)
            .field("log_end_offset", &self.log_end_offset())
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir` and recovers it: every
    /// batch of every segment is validated; at the first invalid or partial
    /// batch the segment is truncated and all later segments are deleted.
    pub fn open(storage: Arc<dyn Storage>, dir: &str, config: LogConfig) -> Result<Log, LogError> {
        Log::open_with(storage, dir, config, LogRecovery::Full)
    }

    /// [`Log::open`], trusting the files when `recovery` says the last
    /// process closed the log cleanly (see the module docs).
    pub fn open_with(storage: Arc<dyn Storage>, dir: &str, config: LogConfig, recovery: LogRecovery) -> Result<Log, LogError> {
        assert!(config.segment_bytes > 0, "segment_bytes must be positive");
        storage.create_dir_all(dir)?;
        let mut bases = BTreeSet::new();
        let mut stray_indexes = Vec::new();
        for name in storage.list_dir(dir)? {
            if let Some(stem) = name.strip_suffix(LOG_SUFFIX) {
                match stem.parse::<i64>() {
                    Ok(base) if stem.len() == SEGMENT_NAME_DIGITS && base >= 0 => {
                        bases.insert(base);
                    }
                    _ => tracing::warn!(dir, name, "ignoring file that is not a segment"),
                }
            } else if name.ends_with(cleaner::CLEANED_SUFFIX) {
                // A cleaner pass died before its rename: the old segment stands.
                storage.remove(&join(dir, &name))?;
            } else if let Some(stem) = name.strip_suffix(INDEX_SUFFIX) {
                stray_indexes.push((stem.to_string(), name));
            }
        }
        let epochs = LeaderEpochCache::load(storage.clone(), &join(dir, epoch_cache::CHECKPOINT_FILE))?;
        let mut log = Log {
            storage,
            dir: dir.to_string(),
            config,
            segments: BTreeMap::new(),
            log_start_offset: bases.first().copied().unwrap_or(0),
            epochs,
            unflushed_messages: 0,
            dirty_segments: BTreeSet::new(),
            last_flush_ms: None,
            offline: false,
            producers: ProducerState::new(),
            load_stats: LoadStats::default(),
        };

        let clean = recovery == LogRecovery::CleanShutdown && log.load_segments_clean(&bases)?;
        log.load_stats.clean_shutdown = clean;
        let mut expected = log.log_start_offset;
        let mut corrupt_from: Option<i64> = None;
        for &base in bases.iter().filter(|_| !clean) {
            if corrupt_from.is_some() {
                log.delete_segment_files(base)?;
                continue;
            }
            if base != expected {
                tracing::warn!(dir, base, expected, "segment does not continue the log; deleting it and later ones");
                corrupt_from = Some(base);
                log.delete_segment_files(base)?;
                continue;
            }
            let (seg, truncated) = log.recover_segment(base)?;
            expected = seg.next_offset;
            log.segments.insert(base, seg);
            if truncated {
                corrupt_from = Some(expected);
            }
        }
        if log.segments.is_empty() {
            let start = log.log_start_offset;
            log.storage.append(&log.segment_path(start, LOG_SUFFIX), &[])?;
            log.storage.append(&log.segment_path(start, INDEX_SUFFIX), &[])?;
            log.segments.insert(start, Segment::new(start));
        }
        for (stem, name) in stray_indexes {
            let keep = stem.parse::<i64>().map(|b| log.segments.contains_key(&b)).unwrap_or(false);
            if !keep && log.storage.exists(&join(dir, &name)) {
                log.storage.remove(&join(dir, &name))?;
            }
        }
        // The checkpoint is written before the data; drop epochs the data never reached.
        let leo = log.log_end_offset();
        log.epochs.truncate_from_end(leo)?;
        log.load_producer_state()?;
        log.check_invariants();
        Ok(log)
    }

    fn segment_path(&self, base: i64, suffix: &str) -> String {
        join(&self.dir, &segment_name(base, suffix))
    }

    fn delete_segment_files(&self, base: i64) -> Result<(), LogError> {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX] {
            let path = self.segment_path(base, suffix);
            if self.storage.exists(&path) {
                self.storage.remove(&path)?;
            }
        }
        Ok(())
    }

    /// Scans one segment, truncating it at the first bad batch, and rebuilds
    /// its index. Returns the segment and whether it was truncated.
    fn recover_segment(&mut self, base: i64) -> Result<(Segment, bool), LogError> {
        let path = self.segment_path(base, LOG_SUFFIX);
        let data = self.storage.read_all(&path)?;
        let mut seg = Segment::new(base);
        let mut valid_len = 0usize;
        let mut bad: Option<String> = None;
        for item in iter_batches(&data) {
            let (header, range) = match item {
                Ok(x) => x,
                Err(e) => {
                    bad = Some(e.to_string());
                    break;
                }
            };
            self.load_stats.batches_validated += 1;
            if let Err(e) = header.validate(&data[range.clone()]) {
                bad = Some(e.to_string());
                break;
            }
            if header.base_offset != seg.next_offset {
                bad = Some(format!("offset {} where {} was expected", header.base_offset, seg.next_offset));
                break;
            }
            if header.last_offset() - base > SEGMENT_OFFSETS_MAX {
                bad = Some("offset beyond the segment's range".into());
                break;
            }
            seg.track_batch(&header, range.start as u64, self.config.index_interval_bytes);
            let epoch = header.partition_leader_epoch;
            if epoch >= 0 && self.epochs.latest_epoch().is_none_or(|l| epoch > l) {
                self.epochs.assign(header.partition_leader_epoch, header.base_offset)?;
            }
            valid_len = range.end;
        }
        if valid_len < data.len() && bad.is_none() {
            bad = Some("trailing bytes".into());
        }
        seg.size = valid_len as u64;
        let truncated = bad.is_some();
        if let Some(reason) = bad {
            tracing::warn!(path, valid_len, file_len = data.len(), reason, "recovery: truncating segment");
            self.storage.truncate(&path, valid_len as u64)?;
            self.storage.sync(&path)?;
        }
        // The index is rebuilt rather than trusted.
        let index_path = self.segment_path(base, INDEX_SUFFIX);
        let bytes = index_bytes(&seg, &seg.index);
        let on_disk = if self.storage.exists(&index_path) { Some(self.storage.read_all(&index_path)?) } else { None };
        if on_disk.as_deref() != Some(&bytes[..]) {
            if on_disk.is_some() {
                self.storage.truncate(&index_path, 0)?;
            }
            self.storage.append(&index_path, &bytes)?;
        }
        Ok((seg, truncated))
    }

    /// Loads every segment as after a clean shutdown: walks the batch
    /// headers only (no bodies read, no CRC checked, no index rewritten).
    /// Returns false, having loaded nothing, when the headers do not chain
    /// up from the log start to each file's end: then full recovery runs.
    fn load_segments_clean(&mut self, bases: &BTreeSet<i64>) -> Result<bool, LogError> {
        let mut segments = BTreeMap::new();
        let mut epochs = Vec::new();
        let mut expected = self.log_start_offset;
        for &base in bases {
            if base != expected {
                tracing::warn!(dir = %self.dir, base, expected, "clean shutdown marker, but segments do not chain: full recovery");
                return Ok(false);
            }
            let path = self.segment_path(base, LOG_SUFFIX);
            let len = self.storage.len(&path)?;
            let mut seg = Segment::new(base);
            let mut pos = 0u64;
            while pos < len {
                let header = match self.storage.read_at(&path, pos, HEADER_LEN).map(|h| BatchHeader::parse(&h)) {
                    Ok(Ok(h)) if h.base_offset == seg.next_offset && pos + h.total_len() as u64 <= len => h,
                    _ => {
                        tracing::warn!(dir = %self.dir, path, pos, "clean shutdown marker, but a batch header is off: full recovery");
                        return Ok(false);
                    }
                };
                seg.track_batch(&header, pos, self.config.index_interval_bytes);
                epochs.push((header.partition_leader_epoch, header.base_offset));
                pos += header.total_len() as u64;
            }
            seg.size = len;
            expected = seg.next_offset;
            segments.insert(base, seg);
        }
        for (epoch, start) in epochs {
            if epoch >= 0 && self.epochs.latest_epoch().is_none_or(|l| epoch > l) {
                self.epochs.assign(epoch, start)?;
            }
        }
        self.segments = segments;
        Ok(true)
    }

    /// How the log was opened and its producer state last loaded.
    pub fn load_stats(&self) -> LoadStats {
        self.load_stats
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Takes changed topic settings (Kafka applies new segment.bytes at the
    /// next roll, flush settings at the next check: so do we).
    pub fn set_config(&mut self, config: LogConfig) {
        assert!(config.segment_bytes > 0, "segment_bytes must be positive");
        self.config = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// Total bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    pub fn epoch_cache(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    fn active(&self) -> &Segment {
        self.segments.values().next_back().expect("a log always has a segment")
    }

    fn ensure_online(&self) -> Result<(), LogError> {
        if self.offline {
            Err(LogError::Offline(self.dir.clone()))
        } else {
            Ok(())
        }
    }

    fn check_invariants(&self) {
        let mut expected = self.log_start_offset;
        for (base, seg) in &self.segments {
            assert_eq!(*base, seg.base_offset);
            assert_eq!(seg.base_offset, expected, "segments of {} not contiguous", self.dir);
            assert!(seg.next_offset >= seg.base_offset);
            expected = seg.next_offset;
        }
        if let Some(latest) = self.epochs.latest_entry() {
            assert!(latest.start_offset <= self.log_end_offset(), "epoch {} starts at {} beyond LEO {}", latest.epoch, latest.start_offset, self.log_end_offset());
        }
    }

    /// Leader append: validates every batch (magic 2, CRC-32C, sizes), rewrites
    /// baseOffset and partitionLeaderEpoch in place, appends. Returns offsets.
    pub fn append_as_leader(&mut self, records: &[u8], leader_epoch: i32) -> Result<AppendInfo, LogError> {
        self.ensure_online()?;
        assert!(leader_epoch >= 0, "leader append with negative epoch {leader_epoch}");
        let batches = validate_input(records)?;
        for (h, _) in &batches {
            // A producer's batch has recordCount = lastOffsetDelta + 1 (no compaction gaps).
            if h.record_count < 1 || h.last_offset_delta != h.record_count - 1 {
                return Err(LogError::InvalidRecords(format!(
                    "recordCount {} with lastOffsetDelta {}",
                    h.record_count, h.last_offset_delta
                )));
            }
        }
        if let Some(latest) = self.epochs.latest_epoch() {
            if leader_epoch < latest {
                return Err(LogError::StaleLeaderEpoch { epoch: leader_epoch, latest });
            }
        }
        // Producer state is checked before anything is written (KIP-98).
        let mut producer_batches = Vec::new();
        let mut next = self.log_end_offset();
        for (h, _) in &batches {
            producer_batches.extend(ProducerBatch::from_header(h, next));
            next += h.last_offset_delta as i64 + 1;
        }
        let pending = match self.producers.check_leader_append(&producer_batches)? {
            LeaderCheck::Append(pending) => pending,
            LeaderCheck::Duplicate(original) => {
                return Ok(AppendInfo {
                    first_offset: original.first_offset,
                    last_offset: original.last_offset,
                    record_count: 0,
                    max_timestamp: original.timestamp,
                    duplicate: true,
                });
            }
        };
        let mut buf = records[..batches.last().expect("non-empty").1.end].to_vec();
        let mut next = self.log_end_offset();
        for (h, range) in &batches {
            let bytes = &mut buf[range.clone()];
            batch::set_base_offset(bytes, next);
            batch::set_partition_leader_epoch(bytes, leader_epoch);
            next += h.last_offset_delta as i64 + 1;
        }
        self.assign_leader_epoch(leader_epoch)?;
        let info = self.append_validated(buf)?;
        self.producers.apply(pending);
        Ok(info)
    }

    /// Records that `epoch` starts at the log end offset if it is newer than
    /// the latest known epoch. Call on becoming leader (Kafka's
    /// `maybeAssignEpochStartOffset`), so that followers asking for an epoch
    /// the new leader never wrote in learn where it ended (KIP-279).
    pub fn assign_leader_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        self.ensure_online()?;
        assert!(epoch >= 0, "assign_leader_epoch: negative epoch {epoch}");
        if self.epochs.latest_epoch().is_none_or(|l| epoch > l) {
            let leo = self.log_end_offset();
            self.epochs.assign(epoch, leo)?;
        }
        Ok(())
    }

    /// Follower append: offsets already assigned; first batch must start at
    /// log_end_offset and the batches must be contiguous.
    pub fn append_as_follower(&mut self, records: &[u8]) -> Result<AppendInfo, LogError> {
        self.ensure_online()?;
        let batches = validate_input(records)?;
        let mut expected = self.log_end_offset();
        for (h, _) in &batches {
            if h.base_offset != expected {
                return Err(LogError::NonContiguous { expected, got: h.base_offset });
            }
            expected = h.next_offset();
        }
        for (h, _) in &batches {
            let epoch = h.partition_leader_epoch;
            if epoch >= 0 && self.epochs.latest_epoch().is_none_or(|l| epoch != l) {
                self.epochs.assign(epoch, h.base_offset)?;
            }
        }
        let end = batches.last().expect("non-empty").1.end;
        let info = self.append_validated(records[..end].to_vec())?;
        for (h, _) in &batches {
            if let Some(b) = ProducerBatch::from_header(h, h.base_offset) {
                self.producers.replay(&b);
            }
        }
        Ok(info)
    }

    /// Appends batches already validated and carrying their final offsets.
    fn append_validated(&mut self, buf: Vec<u8>) -> Result<AppendInfo, LogError> {
        let first_offset = self.log_end_offset();
        // Boundary check, kept on in release: what goes to disk is valid and
        // continues the log exactly.
        let mut headers = Vec::new();
        let mut expected = first_offset;
        for item in iter_batches(&buf) {
            let (h, range) = item.expect("append: validated input frames");
            assert!(h.validate(&buf[range.clone()]).is_ok(), "append: batch CRC broken after offset rewrite");
            assert_eq!(h.base_offset, expected, "append: offsets not contiguous");
            expected = h.next_offset();
            headers.push((h, range));
        }
        assert!(!headers.is_empty(), "append: nothing to append");
        let last_offset = expected - 1;

        let active_base = self.active().base_offset;
        let active = self.active();
        let too_big = active.size > 0 && active.size + buf.len() as u64 > self.config.segment_bytes;
        let too_many = last_offset - active_base > SEGMENT_OFFSETS_MAX;
        if too_big || too_many {
            self.roll(first_offset)?;
        }
        let base = self.active().base_offset;
        let log_path = self.segment_path(base, LOG_SUFFIX);
        let index_path = self.segment_path(base, INDEX_SUFFIX);
        let start_position = self.active().size;
        if let Err(e) = self.storage.append(&log_path, &buf) {
            // Put the file back as it was, or give up on the log.
            if self.storage.truncate(&log_path, start_position).is_err() {
                self.offline = true;
            }
            return Err(e.into());
        }
        let interval = self.config.index_interval_bytes;
        let seg = self.segments.get_mut(&base).expect("active segment");
        let mut new_entries = Vec::new();
        let mut record_count = 0u32;
        let mut max_timestamp = -1i64;
        for (h, range) in &headers {
            if let Some(entry) = seg.track_batch(h, start_position + range.start as u64, interval) {
                new_entries.push(entry);
            }
            record_count += h.record_count.max(0) as u32;
            max_timestamp = max_timestamp.max(h.max_timestamp);
        }
        seg.size += buf.len() as u64;
        assert_eq!(seg.next_offset, last_offset + 1);
        let index = index_bytes(seg, &new_entries);
        self.dirty_segments.insert(base);
        self.unflushed_messages += record_count as u64;
        if !new_entries.is_empty() {
            if let Err(e) = self.storage.append(&index_path, &index) {
                // The index is rebuilt at recovery; the log itself is fine,
                // but in-memory and on-disk index now differ: go offline.
                self.offline = true;
                return Err(e.into());
            }
        }
        Ok(AppendInfo { first_offset, last_offset, record_count, max_timestamp, duplicate: false })
    }

    /// Starts a new active segment at `base_offset` (== the log end offset).
    fn roll(&mut self, base_offset: i64) -> Result<(), LogError> {
        assert_eq!(base_offset, self.log_end_offset(), "roll: not at the log end");
        if self.active().base_offset == base_offset {
            return Ok(()); // empty active segment: nothing to roll
        }
        let old = self.active().base_offset;
        // Kafka flushes the old segment when it rolls (a scheduled
        // flushUptoOffsetExclusive); done here at once.
        self.storage.sync(&self.segment_path(old, LOG_SUFFIX))?;
        self.storage.sync(&self.segment_path(old, INDEX_SUFFIX))?;
        self.dirty_segments.remove(&old);
        self.storage.append(&self.segment_path(base_offset, LOG_SUFFIX), &[])?;
        self.storage.append(&self.segment_path(base_offset, INDEX_SUFFIX), &[])?;
        self.segments.insert(base_offset, Segment::new(base_offset));
        tracing::debug!(dir = %self.dir, old, new = base_offset, "rolled segment");
        // Kafka snapshots producer state at every roll, so recovery replays
        // at most the active segment.
        self.take_producer_snapshot()
    }

    /// Retention (Kafka's `deleteOldSegments`): deletes whole segments, oldest
    /// first, that lie entirely below `high_watermark` and are either older
    /// than `retention_ms` (by their largest timestamp, against `now_ms`, in
    /// ms since the epoch) or beyond `retention_bytes` of total size. Never
    /// the active segment. Advances the log start offset; returns how many
    /// segments went.
    pub fn delete_retained_segments(&mut self, now_ms: i64, retention_ms: Option<i64>, retention_bytes: Option<i64>, high_watermark: i64) -> Result<usize, LogError> {
        self.ensure_online()?;
        let mut excess = retention_bytes.map_or(i64::MIN, |limit| self.size_bytes() as i64 - limit);
        let active = self.active().base_offset;
        let mut doomed = Vec::new();
        for seg in self.segments.values() {
            if seg.base_offset == active || seg.next_offset > high_watermark {
                break;
            }
            let by_time = retention_ms.is_some_and(|ms| seg.max_timestamp >= 0 && now_ms.saturating_sub(seg.max_timestamp) > ms);
            let by_size = excess.saturating_sub(seg.size as i64) >= 0;
            if !(by_time || by_size) {
                break;
            }
            excess = excess.saturating_sub(seg.size as i64);
            doomed.push(seg.base_offset);
        }
        self.delete_segments_before(doomed.len())
    }

    /// Follower side of retention: the leader's log start offset moved, so
    /// delete our closed segments that lie entirely below it.
    pub fn advance_log_start(&mut self, leader_log_start_offset: i64) -> Result<usize, LogError> {
        self.ensure_online()?;
        let active = self.active().base_offset;
        let n = self
            .segments
            .values()
            .take_while(|s| s.base_offset != active && s.next_offset <= leader_log_start_offset)
            .count();
        self.delete_segments_before(n)
    }

    /// Deletes the `n` oldest segments (never the active one).
    fn delete_segments_before(&mut self, n: usize) -> Result<usize, LogError> {
        if n == 0 {
            return Ok(0);
        }
        assert!(n < self.segments.len(), "retention must not delete the active segment");
        let bases: Vec<i64> = self.segments.keys().take(n).copied().collect();
        for base in &bases {
            // Memory first: a failure part-way leaves files that recovery
            // will see as the log's (older) start, which is still valid.
            self.segments.remove(base);
            self.dirty_segments.remove(base);
            self.log_start_offset = *self.segments.keys().next().expect("active remains");
            if let Err(e) = self.delete_segment_files(*base) {
                self.offline = true;
                return Err(e);
            }
        }
        tracing::debug!(dir = %self.dir, deleted = n, log_start_offset = self.log_start_offset, "retention deleted segments");
        self.check_invariants();
        Ok(n)
    }

    /// Whole batches from the one containing `offset`, stopping before
    /// `max_offset` (exclusive: a batch is included only if its last offset is
    /// below it; pass the HW for consumers, LEO for followers), at most
    /// `max_bytes` but always at least one batch if any is readable.
    /// `offset` must lie in `[log_start_offset, log_end_offset]`.
    pub fn read(&self, offset: i64, max_offset: i64, max_bytes: usize) -> Result<Bytes, LogError> {
        self.ensure_online()?;
        let leo = self.log_end_offset();
        if offset < self.log_start_offset || offset > leo {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: leo,
            });
        }
        let max_offset = max_offset.min(leo);
        if offset >= max_offset {
            return Ok(Bytes::new());
        }
        let mut out: Vec<u8> = Vec::new();
        let mut expected: Option<i64> = None;
        let start_base = *self.segments.range(..=offset).next_back().expect("offset >= log start").0;
        'segments: for seg in self.segments.range(start_base..).map(|(_, s)| s) {
            let path = self.segment_path(seg.base_offset, LOG_SUFFIX);
            let mut pos = if seg.base_offset == start_base { seg.scan_start(offset) } else { 0 };
            while pos < seg.size {
                let head = self.storage.read_at(&path, pos, HEADER_LEN)?;
                let header = BatchHeader::parse(&head)?;
                let total = header.total_len() as u64;
                if header.last_offset() < offset {
                    pos += total;
                    continue;
                }
                if header.last_offset() >= max_offset {
                    break 'segments;
                }
                if !out.is_empty() && out.len() + total as usize > max_bytes {
                    break 'segments;
                }
                let bytes = self.storage.read_at(&path, pos, total as usize)?;
                // Boundary check, kept on in release: never serve a corrupt batch.
                header.validate(&bytes)?;
                assert_eq!(bytes.len() as u64, total, "read: short batch inside segment");
                if let Some(e) = expected {
                    assert_eq!(header.base_offset, e, "read: offsets not contiguous");
                }
                expected = Some(header.next_offset());
                out.extend_from_slice(&bytes);
                pos += total;
                if out.len() >= max_bytes {
                    break 'segments;
                }
            }
        }
        Ok(Bytes::from(out))
    }

    /// Removes everything at and after `offset` (the batch containing it
    /// included, so the new log end is a batch boundary <= `offset`). At or
    /// before the log start, the log is emptied and restarts at `offset`.
    /// No-op if `offset >= log_end_offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        self.ensure_online()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let result = self.truncate_inner(offset);
        if result.is_err() {
            self.offline = true;
        }
        result
    }

    /// Empties the log and restarts it at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose log ends below the
    /// leader's log start offset (retention deleted what it misses).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.ensure_online()?;
        let result = self.reset_to(offset);
        if result.is_err() {
            self.offline = true;
        }
        result
    }

    fn truncate_inner(&mut self, offset: i64) -> Result<(), LogError> {
        if offset <= self.log_start_offset {
            return self.reset_to(offset);
        }
        self.truncate_tail(offset)
    }

    fn reset_to(&mut self, offset: i64) -> Result<(), LogError> {
        {
            let start = offset.max(0);
            let bases: Vec<i64> = self.segments.keys().copied().collect();
            self.segments.insert(start, Segment::new(start));
            for base in bases {
                if base != start {
                    self.segments.remove(&base);
                    self.delete_segment_files(base)?;
                }
            }
            let log_path = self.segment_path(start, LOG_SUFFIX);
            let index_path = self.segment_path(start, INDEX_SUFFIX);
            for path in [&log_path, &index_path] {
                if self.storage.exists(path) {
                    self.storage.truncate(path, 0)?;
                } else {
                    self.storage.append(path, &[])?;
                }
            }
            self.dirty_segments.clear();
            self.dirty_segments.insert(start);
            self.log_start_offset = start;
            self.epochs.clear()?;
            // Kafka's truncateFullyAndStartAt: no producer state survives.
            self.producers.clear();
            for offset in self.producer_snapshot_offsets()? {
                self.storage.remove(&self.snapshot_path(offset))?;
            }
            self.check_invariants();
            Ok(())
        }
    }

    fn truncate_tail(&mut self, offset: i64) -> Result<(), LogError> {
        // Drop whole segments that start at or after the offset.
        let later: Vec<i64> = self.segments.range(offset..).map(|(b, _)| *b).collect();
        for base in later {
            self.segments.remove(&base);
            self.dirty_segments.remove(&base);
            self.delete_segment_files(base)?;
        }
        let (base, size, scan) = {
            let seg = self.active();
            (seg.base_offset, seg.size, seg.scan_start(offset))
        };
        let path = self.segment_path(base, LOG_SUFFIX);
        // Find the first batch whose last offset reaches `offset`.
        let mut pos = scan;
        let mut new_next = None;
        while pos < size {
            let head = self.storage.read_at(&path, pos, HEADER_LEN)?;
            let header = BatchHeader::parse(&head)?;
            if header.last_offset() >= offset {
                new_next = Some(header.base_offset);
                break;
            }
            pos += header.total_len() as u64;
        }
        if let Some(new_next) = new_next {
            self.storage.truncate(&path, pos)?;
            let seg = self.segments.get_mut(&base).expect("active");
            seg.size = pos;
            seg.next_offset = new_next;
            seg.index.retain(|&(_, p)| p < pos);
            // Bytes since the last index entry (the indexed batch included).
            seg.bytes_since_index = pos - seg.index.last().map_or(0, |&(_, p)| p);
            let index = index_bytes(seg, &seg.index);
            let index_path = self.segment_path(base, INDEX_SUFFIX);
            self.storage.truncate(&index_path, index.len() as u64)?;
            self.dirty_segments.insert(base);
        }
        let leo = self.log_end_offset();
        assert!(leo <= offset, "truncate_to({offset}) left LEO {leo}");
        self.epochs.truncate_from_end(leo)?;
        // KIP-279 truncation: producer state is rebuilt for what remains
        // (Kafka's rebuildProducerState), from a snapshot below the new end.
        self.load_producer_state()?;
        self.check_invariants();
        Ok(())
    }

    /// fsync every segment (and index) written since the last flush.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.ensure_online()?;
        let dirty: Vec<i64> = self.dirty_segments.iter().copied().collect();
        for base in dirty {
            if !self.segments.contains_key(&base) {
                self.dirty_segments.remove(&base);
                continue;
            }
            self.storage.sync(&self.segment_path(base, LOG_SUFFIX))?;
            self.storage.sync(&self.segment_path(base, INDEX_SUFFIX))?;
            self.dirty_segments.remove(&base);
        }
        self.unflushed_messages = 0;
        Ok(())
    }

    /// Flushes if `flush.messages` records are unflushed, or if unflushed data
    /// exists and `flush.ms` passed since the last flush. Call after appends
    /// and periodically. The first call only starts the `flush.ms` clock.
    pub fn maybe_flush(&mut self, now_ms: u64) -> Result<(), LogError> {
        self.ensure_online()?;
        let last = *self.last_flush_ms.get_or_insert(now_ms);
        if self.dirty_segments.is_empty() {
            self.last_flush_ms = Some(now_ms);
            return Ok(());
        }
        let by_count = self.config.flush_messages.is_some_and(|n| self.unflushed_messages >= n);
        let by_time = self.config.flush_ms.is_some_and(|ms| now_ms.saturating_sub(last) >= ms);
        if by_count || by_time {
            self.flush()?;
            self.last_flush_ms = Some(now_ms);
        }
        Ok(())
    }

    /// Every batch in the log as (base offset, last offset, leader epoch,
    /// CRC), oldest first: what the harness's checkers compare between
    /// replicas after recovery. Reads every batch header.
    pub fn batch_marks(&self) -> Result<Vec<crate::observe::BatchMark>, LogError> {
        Ok(self
            .batch_headers_from(self.log_start_offset)?
            .into_iter()
            .map(|header| crate::observe::BatchMark {
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
                leader_epoch: header.partition_leader_epoch,
                crc: header.crc,
            })
            .collect())
    }

    /// The headers of every batch starting at or after `from`, oldest first.
    fn batch_headers_from(&self, from: i64) -> Result<Vec<BatchHeader>, LogError> {
        self.ensure_online()?;
        let mut out = Vec::new();
        let first_base = self.segments.range(..=from).next_back().map_or(self.log_start_offset, |(b, _)| *b);
        for seg in self.segments.range(first_base..).map(|(_, s)| s) {
            let path = self.segment_path(seg.base_offset, LOG_SUFFIX);
            let mut pos = seg.scan_start(from);
            while pos < seg.size {
                let header = BatchHeader::parse(&self.storage.read_at(&path, pos, HEADER_LEN)?)?;
                pos += header.total_len() as u64;
                if header.base_offset >= from {
                    out.push(header);
                }
            }
        }
        Ok(out)
    }

    /// The idempotent producers' state (reflects the log up to its end).
    pub fn producer_state(&self) -> &ProducerState {
        &self.producers
    }

    /// `producer.id.expiration.ms`: forgets producers idle that long
    /// (`now_ms`: ms since the epoch, against batch max timestamps).
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.remove_expired(now_ms, expiration_ms)
    }

    /// Clean shutdown (Kafka's `Log.close`): every segment fsynced (data
    /// an earlier process left in the page cache included) and the
    /// producer state snapshotted at the log end, so the next start, told
    /// by the broker's clean-shutdown marker, replays nothing.
    pub fn close(&mut self) -> Result<(), LogError> {
        self.ensure_online()?;
        self.dirty_segments.extend(self.segments.keys().copied());
        let result = self.flush().and_then(|()| self.take_producer_snapshot());
        if result.is_err() {
            self.offline = true;
        }
        result
    }

    fn snapshot_path(&self, offset: i64) -> String {
        self.segment_path(offset, SNAPSHOT_SUFFIX)
    }

    /// Offsets of the producer state snapshots in the directory, ascending.
    pub fn producer_snapshot_offsets(&self) -> Result<Vec<i64>, LogError> {
        let mut out = Vec::new();
        for name in self.storage.list_dir(&self.dir)? {
            let Some(stem) = name.strip_suffix(SNAPSHOT_SUFFIX) else { continue };
            match stem.parse::<i64>() {
                Ok(offset) if stem.len() == SEGMENT_NAME_DIGITS && offset >= 0 => out.push(offset),
                _ => tracing::warn!(dir = %self.dir, name, "ignoring file that is not a producer snapshot"),
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Writes `<log end>.snapshot` (atomically, CRC-protected) and keeps
    /// only the newest [`PRODUCER_SNAPSHOTS_KEPT`].
    pub fn take_producer_snapshot(&mut self) -> Result<(), LogError> {
        self.ensure_online()?;
        let leo = self.log_end_offset();
        let result = self.write_producer_snapshot(leo);
        if result.is_err() {
            self.offline = true;
        }
        result
    }

    fn write_producer_snapshot(&mut self, leo: i64) -> Result<(), LogError> {
        self.storage.write_atomic(&self.snapshot_path(leo), &self.producers.encode_snapshot(leo))?;
        let offsets = self.producer_snapshot_offsets()?;
        let excess = offsets.len().saturating_sub(PRODUCER_SNAPSHOTS_KEPT);
        for offset in &offsets[..excess] {
            self.storage.remove(&self.snapshot_path(*offset))?;
        }
        Ok(())
    }

    /// Rebuilds the producer state for the log as it now is (Kafka's
    /// `loadProducerState` / `truncateAndReload`): snapshots beyond the log
    /// end are deleted (their offsets were truncated away), the newest
    /// valid one at or below it is loaded, and the batches after it are
    /// replayed. A snapshot that fails its checks is deleted and never
    /// trusted; with none left the whole log is replayed.
    fn load_producer_state(&mut self) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        let offsets = self.producer_snapshot_offsets()?;
        let mut state = ProducerState::new();
        let mut replay_from = self.log_start_offset;
        let mut loaded = None;
        for &offset in offsets.iter().rev() {
            let path = self.snapshot_path(offset);
            if offset > leo {
                self.storage.remove(&path)?;
                continue;
            }
            let bytes = self.storage.read_all(&path)?;
            match ProducerState::decode_snapshot(&bytes) {
                Ok((snapshot, end)) if end == offset => {
                    state = snapshot;
                    replay_from = offset.max(self.log_start_offset);
                    loaded = Some(offset);
                    break;
                }
                Ok((_, end)) => tracing::warn!(path, end, "producer snapshot names another offset; deleting it"),
                Err(e) => tracing::warn!(path, "corrupt producer snapshot, deleting it: {e}"),
            }
            self.storage.remove(&path)?;
        }
        let mut replayed = 0usize;
        for h in self.batch_headers_from(replay_from)? {
            if let Some(b) = ProducerBatch::from_header(&h, h.base_offset) {
                state.replay(&b);
                replayed += 1;
            }
        }
        tracing::debug!(dir = %self.dir, replay_from, replayed, producers = state.len(), "producer state loaded");
        self.load_stats.producer_snapshot = loaded;
        self.load_stats.producer_batches_replayed = replayed as u64;
        self.producers = state;
        Ok(())
    }

    /// Records appended since the last flush.
    pub fn unflushed_messages(&self) -> u64 {
        self.unflushed_messages
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// KIP-101/279: (largest epoch <= requested, end offset of that epoch).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for_epoch(epoch, self.log_end_offset())
    }
}

#[cfg(test)]
mod tests;
