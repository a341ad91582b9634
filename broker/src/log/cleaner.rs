//! The log cleaner (`cleanup.policy=compact`): rewrites closed segments
//! below the high watermark so that only the latest record per key stays.
//!
//! Kafka semantics kept (Kafka docs, "Log Compaction"; KIP-534 for the
//! tombstone horizon):
//! - Only closed segments whose every offset is below the HW are cleaned;
//!   the active segment and anything at or above the HW are never touched.
//! - Offsets never change. A rebuilt batch keeps its baseOffset and
//!   lastOffsetDelta (v2 `filterTo` with `overrideLastOffset`), so the log
//!   stays contiguous batch to batch while offsets inside batches have gaps.
//!   A batch that loses every record gives its offset range to the next
//!   rebuilt batch of the segment (lower baseOffset), or, at the end of a
//!   segment, becomes an empty batch (recordCount 0) holding the range.
//! - Compressed batches are decompressed, filtered and re-encoded with the
//!   same codec and a fresh CRC. Untouched batches keep their bytes.
//! - Tombstones (null value) are kept while they are the latest record of
//!   their key and younger than `delete.retention.ms`, measured from their
//!   batch's maxTimestamp (Kafka measures from the segment's last
//!   modification or, since KIP-534, from a horizon set at the first clean:
//!   both mean "a consumer had delete.retention.ms to see it").
//! - Control batches (transaction markers) are kept as they are.
//! - Batches of idempotent producers (producer id >= 0) keep their own
//!   offset range, emptied if they lose every record, and never absorb a
//!   gap: producer state is rebuilt from their headers (last sequence =
//!   base sequence + lastOffsetDelta), so Kafka's cleaner likewise retains
//!   producers' batches.
//! - Records without a key cannot be compacted and are kept (Kafka refuses
//!   them on produce to a compacted topic).
//!
//! Crash safety: a segment is rewritten into `<base>.log.cleaned`, fsynced,
//! then renamed over `<base>.log` (atomic and durable); the index is
//! rewritten atomically after. A crash leaves the old segment, or the new
//! one, plus possibly a `.cleaned` leftover that `Log::open` deletes; the
//! index is rebuilt by recovery either way.

use super::batch::{iter_batches, BatchHeader};
use super::records::{build_batch, codec, decode_batch, LogRecord};
use super::{index_bytes, Log, LogError, Segment, INDEX_SUFFIX, LOG_SUFFIX};
use bytes::Bytes;
use std::collections::BTreeMap;

/// Suffix of a segment being rewritten by the cleaner.
pub const CLEANED_SUFFIX: &str = ".cleaned";

/// What one cleaning pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_rewritten: usize,
    pub records_removed: u64,
    pub tombstones_removed: u64,
}

fn corrupt(e: impl std::fmt::Display) -> LogError {
    LogError::InvalidRecords(format!("cleaner: {e}"))
}

/// One batch of a segment, parsed for cleaning.
struct Parsed {
    header: BatchHeader,
    bytes: Vec<u8>,
    /// Decoded records (empty for control batches, which are kept whole).
    records: Vec<LogRecord>,
}

impl Log {
    /// Bases of the segments the cleaner may rewrite: closed, and wholly
    /// below `high_watermark`.
    fn cleanable_segments(&self, high_watermark: i64) -> Vec<i64> {
        let active = self.active().base_offset;
        self.segments.values().take_while(|s| s.base_offset != active && s.next_offset <= high_watermark).map(|s| s.base_offset).collect()
    }

    fn parse_segment(&self, base: i64) -> Result<Vec<Parsed>, LogError> {
        let seg = &self.segments[&base];
        let data = self.storage.read_at(&self.segment_path(base, LOG_SUFFIX), 0, seg.size as usize)?;
        let mut out = Vec::new();
        for item in iter_batches(&data) {
            let (header, range) = item?;
            let bytes = data[range].to_vec();
            header.validate(&bytes)?;
            let records = if header.is_control() { Vec::new() } else { decode_batch(&bytes).map_err(corrupt)? };
            out.push(Parsed { header, bytes, records });
        }
        Ok(out)
    }

    /// One cleaning pass (see the module doc). `now_ms` is wall-clock ms
    /// since the epoch, the timebase of record timestamps.
    pub fn clean(&mut self, high_watermark: i64, now_ms: i64, delete_retention_ms: i64) -> Result<CleanStats, LogError> {
        self.ensure_online()?;
        let bases = self.cleanable_segments(high_watermark);
        let mut stats = CleanStats::default();
        if bases.is_empty() {
            return Ok(stats);
        }
        // Pass 1: the latest offset of every key in the cleanable range.
        let mut latest: BTreeMap<Bytes, i64> = BTreeMap::new();
        let mut parsed = Vec::with_capacity(bases.len());
        for &base in &bases {
            let batches = self.parse_segment(base)?;
            for b in &batches {
                for r in &b.records {
                    if let Some(k) = &r.key {
                        latest.insert(k.clone(), r.offset);
                    }
                }
            }
            let original: Vec<u8> = batches.iter().flat_map(|b| b.bytes.iter().copied()).collect();
            parsed.push((base, batches, original));
        }
        // Pass 2: rewrite each segment that loses something.
        for (base, batches, original) in parsed {
            let seg_next = self.segments[&base].next_offset;
            let mut out: Vec<u8> = Vec::new();
            let mut changed = false;
            // Offsets [gap_start, next batch base) whose batches lost every record.
            let mut gap: Option<(i64, BatchHeader)> = None;
            for b in batches {
                let h = b.header;
                if h.is_control() {
                    if let Some((start, template)) = gap.take() {
                        out.extend(empty_batch(&template, start, h.base_offset - 1)?);
                    }
                    out.extend_from_slice(&b.bytes);
                    continue;
                }
                let total = b.records.len();
                let expired_tombstone = h.max_timestamp >= 0 && now_ms.saturating_sub(h.max_timestamp) > delete_retention_ms;
                let mut kept = Vec::with_capacity(total);
                for r in b.records {
                    let superseded = r.key.as_ref().is_some_and(|k| latest.get(k).is_some_and(|&o| o > r.offset));
                    if superseded {
                        stats.records_removed += 1;
                    } else if r.value.is_none() && r.key.is_some() && expired_tombstone {
                        stats.records_removed += 1;
                        stats.tombstones_removed += 1;
                    } else {
                        kept.push(r);
                    }
                }
                let keeps_range = h.producer_id >= 0;
                if keeps_range {
                    if let Some((start, template)) = gap.take() {
                        out.extend(empty_batch(&template, start, h.base_offset - 1)?);
                    }
                }
                if kept.is_empty() {
                    changed = true;
                    if keeps_range {
                        out.extend(empty_batch(&h, h.base_offset, h.last_offset())?);
                    } else {
                        gap.get_or_insert((h.base_offset, h));
                    }
                    continue;
                }
                match gap.take() {
                    None if kept.len() == total => out.extend_from_slice(&b.bytes),
                    g => {
                        changed = true;
                        let base_offset = g.map_or(h.base_offset, |(start, _)| start);
                        let delta = i32::try_from(h.last_offset() - base_offset).map_err(corrupt)?;
                        let c = codec(h.compression()).ok_or_else(|| corrupt(format!("codec {}", h.compression())))?;
                        out.extend(build_batch(&h, base_offset, delta, &kept, c).map_err(corrupt)?);
                    }
                }
            }
            if let Some((start, template)) = gap.take() {
                out.extend(empty_batch(&template, start, seg_next - 1)?);
            }
            // Already-empty batches are rebuilt identically: only real changes count.
            if changed && out != original {
                self.replace_segment(base, &out)?;
                stats.segments_rewritten += 1;
            }
        }
        if stats.segments_rewritten > 0 {
            tracing::debug!(dir = %self.dir, ?stats, "cleaned");
        }
        self.check_invariants();
        Ok(stats)
    }

    /// Swaps segment `base`'s data for `data` (same offset range): write
    /// aside, fsync, rename over, then the index.
    fn replace_segment(&mut self, base: i64, data: &[u8]) -> Result<(), LogError> {
        let old = self.segments[&base].clone();
        let mut seg = Segment::new(base);
        for item in iter_batches(data) {
            let (h, range) = item.expect("cleaner output frames");
            assert!(h.validate(&data[range.clone()]).is_ok(), "cleaner output CRC");
            assert_eq!(h.base_offset, seg.next_offset, "cleaner output not contiguous");
            seg.track_batch(&h, range.start as u64, self.config.index_interval_bytes);
        }
        seg.size = data.len() as u64;
        // Boundary check: the offset range must not change.
        assert_eq!(seg.next_offset, old.next_offset, "cleaner changed segment {base}'s end");
        let path = self.segment_path(base, LOG_SUFFIX);
        let tmp = format!("{path}{CLEANED_SUFFIX}");
        if self.storage.exists(&tmp) {
            self.storage.remove(&tmp)?;
        }
        self.storage.append(&tmp, data)?;
        self.storage.sync(&tmp)?;
        self.storage.rename(&tmp, &path)?;
        self.segments.insert(base, seg);
        self.dirty_segments.remove(&base);
        let seg = &self.segments[&base];
        if let Err(e) = self.storage.write_atomic(&self.segment_path(base, INDEX_SUFFIX), &index_bytes(seg, &seg.index)) {
            self.offline = true; // memory and disk index differ; recovery rebuilds it
            return Err(e.into());
        }
        Ok(())
    }
}

fn empty_batch(template: &BatchHeader, first: i64, last: i64) -> Result<Vec<u8>, LogError> {
    let delta = i32::try_from(last - first).map_err(corrupt)?;
    build_batch(template, first, delta, &[], kafka_protocol::records::Compression::None).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::super::{Log, LogConfig, LogError};
    use super::*;
    use crate::storage::{ManualClock, SimDisk, Storage};
    use crate::log::batch::tests::{encode, record};
    use kafka_protocol::records::Compression;
    use rand::SeedableRng;
    use std::sync::Arc;

    const DIR: &str = "/data/compacted-0";
    const DAY_MS: i64 = 86_400_000;

    fn disk() -> SimDisk {
        SimDisk::with_clock(5_000, Arc::new(ManualClock::new()))
    }

    /// Small segments: roughly two batches each.
    fn config() -> LogConfig {
        LogConfig { segment_bytes: 160, index_interval_bytes: 64, flush_messages: None, flush_ms: None }
    }

    fn open(d: &SimDisk) -> Log {
        Log::open(Arc::new(d.clone()), DIR, config()).expect("open")
    }

    /// One producer batch of (key, value) records with timestamp `ts`.
    fn kv(pairs: &[(&str, Option<&str>)], ts: i64, compression: Compression) -> Vec<u8> {
        let records: Vec<_> = pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| record(i, ts, Some(Bytes::from(k.to_string())), v.map(|v| Bytes::from(v.to_string()))))
            .collect();
        encode(&records, compression)
    }

    /// Every record (offset, key, value) a consumer would read, checking
    /// that batches are contiguous and valid on the way (Log::read asserts).
    fn records(log: &Log) -> Vec<(i64, String, Option<String>)> {
        let bytes = log.read(log.log_start_offset(), i64::MAX, usize::MAX).unwrap();
        let mut out = Vec::new();
        for item in iter_batches(&bytes) {
            let (h, r) = item.unwrap();
            h.validate(&bytes[r.clone()]).unwrap();
            for rec in decode_batch(&bytes[r]).unwrap() {
                assert!(rec.offset >= h.base_offset && rec.offset <= h.last_offset());
                let s = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
                out.push((rec.offset, s(rec.key.as_ref().unwrap()), rec.value.as_ref().map(s)));
            }
        }
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
        out
    }

    /// a=1 b=1 | a=2 | c=1 b=2 | a=3 | (active) d=1
    fn fill(log: &mut Log, compression: Compression) {
        for pairs in [
            &[("a", Some("1")), ("b", Some("1"))][..],
            &[("a", Some("2"))],
            &[("c", Some("1")), ("b", Some("2"))],
            &[("a", Some("3"))],
            &[("d", Some("1"))],
        ] {
            log.append_as_leader(&kv(pairs, 1_000, compression), 0).unwrap();
        }
        assert!(log.segment_base_offsets().len() >= 3, "test needs closed segments: {:?}", log.segment_base_offsets());
    }

    /// A one-record batch of idempotent producer 5 at sequence `seq`.
    fn idempotent(key: &str, seq: i32) -> Vec<u8> {
        let mut r = record(0, 1_000, Some(Bytes::from(key.to_string())), Some(Bytes::from_static(b"v")));
        r.producer_id = 5;
        r.producer_epoch = 0;
        r.sequence = seq;
        encode(&[r], Compression::None)
    }

    // KIP-98 / Kafka's cleaner retains producers' batches: an emptied
    // idempotent batch keeps its own offset range (last sequence = base
    // sequence + lastOffsetDelta), so producer state rebuilt from the
    // cleaned log is the state before cleaning.
    #[test]
    fn idempotent_batches_keep_their_range_so_producer_state_rebuilds_the_same() {
        let d = disk();
        let mut log = open(&d);
        log.append_as_leader(&kv(&[("x", Some("1"))], 1_000, Compression::None), 0).unwrap();
        for (seq, key) in ["a", "a", "a", "b", "a"].iter().enumerate() {
            log.append_as_leader(&idempotent(key, seq as i32), 0).unwrap();
        }
        log.append_as_leader(&kv(&[("x", Some("2"))], 1_000, Compression::None), 0).unwrap();
        assert!(log.segment_base_offsets().len() >= 3, "{:?}", log.segment_base_offsets());
        let before = log.producer_state().clone();
        let leo = log.log_end_offset();
        assert!(log.clean(leo, 2_000, DAY_MS).unwrap().records_removed >= 3);
        let bytes = log.read(0, i64::MAX, usize::MAX).unwrap();
        let idempotent_ranges: Vec<(i64, i64, i32)> = iter_batches(&bytes)
            .map(|b| b.unwrap().0)
            .filter(|h| h.producer_id == 5)
            .map(|h| (h.base_offset, h.last_offset(), h.base_sequence))
            .collect();
        assert_eq!(idempotent_ranges, (1..=5).map(|o| (o, o, o as i32 - 1)).collect::<Vec<_>>());
        for offset in log.producer_snapshot_offsets().unwrap() {
            d.remove(&format!("{DIR}/{offset:020}.snapshot")).unwrap();
        }
        drop(log);
        let log = open(&d);
        assert_eq!(log.producer_state(), &before, "rebuilt from the cleaned log alone");
    }

    // Kafka docs, "Log Compaction": the latest value per key survives and
    // offsets never change (a consumer sees increasing offsets with gaps).
    #[test]
    fn latest_value_per_key_survives_with_offsets_preserved() {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let d = disk();
            let mut log = open(&d);
            fill(&mut log, compression);
            let before = records(&log);
            let leo = log.log_end_offset();
            let stats = log.clean(leo, 2_000, DAY_MS).unwrap();
            assert!(stats.records_removed >= 2, "{stats:?}");
            let after = records(&log);
            assert_eq!(log.log_end_offset(), leo);
            // Every surviving record is one of the originals, at its offset.
            assert!(after.iter().all(|r| before.contains(r)));
            let latest = |k: &str| before.iter().rfind(|r| r.1 == k).cloned().unwrap();
            for k in ["a", "b", "c", "d"] {
                assert!(after.contains(&latest(k)), "{k} latest kept ({compression:?})");
            }
            // Superseded records below the cleaned range are gone.
            assert!(!after.iter().any(|r| r.1 == "a" && r.2.as_deref() == Some("1")));
            assert!(!after.iter().any(|r| r.1 == "b" && r.2.as_deref() == Some("1")));
            // Batches keep their codec.
            let bytes = log.read(0, i64::MAX, usize::MAX).unwrap();
            for item in iter_batches(&bytes) {
                let (h, _) = item.unwrap();
                if h.record_count > 0 {
                    assert_eq!(h.compression(), compression as u8);
                }
            }
            // Idempotent: a second pass changes nothing.
            assert_eq!(log.clean(leo, 2_000, DAY_MS).unwrap().segments_rewritten, 0);
            // And survives a reopen (recovery accepts the gaps inside batches).
            drop(log);
            let log = open(&d);
            assert_eq!(records(&log), after);
        }
    }

    #[test]
    fn nothing_at_or_above_the_high_watermark_or_in_the_active_segment_is_touched() {
        let d = disk();
        let mut log = open(&d);
        fill(&mut log, Compression::None);
        let before = records(&log);
        assert_eq!(log.clean(0, 2_000, DAY_MS).unwrap(), CleanStats::default());
        assert_eq!(log.clean(2, 2_000, DAY_MS).unwrap(), CleanStats::default(), "first segment ends at or above the HW");
        assert_eq!(records(&log), before);
        let active = *log.segment_base_offsets().last().unwrap();
        log.clean(log.log_end_offset(), 2_000, DAY_MS).unwrap();
        let tail: Vec<_> = records(&log).into_iter().filter(|r| r.0 >= active).collect();
        assert_eq!(tail, before.into_iter().filter(|r| r.0 >= active).collect::<Vec<_>>());
    }

    // KIP-534 / delete.retention.ms: a tombstone stays readable for a while,
    // then a later pass removes it.
    #[test]
    fn tombstone_is_kept_then_removed_after_delete_retention() {
        let d = disk();
        let mut log = open(&d);
        log.append_as_leader(&kv(&[("a", Some("1")), ("b", Some("1"))], 1_000, Compression::None), 0).unwrap();
        log.append_as_leader(&kv(&[("a", None)], 1_000, Compression::None), 0).unwrap();
        log.append_as_leader(&kv(&[("c", Some("1"))], 1_000, Compression::None), 0).unwrap();
        log.append_as_leader(&kv(&[("e", Some("1"))], 1_000, Compression::None), 0).unwrap();
        let leo = log.log_end_offset();
        log.clean(leo, 1_000 + DAY_MS - 1, DAY_MS).unwrap();
        let after = records(&log);
        assert!(after.contains(&(2, "a".into(), None)), "young tombstone kept: {after:?}");
        assert!(!after.iter().any(|r| r.0 == 0), "value hidden by the tombstone removed");
        let stats = log.clean(leo, 1_000 + DAY_MS + 1, DAY_MS).unwrap();
        assert_eq!(stats.tombstones_removed, 1);
        let after = records(&log);
        assert!(!after.iter().any(|r| r.1 == "a"), "{after:?}");
        assert!(after.contains(&(1, "b".into(), Some("1".into()))));
    }

    // Crash safety: a `.cleaned` leftover from a pass that died before its
    // rename is discarded; a finished pass survives power loss (fsync + rename).
    #[test]
    fn crash_mid_clean_leaves_a_valid_log() {
        let d = disk();
        let mut log = open(&d);
        fill(&mut log, Compression::None);
        log.flush().unwrap();
        let before = records(&log);
        let first = log.segment_base_offsets()[0];
        let leftover = format!("{DIR}/{first:020}.log{CLEANED_SUFFIX}");
        d.append(&leftover, b"half a segment").unwrap();
        drop(log);
        d.crash();
        let mut log = open(&d);
        assert!(!d.exists(&leftover));
        assert_eq!(records(&log), before);
        let leo = log.log_end_offset();
        log.clean(leo, 2_000, DAY_MS).unwrap();
        let cleaned = records(&log);
        drop(log);
        d.power_loss(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7), true);
        let log = open(&d);
        assert_eq!(records(&log), cleaned);
    }

    // Retention (Kafka's deleteOldSegments): whole closed segments below the
    // HW, by largest timestamp or by size; log start offset moves.
    #[test]
    fn retention_deletes_old_closed_segments_only() {
        let d = disk();
        let mut log = open(&d);
        for (i, ts) in [1_000, 2_000, 3_000, 4_000, 5_000].into_iter().enumerate() {
            log.append_as_leader(&kv(&[("k", Some(&format!("{i}")))], ts, Compression::None), 0).unwrap();
            log.append_as_leader(&kv(&[("k", Some("x"))], ts, Compression::None), 0).unwrap();
        }
        let bases = log.segment_base_offsets();
        assert!(bases.len() >= 4, "{bases:?}");
        let leo = log.log_end_offset();
        assert_eq!(log.delete_retained_segments(10_000, Some(100_000), None, leo).unwrap(), 0);
        // Everything is older than 1 ms, but the active segment stays, and
        // nothing at or above the HW goes.
        assert_eq!(log.delete_retained_segments(100_000, Some(1), None, bases[1]).unwrap(), 1);
        assert_eq!(log.log_start_offset(), bases[1]);
        assert!(matches!(log.read(0, leo, 100), Err(LogError::OffsetOutOfRange { .. })));
        let n = log.delete_retained_segments(100_000, Some(1), None, leo).unwrap();
        assert_eq!(log.segment_base_offsets(), vec![*bases.last().unwrap()], "{n} deleted");
        assert_eq!(log.log_end_offset(), leo);
        // retention.bytes
        let d = disk();
        let mut log = open(&d);
        for _ in 0..10 {
            log.append_as_leader(&kv(&[("k", Some("v"))], 1_000, Compression::None), 0).unwrap();
        }
        let leo = log.log_end_offset();
        let limit = 200;
        log.delete_retained_segments(0, None, Some(limit), leo).unwrap();
        assert!(log.size_bytes() as i64 <= limit + 160, "size {}", log.size_bytes());
        assert!(log.log_start_offset() > 0);
        drop(log);
        let log = open(&d);
        assert!(log.log_start_offset() > 0, "retention survives a restart");
    }
}
