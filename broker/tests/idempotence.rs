//! Idempotent produce over the wire (KIP-98, KIP-360, KIP-730): producer ids
//! from InitProducerId, and the broker's per-partition producer state that
//! drops retried batches, refuses gaps and fenced epochs, and survives
//! crashes, corrupt snapshots and leader failover. Batches are raw v2 bytes
//! carrying producer id, epoch and base sequence.
#![cfg(madsim)]

mod common;

use bytes::Bytes;
use common::{wait_until, TestCluster};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest, ProduceRequest, RequestKind, ResponseKind, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use ksim_broker::client::{Admin, AdminConfig, Consumer, ConsumerConfig};
use ksim_broker::config::Settings;
use ksim_broker::server::CLEAN_SHUTDOWN_FILE;
use ksim_broker::protocol::{decode_response, encode_request, read_frame, write_frame};
use ksim_broker::storage::Storage;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

const TOPIC: &str = "t";
const INIT_PRODUCER_ID_VERSION: i16 = 4;
const PRODUCE_VERSION: i16 = 9;
const METADATA_VERSION: i16 = 12;

/// `controllers` controllers and `brokers` brokers (with `settings`).
fn start_cluster(controllers: usize, brokers: usize, settings: Settings) -> TestCluster {
    common::start_cluster(controllers, brokers, Settings::new(), settings)
}

/// One request on a fresh connection; None when the broker cannot be
/// reached or does not answer in time.
async fn try_call(addr: SocketAddr, api: ApiKey, version: i16, body: RequestKind) -> Option<ResponseKind> {
    let round_trip = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let frame = encode_request(api, version, 1, "idempotence-test", &body).ok()?;
        write_frame(&mut s, &frame).await.ok()?;
        let reply = read_frame(&mut s).await.ok()??;
        decode_response(api, version, reply).ok().map(|(_, r)| r)
    };
    tokio::time::timeout(Duration::from_secs(10), round_trip).await.ok().flatten()
}

/// `try_call`, retried until the broker answers.
async fn call(addr: SocketAddr, api: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
    for _ in 0..60 {
        if let Some(r) = try_call(addr, api, version, body.clone()).await {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{addr} never answered {api:?}");
}

/// InitProducerId at `addr`: (error code, producer id, epoch).
async fn init_producer_id(addr: SocketAddr, transactional_id: Option<&str>) -> (i16, i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))))
        .with_transaction_timeout_ms(60_000);
    let ResponseKind::InitProducerId(r) = call(addr, ApiKey::InitProducerId, INIT_PRODUCER_ID_VERSION, RequestKind::InitProducerId(req)).await else {
        panic!("not an InitProducerId response")
    };
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// InitProducerId retried while the broker has no id block yet.
async fn new_producer_id(addr: SocketAddr) -> i64 {
    for _ in 0..60 {
        let (code, id, epoch) = init_producer_id(addr, None).await;
        if code == 0 {
            assert_eq!(epoch, 0, "idempotent producers start at epoch 0");
            return id;
        }
        assert_eq!(code, ResponseError::CoordinatorLoadInProgress.code(), "only the retriable error is expected");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{addr} never gave a producer id");
}

// KIP-730: producer ids come from controller-allocated blocks recorded in
// the replicated metadata, so they are unique across brokers, across an
// active-controller failover and across broker restarts.
#[madsim::test]
async fn kip_730_producer_ids_are_unique_across_brokers_restarts_and_controller_failover() {
    let cluster = start_cluster(3, 3, Settings::new());
    let mut up = vec![true; 3];
    let bootstrap = cluster.bootstrap.clone();
    let before: Vec<i64> = cluster
        .client
        .spawn(async move {
            let mut ids = Vec::new();
            for addr in &bootstrap {
                ids.push(new_producer_id(*addr).await);
                ids.push(new_producer_id(*addr).await);
            }
            ids
        })
        .await
        .unwrap();
    wait_until("an active controller", || cluster.active_controller(&up).is_some()).await;
    let (old, old_term) = cluster.active_controller(&up).unwrap();
    madsim::runtime::Handle::current().kill(cluster.controllers[old].node.id());
    up[old] = false;
    wait_until("a new active controller", || cluster.active_controller(&up).is_some_and(|(_, t)| t > old_term)).await;
    // Restarted brokers lost their blocks: their next ids come from the new
    // controller, after every block the old one gave.
    for b in &cluster.brokers {
        b.restart();
    }
    let bootstrap = cluster.bootstrap.clone();
    let after: Vec<i64> = cluster
        .client
        .spawn(async move {
            let mut ids = Vec::new();
            for addr in &bootstrap {
                ids.push(new_producer_id(*addr).await);
            }
            ids
        })
        .await
        .unwrap();
    let all: BTreeSet<i64> = before.iter().chain(&after).copied().collect();
    assert_eq!(all.len(), before.len() + after.len(), "duplicate producer ids: {before:?} then {after:?}");
    assert!(all.iter().all(|&id| id >= 0));
    let max_before = *before.iter().max().unwrap();
    assert!(after.iter().all(|&id| id > max_before), "new blocks come after old ones: {before:?} then {after:?}");
    // Transactional ids wait for the transaction coordinator (a later issue).
    let addr = cluster.bootstrap[0];
    let versions = cluster
        .client
        .spawn(async move {
            let req = RequestKind::ApiVersions(ApiVersionsRequest::default());
            let ResponseKind::ApiVersions(v) = call(addr, ApiKey::ApiVersions, 3, req).await else { panic!("not ApiVersions") };
            v.api_keys.iter().find(|k| k.api_key == ApiKey::InitProducerId as i16).map(|k| (k.min_version, k.max_version))
        })
        .await
        .unwrap();
    assert_eq!(versions, Some((0, 5)), "InitProducerId advertised");
    let codes = cluster
        .client
        .spawn(async move { (init_producer_id(addr, Some("txn-1")).await.0, init_producer_id(addr, Some("")).await.0) })
        .await
        .unwrap();
    assert_eq!(codes, (ResponseError::UnsupportedVersion.code(), ResponseError::InvalidRequest.code()));
}

/// Creates TOPIC (1 partition, replication factor `rf`) and waits until its
/// leader answers.
async fn create_topic(bootstrap: &[SocketAddr], rf: i32) {
    let admin = Admin::new(bootstrap.to_vec(), AdminConfig::default());
    let mut tries = 0;
    while let Err(e) = admin.create_topic(TOPIC, 1, rf, BTreeMap::new()).await {
        tries += 1;
        assert!(tries < 60, "create_topic kept failing: {e}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    admin.wait_for_leaders(TOPIC, 1, Duration::from_secs(30)).await.expect("leaders");
}

/// Produce v9 of one raw batch to TOPIC/0 with acks=all: (error code, base
/// offset); None when the broker cannot be reached.
async fn try_produce(addr: SocketAddr, batch: &[u8]) -> Option<(i16, i64)> {
    let data = PartitionProduceData::default().with_index(0).with_records(Some(Bytes::copy_from_slice(batch)));
    let topic = TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str(TOPIC))).with_partition_data(vec![data]);
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![topic]);
    let ResponseKind::Produce(r) = try_call(addr, ApiKey::Produce, PRODUCE_VERSION, RequestKind::Produce(req)).await? else {
        panic!("not a Produce response")
    };
    let p = &r.responses[0].partition_responses[0];
    Some((p.error_code, p.base_offset))
}

/// Produce, retried while `addr` is unreachable or not (yet) the leader.
async fn produce(addr: SocketAddr, batch: &[u8]) -> (i16, i64) {
    let retriable = [ResponseError::NotLeaderOrFollower.code(), ResponseError::UnknownTopicOrPartition.code()];
    for _ in 0..60 {
        match try_produce(addr, batch).await {
            Some((code, _)) if retriable.contains(&code) => {}
            Some(r) => return r,
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{addr} never took the produce");
}

/// A batch from producer `pid` with one value per sequence from `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let values: Vec<Bytes> = (0..n).map(|i| Bytes::from(format!("p{pid}-e{epoch}-s{}", seq as usize + i))).collect();
    ksim_broker::log::records::producer_batch(pid, epoch, seq, &values, 1_000).unwrap()
}

/// Every value in TOPIC/0 from offset 0, read by a consumer (committed only).
async fn read_values(bootstrap: &[SocketAddr], expected: usize) -> Vec<String> {
    let mut consumer = Consumer::new(bootstrap.to_vec(), ConsumerConfig::default());
    consumer.assign(vec![(TOPIC.to_string(), 0)]);
    consumer.seek(TOPIC, 0, 0);
    let mut got = Vec::new();
    for _ in 0..40 {
        if got.len() >= expected {
            break;
        }
        for r in consumer.poll(Duration::from_millis(500)).await.expect("poll") {
            got.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    got
}

/// The log end of TOPIC/0 as consumers see it (the high watermark).
async fn end_offset(bootstrap: &[SocketAddr]) -> i64 {
    let mut consumer = Consumer::new(bootstrap.to_vec(), ConsumerConfig::default());
    consumer.end_offsets(&[(TOPIC.to_string(), 0)]).await.expect("end offsets")[0].1
}

/// One controller, one broker (optionally with settings), topic created;
/// runs `f(broker address, a fresh producer id)` on the client node.
async fn with_one_broker<F, Fut>(settings: Settings, f: F)
where
    F: FnOnce(SocketAddr, i64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (cluster, addr, pid) = one_broker_with_batches(settings, 0).await;
    cluster.client.spawn(f(addr, pid)).await.unwrap();
}

/// One controller, one broker (with `settings`), topic created, and `n`
/// one-record batches of a fresh producer id (sequences 0..n at offsets
/// 0..n): (cluster, broker address, producer id).
async fn one_broker_with_batches(settings: Settings, n: i32) -> (TestCluster, SocketAddr, i64) {
    let cluster = start_cluster(1, 1, settings);
    let addr = cluster.bootstrap[0];
    let pid = cluster
        .client
        .spawn(async move {
            create_topic(&[addr], 1).await;
            let pid = new_producer_id(addr).await;
            for seq in 0..n {
                assert_eq!(produce(addr, &batch(pid, 0, seq, 1)).await, (0, seq as i64));
            }
            pid
        })
        .await
        .unwrap();
    (cluster, addr, pid)
}

// KIP-98 / Produce v3+: a retried batch (same producer id, epoch and
// sequences) is answered with the original batch's offset and stored once.
#[madsim::test]
async fn kip_98_retried_batch_gets_the_original_offset_and_is_stored_once() {
    with_one_broker(Settings::new(), |addr, pid| async move {
        assert_eq!(produce(addr, &batch(pid, 0, 0, 2)).await, (0, 0));
        assert_eq!(produce(addr, &batch(pid, 0, 0, 2)).await, (0, 0), "retry answered with the original offset");
        assert_eq!(produce(addr, &batch(pid, 0, 2, 1)).await, (0, 2));
        assert_eq!(produce(addr, &batch(pid, 0, 0, 2)).await, (0, 0));
        assert_eq!(produce(addr, &batch(pid, 0, 2, 1)).await, (0, 2));
        assert_eq!(end_offset(&[addr]).await, 3);
        let values = read_values(&[addr], 3).await;
        assert_eq!(values, [0, 1, 2].map(|s| format!("p{pid}-e0-s{s}")), "one copy of each");
        // Non-idempotent batches (producer id -1) are never deduplicated.
        let plain = ksim_broker::log::records::producer_batch(-1, -1, -1, &[Bytes::from_static(b"x")], 1_000).unwrap();
        assert_eq!(produce(addr, &plain).await, (0, 3));
        assert_eq!(produce(addr, &plain).await, (0, 4));
    })
    .await;
}

// Kafka ProducerStateEntry caches 5 batches per producer: a retry of any of
// them is a duplicate; the 6th-oldest is no longer cached and, being behind
// the last sequence, is OUT_OF_ORDER_SEQUENCE_NUMBER.
#[madsim::test]
async fn duplicates_of_the_last_five_batches_are_found_the_sixth_oldest_is_out_of_order() {
    with_one_broker(Settings::new(), |addr, pid| async move {
        for seq in 0..6 {
            assert_eq!(produce(addr, &batch(pid, 0, seq, 1)).await, (0, seq as i64));
        }
        for seq in 1..6 {
            assert_eq!(produce(addr, &batch(pid, 0, seq, 1)).await, (0, seq as i64), "retry of seq {seq}");
        }
        let (code, _) = produce(addr, &batch(pid, 0, 0, 1)).await;
        assert_eq!(code, ResponseError::OutOfOrderSequenceNumber.code());
        assert_eq!(end_offset(&[addr]).await, 6);
    })
    .await;
}

// KIP-98: a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER and nothing of
// the batch is appended; the expected sequence still goes in.
#[madsim::test]
async fn sequence_gap_is_out_of_order_and_appends_nothing() {
    with_one_broker(Settings::new(), |addr, pid| async move {
        assert_eq!(produce(addr, &batch(pid, 0, 0, 2)).await, (0, 0));
        let (code, base) = produce(addr, &batch(pid, 0, 3, 1)).await;
        assert_eq!((code, base), (ResponseError::OutOfOrderSequenceNumber.code(), -1));
        assert_eq!(end_offset(&[addr]).await, 2);
        assert_eq!(produce(addr, &batch(pid, 0, 2, 1)).await, (0, 2));
        // An unknown producer is accepted at any sequence (KIP-360, Kafka 2.5+).
        assert_eq!(produce(addr, &batch(pid + 1, 0, 17, 1)).await, (0, 3));
    })
    .await;
}

// KIP-360 / Kafka 2.7+: a batch of an older producer epoch is refused with
// INVALID_PRODUCER_EPOCH; a bumped epoch must start at sequence 0.
#[madsim::test]
async fn older_producer_epoch_is_fenced_and_a_bumped_epoch_starts_at_sequence_zero() {
    with_one_broker(Settings::new(), |addr, pid| async move {
        assert_eq!(produce(addr, &batch(pid, 1, 0, 1)).await, (0, 0));
        assert_eq!(produce(addr, &batch(pid, 0, 1, 1)).await.0, ResponseError::InvalidProducerEpoch.code());
        assert_eq!(produce(addr, &batch(pid, 2, 1, 1)).await.0, ResponseError::OutOfOrderSequenceNumber.code());
        assert_eq!(produce(addr, &batch(pid, 2, 0, 1)).await, (0, 1));
        assert_eq!(produce(addr, &batch(pid, 1, 1, 1)).await.0, ResponseError::InvalidProducerEpoch.code(), "fenced");
        assert_eq!(end_offset(&[addr]).await, 2);
    })
    .await;
}

/// Batches written by `crash_restart_dedup` before the crash.
const BATCHES_BEFORE_CRASH: i32 = 9;
/// Small segments so that rolls (and producer snapshots) happen.
const SMALL_SEGMENT_BYTES: &str = "300";

/// How `stop_restart_dedup` stops the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// kill -9.
    Crash,
    /// kill -9, and every producer snapshot damaged while it is down.
    CrashCorruptSnapshots,
    /// Graceful shutdown: logs closed, clean-shutdown marker written.
    Graceful,
}

/// Writes batches, stops the broker as `stop` says, starts it again and
/// checks that retries of the last 5 batches are still answered with their
/// original offsets.
async fn stop_restart_dedup(stop: Stop) {
    let settings = Settings::from_pairs([("log.segment.bytes", SMALL_SEGMENT_BYTES)]);
    let (cluster, addr, pid) = one_broker_with_batches(settings, BATCHES_BEFORE_CRASH).await;
    let dir = format!("/data0/{TOPIC}-0");
    let broker = &cluster.brokers[0];
    let disk = &broker.disk;
    let snapshots = || -> Vec<String> { disk.list_dir(&dir).unwrap().into_iter().filter(|n| n.ends_with(".snapshot")).collect() };
    let before = snapshots();
    assert!(!before.is_empty(), "segment rolls wrote producer snapshots: {:?}", disk.list_dir(&dir));
    let log_end_snapshot = format!("{:020}.snapshot", BATCHES_BEFORE_CRASH);
    assert!(!before.contains(&log_end_snapshot), "no roll at the log end: {before:?}");
    let marker = format!("/data0/{CLEAN_SHUTDOWN_FILE}");
    match stop {
        Stop::Crash | Stop::CrashCorruptSnapshots => broker.crash(),
        Stop::Graceful => {
            broker.shutdown().await;
            assert!(disk.exists(&marker), "clean-shutdown marker written");
            assert!(snapshots().contains(&log_end_snapshot), "Log.close snapshots at the log end: {:?}", snapshots());
        }
    }
    if stop == Stop::CrashCorruptSnapshots {
        for name in &before {
            let path = format!("{dir}/{name}");
            let mut bytes = disk.read_all(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x5a;
            disk.write_atomic(&path, &bytes).unwrap();
        }
    }
    broker.start();
    cluster
        .client
        .spawn(async move {
            for seq in BATCHES_BEFORE_CRASH - 5..BATCHES_BEFORE_CRASH {
                assert_eq!(produce(addr, &batch(pid, 0, seq, 1)).await, (0, seq as i64), "retry of seq {seq} after restart");
            }
            let next = BATCHES_BEFORE_CRASH;
            assert_eq!(produce(addr, &batch(pid, 0, next, 1)).await, (0, next as i64));
            assert_eq!(produce(addr, &batch(pid, 0, next + 2, 1)).await.0, ResponseError::OutOfOrderSequenceNumber.code());
            assert_eq!(end_offset(&[addr]).await, next as i64 + 1);
        })
        .await
        .unwrap();
    assert!(!disk.exists(&marker), "the marker is consumed at startup, so a later crash recovers fully");
    if stop == Stop::CrashCorruptSnapshots {
        let left = snapshots();
        assert!(left.iter().all(|n| !before.contains(n)), "corrupt snapshots were deleted, not used: {left:?}");
    }
}

// Kafka's ProducerStateManager: producer state survives a crash through the
// snapshot taken at segment roll plus a replay of the log after it.
#[madsim::test]
async fn dedup_survives_a_broker_crash_via_snapshot_and_log_replay() {
    stop_restart_dedup(Stop::Crash).await;
}

// A corrupt snapshot (CRC) is never trusted: the state is rebuilt from the log.
#[madsim::test]
async fn corrupt_producer_snapshot_is_ignored_and_state_rebuilt_from_the_log() {
    stop_restart_dedup(Stop::CrashCorruptSnapshots).await;
}

// Kafka's clean shutdown (Log.close, .kafka_cleanshutdown): the producer
// state snapshot written at the log end on close carries dedup across a
// graceful restart.
#[madsim::test]
async fn dedup_survives_a_graceful_shutdown_via_the_close_snapshot() {
    stop_restart_dedup(Stop::Graceful).await;
}

// Kafka skips log recovery when .kafka_cleanshutdown is present: the files
// are trusted, so a byte flipped inside a record batch while the broker was
// down is not looked for at startup (the log keeps its end); without the
// marker (a crash) recovery reads every batch and truncates at the damage.
#[madsim::test]
async fn clean_shutdown_marker_skips_log_recovery_and_a_crash_does_not() {
    let (cluster, addr, _) = one_broker_with_batches(Settings::new(), 4).await;
    let broker = &cluster.brokers[0];
    broker.shutdown().await;
    // Damage the body of the second batch (offset 1).
    let path = format!("/data0/{TOPIC}-0/{:020}.log", 0);
    let disk = &broker.disk;
    let mut bytes = disk.read_all(&path).unwrap();
    let second = ksim_broker::log::batch::iter_batches(&bytes).nth(1).unwrap().unwrap().1;
    bytes[second.end - 1] ^= 0x40;
    disk.truncate(&path, 0).unwrap();
    disk.append(&path, &bytes).unwrap();
    broker.start();
    let end = cluster.client.spawn(async move { end_offset(&[addr]).await }).await.unwrap();
    assert_eq!(end, 4, "clean start: no batch re-read, the log keeps its end");
    broker.restart();
    let end = cluster.client.spawn(async move { end_offset(&[addr]).await }).await.unwrap();
    assert_eq!(end, 1, "crash: full recovery truncates at the damaged batch");
}

/// The leader of TOPIC/0 according to broker `addr`'s metadata.
async fn leader_per(addr: SocketAddr) -> Option<i32> {
    let req = MetadataRequest::default().with_topics(None);
    let ResponseKind::Metadata(m) = try_call(addr, ApiKey::Metadata, METADATA_VERSION, RequestKind::Metadata(req)).await? else {
        return None;
    };
    let t = m.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == TOPIC))?;
    t.partitions.first().map(|p| p.leader_id.0)
}

// KIP-98 with replication: followers rebuild producer state from the
// batches they replicate, so after the leader fails a new leader answers
// retries of batches the old leader appended with their original offsets.
#[madsim::test]
async fn dedup_survives_leader_failover_through_follower_state() {
    let cluster = start_cluster(1, 3, Settings::new());
    let bootstrap = cluster.bootstrap.clone();
    let (pid, old_leader) = cluster
        .client
        .spawn(async move {
            create_topic(&bootstrap, 3).await;
            let mut leader = None;
            for _ in 0..60 {
                leader = leader_per(bootstrap[0]).await.filter(|&l| l >= 0);
                if leader.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let leader = leader.expect("a leader") as usize;
            let pid = new_producer_id(bootstrap[0]).await;
            for seq in 0..4 {
                // acks=all: every ISR member appended (and applied) the batch.
                assert_eq!(produce(bootstrap[leader], &batch(pid, 0, seq, 1)).await, (0, seq as i64));
            }
            (pid, leader)
        })
        .await
        .unwrap();
    cluster.brokers[old_leader].crash();
    let bootstrap = cluster.bootstrap.clone();
    cluster
        .client
        .spawn(async move {
            let other = bootstrap[(old_leader + 1) % bootstrap.len()];
            let mut new_leader = None;
            for _ in 0..120 {
                new_leader = leader_per(other).await.filter(|&l| l >= 0 && l as usize != old_leader);
                if new_leader.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let addr = bootstrap[new_leader.expect("a new leader") as usize];
            for seq in [3, 1] {
                assert_eq!(produce(addr, &batch(pid, 0, seq, 1)).await, (0, seq as i64), "retry of seq {seq} on the new leader");
            }
            assert_eq!(produce(addr, &batch(pid, 0, 4, 1)).await, (0, 4));
            let live: Vec<SocketAddr> = bootstrap.iter().copied().filter(|a| *a != bootstrap[old_leader]).collect();
            assert_eq!(end_offset(&live).await, 5, "one copy of each");
            assert_eq!(read_values(&live, 5).await, (0..5).map(|s| format!("p{pid}-e0-s{s}")).collect::<Vec<_>>());
        })
        .await
        .unwrap();
}

// producer.id.expiration.ms: a producer idle that long loses its state, so
// (as in Kafka) a late retry is no longer recognised and is appended again.
#[madsim::test]
async fn producer_state_expires_after_producer_id_expiration_ms() {
    let settings = Settings::from_pairs([("producer.id.expiration.ms", "2000"), ("producer.id.expiration.check.interval.ms", "500")]);
    with_one_broker(settings, |addr, pid| async move {
        let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let fresh = |seq: i32| ksim_broker::log::records::producer_batch(pid, 0, seq, &[Bytes::from(format!("v{seq}"))], now_ms()).unwrap();
        let first = fresh(0);
        assert_eq!(produce(addr, &first).await, (0, 0));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(produce(addr, &first).await, (0, 0), "still known within the expiration");
        tokio::time::sleep(Duration::from_millis(4000)).await;
        assert_eq!(produce(addr, &first).await, (0, 1), "expired: the retry is a new append");
        assert_eq!(produce(addr, &fresh(1)).await, (0, 2), "the producer is known again from the re-append");
    })
    .await;
}
