//! The accumulator driven directly: appends, ready/drain, outcomes, time.

use super::*;
use rand::SeedableRng;

type Rx = oneshot::Receiver<Result<RecordMetadata, SendError>>;

fn cfg() -> AccumulatorConfig {
    AccumulatorConfig {
        batch_size: 1000,
        linger: Duration::from_millis(5),
        buffer_memory: 100_000,
        max_request_size: 1_000_000,
        delivery_timeout: Duration::from_millis(10_000),
        retries: u32::MAX,
        retry_backoff: Duration::from_millis(100),
        retry_backoff_max: Duration::from_millis(1000),
        max_in_flight: 5,
        idempotent: false,
        acks: -1,
        compression: Compression::None,
    }
}

fn idem() -> AccumulatorConfig {
    AccumulatorConfig { idempotent: true, ..cfg() }
}

fn acc(c: AccumulatorConfig) -> Accumulator {
    Accumulator::new(c, ChaCha8Rng::seed_from_u64(1))
}

fn tp(p: i32) -> Tp {
    ("t".to_string(), p)
}

fn rec(value_len: usize) -> (PendingRecord, Rx) {
    let (tx, rx) = oneshot::channel();
    let value = Bytes::from(vec![b'x'; value_len]);
    let size = record_size(None, Some(&value));
    (PendingRecord { key: None, value: Some(value), timestamp: 7, size, done: tx }, rx)
}

fn append(a: &mut Accumulator, p: i32, value_len: usize, now: Instant) -> Rx {
    let (r, rx) = rec(value_len);
    assert!(a.append(tp(p), r, now).is_ok());
    rx
}

/// Every partition led by broker 1.
fn leader(_: &Tp) -> Option<i32> {
    Some(1)
}

fn ok(base_offset: i64) -> BatchOutcome {
    BatchOutcome::Appended { base_offset, log_append_time_ms: -1 }
}

fn err(code: i16) -> BatchOutcome {
    BatchOutcome::Error { code, message: None, context: "test".into() }
}

fn result(rx: &mut Rx) -> Option<Result<RecordMetadata, SendError>> {
    rx.try_recv().ok()
}

fn seq_of(a: &Accumulator, id: u64) -> i32 {
    a.in_flight_batch(id).unwrap().sequence.unwrap().base_sequence
}

// linger.ms: records arriving within the linger share one batch, which is
// not sendable before the linger passed; each send gets base + index.
#[test]
fn linger_collects_records_into_one_batch_and_offsets_are_base_plus_index() {
    let t0 = Instant::now();
    let mut a = acc(cfg());
    let mut rxs: Vec<Rx> = (0..3).map(|i| append(&mut a, 0, 10, t0 + Duration::from_millis(i))).collect();
    assert!(a.ready(t0 + Duration::from_millis(4), leader).nodes.is_empty(), "still lingering");
    assert_eq!(a.ready(t0 + Duration::from_millis(4), leader).next_wakeup, Some(t0 + Duration::from_millis(5)));
    let now = t0 + Duration::from_millis(5);
    assert_eq!(a.ready(now, leader).nodes, BTreeSet::from([1]));
    let ids = a.drain(now, 1, &[tp(0)]);
    assert_eq!(ids.len(), 1);
    assert_eq!(a.in_flight_batch(ids[0]).unwrap().records.len(), 3);
    a.complete(ids[0], ok(40), now);
    a.request_done(1);
    let offsets: Vec<i64> = rxs.iter_mut().map(|rx| result(rx).unwrap().unwrap().offset).collect();
    assert_eq!(offsets, vec![40, 41, 42]);
    assert!(a.is_empty());
    assert_eq!(a.buffer_used(), 0);
}

// batch.size: a batch is closed (sendable without lingering) once the next
// record would not fit; a record bigger than batch.size has its own batch.
#[test]
fn batch_size_closes_a_batch_and_an_oversized_record_gets_its_own() {
    let t0 = Instant::now();
    let mut a = acc(cfg());
    for _ in 0..4 {
        append(&mut a, 0, 200, t0);
    }
    // 61 + 4 × ~207 > 1000 would be exceeded by the 5th: it opens batch 2.
    append(&mut a, 0, 200, t0);
    assert_eq!(a.queued(&tp(0)), 2);
    assert_eq!(a.ready(t0, leader).nodes, BTreeSet::from([1]), "a closed batch does not linger");
    append(&mut a, 1, 5000, t0);
    assert_eq!(a.queued(&tp(1)), 1);
    let ids = a.drain(t0, 1, &[tp(0), tp(1)]);
    assert_eq!(ids.len(), 2, "one batch per partition per request");
    let sizes: Vec<usize> = ids.iter().map(|id| a.in_flight_batch(*id).unwrap().records.len()).collect();
    assert!(sizes.contains(&4) && sizes.contains(&1), "{sizes:?}");
}

#[test]
fn buffer_memory_refuses_appends_until_batches_complete() {
    let t0 = Instant::now();
    let mut a = acc(AccumulatorConfig { buffer_memory: 500, ..cfg() });
    append(&mut a, 0, 200, t0);
    append(&mut a, 0, 200, t0);
    let (r, _rx) = rec(200);
    let refused = a.append(tp(0), r, t0).unwrap_err();
    assert_eq!(refused.0, AppendRefused::BufferFull);
    a.space_wait_begin();
    assert_eq!(a.ready(t0, leader).nodes, BTreeSet::from([1]), "waiting senders make batches sendable at once");
    let ids = a.drain(t0, 1, &[tp(0)]);
    a.complete(ids[0], ok(0), t0);
    a.space_wait_done();
    assert!(a.append(tp(0), refused.1, t0).is_ok(), "space is back");
}

// max.request.size bounds one request (the first batch always goes);
// max.in.flight.requests.per.connection bounds requests per broker.
#[test]
fn drain_respects_max_request_size_and_max_in_flight() {
    let t0 = Instant::now();
    let mut a = acc(AccumulatorConfig { max_request_size: 700, max_in_flight: 2, batch_size: 400, ..cfg() });
    for p in 0..4 {
        append(&mut a, p, 300, t0);
        append(&mut a, p, 300, t0);
    }
    let led: Vec<Tp> = (0..4).map(tp).collect();
    let first = a.drain(t0, 1, &led);
    assert_eq!(first.len(), 1, "two ~370-byte batches exceed 700 bytes");
    let second = a.drain(t0, 1, &led);
    assert_eq!(second.len(), 1);
    assert!(a.drain(t0, 1, &led).is_empty(), "two requests in flight to broker 1");
    assert!(a.ready(t0, leader).nodes.is_empty(), "broker 1 is not ready while full");
    a.request_done(1);
    assert_eq!(a.drain(t0, 1, &led).len(), 1);
}

// KIP-580: the backoff doubles from retry.backoff.ms up to
// retry.backoff.max.ms, with ±20 % jitter.
#[test]
fn retries_back_off_exponentially_up_to_the_max() {
    let t0 = Instant::now();
    let mut a = acc(cfg());
    let mut rx = append(&mut a, 0, 10, t0);
    let mut now = t0 + Duration::from_millis(5);
    let mut waits = Vec::new();
    for _ in 0..6 {
        let ids = a.drain(now, 1, &[tp(0)]);
        assert_eq!(ids.len(), 1);
        a.complete(ids[0], err(6), now); // NOT_LEADER_OR_FOLLOWER
        a.request_done(1);
        let next = a.ready(now, leader).next_wakeup.unwrap();
        waits.push((next - now).as_millis() as u64);
        assert!(a.drain(now, 1, &[tp(0)]).is_empty(), "backing off");
        now = next;
    }
    let bounds = [(80, 120), (160, 240), (320, 480), (640, 960), (800, 1000), (800, 1000)];
    for (w, (lo, hi)) in waits.iter().zip(bounds) {
        assert!((lo..=hi).contains(w), "waits {waits:?}");
    }
    let ids = a.drain(now, 1, &[tp(0)]);
    a.complete(ids[0], ok(3), now);
    assert_eq!(result(&mut rx).unwrap().unwrap().offset, 3);
}

// The failure class: a batch that may have been written (NOT_LEADER after
// sending) fails as indefinite; one refused before append as definite.
#[test]
fn exhausted_retries_fail_indefinite_only_when_an_attempt_may_have_written() {
    let t0 = Instant::now();
    let mut a = acc(AccumulatorConfig { retries: 1, ..cfg() });
    let mut maybe = append(&mut a, 0, 10, t0);
    let mut never = append(&mut a, 1, 10, t0);
    let now = t0 + Duration::from_millis(5);
    let ids = a.drain(now, 1, &[tp(0), tp(1)]);
    for id in &ids {
        let code = if a.in_flight_batch(*id).unwrap().tp == tp(0) { 6 } else { 19 }; // NOT_ENOUGH_REPLICAS
        a.complete(*id, err(code), now);
    }
    let later = now + Duration::from_secs(2);
    let ids = a.drain(later, 1, &[tp(0), tp(1)]);
    assert_eq!(ids.len(), 2, "one retry each");
    for id in &ids {
        a.complete(*id, err(19), later);
    }
    let m = result(&mut maybe).unwrap().unwrap_err();
    let n = result(&mut never).unwrap().unwrap_err();
    assert!(m.indefinite && m.message.contains("retries exhausted"), "{m}");
    assert!(!n.indefinite, "{n}");
    assert_eq!((m.attempts, n.attempts), (2, 2));
}

// KIP-91: delivery.timeout.ms fails a batch that never left (definite) and
// a batch in flight (indefinite, without waiting for its answer).
#[test]
fn delivery_timeout_expires_waiting_and_in_flight_batches() {
    let t0 = Instant::now();
    let mut a = acc(cfg());
    let mut waiting = append(&mut a, 0, 10, t0);
    let mut sent = append(&mut a, 1, 10, t0);
    let ids = a.drain(t0 + Duration::from_millis(5), 1, &[tp(1)]);
    assert_eq!(ids.len(), 1);
    a.expire(t0 + Duration::from_millis(9_999));
    assert!(result(&mut waiting).is_none());
    a.expire(t0 + Duration::from_millis(10_000));
    assert!(!result(&mut waiting).unwrap().unwrap_err().indefinite);
    let e = result(&mut sent).unwrap().unwrap_err();
    assert!(e.indefinite && e.message.contains("delivery.timeout.ms"), "{e}");
    // The late answer is absorbed.
    a.complete(ids[0], ok(0), t0 + Duration::from_secs(11));
    assert!(a.is_empty());
}

// With max.in.flight=1 and no idempotence a partition is muted while a batch
// of it is in flight (Kafka's guaranteeMessageOrder).
#[test]
fn one_in_flight_mutes_the_partition() {
    let t0 = Instant::now();
    let mut a = acc(AccumulatorConfig { max_in_flight: 1, batch_size: 100, ..cfg() });
    append(&mut a, 0, 80, t0);
    append(&mut a, 0, 80, t0);
    assert_eq!(a.drain(t0, 1, &[tp(0)]).len(), 1);
    a.request_done(1);
    assert!(a.drain(t0, 1, &[tp(0)]).is_empty(), "muted while its batch is in flight");
}

/// An idempotent accumulator with a producer id and `n` closed one-record
/// batches on partition 0.
fn idem_with(n: usize) -> (Accumulator, Vec<Rx>) {
    let t0 = Instant::now();
    let mut a = acc(AccumulatorConfig { batch_size: 100, ..idem() });
    assert!(a.needs_producer_id());
    let rxs = (0..n).map(|_| append(&mut a, 0, 60, t0)).collect();
    assert!(a.drain(t0, 1, &[tp(0)]).is_empty(), "no producer id, nothing drains");
    a.set_producer_id(ProducerIdEpoch { producer_id: 9, epoch: 0 });
    (a, rxs)
}

/// Drains one request with partition 0's head batch, as its own request.
fn drain_one(a: &mut Accumulator, now: Instant) -> Option<u64> {
    let ids = a.drain(now, 1, &[tp(0)]);
    if !ids.is_empty() {
        a.request_done(1);
    }
    ids.first().copied()
}

// KIP-98: sequences are assigned at the first drain and kept on retry; at
// most 5 batches of a partition are in flight; a retry goes only when it is
// the first unfinished batch, so the log gets them in order.
#[test]
fn idempotent_sequences_are_kept_across_retries_and_at_most_five_are_in_flight() {
    let (mut a, mut rxs) = idem_with(7);
    let now = Instant::now();
    let ids: Vec<u64> = (0..7).filter_map(|_| drain_one(&mut a, now)).collect();
    assert_eq!(ids.len(), MAX_IN_FLIGHT_PER_PARTITION);
    let seqs: Vec<i32> = ids.iter().map(|id| seq_of(&a, *id)).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
    // The first two fail retriably (e.g. a request timeout); 2..4 get OUT_OF_ORDER.
    a.complete(ids[1], BatchOutcome::RequestFailed(ClientError::Timeout("t".into())), now);
    a.complete(ids[0], BatchOutcome::RequestFailed(ClientError::Timeout("t".into())), now);
    for id in &ids[2..] {
        a.complete(*id, err(OUT_OF_ORDER_SEQUENCE_NUMBER), now);
    }
    assert!(!a.sequence_state(&tp(0)).unwrap().4, "gaps behind unacked batches need no bump");
    let later = now + Duration::from_secs(5);
    let mut resent = Vec::new();
    while let Some(id) = drain_one(&mut a, later) {
        resent.push(seq_of(&a, id));
        let b = a.in_flight_batch(id).unwrap();
        assert_eq!(b.sequence.unwrap().producer, ProducerIdEpoch { producer_id: 9, epoch: 0 });
        a.complete(id, ok(100 + resent.len() as i64), later);
    }
    assert_eq!(resent, vec![0, 1, 2, 3, 4, 5, 6], "retries in sequence order, then the new batches");
    assert!(rxs.iter_mut().all(|rx| result(rx).unwrap().is_ok()));
    assert_eq!(a.sequence_state(&tp(0)).unwrap().1, Some(6));
}

#[test]
fn a_retry_waits_while_an_earlier_batch_is_in_flight() {
    let (mut a, _rxs) = idem_with(2);
    let now = Instant::now();
    let first = drain_one(&mut a, now).unwrap();
    let second = drain_one(&mut a, now).unwrap();
    a.complete(second, BatchOutcome::RequestFailed(ClientError::Timeout("t".into())), now);
    let later = now + Duration::from_secs(5);
    assert_eq!(drain_one(&mut a, later), None, "seq 1 waits for seq 0 in flight");
    a.complete(first, ok(0), later);
    let again = drain_one(&mut a, later).unwrap();
    assert_eq!(seq_of(&a, again), 1);
}

// DUPLICATE_SEQUENCE_NUMBER: the broker already has the batch; success
// without an offset.
#[test]
fn duplicate_sequence_counts_as_success() {
    let (mut a, mut rxs) = idem_with(1);
    let id = drain_one(&mut a, Instant::now()).unwrap();
    a.complete(id, err(DUPLICATE_SEQUENCE_NUMBER), Instant::now());
    assert_eq!(result(&mut rxs[0]).unwrap().unwrap().offset, -1);
    assert_eq!(a.sequence_state(&tp(0)).unwrap().1, Some(0));
}

// OUT_OF_ORDER_SEQUENCE_NUMBER on the next expected batch: the broker lost
// our state. The epoch is bumped only once nothing of the partition is in
// flight (KAFKA-14034), then the partition restarts at sequence 0.
#[test]
fn out_of_order_on_the_next_batch_bumps_the_epoch_once_nothing_is_in_flight() {
    let (mut a, mut rxs) = idem_with(3);
    let now = Instant::now();
    let ids: Vec<u64> = (0..3).filter_map(|_| drain_one(&mut a, now)).collect();
    a.complete(ids[0], ok(0), now);
    a.complete(ids[1], err(OUT_OF_ORDER_SEQUENCE_NUMBER), now);
    assert!(a.sequence_state(&tp(0)).unwrap().4, "bump asked for");
    let later = now + Duration::from_secs(5);
    a.ready(later, leader);
    assert_eq!(a.producer().unwrap().epoch, 0, "no bump while seq 2 is in flight");
    assert_eq!(drain_one(&mut a, later), None, "nothing drains while the bump waits");
    a.complete(ids[2], err(OUT_OF_ORDER_SEQUENCE_NUMBER), later);
    a.ready(later, leader);
    assert_eq!(a.producer(), Some(ProducerIdEpoch { producer_id: 9, epoch: 1 }));
    let r1 = drain_one(&mut a, later).unwrap();
    let b = a.in_flight_batch(r1).unwrap().sequence.unwrap();
    assert_eq!((b.producer.epoch, b.base_sequence), (1, 0), "restarted at 0 under epoch 1");
    a.complete(r1, ok(1), later);
    let after_backoff = later + Duration::from_secs(2);
    let r2 = drain_one(&mut a, after_backoff).unwrap();
    assert_eq!(seq_of(&a, r2), 1);
    a.complete(r2, ok(2), after_backoff);
    let offsets: Vec<i64> = rxs.iter_mut().map(|rx| result(rx).unwrap().unwrap().offset).collect();
    assert_eq!(offsets, vec![0, 1, 2]);
}

// A sequenced batch that expired leaves the partition unresolved: new
// batches wait until the earlier ones finished; when a later batch was
// acknowledged the expired one was written too and no bump is needed.
#[test]
fn an_expired_batch_blocks_new_batches_until_resolved() {
    let (mut a, mut rxs) = idem_with(2);
    let t0 = Instant::now();
    let first = drain_one(&mut a, t0).unwrap();
    let second = drain_one(&mut a, t0).unwrap();
    let late = t0 + Duration::from_secs(11);
    a.expire(late);
    assert!(result(&mut rxs[0]).unwrap().unwrap_err().indefinite);
    append(&mut a, 0, 60, late);
    a.complete(first, BatchOutcome::RequestFailed(ClientError::Timeout("t".into())), late);
    assert_eq!(drain_one(&mut a, late), None, "unresolved: the new batch waits");
    a.complete(second, ok(1), late);
    a.ready(late, leader);
    assert!(!a.sequence_state(&tp(0)).unwrap().3, "resolved: seq 1 acked implies seq 0 written");
    let next = drain_one(&mut a, late + Duration::from_millis(10)).unwrap();
    assert_eq!((seq_of(&a, next), a.producer().unwrap().epoch), (2, 0), "no bump needed");
}

// When every sequenced batch of an unresolved partition failed, a gap
// remains: bump the epoch and restart at 0 (Kafka's maybeResolveSequences).
#[test]
fn an_unresolved_gap_bumps_the_epoch_and_other_partitions_restart_when_idle() {
    let t0 = Instant::now();
    let mut a = acc(AccumulatorConfig { batch_size: 100, retries: 0, ..idem() });
    a.set_producer_id(ProducerIdEpoch { producer_id: 3, epoch: 0 });
    append(&mut a, 0, 60, t0);
    append(&mut a, 1, 60, t0);
    let ids = a.drain(t0, 1, &[tp(0), tp(1)]);
    a.request_done(1);
    assert_eq!(ids.len(), 2);
    let (p0, p1) = if a.in_flight_batch(ids[0]).unwrap().tp == tp(0) { (ids[0], ids[1]) } else { (ids[1], ids[0]) };
    a.complete(p0, BatchOutcome::RequestFailed(ClientError::Timeout("t".into())), t0); // retries=0: fails
    append(&mut a, 0, 60, t0);
    append(&mut a, 1, 60, t0);
    a.ready(t0, leader);
    assert_eq!(a.producer().unwrap().epoch, 1, "gap on partition 0: bump");
    // Partition 1 still has an epoch-0 batch in flight: its new batch waits.
    let ids = a.drain(t0 + Duration::from_millis(10), 1, &[tp(0), tp(1)]);
    a.request_done(1);
    assert_eq!(ids.len(), 1);
    let b = a.in_flight_batch(ids[0]).unwrap();
    assert_eq!((b.tp.clone(), b.sequence.unwrap().base_sequence, b.sequence.unwrap().producer.epoch), (tp(0), 0, 1));
    a.complete(p1, ok(0), t0);
    let ids = a.drain(t0 + Duration::from_millis(10), 1, &[tp(1)]);
    let b = a.in_flight_batch(ids[0]).unwrap().sequence.unwrap();
    assert_eq!((b.base_sequence, b.producer.epoch), (0, 1), "partition 1 restarts at 0 once idle (KAFKA-12152)");
}

#[test]
fn encoded_batch_carries_producer_identity_and_every_record() {
    let (mut a, _rxs) = idem_with(1);
    let id = drain_one(&mut a, Instant::now()).unwrap();
    for c in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let bytes = a.encode(id, c).unwrap();
        let h = crate::log::batch::validate(&bytes).expect("valid v2 batch");
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (9, 0, 0));
        let records = crate::log::records::decode_batch(&bytes).unwrap();
        assert_eq!(records.len(), 1);
    }
}

#[test]
fn sequences_wrap_like_kafka() {
    assert_eq!(increment_sequence(5, 3), 8);
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
}

/// Fills and sends `batches` batches of `record_len`-byte compressible
/// values through the accumulator (each drained and encoded, so its ratio
/// feeds the estimate); returns each batch's record count.
fn records_per_batch(c: AccumulatorConfig, batches: usize, record_len: usize) -> Vec<i32> {
    let codec = c.compression;
    let mut a = acc(c);
    let now = Instant::now();
    let mut counts = Vec::new();
    let mut rxs = Vec::new();
    while counts.len() < batches {
        let (r, rx) = rec(record_len); // 'x' repeated: compresses well
        a.append(tp(0), r, now).map_err(|e| e.0).unwrap();
        rxs.push(rx);
        if a.partitions_with_batches().is_empty() || a.queued(&tp(0)) < 2 {
            continue;
        }
        // The first batch closed: send it.
        let ids = a.drain(now, 1, &[tp(0)]);
        assert_eq!(ids.len(), 1);
        counts.push(a.in_flight_batch(ids[0]).unwrap().count);
        a.encode(ids[0], codec).unwrap();
        a.complete(ids[0], BatchOutcome::Appended { base_offset: 0, log_append_time_ms: -1 }, now);
        a.request_done(1);
    }
    counts
}

// Kafka's CompressionRatioEstimator: compressed batches fill by their
// estimated compressed size. The estimate starts at 1.0 (with a 5 % margin:
// slightly fewer records than uncompressed) and creeps down as batches
// compress well, so later batches carry more records than batch.size /
// record size; without compression every batch holds exactly that many.
#[test]
fn compressed_batches_fill_by_estimated_compressed_size() {
    let record_len = 100;
    let per_batch_plain = {
        let (r, _rx) = rec(record_len);
        ((1000 - HEADER_LEN) / r.size) as i32
    };
    let plain = records_per_batch(cfg(), 120, record_len);
    assert!(plain.iter().all(|&n| n == per_batch_plain), "{plain:?}");
    for codec in [Compression::Zstd, Compression::Gzip] {
        let counts = records_per_batch(AccumulatorConfig { compression: codec, ..cfg() }, 120, record_len);
        assert!(counts[0] <= per_batch_plain, "{codec:?}: the first batch trusts no gain: {counts:?}");
        assert!(counts.windows(2).all(|w| w[1] >= w[0]), "{codec:?}: batches only grow: {counts:?}");
        let last = *counts.last().unwrap();
        assert!(last > per_batch_plain * 3 / 2, "{codec:?}: {last} records in the last batch vs {per_batch_plain} uncompressed: {counts:?}");
    }
}
