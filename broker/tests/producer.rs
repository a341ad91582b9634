//! Producer partitioners and interceptors against a simulated cluster (1
//! controller, 3 brokers, one 3-partition topic).
#![cfg(madsim)]

mod common;

use bytes::Bytes;
use ksim_broker::client::{
    partition_for_key, Admin, AdminConfig, Consumer, ConsumerConfig, Partitioner, Producer, ProducerConfig,
    ProducerInterceptor, ProducerRecord, RecordMetadata, SendError,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    let controller: SocketAddr = CONTROLLER.parse().unwrap();
    common::start_controller(controller);
    for i in 0..BROKERS {
        common::start_broker(i as i32, broker_addr(i), controller);
    }
    let bootstrap: Vec<SocketAddr> = (0..BROKERS).map(broker_addr).collect();
    let client = common::client_node("10.0.3.1");
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
            f(bootstrap).await;
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
