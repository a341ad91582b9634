//! End-to-end client tests against a simulated cluster (1 controller, 3
//! brokers): Admin creates a topic, Producer writes, Consumer reads back.
#![cfg(madsim)]

mod common;

use bytes::Bytes;
use ksim_broker::client::{
    partition_for_key, Admin, AdminConfig, Consumer, ConsumerConfig, Producer, ProducerConfig,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const CONTROLLER: &str = "10.0.2.1:9093";
const BROKERS: usize = 3;
const TOPIC: &str = "t";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 100;

fn broker_addr(i: usize) -> SocketAddr {
    format!("10.0.1.{}:9092", i + 1).parse().unwrap()
}

/// Starts the controller and three brokers (each on its own SimDisk);
/// returns a client node and the bootstrap list.
fn start_cluster() -> (madsim::runtime::NodeHandle, Vec<SocketAddr>) {
    let controller: SocketAddr = CONTROLLER.parse().unwrap();
    common::start_controller(controller);
    for i in 0..BROKERS {
        common::start_broker(i as i32, broker_addr(i), controller);
    }
    (common::client_node("10.0.3.1"), (0..BROKERS).map(broker_addr).collect())
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Creates the topic (retrying while brokers register) and waits for leaders.
async fn create_topic(bootstrap: &[SocketAddr]) {
    let admin = Admin::new(bootstrap.to_vec(), AdminConfig::from_map(&BTreeMap::new()).unwrap());
    let mut tries = 0;
    loop {
        match admin.create_topic(TOPIC, PARTITIONS, 3, BTreeMap::new()).await {
            Ok(()) => break,
            Err(e) => {
                tries += 1;
                assert!(tries < 60, "create_topic kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    // A retried create of an existing topic is Ok.
    admin.create_topic(TOPIC, PARTITIONS, 3, BTreeMap::new()).await.expect("re-create is idempotent");
    admin.wait_for_leaders(TOPIC, PARTITIONS, Duration::from_secs(30)).await.expect("leaders");
    // Metadata may name a leader before that broker has applied the change;
    // ListOffsets is answered by leaders only, so this waits until they know
    // (acks=0 sends to a broker that does not know are silently dropped).
    let mut probe = Consumer::new(bootstrap.to_vec(), ConsumerConfig::from_map(&BTreeMap::new()).unwrap());
    let parts: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect();
    let ends = probe.end_offsets(&parts).await.expect("leaders answer ListOffsets");
    assert!(ends.iter().all(|(_, end)| *end == 0), "new topic is empty: {ends:?}");
}

/// Produces RECORDS values ("v{i}", key "k{i}") concurrently from one shared
/// producer; returns (partition, value, offset) per send.
async fn produce_all(bootstrap: &[SocketAddr], acks: &str) -> Vec<(i32, String, i64)> {
    let producer = Arc::new(Producer::new(bootstrap.to_vec(), ProducerConfig::from_map(&map(&[("acks", acks)])).unwrap()));
    let mut tasks = Vec::new();
    for i in 0..RECORDS {
        let producer = producer.clone();
        tasks.push(tokio::spawn(async move {
            let key = Bytes::from(format!("k{i}"));
            let partition = partition_for_key(&key, PARTITIONS);
            let value = format!("v{i}");
            let md = producer
                .send(TOPIC, Some(partition), Some(key), Some(Bytes::from(value.clone())))
                .await
                .unwrap_or_else(|e| panic!("send {i} failed: {e}"));
            assert_eq!((md.topic.as_str(), md.partition), (TOPIC, partition));
            (partition, value, md.offset)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Reads every partition from 0 until `RECORDS` records arrived; returns
/// them per partition as (offset, value).
async fn consume_all(bootstrap: &[SocketAddr]) -> (Consumer, BTreeMap<i32, Vec<(i64, String)>>) {
    let config = ConsumerConfig::from_map(&map(&[("max.poll.records", "7")])).unwrap();
    let mut consumer = Consumer::new(bootstrap.to_vec(), config);
    let parts: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect();
    consumer.assign(parts.clone());
    for (t, p) in &parts {
        consumer.seek(t, *p, 0);
    }
    let mut got: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let mut total = 0;
    for _ in 0..200 {
        if total >= RECORDS {
            break;
        }
        let records = consumer.poll(Duration::from_millis(500)).await.expect("poll");
        assert!(records.len() <= 7, "max.poll.records exceeded: {}", records.len());
        for r in records {
            assert_eq!(r.topic, TOPIC);
            let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            got.entry(r.partition).or_default().push((r.offset, v));
            total += 1;
        }
    }
    assert_eq!(total, RECORDS, "consumer read {total} records");
    (consumer, got)
}

fn check_read_back(sent: &[(i32, String, i64)], got: &BTreeMap<i32, Vec<(i64, String)>>, check_offsets: bool) {
    let mut want: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (p, v, _) in sent {
        want.entry(*p).or_default().push(v.clone());
    }
    for (p, recs) in got {
        for (i, (offset, _)) in recs.iter().enumerate() {
            assert_eq!(*offset, i as i64, "partition {p}: offsets not contiguous from 0");
        }
        let mut values: Vec<String> = recs.iter().map(|(_, v)| v.clone()).collect();
        values.sort();
        let mut expected = want.get(p).cloned().unwrap_or_default();
        expected.sort();
        assert_eq!(values, expected, "partition {p}: values differ");
    }
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    if check_offsets {
        for (p, v, offset) in sent {
            let at = got[p].iter().find(|(_, gv)| gv == v).unwrap().0;
            assert_eq!(at, *offset, "{v}: acknowledged offset differs from where it was read");
        }
    }
}

async fn round_trip(acks: &'static str) {
    let (client, bootstrap) = start_cluster();
    client
        .spawn(async move {
            create_topic(&bootstrap).await;
            let sent = produce_all(&bootstrap, acks).await;
            if acks == "0" {
                assert!(sent.iter().all(|(_, _, o)| *o == -1), "acks=0 sends report offset -1");
            } else {
                assert!(sent.iter().all(|(_, _, o)| *o >= 0), "every acked send has an offset");
            }
            let (mut consumer, got) = consume_all(&bootstrap).await;
            check_read_back(&sent, &got, acks != "0");
            let parts: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect();
            let ends = consumer.end_offsets(&parts).await.expect("end offsets");
            for ((t, p), end) in ends {
                let count = got.get(&p).map_or(0, |v| v.len()) as i64;
                assert_eq!(end, count, "{t}-{p}: end offset vs records read");
                assert_eq!(consumer.position(&t, p), Some(end));
            }
        })
        .await
        .unwrap();
}

#[madsim::test]
async fn acks_all_round_trip_reads_back_every_value_at_contiguous_offsets() {
    round_trip("all").await;
}

#[madsim::test]
async fn acks_1_round_trip_reads_back_every_value() {
    round_trip("1").await;
}

#[madsim::test]
async fn acks_0_round_trip_reads_back_every_value() {
    round_trip("0").await;
}

#[madsim::test]
async fn unassigned_position_resolves_with_auto_offset_reset() {
    let (client, bootstrap) = start_cluster();
    client
        .spawn(async move {
            create_topic(&bootstrap).await;
            produce_all(&bootstrap, "all").await;
            let tp = vec![(TOPIC.to_string(), 0)];
            // latest (Kafka's default): starts at the end, sees nothing old.
            let mut latest = Consumer::new(bootstrap.clone(), ConsumerConfig::from_map(&BTreeMap::new()).unwrap());
            latest.assign(tp.clone());
            assert!(latest.poll(Duration::from_millis(300)).await.unwrap().is_empty());
            let end = latest.end_offsets(&tp).await.unwrap()[0].1;
            assert_eq!(latest.position(TOPIC, 0), Some(end));
            // earliest: reads from 0.
            let mut earliest = Consumer::new(bootstrap.clone(), ConsumerConfig::from_map(&map(&[("auto.offset.reset", "earliest")])).unwrap());
            earliest.assign(tp.clone());
            let first = earliest.poll(Duration::from_secs(2)).await.unwrap();
            assert_eq!(first.first().map(|r| r.offset), Some(0));
            // none: an error, not a guess.
            let mut none = Consumer::new(bootstrap.clone(), ConsumerConfig::from_map(&map(&[("auto.offset.reset", "none")])).unwrap());
            none.assign(tp.clone());
            assert!(none.poll(Duration::from_millis(300)).await.is_err());
            // Out of range: seek past the end resets (earliest) to 0.
            earliest.seek(TOPIC, 0, end + 1000);
            let again = earliest.poll(Duration::from_secs(2)).await.unwrap();
            assert_eq!(again.first().map(|r| r.offset), Some(0));
        })
        .await
        .unwrap();
}

// Leader failover (KAFKA-13574 classification): with acks=all, every send
// either succeeds at an offset where it is later read, or fails as
// indefinite / definite; no acknowledged value is lost.
#[madsim::test]
async fn acks_all_sends_survive_a_leader_crash_with_retries() {
    let (client, bootstrap) = start_cluster();
    let handle = madsim::runtime::Handle::current();
    client
        .spawn(async move {
            create_topic(&bootstrap).await;
            let config = ProducerConfig::from_map(&map(&[("acks", "all"), ("request.timeout.ms", "5000")])).unwrap();
            let producer = Arc::new(Producer::new(bootstrap.clone(), config));
            let mut tasks = Vec::new();
            for i in 0..RECORDS {
                let producer = producer.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
                    let key = Bytes::from(format!("k{i}"));
                    let partition = partition_for_key(&key, PARTITIONS);
                    let value = format!("v{i}");
                    (partition, value.clone(), producer.send(TOPIC, Some(partition), Some(key), Some(Bytes::from(value))).await)
                }));
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
            handle.kill("broker-0");
            let mut acked = Vec::new();
            let mut failed = 0;
            for t in tasks {
                let (p, v, r) = t.await.unwrap();
                match r {
                    Ok(md) => acked.push((p, v, md.offset)),
                    Err(e) => {
                        failed += 1;
                        // Without idempotence a failed send may still have landed.
                        assert!(e.indefinite || e.error_code.is_some(), "send {v}: {e}");
                    }
                }
            }
            assert!(acked.len() >= RECORDS / 2, "most sends succeed after failover: {} acked, {failed} failed", acked.len());
            // Every acknowledged value is readable where it was acknowledged.
            let mut consumer = Consumer::new(bootstrap.clone(), ConsumerConfig::from_map(&BTreeMap::new()).unwrap());
            let parts: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect();
            consumer.assign(parts.clone());
            for (t, p) in &parts {
                consumer.seek(t, *p, 0);
            }
            let ends = consumer.end_offsets(&parts).await.expect("end offsets after failover");
            let mut read: BTreeMap<(i32, i64), String> = BTreeMap::new();
            for _ in 0..200 {
                if ends.iter().all(|((t, p), e)| consumer.position(t, *p).is_some_and(|pos| pos >= *e)) {
                    break;
                }
                for r in consumer.poll(Duration::from_millis(500)).await.expect("poll") {
                    read.insert((r.partition, r.offset), String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                }
            }
            for (p, v, offset) in &acked {
                assert_eq!(read.get(&(*p, *offset)), Some(v), "acknowledged {v} at {p}/{offset} lost");
            }
        })
        .await
        .unwrap();
}
