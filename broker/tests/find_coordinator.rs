//! FindCoordinator end to end: a group's coordinator is the leader of its
//! `__consumer_offsets` partition (Java `String.hashCode` of the group id
//! modulo the partition count), the internal topic is created on the first
//! lookup, batched lookups (KIP-699) answer per key, and the coordinator
//! moves with partition leadership.
#![cfg(madsim)]

mod common;

use ksim_broker::client::metadata::Cluster;
use ksim_broker::client::network::Pool;
use ksim_broker::client::admin::COORDINATOR_GROUP;
use ksim_broker::client::{Admin, AdminConfig};
use ksim_broker::config::Settings;
use ksim_broker::coordinator::placement::{partition_for, GROUP_METADATA_TOPIC};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, MetadataRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

const CONTROLLER: &str = "10.0.2.1:9093";
const OFFSETS_PARTITIONS: i32 = 5;

fn broker_addr(i: usize) -> SocketAddr {
    format!("10.0.1.{}:9092", i + 1).parse().unwrap()
}

/// Controller + `brokers` brokers with a 5-partition offsets topic.
fn start_cluster(brokers: usize) -> (madsim::runtime::NodeHandle, Vec<madsim::runtime::NodeHandle>, Vec<SocketAddr>) {
    let controller: SocketAddr = CONTROLLER.parse().unwrap();
    common::start_controller(controller);
    let settings = Settings::from_pairs([("offsets.topic.num.partitions", "5")]);
    let nodes = (0..brokers).map(|i| common::start_broker_with(i as i32, broker_addr(i), controller, settings.clone())).collect();
    (common::client_node("10.0.3.1"), nodes, (0..brokers).map(broker_addr).collect())
}

fn cluster(bootstrap: &[SocketAddr]) -> Cluster {
    Cluster::new(bootstrap.to_vec(), Pool::new(AdminConfig::from_map(&BTreeMap::new()).unwrap().network))
}

/// One v3 lookup of `group` at `broker`: (error code, node id).
async fn find_group(c: &Cluster, broker: SocketAddr, version: i16, group: &str) -> (i16, i32) {
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())).with_key_type(0);
    let (_, resp) = c.call_any(ApiKey::FindCoordinator, version, RequestKind::FindCoordinator(req), &[broker]).await.expect("answer");
    let ResponseKind::FindCoordinator(r) = resp else { panic!("not a FindCoordinator response") };
    (r.error_code, r.node_id.0)
}

/// Retries until `group` has a coordinator (the client's behaviour on
/// COORDINATOR_NOT_AVAILABLE).
async fn coordinator_of(c: &Cluster, broker: SocketAddr, group: &str) -> i32 {
    for _ in 0..120 {
        let (code, node) = find_group(c, broker, 3, group).await;
        if code == 0 {
            return node;
        }
        assert_eq!(code, ResponseError::CoordinatorNotAvailable.code(), "retriable error while the topic is created");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no coordinator for {group}");
}

/// The offsets partition's leader by Metadata, retried while the answering
/// broker's image has not caught up with the topic yet.
async fn offsets_leader(c: &Cluster, partition: i32) -> i32 {
    for _ in 0..40 {
        c.invalidate();
        if let Ok(l) = c.leader(GROUP_METADATA_TOPIC, partition).await {
            return l.node_id;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no leader for {GROUP_METADATA_TOPIC}-{partition}");
}

#[madsim::test]
async fn group_coordinator_is_the_leader_of_the_groups_offsets_partition() {
    let (client, _, bootstrap) = start_cluster(3);
    client
        .spawn(async move {
            let c = cluster(&bootstrap);
            tokio::time::sleep(Duration::from_secs(3)).await;
            // The first lookup creates the internal topic and is told to retry.
            let (code, node) = find_group(&c, bootstrap[0], 3, "test-group").await;
            assert_eq!((code, node), (ResponseError::CoordinatorNotAvailable.code(), -1));
            let coordinator = coordinator_of(&c, bootstrap[0], "test-group").await;
            // 627841412 % 5 = 2 (KAFKA-FACTS: "test-group" → 627841412).
            assert_eq!(partition_for("test-group", OFFSETS_PARTITIONS), 2);
            assert_eq!(coordinator, offsets_leader(&c, 2).await);
            // Every broker gives the same answer, and v0 (group only) too.
            for b in &bootstrap {
                assert_eq!(coordinator_of(&c, *b, "test-group").await, coordinator);
                assert_eq!(find_group(&c, *b, 0, "test-group").await, (0, coordinator));
            }
            let admin = Admin::new(bootstrap.clone(), AdminConfig::from_map(&BTreeMap::new()).unwrap());
            assert_eq!(admin.find_coordinator(COORDINATOR_GROUP, "test-group").await.unwrap(), coordinator);

            // Metadata lists the topic as internal, with the configured
            // partition count and RF 3.
            let req = MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str(GROUP_METADATA_TOPIC)))),
            ]));
            let (_, resp) = c.call_any(ApiKey::Metadata, 12, RequestKind::Metadata(req), &bootstrap).await.unwrap();
            let ResponseKind::Metadata(m) = resp else { panic!("not metadata") };
            let t = &m.topics[0];
            assert!(t.is_internal, "{GROUP_METADATA_TOPIC} is internal");
            assert_eq!(t.partitions.len(), OFFSETS_PARTITIONS as usize);
            assert!(t.partitions.iter().all(|p| p.replica_nodes.len() == 3));
        })
        .await
        .unwrap();
}

// KIP-699: v4 batches keys and answers each in `coordinators`.
#[madsim::test]
async fn batched_lookup_answers_every_key_kip_699() {
    let (client, _, bootstrap) = start_cluster(3);
    client
        .spawn(async move {
            let c = cluster(&bootstrap);
            tokio::time::sleep(Duration::from_secs(3)).await;
            coordinator_of(&c, bootstrap[0], "warm-up").await;
            let groups = ["test-group", "my-group", "group1", "g", "test-consumer-group"];
            let req = FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(groups.iter().map(|g| StrBytes::from_static_str(g)).collect());
            let (_, resp) = c.call_any(ApiKey::FindCoordinator, 4, RequestKind::FindCoordinator(req), &bootstrap).await.unwrap();
            let ResponseKind::FindCoordinator(r) = resp else { panic!("not a FindCoordinator response") };
            assert_eq!(r.coordinators.len(), groups.len());
            for (g, coord) in groups.iter().zip(&r.coordinators) {
                assert_eq!(coord.key.as_str(), *g);
                assert_eq!(coord.error_code, 0, "{g}");
                let expected = offsets_leader(&c, partition_for(g, OFFSETS_PARTITIONS)).await;
                assert_eq!(coord.node_id.0, expected, "{g}");
            }

            // An unknown key type is INVALID_REQUEST.
            let req = FindCoordinatorRequest::default().with_key_type(7).with_coordinator_keys(vec![StrBytes::from_static_str("x")]);
            let (_, resp) = c.call_any(ApiKey::FindCoordinator, 4, RequestKind::FindCoordinator(req), &bootstrap).await.unwrap();
            let ResponseKind::FindCoordinator(r) = resp else { panic!("not a FindCoordinator response") };
            assert_eq!(r.coordinators[0].error_code, ResponseError::InvalidRequest.code());
        })
        .await
        .unwrap();
}

// offsets.topic.replication.factor (3) is not lowered to the cluster size:
// with two brokers the topic cannot be created and lookups keep answering
// COORDINATOR_NOT_AVAILABLE.
#[madsim::test]
async fn offsets_topic_is_not_created_with_fewer_brokers_than_its_replication_factor() {
    let (client, _, bootstrap) = start_cluster(2);
    client
        .spawn(async move {
            let c = cluster(&bootstrap);
            tokio::time::sleep(Duration::from_secs(3)).await;
            for _ in 0..10 {
                let (code, _) = find_group(&c, bootstrap[0], 3, "test-group").await;
                assert_eq!(code, ResponseError::CoordinatorNotAvailable.code());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            c.invalidate();
            assert!(c.partitions(GROUP_METADATA_TOPIC).await.is_err(), "no offsets topic");
        })
        .await
        .unwrap();
}

// The coordinator follows leadership: when its broker dies, the offsets
// partition gets a new leader and lookups name it.
#[madsim::test]
async fn group_coordinator_moves_when_its_broker_dies() {
    let (client, brokers, bootstrap) = start_cluster(3);
    let handle = madsim::runtime::Handle::current();
    let b = bootstrap.clone();
    let before = client
        .spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            coordinator_of(&cluster(&b), b[0], "test-group").await
        })
        .await
        .unwrap();
    handle.kill(brokers[before as usize].id());
    client
        .spawn(async move {
            let c = cluster(&bootstrap);
            let alive: Vec<SocketAddr> = bootstrap.iter().enumerate().filter(|(i, _)| *i as i32 != before).map(|(_, a)| *a).collect();
            for _ in 0..120 {
                let (code, node) = find_group(&c, alive[0], 3, "test-group").await;
                if code == 0 && node != before {
                    assert_eq!(node, offsets_leader(&c, 2).await);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            panic!("coordinator never moved off broker {before}");
        })
        .await
        .unwrap();
}
