//! Log tests on the simulated disk, with a hand-driven clock.

use std::sync::Arc;

use kafka_protocol::records::Compression;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::batch::tests::batch;
use super::batch::{iter_batches, set_partition_leader_epoch, BatchHeader};
use super::*;
use crate::storage::{ManualClock, SimDisk, Storage};

const DIR: &str = "/data/events-0";
const WRITEBACK_MS: u64 = 5_000;

fn disk() -> (SimDisk, ManualClock) {
    let clock = ManualClock::new();
    (SimDisk::with_clock(WRITEBACK_MS, Arc::new(clock.clone())), clock)
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 1 << 20, index_interval_bytes: 256, flush_messages: None, flush_ms: None }
}

fn open(disk: &SimDisk, config: LogConfig) -> Log {
    Log::open(Arc::new(disk.clone()), DIR, config).expect("open")
}

/// (base offset, record count, leader epoch) of each batch in `bytes`.
fn batches_of(bytes: &[u8]) -> Vec<(i64, i32, i32)> {
    iter_batches(bytes)
        .map(|b| {
            let (h, r) = b.expect("whole batches");
            h.validate(&bytes[r]).expect("valid");
            (h.base_offset, h.record_count, h.partition_leader_epoch)
        })
        .collect()
}

fn read_all(log: &Log) -> Vec<(i64, i32, i32)> {
    let bytes = log.read(log.log_start_offset(), i64::MAX, usize::MAX).expect("read");
    batches_of(&bytes)
}

/// Appends `n` batches of 3 records each with epoch 0.
fn append_n(log: &mut Log, n: usize) {
    for i in 0..n {
        log.append_as_leader(&batch(3, &format!("b{i}"), Compression::None), 0).expect("append");
    }
}

#[test]
fn leader_append_assigns_offsets_and_epoch() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    let info = log.append_as_leader(&batch(3, "a", Compression::None), 4).unwrap();
    assert_eq!(info, AppendInfo { first_offset: 0, last_offset: 2, record_count: 3, max_timestamp: 1_002, duplicate: false });
    let mut two = batch(2, "b", Compression::Zstd);
    two.extend_from_slice(&batch(1, "c", Compression::None));
    let info = log.append_as_leader(&two, 4).unwrap();
    assert_eq!((info.first_offset, info.last_offset, info.record_count), (3, 5, 3));
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(read_all(&log), vec![(0, 3, 4), (3, 2, 4), (5, 1, 4)]);
    assert_eq!(log.latest_epoch(), Some(4));
}

#[test]
fn leader_append_rejects_corrupt_and_partial_input() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    let mut bad = batch(2, "a", Compression::None);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(log.append_as_leader(&bad, 0), Err(LogError::CorruptBatch(BatchError::CrcMismatch { .. }))));
    let good = batch(2, "a", Compression::None);
    assert!(matches!(
        log.append_as_leader(&good[..good.len() - 3], 0),
        Err(LogError::CorruptBatch(BatchError::Truncated { .. }))
    ));
    assert!(matches!(log.append_as_leader(&[], 0), Err(LogError::InvalidRecords(_))));
    assert_eq!(log.log_end_offset(), 0, "nothing appended");
}

#[test]
fn stale_leader_epoch_is_rejected() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    log.append_as_leader(&batch(1, "a", Compression::None), 5).unwrap();
    assert!(matches!(
        log.append_as_leader(&batch(1, "b", Compression::None), 4),
        Err(LogError::StaleLeaderEpoch { epoch: 4, latest: 5 })
    ));
}

#[test]
fn follower_append_requires_log_end_offset() {
    let (d, _) = disk();
    let mut leader_disk_log = open(&d, config());
    append_n(&mut leader_disk_log, 3);
    let fetched = leader_disk_log.read(0, i64::MAX, usize::MAX).unwrap();

    let (fd, _) = disk();
    let mut follower = open(&fd, config());
    let second = iter_batches(&fetched).nth(1).unwrap().unwrap().1;
    assert!(matches!(
        follower.append_as_follower(&fetched[second]),
        Err(LogError::NonContiguous { expected: 0, got: 3 })
    ));
    let info = follower.append_as_follower(&fetched).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 8));
    assert_eq!(read_all(&follower), read_all(&leader_disk_log));
}

#[test]
fn follower_append_updates_epoch_cache_from_batches() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    let mut bytes = Vec::new();
    for (base, epoch) in [(0i64, 1), (2, 1), (4, 3)] {
        let mut b = batch(2, "x", Compression::None);
        super::batch::set_base_offset(&mut b, base);
        set_partition_leader_epoch(&mut b, epoch);
        bytes.extend_from_slice(&b);
    }
    log.append_as_follower(&bytes).unwrap();
    assert_eq!(
        log.epoch_cache().entries(),
        &[EpochEntry { epoch: 1, start_offset: 0 }, EpochEntry { epoch: 3, start_offset: 4 }]
    );
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 4)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 4)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 6)));
}

#[test]
fn read_returns_whole_batches_from_the_one_containing_offset() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 4); // offsets 0-2, 3-5, 6-8, 9-11
    assert_eq!(batches_of(&log.read(4, i64::MAX, usize::MAX).unwrap()), vec![(3, 3, 0), (6, 3, 0), (9, 3, 0)]);
    // max_offset is exclusive: a batch is served only if it ends below it.
    assert_eq!(batches_of(&log.read(0, 9, usize::MAX).unwrap()), vec![(0, 3, 0), (3, 3, 0), (6, 3, 0)]);
    assert_eq!(batches_of(&log.read(0, 8, usize::MAX).unwrap()), vec![(0, 3, 0), (3, 3, 0)]);
    assert!(log.read(7, 8, usize::MAX).unwrap().is_empty());
    // At least one batch even if larger than max_bytes; then whole batches only.
    assert_eq!(batches_of(&log.read(0, i64::MAX, 1).unwrap()), vec![(0, 3, 0)]);
    let one = log.read(0, i64::MAX, 1).unwrap().len();
    assert_eq!(batches_of(&log.read(0, i64::MAX, 2 * one + 1).unwrap()).len(), 2);
    // At the log end: empty; beyond: out of range.
    assert!(log.read(12, i64::MAX, 100).unwrap().is_empty());
    assert!(matches!(log.read(13, i64::MAX, 100), Err(LogError::OffsetOutOfRange { offset: 13, .. })));
    assert!(matches!(log.read(-1, i64::MAX, 100), Err(LogError::OffsetOutOfRange { .. })));
}

#[test]
fn segments_roll_at_segment_bytes_and_reads_span_them() {
    let (d, _) = disk();
    let one = batch(3, "b0", Compression::None).len() as u64;
    let mut log = open(&d, LogConfig { segment_bytes: 2 * one, ..config() });
    append_n(&mut log, 5);
    assert_eq!(log.segment_base_offsets(), vec![0, 6, 12]);
    assert!(d.exists(&format!("{DIR}/00000000000000000006.log")));
    assert!(d.exists(&format!("{DIR}/00000000000000000012.index")));
    assert_eq!(read_all(&log).iter().map(|b| b.0).collect::<Vec<_>>(), vec![0, 3, 6, 9, 12]);
    assert_eq!(batches_of(&log.read(7, 13, usize::MAX).unwrap()), vec![(6, 3, 0), (9, 3, 0)]);
}

#[test]
fn sparse_index_entries_are_written_every_interval() {
    let (d, _) = disk();
    let mut log = open(&d, LogConfig { index_interval_bytes: 1, ..config() });
    append_n(&mut log, 4);
    // Kafka indexes a batch once more than the interval was written since the
    // last entry: batches 2, 3 and 4 here.
    let index = d.read_all(&format!("{DIR}/00000000000000000000.index")).unwrap();
    assert_eq!(index.len(), 3 * 8);
    assert_eq!(&index[0..4], &3u32.to_be_bytes());
    // Reads through the index find the right batch.
    assert_eq!(batches_of(&log.read(10, i64::MAX, 1).unwrap()), vec![(9, 3, 0)]);
}

#[test]
fn reopen_recovers_appended_data_and_epochs() {
    let (d, _) = disk();
    let one = batch(3, "b0", Compression::None).len() as u64;
    let cfg = LogConfig { segment_bytes: 2 * one, index_interval_bytes: 1, ..config() };
    let mut log = open(&d, cfg.clone());
    append_n(&mut log, 3);
    log.append_as_leader(&batch(2, "e2", Compression::Zstd), 2).unwrap();
    let before = read_all(&log);
    let index_before = d.read_all(&format!("{DIR}/00000000000000000000.index")).unwrap();
    drop(log);
    let log = open(&d, cfg);
    assert_eq!(read_all(&log), before);
    assert_eq!(log.log_end_offset(), 11);
    assert_eq!(log.latest_epoch(), Some(2));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 9)));
    assert_eq!(d.read_all(&format!("{DIR}/00000000000000000000.index")).unwrap(), index_before);
}

#[test]
fn crash_keeps_unsynced_appends() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 3);
    d.crash();
    let log = open(&d, config());
    assert_eq!(log.log_end_offset(), 9);
}

#[test]
fn power_loss_drops_unsynced_appends() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 2);
    log.flush().unwrap();
    append_n(&mut log, 2);
    d.power_loss(&mut ChaCha8Rng::seed_from_u64(1), false);
    let log = open(&d, config());
    assert_eq!(log.log_end_offset(), 6, "fsynced data kept, the rest lost");
    assert_eq!(read_all(&log).len(), 2);
}

#[test]
fn power_loss_keeps_data_older_than_os_writeback() {
    let (d, clock) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 2);
    clock.advance_ms(WRITEBACK_MS);
    append_n(&mut log, 1);
    clock.advance_ms(WRITEBACK_MS / 2);
    d.power_loss(&mut ChaCha8Rng::seed_from_u64(1), false);
    let log = open(&d, config());
    assert_eq!(log.log_end_offset(), 6, "written back by the OS, not the last append");
}

#[test]
fn recovery_truncates_torn_tail_after_power_loss() {
    let mut torn_seen = 0;
    for seed in 0..16 {
        let (d, _) = disk();
        let mut log = open(&d, config());
        append_n(&mut log, 2);
        log.flush().unwrap();
        let big: Vec<u8> = (0..4).flat_map(|i| batch(3, &format!("t{i}"), Compression::None)).collect();
        log.append_as_leader(&big, 1).unwrap();
        d.power_loss(&mut ChaCha8Rng::seed_from_u64(seed), true);
        let seg = format!("{DIR}/00000000000000000000.log");
        let torn_len = d.len(&seg).unwrap();
        let mut log = open(&d, config());
        // Every surviving batch is whole and valid; the torn one is gone.
        let got = read_all(&log);
        assert!(got.len() >= 2 && got.len() < 6, "seed {seed}: {got:?}");
        assert_eq!(d.len(&seg).unwrap(), log.size_bytes());
        if torn_len > log.size_bytes() {
            torn_seen += 1;
        }
        // The epoch cache never points past the recovered end.
        if log.log_end_offset() == 6 {
            assert_eq!(log.latest_epoch(), Some(0));
        }
        // And the log takes appends again at its end.
        let leo = log.log_end_offset();
        let info = log.append_as_leader(&batch(1, "after", Compression::None), 2).unwrap();
        assert_eq!(info.first_offset, leo);
    }
    assert!(torn_seen > 0, "some seed leaves a partial batch to truncate");
}

#[test]
fn recovery_truncates_corrupt_batch_and_deletes_later_segments() {
    let (d, _) = disk();
    let one = batch(3, "b0", Compression::None).len() as u64;
    let cfg = LogConfig { segment_bytes: 2 * one, ..config() };
    let mut log = open(&d, cfg.clone());
    append_n(&mut log, 6); // segments 0 (0-5), 6 (6-11), 12 (12-17)
    assert_eq!(log.segment_base_offsets(), vec![0, 6, 12]);
    drop(log);
    // Flip a byte inside the second batch of segment 6 (offsets 9-11).
    let seg = format!("{DIR}/00000000000000000006.log");
    let mut bytes = d.read_all(&seg).unwrap();
    let at = one as usize + 40;
    bytes[at] ^= 0xff;
    d.truncate(&seg, 0).unwrap();
    d.append(&seg, &bytes).unwrap();
    let log = open(&d, cfg);
    assert_eq!(log.segment_base_offsets(), vec![0, 6]);
    assert_eq!(log.log_end_offset(), 9);
    assert!(!d.exists(&format!("{DIR}/00000000000000000012.log")));
    assert!(!d.exists(&format!("{DIR}/00000000000000000012.index")));
    assert_eq!(d.len(&seg).unwrap(), one);
    assert_eq!(read_all(&log).len(), 3);
}

#[test]
fn recovery_detects_offset_gap() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 1);
    drop(log);
    // A batch claiming offset 10 after 0-2.
    let mut b = batch(1, "gap", Compression::None);
    super::batch::set_base_offset(&mut b, 10);
    d.append(&format!("{DIR}/00000000000000000000.log"), &b).unwrap();
    let log = open(&d, config());
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn recovery_drops_epochs_beyond_recovered_end() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 1);
    log.flush().unwrap();
    // The checkpoint is durable at once; the data of epoch 3 is not.
    log.append_as_leader(&batch(1, "e3", Compression::None), 3).unwrap();
    d.power_loss(&mut ChaCha8Rng::seed_from_u64(0), false);
    let log = open(&d, config());
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.latest_epoch(), Some(0));
    assert_eq!(log.end_offset_for_epoch(3), None);
}

#[test]
fn truncate_to_then_append() {
    let (d, _) = disk();
    let one = batch(3, "b0", Compression::None).len() as u64;
    let cfg = LogConfig { segment_bytes: 2 * one, index_interval_bytes: 1, ..config() };
    let mut log = open(&d, cfg.clone());
    append_n(&mut log, 3); // 0-2, 3-5 | 6-8
    log.append_as_leader(&batch(3, "e1", Compression::None), 1).unwrap(); // 9-11, segment 6
    assert_eq!(log.segment_base_offsets(), vec![0, 6]);
    // Truncating inside a batch drops the whole batch.
    log.truncate_to(4).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.segment_base_offsets(), vec![0]);
    assert_eq!(log.latest_epoch(), Some(0));
    assert!(!d.exists(&format!("{DIR}/00000000000000000006.log")));
    log.append_as_leader(&batch(2, "new", Compression::None), 2).unwrap();
    assert_eq!(read_all(&log), vec![(0, 3, 0), (3, 2, 2)]);
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 3)));
    assert_eq!(log.end_offset_for_epoch(1), Some((0, 3)));
    // Truncation survives a reopen, and the rebuilt index matches.
    drop(log);
    let log = open(&d, cfg);
    assert_eq!(read_all(&log), vec![(0, 3, 0), (3, 2, 2)]);
}

#[test]
fn truncate_to_at_or_beyond_end_is_a_no_op() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 2);
    log.truncate_to(6).unwrap();
    log.truncate_to(100).unwrap();
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn truncate_to_log_start_empties_the_log() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 2);
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.latest_epoch(), None);
    append_n(&mut log, 1);
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn flush_messages_fsyncs_after_that_many_records() {
    let (d, _) = disk();
    let mut log = open(&d, LogConfig { flush_messages: Some(6), ..config() });
    append_n(&mut log, 1);
    log.maybe_flush(0).unwrap();
    assert_eq!(log.unflushed_messages(), 3);
    append_n(&mut log, 1);
    log.maybe_flush(0).unwrap();
    assert_eq!(log.unflushed_messages(), 0);
    append_n(&mut log, 1);
    d.power_loss(&mut ChaCha8Rng::seed_from_u64(0), false);
    assert_eq!(open(&d, config()).log_end_offset(), 6);
}

#[test]
fn flush_ms_fsyncs_when_unflushed_data_is_old_enough() {
    let (d, _) = disk();
    let mut log = open(&d, LogConfig { flush_ms: Some(1_000), ..config() });
    log.maybe_flush(0).unwrap();
    append_n(&mut log, 1);
    log.maybe_flush(999).unwrap();
    assert_eq!(log.unflushed_messages(), 3);
    log.maybe_flush(1_000).unwrap();
    assert_eq!(log.unflushed_messages(), 0);
    d.power_loss(&mut ChaCha8Rng::seed_from_u64(0), false);
    assert_eq!(open(&d, config()).log_end_offset(), 3);
}

#[test]
fn io_error_on_append_leaves_log_unchanged() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 1);
    d.update_faults(|f| f.eio_on_append = true);
    assert!(matches!(log.append_as_leader(&batch(1, "x", Compression::None), 0), Err(LogError::Io(_))));
    // The rollback truncate failed too (EIO): the log goes offline.
    assert!(matches!(log.read(0, i64::MAX, 1), Err(LogError::Offline(_))));
    d.update_faults(|f| f.eio_on_append = false);
    let log = open(&d, config());
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn disk_full_rejects_append_and_keeps_log_usable() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 1);
    d.update_faults(|f| f.full = true);
    let err = log.append_as_leader(&batch(1, "x", Compression::None), 0).unwrap_err();
    assert!(matches!(&err, LogError::Io(e) if e.kind() == io::ErrorKind::StorageFull), "{err}");
    d.update_faults(|f| f.full = false);
    append_n(&mut log, 1);
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn read_never_serves_corruption_after_open() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 2);
    // Corrupt the bytes under the open log (bit rot after recovery).
    let seg = format!("{DIR}/00000000000000000000.log");
    let mut bytes = d.read_all(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    d.truncate(&seg, 0).unwrap();
    d.append(&seg, &bytes).unwrap();
    assert_eq!(batches_of(&log.read(0, i64::MAX, 1).unwrap()).len(), 1);
    assert!(matches!(log.read(3, i64::MAX, 100), Err(LogError::CorruptBatch(BatchError::CrcMismatch { .. }))));
}

#[test]
fn assign_leader_epoch_marks_start_at_log_end() {
    // KIP-279: a new leader records its epoch at its LEO before any append.
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 1);
    log.assign_leader_epoch(5).unwrap();
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 3)));
    assert_eq!(log.end_offset_for_epoch(4), Some((0, 3)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 3)));
}

#[test]
fn segment_names_are_twenty_digit_base_offsets() {
    assert_eq!(segment_name(0, LOG_SUFFIX), "00000000000000000000.log");
    assert_eq!(segment_name(1234, INDEX_SUFFIX), "00000000000000001234.index");
    let h = BatchHeader::parse(&batch(1, "a", Compression::None)).unwrap();
    assert_eq!(h.total_len(), batch(1, "a", Compression::None).len());
}

// Kafka's truncateFullyAndStartAt: a follower behind the leader's log start
// offset restarts its log there.
#[test]
fn truncate_fully_and_start_at_restarts_the_log() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 2);
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert_eq!(log.segment_base_offsets(), vec![100]);
    let mut b = batch(2, "f", Compression::None);
    super::batch::set_base_offset(&mut b, 100);
    log.append_as_follower(&b).unwrap();
    drop(log);
    let log = open(&d, config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 102));
}

/// An idempotent producer's batch of `n` records (producer 5).
fn pbatch(epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let values: Vec<bytes::Bytes> = (0..n).map(|i| bytes::Bytes::from(format!("s{}", seq as usize + i))).collect();
    records::producer_batch(5, epoch, seq, &values, 1_000).unwrap()
}

/// A log with small segments (rolls, hence snapshots, every 4 batches)
/// holding `n` one-record batches of producer 5, sequences 0..n.
fn producer_log(d: &SimDisk, n: i32) -> (Log, LogConfig) {
    let small = LogConfig { segment_bytes: 300, ..config() };
    let mut log = open(d, small.clone());
    for seq in 0..n {
        log.append_as_leader(&pbatch(0, seq, 1), 0).unwrap();
    }
    (log, small)
}

// KIP-98: a retried batch writes nothing and answers the original offsets.
#[test]
fn duplicate_leader_append_writes_nothing_and_answers_the_original_offsets() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 1); // a non-idempotent batch first: offsets 0..=2
    let first = log.append_as_leader(&pbatch(0, 0, 2), 0).unwrap();
    assert_eq!((first.first_offset, first.last_offset, first.duplicate), (3, 4, false));
    let size = log.size_bytes();
    let dup = log.append_as_leader(&pbatch(0, 0, 2), 0).unwrap();
    assert_eq!((dup.first_offset, dup.last_offset, dup.record_count, dup.duplicate), (3, 4, 0, true));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (5, size));
    // A gap and a fenced epoch are refused without writing.
    assert!(matches!(log.append_as_leader(&pbatch(0, 5, 1), 0), Err(LogError::Producer(producer_state::ProducerError::OutOfOrderSequence { .. }))));
    log.append_as_leader(&pbatch(1, 0, 1), 0).unwrap();
    assert!(matches!(log.append_as_leader(&pbatch(0, 2, 1), 0), Err(LogError::Producer(producer_state::ProducerError::InvalidProducerEpoch { .. }))));
    assert_eq!(log.log_end_offset(), 6);
}

// Kafka snapshots producer state at every roll; recovery loads the newest
// snapshot and replays the rest, so dedup survives a crash.
#[test]
fn producer_state_survives_a_crash_via_roll_snapshot_and_log_replay() {
    let (d, _) = disk();
    let (log, small) = producer_log(&d, 8);
    assert!(log.segment_base_offsets().len() >= 2, "rolled");
    let snaps = log.producer_snapshot_offsets().unwrap();
    assert!(!snaps.is_empty() && snaps.len() <= PRODUCER_SNAPSHOTS_KEPT, "snapshots {snaps:?}");
    assert!(*snaps.last().unwrap() < log.log_end_offset(), "the tail after the last snapshot must be replayed");
    let before = log.producer_state().clone();
    drop(log);
    d.crash();
    let mut log = open(&d, small);
    assert_eq!(log.producer_state(), &before);
    for seq in 3..8 {
        let dup = log.append_as_leader(&pbatch(0, seq, 1), 0).unwrap();
        assert!(dup.duplicate && dup.first_offset == seq as i64, "seq {seq}: {dup:?}");
    }
    assert!(log.append_as_leader(&pbatch(0, 2, 1), 0).is_err(), "older than the cache: out of order");
}

// A corrupt snapshot is never trusted: it is deleted and the state rebuilt
// from the log (an older snapshot, else the whole log).
#[test]
fn corrupt_producer_snapshot_is_ignored_and_state_rebuilt_from_the_log() {
    let (d, _) = disk();
    let (log, small) = producer_log(&d, 8);
    let before = log.producer_state().clone();
    let snaps = log.producer_snapshot_offsets().unwrap();
    drop(log);
    for s in &snaps {
        let path = format!("{DIR}/{s:020}.snapshot");
        let mut bytes = d.read_all(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        d.write_atomic(&path, &bytes).unwrap();
    }
    let log = open(&d, small);
    assert_eq!(log.producer_state(), &before, "rebuilt from the log");
    assert!(log.producer_snapshot_offsets().unwrap().is_empty(), "corrupt snapshots deleted");
}

// KIP-279 truncation rebuilds producer state for what remains: the
// truncated batches can be appended again, not answered as duplicates.
#[test]
fn truncation_rebuilds_producer_state_for_the_remaining_log() {
    let (d, _) = disk();
    let (mut log, _) = producer_log(&d, 6);
    log.truncate_to(4).unwrap();
    assert!(log.producer_snapshot_offsets().unwrap().iter().all(|&o| o <= 4));
    assert_eq!(log.producer_state().entry(5).unwrap().last_seq(), 3);
    let again = log.append_as_leader(&pbatch(0, 4, 1), 1).unwrap();
    assert_eq!((again.first_offset, again.duplicate), (4, false));
    // Truncating everything forgets every producer.
    log.truncate_fully_and_start_at(10).unwrap();
    assert!(log.producer_state().is_empty());
    assert!(log.producer_snapshot_offsets().unwrap().is_empty());
}

// Followers rebuild the leader's producer state from replicated batches.
#[test]
fn follower_append_replays_producer_state() {
    let (d, _) = disk();
    let mut leader = open(&d, config());
    for i in 0..3 {
        leader.append_as_leader(&pbatch(2, i * 2, 2), 0).unwrap();
    }
    let bytes = leader.read(0, i64::MAX, usize::MAX).unwrap();
    let (fd, _) = disk();
    let mut follower = open(&fd, config());
    follower.append_as_follower(&bytes).unwrap();
    assert_eq!(follower.producer_state(), leader.producer_state());
    assert!(follower.append_as_leader(&pbatch(2, 2, 2), 1).unwrap().duplicate);
    assert!(!follower.append_as_leader(&pbatch(2, 6, 1), 1).unwrap().duplicate);
}

// Kafka keeps a producer's state after retention deleted its batches (until
// producer.id.expiration.ms); after a restart that state can only come from
// a snapshot, since the remaining log no longer holds the producer.
#[test]
fn producer_state_outlives_retention_through_the_roll_snapshot() {
    let (d, _) = disk();
    let (mut log, small) = producer_log(&d, 3);
    append_n(&mut log, 12);
    let leo = log.log_end_offset();
    assert!(log.delete_retained_segments(0, None, Some(0), leo).unwrap() > 0);
    assert!(log.log_start_offset() > 2, "the producer's batches are gone");
    assert!(log.producer_state().entry(5).is_some(), "retention keeps producer state");
    drop(log);
    d.crash();
    let mut log = open(&d, small);
    assert_eq!(log.producer_state().entry(5).map(|e| e.last_seq()), Some(2), "loaded from a snapshot");
    let dup = log.append_as_leader(&pbatch(0, 2, 1), 0).unwrap();
    assert_eq!((dup.duplicate, dup.first_offset), (true, 2));
}

// Kafka's truncateAndReload: a snapshot beyond the recovered log end (its
// offsets were lost) is deleted, never loaded.
#[test]
fn producer_snapshot_beyond_the_log_end_is_deleted_at_recovery() {
    let (d, _) = disk();
    let (log, small) = producer_log(&d, 6);
    let before = log.producer_state().clone();
    let mut future = before.clone();
    future.replay(&producer_state::ProducerBatch { producer_id: 77, epoch: 0, base_sequence: 0, last_offset_delta: 0, first_offset: 50, max_timestamp: 1, is_control: false });
    drop(log);
    d.write_atomic(&format!("{DIR}/{:020}.snapshot", 100), &future.encode_snapshot(100)).unwrap();
    let log = open(&d, small);
    assert_eq!(log.producer_state(), &before);
    assert!(log.producer_snapshot_offsets().unwrap().iter().all(|&o| o <= log.log_end_offset()));
}

fn open_clean(disk: &SimDisk, config: LogConfig) -> Log {
    Log::open_with(Arc::new(disk.clone()), DIR, config, LogRecovery::CleanShutdown).expect("open clean")
}

// Kafka's Log.close + .kafka_cleanshutdown: after a clean close the next
// open reads no batch whole (no CRC check) and loads the producer state
// from the snapshot at the log end, replaying nothing; retries of the last
// batches are still duplicates with their original offsets.
#[test]
fn clean_close_then_clean_open_skips_recovery_and_loads_the_producer_snapshot() {
    let (d, _) = disk();
    let (mut log, small) = producer_log(&d, 10);
    let leo = log.log_end_offset();
    let segments = log.segment_base_offsets();
    let before = log.producer_state().clone();
    assert!(*log.producer_snapshot_offsets().unwrap().last().unwrap() < leo, "the roll snapshots leave a tail to replay");
    log.close().unwrap();
    assert_eq!(log.producer_snapshot_offsets().unwrap().last(), Some(&leo), "close snapshots at the log end");
    drop(log);
    let mut log = open_clean(&d, small);
    let stats = log.load_stats();
    assert!(stats.clean_shutdown);
    assert_eq!(stats.batches_validated, 0, "no segment rescanned");
    assert_eq!((stats.producer_snapshot, stats.producer_batches_replayed), (Some(leo), 0));
    assert_eq!((log.log_end_offset(), log.segment_base_offsets()), (leo, segments));
    assert_eq!(log.producer_state(), &before);
    for seq in 5..10 {
        let dup = log.append_as_leader(&pbatch(0, seq, 1), 0).unwrap();
        assert_eq!((dup.duplicate, dup.first_offset), (true, seq as i64), "seq {seq}");
    }
    let next = log.append_as_leader(&pbatch(0, 10, 1), 0).unwrap();
    assert_eq!((next.duplicate, next.first_offset), (false, leo));
    // Reads, index and all: the clean load built the same segments.
    assert_eq!(read_all(&log).len() as i64, leo + 1);
}

// Without the marker (a crash) the same files are recovered in full: every
// batch is CRC-checked and the producer state is rebuilt by replaying the
// log after the newest roll snapshot.
#[test]
fn crash_without_close_recovers_fully_and_replays_producer_state_from_the_log() {
    let (d, _) = disk();
    let (log, small) = producer_log(&d, 10);
    let before = log.producer_state().clone();
    let newest = *log.producer_snapshot_offsets().unwrap().last().unwrap();
    drop(log);
    d.crash();
    let log = open(&d, small);
    let stats = log.load_stats();
    assert!(!stats.clean_shutdown);
    assert_eq!(stats.batches_validated, 10, "every batch read and checked");
    assert_eq!(stats.producer_snapshot, Some(newest));
    assert_eq!(stats.producer_batches_replayed, (10 - newest) as u64);
    assert!(stats.producer_batches_replayed > 0);
    assert_eq!(log.producer_state(), &before);
}

// A clean load trusts the files as Kafka does after a clean shutdown: a
// flipped byte inside a record is not looked for at open (reads still
// refuse it), while full recovery truncates there.
#[test]
fn clean_open_trusts_batch_bodies_full_recovery_checks_them() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 4);
    log.close().unwrap();
    drop(log);
    let path = format!("{DIR}/{:020}.log", 0);
    let mut bytes = d.read_all(&path).unwrap();
    let second = iter_batches(&bytes).nth(1).unwrap().unwrap().1;
    bytes[second.end - 1] ^= 0x40;
    d.truncate(&path, 0).unwrap();
    d.append(&path, &bytes).unwrap();
    let clean = open_clean(&d, config());
    assert_eq!((clean.load_stats().batches_validated, clean.log_end_offset()), (0, 12));
    assert!(clean.read(3, i64::MAX, usize::MAX).is_err(), "reads still check the CRC");
    drop(clean);
    let full = open(&d, config());
    assert_eq!(full.log_end_offset(), 3, "full recovery truncates at the corrupt batch");
}

// Headers that do not chain up (a torn tail) make a clean load fall back
// to full recovery rather than trust them.
#[test]
fn clean_open_falls_back_to_full_recovery_on_a_torn_tail() {
    let (d, _) = disk();
    let mut log = open(&d, config());
    append_n(&mut log, 3);
    log.close().unwrap();
    drop(log);
    let path = format!("{DIR}/{:020}.log", 0);
    let len = d.len(&path).unwrap();
    d.truncate(&path, len - 5).unwrap();
    let log = open_clean(&d, config());
    let stats = log.load_stats();
    assert!(!stats.clean_shutdown);
    assert_eq!(stats.batches_validated, 2, "the two whole batches; the torn one is cut");
    assert_eq!(log.log_end_offset(), 6);
}
