//! Topic admin, config overrides, message size limits, retention,
//! compaction and recompression, end to end on a simulated cluster
//! (1 controller, 3 brokers) through the Admin, Producer and Consumer.
#![cfg(madsim)]

mod common;

use bytes::Bytes;
use ksim_broker::client::admin::{RESOURCE_BROKER, RESOURCE_TOPIC};
use ksim_broker::client::metadata::Cluster;
use ksim_broker::client::network::Pool;
use ksim_broker::client::{Admin, AdminConfig, AlterConfigOp, ClientError, Consumer, ConsumerConfig, Producer, ProducerConfig};
use ksim_broker::config::Settings;
use ksim_broker::log::batch::iter_batches;
use ksim_broker::log::records::decode_batch;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, MetadataRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

const CONTROLLER: &str = "10.0.2.1:9093";
const BROKERS: usize = 3;
/// ConfigSource values (DescribeConfigsResponse).
const TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

fn broker_addr(i: usize) -> SocketAddr {
    format!("10.0.1.{}:9092", i + 1).parse().unwrap()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Controller + 3 brokers with fast retention checks and cleaner passes.
fn start_cluster() -> (madsim::runtime::NodeHandle, Vec<SocketAddr>) {
    let controller: SocketAddr = CONTROLLER.parse().unwrap();
    common::start_controller(controller);
    let settings = Settings::from_pairs([
        ("log.retention.check.interval.ms", "500"),
        ("log.cleaner.backoff.ms", "500"),
        ("log.retention.hours", "100"),
    ]);
    for i in 0..BROKERS {
        common::start_broker_with(i as i32, broker_addr(i), controller, settings.clone());
    }
    (common::client_node("10.0.3.1"), (0..BROKERS).map(broker_addr).collect())
}

fn admin(bootstrap: &[SocketAddr]) -> Admin {
    Admin::new(bootstrap.to_vec(), AdminConfig::from_map(&BTreeMap::new()).unwrap())
}

/// Creates a topic once brokers have registered; waits for leaders and for
/// leaders to answer ListOffsets.
async fn create(bootstrap: &[SocketAddr], name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut tries = 0;
    while let Err(e) = admin.create_topic(name, partitions, 3, map(configs)).await {
        tries += 1;
        assert!(tries < 60, "create_topic {name}: {e}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    admin.wait_for_leaders(name, partitions, Duration::from_secs(30)).await.expect("leaders");
    let mut probe = Consumer::new(bootstrap.to_vec(), ConsumerConfig::from_map(&BTreeMap::new()).unwrap());
    let parts: Vec<(String, i32)> = (0..partitions).map(|p| (name.to_string(), p)).collect();
    probe.end_offsets(&parts).await.expect("leaders answer ListOffsets");
}

fn producer(bootstrap: &[SocketAddr]) -> Producer {
    Producer::new(bootstrap.to_vec(), ProducerConfig::from_map(&map(&[("acks", "all")])).unwrap())
}

/// Reads partition 0 of `topic` from the earliest offset until `idle` empty polls.
async fn read_all(bootstrap: &[SocketAddr], topic: &str) -> Vec<(i64, Option<String>, Option<String>)> {
    let config = ConsumerConfig::from_map(&map(&[("auto.offset.reset", "earliest")])).unwrap();
    let mut c = Consumer::new(bootstrap.to_vec(), config);
    c.assign(vec![(topic.to_string(), 0)]);
    let mut out = Vec::new();
    let mut idle = 0;
    while idle < 4 {
        let recs = c.poll(Duration::from_millis(500)).await.expect("poll");
        if recs.is_empty() {
            idle += 1;
        }
        let s = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
        out.extend(recs.into_iter().map(|r| (r.offset, s(r.key), s(r.value))));
    }
    out
}

fn broker_code(e: &ClientError) -> Option<i16> {
    match e {
        ClientError::Broker { code, .. } => Some(*code),
        _ => None,
    }
}

#[madsim::test]
async fn create_validates_and_describe_shows_override_vs_default() {
    let (client, bootstrap) = start_cluster();
    client
        .spawn(async move {
            create(&bootstrap, "cfg", 1, &[("retention.ms", "60000"), ("max.message.bytes", "5000")]).await;
            let admin = admin(&bootstrap);
            // CreateTopics validation (Kafka error codes 36, 37, 38, 40).
            let e = admin.create_topic("bad", 1, 4, BTreeMap::new()).await.unwrap_err();
            assert_eq!(broker_code(&e), Some(38), "INVALID_REPLICATION_FACTOR: {e}");
            let e = admin.create_topic("bad", 0, 1, BTreeMap::new()).await.unwrap_err();
            assert_eq!(broker_code(&e), Some(37), "INVALID_PARTITIONS: {e}");
            let e = admin.create_topic("bad", 1, 1, map(&[("retention.ms", "often")])).await.unwrap_err();
            assert_eq!(broker_code(&e), Some(40), "INVALID_CONFIG: {e}");
            let e = admin.create_topic("bad", 1, 1, map(&[("no.such.thing", "1")])).await.unwrap_err();
            assert_eq!(broker_code(&e), Some(40), "INVALID_CONFIG for unknown keys: {e}");

            let configs = admin.describe_configs(RESOURCE_TOPIC, "cfg").await.expect("describe");
            assert_eq!(configs["retention.ms"].value.as_deref(), Some("60000"));
            assert_eq!(configs["retention.ms"].source, TOPIC_CONFIG);
            assert_eq!(configs["cleanup.policy"].value.as_deref(), Some("delete"));
            assert_eq!(configs["cleanup.policy"].source, DEFAULT_CONFIG);
            assert_eq!(configs["max.message.bytes"].source, TOPIC_CONFIG);
            let broker = admin.describe_configs(RESOURCE_BROKER, "1").await.expect("describe broker");
            assert_eq!(broker["log.retention.hours"].source, STATIC_BROKER_CONFIG);
            assert_eq!(broker["message.max.bytes"].value.as_deref(), Some("1048588"));
            assert_eq!(broker["message.max.bytes"].source, DEFAULT_CONFIG);
            let e = admin.describe_configs(RESOURCE_TOPIC, "nope").await.unwrap_err();
            assert_eq!(broker_code(&e), Some(3));

            // KIP-339: SET then DELETE moves the source back to the default.
            admin.incremental_alter_configs("cfg", &[AlterConfigOp::Delete("retention.ms".into()), AlterConfigOp::Set("cleanup.policy".into(), "compact".into())]).await.unwrap();
            // Brokers describe from their copy of the image: wait a heartbeat.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let configs = admin.describe_configs(RESOURCE_TOPIC, "cfg").await.unwrap();
            assert_eq!(configs["retention.ms"].source, STATIC_BROKER_CONFIG, "broker's log.retention.hours supplies it");
            assert_eq!(configs["retention.ms"].value.as_deref(), Some("360000000"));
            assert_eq!(configs["cleanup.policy"].value.as_deref(), Some("compact"));
            let e = admin.incremental_alter_configs("cfg", &[AlterConfigOp::Set("min.insync.replicas".into(), "zero".into())]).await.unwrap_err();
            assert_eq!(broker_code(&e), Some(40));
        })
        .await
        .unwrap();
}

// message.max.bytes / max.message.bytes: a batch over the limit gets
// MESSAGE_TOO_LARGE, a definite, non-retried failure; altering the topic
// config changes the limit on the live log.
#[madsim::test]
async fn lowering_max_message_bytes_makes_the_next_big_send_fail() {
    let (client, bootstrap) = start_cluster();
    client
        .spawn(async move {
            create(&bootstrap, "big", 1, &[]).await;
            let p = producer(&bootstrap);
            let value = Bytes::from(vec![b'x'; 2_000]);
            p.send("big", Some(0), None, Some(value.clone())).await.expect("under the default limit");
            admin(&bootstrap).incremental_alter_configs("big", &[AlterConfigOp::Set("max.message.bytes".into(), "1000".into())]).await.unwrap();
            // Every broker picks the image up within a heartbeat interval.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let e = p.send("big", Some(0), None, Some(value.clone())).await.unwrap_err();
            assert_eq!(e.error_code, Some(10), "MESSAGE_TOO_LARGE: {e}");
            assert!(!e.indefinite, "definitely not written");
            assert_eq!(e.attempts, 1, "not retried");
            p.send("big", Some(0), None, Some(Bytes::from_static(b"small"))).await.expect("small still fits");
            admin(&bootstrap).incremental_alter_configs("big", &[AlterConfigOp::Delete("max.message.bytes".into())]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            p.send("big", Some(0), None, Some(value)).await.expect("default limit again");
            // Producer-side max.request.size: refused before sending.
            let small = Producer::new(bootstrap.clone(), ProducerConfig::from_map(&map(&[("max.request.size", "100")])).unwrap());
            let e = small.send("big", Some(0), None, Some(Bytes::from(vec![b'y'; 500]))).await.unwrap_err();
            assert!(!e.indefinite);
            let all = read_all(&bootstrap, "big").await;
            assert_eq!(all.len(), 3, "the refused sends wrote nothing");
        })
        .await
        .unwrap();
}

// KIP-195: partitions can only be added; the new ones take writes.
#[madsim::test]
async fn create_partitions_then_produce_to_the_new_one() {
    let (client, bootstrap) = start_cluster();
    client
        .spawn(async move {
            create(&bootstrap, "grow", 1, &[]).await;
            let admin = admin(&bootstrap);
            admin.create_partitions("grow", 3).await.expect("grow to 3");
            admin.wait_for_leaders("grow", 3, Duration::from_secs(30)).await.unwrap();
            let e = admin.create_partitions("grow", 2).await.unwrap_err();
            assert_eq!(broker_code(&e), Some(37), "INVALID_PARTITIONS: {e}");
            let e = admin.create_partitions("nope", 2).await.unwrap_err();
            assert_eq!(broker_code(&e), Some(3));
            let p = producer(&bootstrap);
            let mut tries = 0;
            let md = loop {
                match p.send("grow", Some(2), None, Some(Bytes::from_static(b"new"))).await {
                    Ok(md) => break md,
                    Err(e) => {
                        tries += 1;
                        assert!(tries < 10, "{e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            assert_eq!((md.partition, md.offset), (2, 0));
        })
        .await
        .unwrap();
}

// Retention (Kafka's retention.ms): whole old segments go and the earliest
// offset moves; a consumer reset to earliest starts there.
#[madsim::test]
async fn retention_deletes_old_segments_and_earliest_offset_moves() {
    let (client, bootstrap) = start_cluster();
    client
        .spawn(async move {
            create(&bootstrap, "ret", 1, &[("segment.bytes", "300")]).await;
            let p = producer(&bootstrap);
            for i in 0..20 {
                p.send("ret", Some(0), None, Some(Bytes::from(format!("old-{i:03}-{}", "x".repeat(60))))).await.unwrap();
            }
            assert_eq!(read_all(&bootstrap, "ret").await.first().map(|r| r.0), Some(0));
            admin(&bootstrap).incremental_alter_configs("ret", &[AlterConfigOp::Set("retention.ms".into(), "5000".into())]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            p.send("ret", Some(0), None, Some(Bytes::from_static(b"new"))).await.unwrap();
            let all = read_all(&bootstrap, "ret").await;
            let first = all.first().expect("the active segment stays").0;
            assert!(first > 0, "log start offset advanced: {first}");
            assert_eq!(all.last().unwrap().2.as_deref(), Some("new"));
            assert!(all.windows(2).all(|w| w[1].0 == w[0].0 + 1));
        })
        .await
        .unwrap();
}

// Kafka docs, "Log Compaction": the last value per key survives, offsets
// keep increasing with gaps.
#[madsim::test]
async fn compaction_keeps_the_last_value_per_key() {
    let (client, bootstrap) = start_cluster();
    client
        .spawn(async move {
            create(&bootstrap, "cmp", 1, &[("cleanup.policy", "compact"), ("segment.bytes", "300")]).await;
            let p = producer(&bootstrap);
            let mut last = BTreeMap::new();
            for i in 0..40 {
                let key = format!("k{}", i % 4);
                let value = format!("v{i:03}");
                p.send("cmp", Some(0), Some(Bytes::from(key.clone())), Some(Bytes::from(value.clone()))).await.unwrap();
                last.insert(key, value);
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let all = read_all(&bootstrap, "cmp").await;
            assert!(all.len() < 40, "compaction removed superseded records: {}", all.len());
            assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
            for (k, v) in &last {
                let newest = all.iter().rfind(|r| r.1.as_deref() == Some(k.as_str())).expect("key kept");
                assert_eq!(newest.2.as_deref(), Some(v.as_str()), "latest value of {k}");
            }
            assert_eq!(all.last().unwrap().0, 39);
        })
        .await
        .unwrap();
}

/// Raw Fetch of partition 0 from its leader: the stored batches.
async fn stored_batches(bootstrap: &[SocketAddr], topic: &str) -> Bytes {
    let cluster = Cluster::new(bootstrap.to_vec(), Pool::new(AdminConfig::from_map(&BTreeMap::new()).unwrap().network));
    let leader = cluster.leader(topic, 0).await.expect("leader");
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.to_string()))).with_partitions(vec![
            FetchPartition::default().with_partition(0).with_fetch_offset(0).with_current_leader_epoch(-1).with_partition_max_bytes(1 << 20),
        ])]);
    let (_, resp) = cluster.call_any(ApiKey::Fetch, 12, RequestKind::Fetch(req), &[leader.addr]).await.expect("fetch");
    let ResponseKind::Fetch(resp) = resp else { panic!("not a fetch response") };
    resp.responses[0].partitions[0].records.clone().unwrap_or_default()
}

// compression.type other than `producer`: the leader recompresses (Kafka
// docs, compression.type); `producer` keeps the producer's bytes.
#[madsim::test]
async fn leader_recompresses_to_the_topic_codec() {
    let (client, bootstrap) = start_cluster();
    client
        .spawn(async move {
            let p = producer(&bootstrap);
            for (topic, codec, id) in [("gz", "gzip", 1u8), ("zs", "zstd", 4), ("pr", "producer", 0)] {
                create(&bootstrap, topic, 1, &[("compression.type", codec)]).await;
                p.send(topic, Some(0), Some(Bytes::from_static(b"k")), Some(Bytes::from_static(b"hello"))).await.unwrap();
                let bytes = stored_batches(&bootstrap, topic).await;
                let (h, r) = iter_batches(&bytes).next().expect("one batch").unwrap();
                h.validate(&bytes[r.clone()]).expect("fresh CRC");
                assert_eq!(h.compression(), id, "{topic} stored with {codec}");
                let recs = decode_batch(&bytes[r]).unwrap();
                assert_eq!(recs[0].value.as_deref(), Some(&b"hello"[..]));
                assert_eq!(read_all(&bootstrap, topic).await[0].2.as_deref(), Some("hello"));
            }
        })
        .await
        .unwrap();
}

// auto.create.topics.enable (default true): Metadata with
// allow_auto_topic_creation creates the topic, answering LEADER_NOT_AVAILABLE
// first, as Kafka does.
#[madsim::test]
async fn metadata_auto_creates_unknown_topics() {
    let (client, bootstrap) = start_cluster();
    client
        .spawn(async move {
            create(&bootstrap, "warmup", 1, &[]).await;
            let cluster = Cluster::new(bootstrap.clone(), Pool::new(AdminConfig::from_map(&BTreeMap::new()).unwrap().network));
            let ask = |auto: bool| {
                MetadataRequest::default()
                    .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("auto"))))]))
                    .with_allow_auto_topic_creation(auto)
            };
            let code = |resp: ResponseKind| match resp {
                ResponseKind::Metadata(m) => (m.topics[0].error_code, m.topics[0].partitions.len()),
                _ => panic!("not metadata"),
            };
            let (_, r) = cluster.call_any(ApiKey::Metadata, 12, RequestKind::Metadata(ask(false)), &bootstrap).await.unwrap();
            assert_eq!(code(r).0, 3, "UNKNOWN_TOPIC_OR_PARTITION without auto-creation");
            let (_, r) = cluster.call_any(ApiKey::Metadata, 12, RequestKind::Metadata(ask(true)), &bootstrap).await.unwrap();
            assert_eq!(code(r).0, 5, "LEADER_NOT_AVAILABLE while it is being created");
            tokio::time::sleep(Duration::from_secs(3)).await;
            let (_, r) = cluster.call_any(ApiKey::Metadata, 12, RequestKind::Metadata(ask(false)), &bootstrap).await.unwrap();
            assert_eq!(code(r), (0, 1), "num.partitions = 1");
        })
        .await
        .unwrap();
}
