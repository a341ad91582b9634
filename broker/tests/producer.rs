//! The producer against a simulated cluster (1 controller, 3 brokers, one
//! 3-partition topic): partitioners and interceptors, batching (linger.ms,
//! batch.size), compression, buffer.memory, max.in.flight, delivery.timeout.ms
//! and the idempotent producer.
#![cfg(madsim)]

mod common;

use bytes::Bytes;
use ksim_broker::client::{
    partition_for_key, Admin, AdminConfig, Consumer, ConsumerConfig, Partitioner, Producer, ProducerConfig,
    ProducerInterceptor, ProducerRecord, RecordMetadata, SendError, SendErrorKind,
};
use ksim_broker::client::metadata::Cluster;
use ksim_broker::client::network::Pool;
use ksim_broker::log::batch::{iter_batches, BatchHeader};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use madsim::task::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const CONTROLLER: &str = "10.0.2.1:9093";
const BROKERS: usize = 3;
const TOPIC: &str = "t";
const PARTITIONS: i32 = 3;

fn broker_addr(i: usize) -> SocketAddr {
    format!("10.0.1.{}:9092", i + 1).parse().unwrap()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Starts the cluster, creates the topic on the client node, then runs `f`.
async fn with_topic<F, Fut>(f: F)
where
    F: FnOnce(Vec<SocketAddr>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    with_topic_nodes(|bootstrap, _| f(bootstrap)).await
}

/// The cluster's node ids, for network faults.
#[derive(Clone, Copy)]
struct Nodes {
    client: NodeId,
    brokers: [NodeId; BROKERS],
}

/// `with_topic`, also handing `f` the node ids.
async fn with_topic_nodes<F, Fut>(f: F)
where
    F: FnOnce(Vec<SocketAddr>, Nodes) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let controller: SocketAddr = CONTROLLER.parse().unwrap();
    common::start_controller(controller);
    let brokers: Vec<NodeId> = (0..BROKERS).map(|i| common::start_broker(i as i32, broker_addr(i), controller).id()).collect();
    let bootstrap: Vec<SocketAddr> = (0..BROKERS).map(broker_addr).collect();
    let client = common::client_node("10.0.3.1");
    let nodes = Nodes { client: client.id(), brokers: brokers.try_into().unwrap() };
    client
        .spawn(async move {
            let admin = Admin::new(bootstrap.clone(), AdminConfig::default());
            let mut tries = 0;
            while let Err(e) = admin.create_topic(TOPIC, PARTITIONS, 3, BTreeMap::new()).await {
                tries += 1;
                assert!(tries < 60, "create_topic kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            admin.wait_for_leaders(TOPIC, PARTITIONS, Duration::from_secs(30)).await.expect("leaders");
            let mut probe = Consumer::new(bootstrap.clone(), ConsumerConfig::default());
            let parts: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect();
            probe.end_offsets(&parts).await.expect("leaders answer ListOffsets");
            f(bootstrap, nodes).await;
        })
        .await
        .unwrap();
}

/// Reads `n` records from offset 0 of every partition: partition → [(offset, key, value)].
async fn read_back(bootstrap: &[SocketAddr], n: usize) -> BTreeMap<i32, Vec<(i64, String, String)>> {
    let mut consumer = Consumer::new(bootstrap.to_vec(), ConsumerConfig::default());
    let parts: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect();
    consumer.assign(parts.clone());
    for (t, p) in &parts {
        consumer.seek(t, *p, 0);
    }
    let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap()).unwrap_or_default();
    let mut got: BTreeMap<i32, Vec<(i64, String, String)>> = BTreeMap::new();
    let mut total = 0;
    for _ in 0..200 {
        if total >= n {
            break;
        }
        for r in consumer.poll(Duration::from_millis(500)).await.expect("poll") {
            got.entry(r.partition).or_default().push((r.offset, text(r.key), text(r.value)));
            total += 1;
        }
    }
    assert_eq!(total, n, "consumer read {total} records");
    got
}

/// Rewrites every value to upper case and logs acknowledgements.
struct Upper {
    log: Arc<Mutex<Vec<String>>>,
}

impl ProducerInterceptor for Upper {
    fn on_send(&self, mut record: ProducerRecord) -> ProducerRecord {
        record.value = record.value.map(|v| Bytes::from(v.to_ascii_uppercase()));
        record
    }
    fn on_acknowledgement(&self, result: Result<&RecordMetadata, &SendError>) {
        let md = result.expect("send succeeds");
        self.log.lock().unwrap().push(format!("ack {}-{}", md.partition, md.offset));
    }
}

/// Panics in both hooks; the producer must keep working (Kafka's
/// ProducerInterceptors logs and ignores interceptor exceptions).
struct Panicky;

impl ProducerInterceptor for Panicky {
    fn on_send(&self, _: ProducerRecord) -> ProducerRecord {
        panic!("interceptor on_send fails")
    }
    fn on_acknowledgement(&self, _: Result<&RecordMetadata, &SendError>) {
        panic!("interceptor on_acknowledgement fails")
    }
}

// Kafka ProducerInterceptor contract: on_send may rewrite the record and the
// rewritten record is what consumers read; on_acknowledgement runs once per
// send, with its offset, before the send's callback; a throwing interceptor
// does not stop the producer.
#[madsim::test]
async fn interceptor_rewrites_values_and_acknowledges_once_before_the_callback() {
    with_topic(|bootstrap| async move {
        const N: usize = 20;
        let log = Arc::new(Mutex::new(Vec::new()));
        let config = ProducerConfig::default()
            .with_interceptor(Arc::new(Panicky))
            .with_interceptor(Arc::new(Upper { log: log.clone() }));
        let producer = Arc::new(Producer::new(bootstrap.clone(), config));
        let mut tasks = Vec::new();
        for i in 0..N {
            let log = log.clone();
            let record = ProducerRecord::new(TOPIC, Some(Bytes::from(format!("k{i}"))), Some(Bytes::from(format!("value-{i}"))));
            tasks.push(producer.send_with_callback(record, move |result| {
                let md = result.expect("send succeeds");
                log.lock().unwrap().push(format!("callback {}-{}", md.partition, md.offset));
            }));
        }
        // The plain send path runs the interceptors too.
        let md = producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"direct"))).await.expect("send");
        for t in tasks {
            t.await.unwrap();
        }
        let log = log.lock().unwrap().clone();
        assert_eq!(log.len(), 2 * N + 1, "{log:?}");
        assert_eq!(log.iter().filter(|l| **l == format!("ack 0-{}", md.offset)).count(), 1);
        for cb in log.iter().filter(|l| l.starts_with("callback ")) {
            let at = cb.trim_start_matches("callback ");
            let acks: Vec<usize> = (0..log.len()).filter(|i| log[*i] == format!("ack {at}")).collect();
            let cb_index = log.iter().position(|l| l == cb).unwrap();
            assert_eq!(acks.len(), 1, "one on_acknowledgement per send: {log:?}");
            assert!(acks[0] < cb_index, "on_acknowledgement before the callback: {log:?}");
        }
        let got = read_back(&bootstrap, N + 1).await;
        let mut values: Vec<String> = got.values().flatten().map(|(_, _, v)| v.clone()).collect();
        values.sort();
        let mut want: Vec<String> = (0..N).map(|i| format!("VALUE-{i}")).chain(["DIRECT".to_string()]).collect();
        want.sort();
        assert_eq!(values, want, "the consumer sees the rewritten values");
    })
    .await;
}

// KIP-794: keyed records go to toPositive(murmur2(key)) % partitions, so the
// values of one key, sent one after another, are read back in send order.
#[madsim::test]
async fn values_of_one_key_read_back_in_send_order_on_the_murmur2_partition() {
    with_topic(|bootstrap| async move {
        const KEYS: usize = 5;
        const PER_KEY: usize = 8;
        let producer = Producer::new(bootstrap.clone(), ProducerConfig::default());
        for round in 0..PER_KEY {
            for k in 0..KEYS {
                let key = Bytes::from(format!("key{k}"));
                let md = producer.send(TOPIC, None, Some(key.clone()), Some(Bytes::from(format!("{round}")))).await.expect("send");
                assert_eq!(md.partition, partition_for_key(&key, PARTITIONS));
            }
        }
        let got = read_back(&bootstrap, KEYS * PER_KEY).await;
        let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (p, recs) in &got {
            for (_, key, value) in recs {
                assert_eq!(*p, partition_for_key(key.as_bytes(), PARTITIONS), "{key} on partition {p}");
                per_key.entry(key.clone()).or_default().push(value.clone());
            }
        }
        let want: Vec<String> = (0..PER_KEY).map(|r| r.to_string()).collect();
        assert_eq!(per_key.len(), KEYS);
        for (key, values) in per_key {
            assert_eq!(values, want, "{key} read back out of send order");
        }
    })
    .await;
}

/// Sends everything to the last partition, or to a partition that does not exist.
struct Fixed(i32);

impl Partitioner for Fixed {
    fn partition(&self, _topic: &str, _key: Option<&[u8]>, _value: Option<&[u8]>, partitions: i32) -> i32 {
        if self.0 < 0 {
            partitions
        } else {
            self.0
        }
    }
}

// A partitioner set with ProducerConfig::with_partitioner replaces the
// built-in one; an out-of-range choice fails the send without sending it.
#[madsim::test]
async fn custom_partitioner_is_used_and_an_invalid_choice_fails_definitely() {
    with_topic(|bootstrap| async move {
        let producer = Producer::new(bootstrap.clone(), ProducerConfig::default().with_partitioner(Arc::new(Fixed(2))));
        for i in 0..6 {
            let md = producer.send(TOPIC, None, Some(Bytes::from(format!("k{i}"))), Some(Bytes::from_static(b"v"))).await.expect("send");
            assert_eq!(md.partition, 2);
        }
        let md = producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"v"))).await.expect("send");
        assert_eq!(md.partition, 0, "an explicit partition bypasses the partitioner");
        let bad = Producer::new(bootstrap.clone(), ProducerConfig::default().with_partitioner(Arc::new(Fixed(-1))));
        let e = bad.send(TOPIC, None, None, Some(Bytes::from_static(b"v"))).await.unwrap_err();
        assert!(!e.indefinite && e.attempts == 0, "{e}");
        let got = read_back(&bootstrap, 7).await;
        assert_eq!(got.get(&2).map(|v| v.len()), Some(6));
    })
    .await;
}

// KIP-480/794 end to end: keyless records with batch.size 200 fill one
// partition with ~200 bytes, then move; round-robin cycles through all.
#[madsim::test]
async fn keyless_sticky_and_round_robin_partitioning_end_to_end() {
    with_topic(|bootstrap| async move {
        let config = ProducerConfig::from_map(&map(&[("batch.size", "200")])).unwrap().with_seed(11);
        let sticky = Producer::new(bootstrap.clone(), config);
        let mut parts = Vec::new();
        for i in 0..30 {
            // Each record is 50 value bytes plus ~8 bytes of record framing.
            let value = Bytes::from(format!("{i:050}"));
            parts.push(sticky.send(TOPIC, None, None, Some(value)).await.expect("send").partition);
        }
        let mut runs: Vec<usize> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            if i == 0 || parts[i - 1] != *p {
                runs.push(0);
            }
            *runs.last_mut().unwrap() += 1;
        }
        // 4 records reach 200 bytes (3 do not), so runs are of 4.
        assert!(runs[..runs.len() - 1].iter().all(|n| *n == 4), "{parts:?}");
        let rr = Producer::new(
            bootstrap.clone(),
            ProducerConfig::from_map(&map(&[("partitioner.class", "org.apache.kafka.clients.producer.RoundRobinPartitioner")])).unwrap(),
        );
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(rr.send(TOPIC, None, Some(Bytes::from_static(b"same")), None).await.expect("send").partition);
        }
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2]);
    })
    .await;
}

/// Batch headers of a partition from offset 0, read with a raw Fetch from
/// its leader (what the broker stored, batch by batch).
async fn stored_batches(bootstrap: &[SocketAddr], partition: i32) -> Vec<BatchHeader> {
    let cluster = Cluster::new(bootstrap.to_vec(), Pool::new(ProducerConfig::default().network));
    let leader = cluster.leader(TOPIC, partition).await.expect("leader");
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(TopicName(StrBytes::from_static_str(TOPIC))).with_partitions(vec![
            FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(0)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(50 << 20),
        ])]);
    let resp = cluster.pool.request(leader.addr, ApiKey::Fetch, 12, RequestKind::Fetch(request)).await.expect("fetch");
    let ResponseKind::Fetch(resp) = resp else { panic!("not a fetch response") };
    let data = resp.responses[0].partitions[0].records.clone().unwrap_or_default();
    iter_batches(&data).map(|b| b.expect("whole batches").0).collect()
}

fn cfg(pairs: &[(&str, &str)]) -> ProducerConfig {
    ProducerConfig::from_map(&map(pairs)).unwrap().with_seed(3)
}

/// Sends `n` values "{prefix}{i}" to `partition` with send_with_callback
/// (appended in call order); returns each send's result, in send order.
async fn send_all(producer: &Arc<Producer>, partition: i32, n: usize, prefix: &str) -> Vec<Result<RecordMetadata, SendError>> {
    let results = Arc::new(Mutex::new(vec![None; n]));
    let mut tasks = Vec::new();
    for i in 0..n {
        let results = results.clone();
        let record = ProducerRecord::new(TOPIC, None, Some(Bytes::from(format!("{prefix}{i}")))).with_partition(partition);
        tasks.push(producer.send_with_callback(record, move |r| results.lock().unwrap()[i] = Some(r)));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let out = results.lock().unwrap().iter().map(|r| r.clone().expect("callback ran")).collect();
    out
}

// linger.ms (KIP-91 era batching): records sent together wait for each
// other and travel as one record batch; each send's offset is the batch's
// base offset plus its index.
#[madsim::test]
async fn linger_ms_puts_records_sent_together_into_one_batch() {
    with_topic(|bootstrap| async move {
        let producer = Arc::new(Producer::new(bootstrap.clone(), cfg(&[("linger.ms", "100"), ("enable.idempotence", "false")])));
        let offsets: Vec<i64> = send_all(&producer, 0, 10, "v").await.into_iter().map(|r| r.expect("send").offset).collect();
        assert_eq!(offsets, (0..10).collect::<Vec<i64>>(), "offset = base + index, in send order");
        let batches = stored_batches(&bootstrap, 0).await;
        assert_eq!(batches.iter().map(|b| b.record_count).collect::<Vec<_>>(), vec![10], "one batch of ten records");
    })
    .await;
}

// batch.size: a batch the next record would overflow is closed and sent
// without waiting for linger.ms; the last, not full, batch waits it out.
#[madsim::test]
async fn batch_size_closes_batches_before_linger_expires() {
    with_topic(|bootstrap| async move {
        let config = cfg(&[("linger.ms", "10000"), ("batch.size", "300"), ("enable.idempotence", "false"), ("delivery.timeout.ms", "60000")]);
        let producer = Arc::new(Producer::new(bootstrap.clone(), config));
        let start = Instant::now();
        let done = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..10 {
            let done = done.clone();
            let value = Bytes::from(format!("{i:0100}")); // ~108 record bytes: two fit in 300
            let record = ProducerRecord::new(TOPIC, None, Some(value)).with_partition(1);
            tasks.push(producer.send_with_callback(record, move |r| {
                r.expect("send");
                done.lock().unwrap().push((i, start.elapsed()));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for (i, at) in done.lock().unwrap().iter() {
            if *i < 8 {
                assert!(*at < Duration::from_secs(1), "record {i} waited {at:?} in a closed batch");
            } else {
                assert!(*at >= Duration::from_secs(10), "record {i} in the open batch went after {at:?}, before linger.ms");
            }
        }
        let counts: Vec<i32> = stored_batches(&bootstrap, 1).await.iter().map(|b| b.record_count).collect();
        assert_eq!(counts, vec![2, 2, 2, 2, 2]);
    })
    .await;
}

// compression.type: every codec Kafka has is written by the producer as a
// compressed batch, stored as sent, and read back by the consumer.
#[madsim::test]
async fn every_compression_codec_round_trips_through_the_broker_and_a_consumer() {
    with_topic(|bootstrap| async move {
        let codecs = [("none", 0u8), ("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)];
        for (name, _) in codecs {
            let producer = Arc::new(Producer::new(bootstrap.clone(), cfg(&[("compression.type", name), ("linger.ms", "50")])));
            for r in send_all(&producer, 2, 8, &format!("{name}-")).await {
                r.expect("send");
            }
            producer.close().await;
        }
        let batches = stored_batches(&bootstrap, 2).await;
        let ids: Vec<(u8, i32)> = batches.iter().map(|b| (b.compression(), b.record_count)).collect();
        assert_eq!(ids, codecs.iter().map(|(_, id)| (*id, 8)).collect::<Vec<_>>());
        let got = read_back(&bootstrap, 40).await;
        let values: Vec<String> = got[&2].iter().map(|(_, _, v)| v.clone()).collect();
        let want: Vec<String> = codecs.iter().flat_map(|(n, _)| (0..8).map(move |i| format!("{n}-{i}"))).collect();
        assert_eq!(values, want);
    })
    .await;
}

// buffer.memory: with every broker gone nothing drains, so sends fill the
// buffer; the next one blocks for max.block.ms and fails without being sent.
#[madsim::test]
async fn buffer_memory_blocks_a_send_then_it_fails_after_max_block_ms() {
    let handle = madsim::runtime::Handle::current();
    with_topic(move |bootstrap| async move {
        let config = cfg(&[("buffer.memory", "1000"), ("max.block.ms", "500"), ("enable.idempotence", "false"), ("linger.ms", "0")]);
        let producer = Arc::new(Producer::new(bootstrap.clone(), config));
        producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"first"))).await.expect("metadata known, send works");
        for i in 0..BROKERS {
            handle.kill(format!("broker-{i}"));
        }
        let mut held = Vec::new();
        for _ in 0..20 {
            if producer.buffer_used() + 110 > 1000 {
                break;
            }
            let record = ProducerRecord::new(TOPIC, None, Some(Bytes::from(vec![b'x'; 100]))).with_partition(0);
            held.push(producer.send_with_callback(record, |_| {}));
            tokio::task::yield_now().await;
        }
        assert!(held.len() >= 8, "{} sends fit in the buffer", held.len());
        let start = Instant::now();
        let e = producer.send(TOPIC, Some(0), None, Some(Bytes::from(vec![b'y'; 100]))).await.unwrap_err();
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(500) && waited < Duration::from_millis(600), "blocked {waited:?}");
        assert!(!e.indefinite && e.message.contains("buffer.memory"), "{e}");
    })
    .await;
}

// max.in.flight.requests.per.connection bounds the Produce requests
// outstanding to one broker, and is reached under load.
#[madsim::test]
async fn max_in_flight_bounds_requests_per_broker() {
    with_topic(|bootstrap| async move {
        for max in [1usize, 3] {
            let config = cfg(&[
                ("max.in.flight.requests.per.connection", &max.to_string()),
                ("batch.size", "100"),
                ("linger.ms", "0"),
                ("enable.idempotence", "false"),
            ]);
            let producer = Arc::new(Producer::new(bootstrap.clone(), config));
            let results = send_all(&producer, 0, 30, &format!("m{max}-")).await;
            assert!(results.iter().all(|r| r.is_ok()));
            assert_eq!(producer.peak_in_flight(), max, "peak requests in flight with max {max}");
        }
    })
    .await;
}

/// The node id of the broker leading `partition`.
async fn leader_node(bootstrap: &[SocketAddr], nodes: Nodes, partition: i32) -> NodeId {
    let cluster = Cluster::new(bootstrap.to_vec(), Pool::new(ProducerConfig::default().network));
    let leader = cluster.leader(TOPIC, partition).await.expect("leader");
    nodes.brokers[leader.node_id as usize]
}

fn cut(a: NodeId, b: NodeId) {
    let net = madsim::net::NetSim::current();
    net.clog_link(a, b);
    net.clog_link(b, a);
}

// KIP-91: delivery.timeout.ms bounds a send whose leader cannot be reached
// (it stays leader: only the client is cut off); the failure is indefinite
// because the request may have arrived.
#[madsim::test]
async fn delivery_timeout_fails_a_batch_stuck_behind_a_partitioned_leader() {
    with_topic_nodes(|bootstrap, nodes| async move {
        let config = cfg(&[
            ("delivery.timeout.ms", "3000"),
            ("request.timeout.ms", "1000"),
            ("linger.ms", "0"),
            ("enable.idempotence", "false"),
        ]);
        let producer = Producer::new(bootstrap.clone(), config);
        producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"before"))).await.expect("send");
        cut(nodes.client, leader_node(&bootstrap, nodes, 0).await);
        let start = Instant::now();
        let e = producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"stuck"))).await.unwrap_err();
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(3000) && waited < Duration::from_millis(3200), "failed after {waited:?}");
        assert!(e.indefinite && e.message.contains("delivery.timeout.ms"), "{e}");
    })
    .await;
}

// connections.max.idle.ms: a connection with nothing in flight is closed
// after the idle time and reopened on the next send.
#[madsim::test]
async fn idle_connections_close_after_connections_max_idle_ms() {
    with_topic(|bootstrap| async move {
        let producer = Producer::new(bootstrap.clone(), cfg(&[("connections.max.idle.ms", "2000"), ("enable.idempotence", "false")]));
        producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"a"))).await.expect("send");
        assert!(producer.open_connections() >= 1);
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(producer.open_connections(), 0, "idle connections closed by the sender");
        producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"b"))).await.expect("send after reopening");
    })
    .await;
}

/// Values of partition `p` in offset order, up to its end offset.
async fn partition_values(bootstrap: &[SocketAddr], p: i32) -> Vec<String> {
    let mut consumer = Consumer::new(bootstrap.to_vec(), ConsumerConfig::default());
    let tp = vec![(TOPIC.to_string(), p)];
    consumer.assign(tp.clone());
    consumer.seek(TOPIC, p, 0);
    let end = consumer.end_offsets(&tp).await.expect("end offset")[0].1;
    let mut values = Vec::new();
    for _ in 0..200 {
        if consumer.position(TOPIC, p).is_some_and(|pos| pos >= end) {
            break;
        }
        for r in consumer.poll(Duration::from_millis(500)).await.expect("poll") {
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(values.len() as i64, end, "read partition {p} to its end");
    values
}

fn copies(values: &[String], v: &str) -> usize {
    values.iter().filter(|x| *x == v).count()
}

/// One send whose response is lost: the leader's link back to the client is
/// cut while the request is on its way, then healed after the client timed
/// out and retried. Returns the send's result.
async fn send_with_lost_response(bootstrap: &[SocketAddr], nodes: Nodes, idempotence: &str) -> Result<RecordMetadata, SendError> {
    let config = cfg(&[("request.timeout.ms", "1000"), ("linger.ms", "0"), ("enable.idempotence", idempotence), ("retry.backoff.ms", "200")]);
    let producer = Producer::new(bootstrap.to_vec(), config);
    producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"warm-up"))).await.expect("send");
    let leader = leader_node(bootstrap, nodes, 0).await;
    madsim::net::NetSim::current().clog_link(leader, nodes.client);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        madsim::net::NetSim::current().unclog_link(leader, nodes.client);
    });
    producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"once"))).await
}

// Without idempotence, a retry after a lost response appends the record a
// second time (the duplicate the idempotent producer exists to prevent).
#[madsim::test]
async fn without_idempotence_a_retry_after_a_lost_response_duplicates() {
    with_topic_nodes(|bootstrap, nodes| async move {
        send_with_lost_response(&bootstrap, nodes, "false").await.expect("retried send succeeds");
        let values = partition_values(&bootstrap, 0).await;
        assert!(copies(&values, "once") >= 2, "{values:?}");
    })
    .await;
}

// KIP-98: the idempotent producer's retry carries the same producer id,
// epoch and sequence, so the broker recognises it and the record is written once.
#[madsim::test]
async fn idempotent_producer_retry_after_a_lost_response_writes_once() {
    with_topic_nodes(|bootstrap, nodes| async move {
        let md = send_with_lost_response(&bootstrap, nodes, "true").await.expect("retried send succeeds");
        assert!(md.offset == 1 || md.offset == -1, "the first copy's offset (or unknown): {md:?}");
        let values = partition_values(&bootstrap, 0).await;
        assert_eq!(copies(&values, "once"), 1, "{values:?}");
    })
    .await;
}

// Idempotence with 5 requests in flight keeps a partition's order across a
// leader crash: sends appended in order are stored in order, each once.
#[madsim::test]
async fn idempotent_producer_keeps_partition_order_with_five_in_flight_across_a_leader_crash() {
    let handle = madsim::runtime::Handle::current();
    with_topic_nodes(move |bootstrap, nodes| async move {
        let config = cfg(&[("linger.ms", "0"), ("batch.size", "200"), ("request.timeout.ms", "3000")]);
        let producer = Arc::new(Producer::new(bootstrap.clone(), config));
        let leader = leader_node(&bootstrap, nodes, 0).await;
        let victim = nodes.brokers.iter().position(|n| *n == leader).unwrap();
        let mut tasks = Vec::new();
        let results = Arc::new(Mutex::new(BTreeMap::new()));
        for i in 0..200usize {
            if i == 100 {
                handle.kill(format!("broker-{victim}"));
            }
            let results = results.clone();
            let record = ProducerRecord::new(TOPIC, None, Some(Bytes::from(format!("{i:05}")))).with_partition(0);
            tasks.push(producer.send_with_callback(record, move |r| {
                results.lock().unwrap().insert(i, r);
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        let acked = results.lock().unwrap().values().filter(|r| r.is_ok()).count();
        assert!(acked >= 150, "{acked} of 200 acknowledged");
        assert!(producer.peak_in_flight() > 1, "requests were pipelined");
        let values = partition_values(&bootstrap, 0).await;
        assert!(values.len() >= acked);
        let mut sorted = values.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(values, sorted, "stored in send order, each once");
    })
    .await;
}

/// A producer with a record in flight or queued behind a leader the client
/// cannot reach (only the client is cut off), and `n` sends issued with
/// callbacks; returns the producer and the slot each callback fills.
type Outcomes = Arc<Mutex<Vec<Option<Result<RecordMetadata, SendError>>>>>;

async fn stuck_sends(bootstrap: &[SocketAddr], nodes: Nodes, n: usize) -> (Arc<Producer>, Outcomes) {
    let config = cfg(&[("delivery.timeout.ms", "60000"), ("request.timeout.ms", "30000"), ("linger.ms", "0"), ("enable.idempotence", "false")]);
    let producer = Arc::new(Producer::new(bootstrap.to_vec(), config));
    producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"before"))).await.expect("send");
    cut(nodes.client, leader_node(bootstrap, nodes, 0).await);
    let outcomes: Outcomes = Arc::new(Mutex::new(vec![None; n]));
    for i in 0..n {
        let slot = outcomes.clone();
        let record = ProducerRecord::new(TOPIC, None, Some(Bytes::from(format!("stuck-{i}")))).with_partition(0);
        producer.send_with_callback(record, move |r| slot.lock().unwrap()[i] = Some(r));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(outcomes.lock().unwrap().iter().all(|o| o.is_none()), "nothing completes behind the cut");
    (producer, outcomes)
}

/// Every callback ran with ProducerClosed.
async fn assert_all_closed(outcomes: &Outcomes) {
    tokio::time::sleep(Duration::from_millis(10)).await; // the callbacks' tasks run
    for (i, o) in outcomes.lock().unwrap().iter().enumerate() {
        let e = o.clone().unwrap_or_else(|| panic!("send {i}: no outcome after close")).unwrap_err();
        assert_eq!(e.kind, SendErrorKind::ProducerClosed, "send {i}: {e}");
    }
}

// KafkaProducer.close(Duration): waits up to the timeout for incomplete
// sends, then fails the rest at once with a "closed forcefully" error;
// the record in flight may have been written (indefinite).
#[madsim::test]
async fn close_with_timeout_waits_then_aborts_incomplete_sends() {
    with_topic_nodes(|bootstrap, nodes| async move {
        let (producer, outcomes) = stuck_sends(&bootstrap, nodes, 4).await;
        let start = Instant::now();
        let aborted = producer.close_with_timeout(Duration::from_millis(2_000)).await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(2_000) && waited < Duration::from_millis(2_100), "close returned after {waited:?}");
        assert_eq!(aborted, 4);
        assert_all_closed(&outcomes).await;
        assert!(outcomes.lock().unwrap()[0].clone().unwrap().unwrap_err().indefinite, "the first record was in flight");
        let e = producer.send(TOPIC, Some(0), None, Some(Bytes::from_static(b"late"))).await.unwrap_err();
        assert_eq!((e.kind, e.indefinite), (SendErrorKind::ProducerClosed, false), "{e}");
    })
    .await;
}

// close(Duration.ZERO): no waiting at all, every incomplete send fails now.
#[madsim::test]
async fn close_with_zero_timeout_aborts_without_waiting() {
    with_topic_nodes(|bootstrap, nodes| async move {
        let (producer, outcomes) = stuck_sends(&bootstrap, nodes, 3).await;
        let start = Instant::now();
        assert_eq!(producer.close_with_timeout(Duration::ZERO).await, 3);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_all_closed(&outcomes).await;
    })
    .await;
}

// close(Duration) with a reachable cluster: everything completes within
// the timeout and nothing is aborted.
#[madsim::test]
async fn close_with_timeout_returns_early_when_every_send_completes() {
    with_topic(|bootstrap| async move {
        let producer = Arc::new(Producer::new(bootstrap.clone(), cfg(&[("linger.ms", "500"), ("enable.idempotence", "false")])));
        // Metadata known: the sends below append at once (Kafka's send blocks on it).
        producer.send(TOPIC, Some(1), None, Some(Bytes::from_static(b"warm-up"))).await.expect("send");
        let outcomes: Outcomes = Arc::new(Mutex::new(vec![None; 5]));
        for i in 0..5 {
            let slot = outcomes.clone();
            let record = ProducerRecord::new(TOPIC, None, Some(Bytes::from(format!("c{i}")))).with_partition(1);
            producer.send_with_callback(record, move |r| slot.lock().unwrap()[i] = Some(r));
        }
        let start = Instant::now();
        assert_eq!(producer.close_with_timeout(Duration::from_secs(30)).await, 0);
        assert!(start.elapsed() < Duration::from_secs(1), "close waited {:?}", start.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await; // the callbacks' tasks run
        let offsets: Vec<i64> = outcomes.lock().unwrap().iter().map(|o| o.clone().expect("completed").expect("sent").offset).collect();
        assert_eq!(offsets, (1..6).collect::<Vec<i64>>());
    })
    .await;
}

/// Sends `n` compressible 100-byte values to `partition` one by one (1 ms
/// apart, so closed batches go out, and feed the estimate, as later ones
/// fill); returns the record count of each batch the broker stored.
async fn compressible_batches(bootstrap: &[SocketAddr], codec: &str, partition: i32, n: usize) -> Vec<i32> {
    let config = cfg(&[("compression.type", codec), ("batch.size", "1000"), ("linger.ms", "10000"), ("enable.idempotence", "false")]);
    let producer = Arc::new(Producer::new(bootstrap.to_vec(), config));
    let mut tasks = Vec::new();
    for i in 0..n {
        let record = ProducerRecord::new(TOPIC, None, Some(Bytes::from(format!("{i:x<100}")))).with_partition(partition);
        tasks.push(producer.send_with_callback(record, |r| {
            r.expect("send");
        }));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    producer.close().await;
    for t in tasks {
        t.await.unwrap();
    }
    stored_batches(bootstrap, partition).await.iter().map(|b| b.record_count).collect()
}

// Kafka's CompressionRatioEstimator (RecordAccumulator/MemoryRecordsBuilder):
// with compression, batches fill to batch.size by their estimated
// compressed size, so once the estimate has learnt how well the values
// compress a batch carries more records than batch.size / record size;
// without compression it never does.
#[madsim::test]
async fn compressed_batches_carry_more_records_than_batch_size_over_record_size() {
    with_topic(|bootstrap| async move {
        // 100-byte values: 108-byte records, 8 fit in 1000 bytes with the 61-byte header.
        let per_batch_plain = 8;
        let plain = compressible_batches(&bootstrap, "none", 0, 300).await;
        assert!(plain.iter().all(|&n| n <= per_batch_plain), "{plain:?}");
        for (codec, p) in [("zstd", 1), ("gzip", 2)] {
            let counts = compressible_batches(&bootstrap, codec, p, 800).await;
            assert_eq!(counts.iter().sum::<i32>(), 800);
            // The estimate creeps down 0.005 per batch: ~100 batches for a few more records each.
            let most = *counts.iter().max().unwrap();
            assert!(most > per_batch_plain, "{codec}: at most {most} records per batch: {counts:?}");
            assert!(counts[0] <= per_batch_plain, "{codec}: the first batch assumes no gain: {counts:?}");
        }
    })
    .await;
}
