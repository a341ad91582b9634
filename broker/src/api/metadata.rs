//! Metadata: brokers, and leader / replicas / ISR per partition, from this
//! broker's copy of the controller's image (which may lag: clients refresh
//! on NOT_LEADER_OR_FOLLOWER).
//!
//! Auto topic creation (`auto.create.topics.enable`, default true): a v4+
//! request with allow_auto_topic_creation naming an unknown topic makes the
//! broker ask the controller to create it with `num.partitions` and
//! `default.replication.factor`; this response still says
//! LEADER_NOT_AVAILABLE for it (as Kafka's does) and the client retries.

use crate::config::{defaults, Settings};
use crate::controller::image::NO_LEADER;
use crate::controller::rpc::{ControllerRequest, ControllerResponse};
use crate::coordinator::placement::is_internal_topic;
use crate::server::heartbeat::{controller_call, heartbeat_once};
use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Bound on topics one Metadata request may auto-create.
pub const MAX_AUTO_CREATE_PER_REQUEST: usize = 100;

pub async fn handle(shared: &Arc<BrokerShared>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let mut image = shared.image.lock().unwrap().clone();
    let auto_create = version >= 4
        && req.allow_auto_topic_creation
        && shared.config.settings.bool_or("auto.create.topics.enable", defaults::AUTO_CREATE_TOPICS_ENABLE);
    let mut creating = BTreeSet::new();
    if auto_create {
        let unknown: Vec<String> = req
            .topics
            .iter()
            .flatten()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .filter(|n| !image.topics.contains_key(n))
            .take(MAX_AUTO_CREATE_PER_REQUEST)
            .collect();
        for name in unknown {
            let call = ControllerRequest::CreateTopic {
                name: name.clone(),
                partitions: shared.config.settings.i64_or("num.partitions", defaults::NUM_PARTITIONS) as i32,
                replication_factor: shared.config.settings.i64_or("default.replication.factor", defaults::DEFAULT_REPLICATION_FACTOR) as i32,
                configs: Settings::new(),
            };
            match controller_call(shared, &call).await {
                Ok(ControllerResponse::CreateTopic { result: Ok(()) }) => {
                    creating.insert(name);
                }
                Ok(ControllerResponse::CreateTopic { result: Err(e) }) if e.code == ResponseError::TopicAlreadyExists.code() => {
                    creating.insert(name);
                }
                Ok(ControllerResponse::CreateTopic { result: Err(e) }) if e.code == ResponseError::InvalidTopicException.code() => {}
                other => tracing::debug!(broker = shared.config.id, %name, ?other, "auto-create failed"),
            }
        }
        if !creating.is_empty() {
            let _ = heartbeat_once(shared, &BTreeMap::new()).await;
            image = shared.image.lock().unwrap().clone();
        }
    }
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port as i32)
        })
        .collect();
    // v1+: null = all topics, [] = none. (v0 is not served.)
    let names: Vec<String> = match &req.topics {
        None => image.topics.keys().cloned().collect(),
        Some(ts) => ts.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect(),
    };
    let topics = names
        .into_iter()
        .map(|name| {
            let mut t = MetadataResponseTopic::default().with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
            if creating.contains(&name) {
                return t.with_error_code(ResponseError::LeaderNotAvailable.code());
            }
            let Some(info) = image.topics.get(&name) else {
                return t.with_error_code(ResponseError::UnknownTopicOrPartition.code());
            };
            if version >= 10 {
                t = t.with_topic_id(uuid_from(info.topic_id));
            }
            t = t.with_is_internal(is_internal_topic(&name));
            let partitions = info
                .partitions
                .iter()
                .map(|ps| {
                    let offline: Vec<BrokerId> = ps.replicas.iter().filter(|r| image.is_fenced(**r)).map(|r| BrokerId(*r)).collect();
                    let mut p = MetadataResponsePartition::default()
                        .with_partition_index(ps.partition)
                        .with_leader_id(BrokerId(ps.leader))
                        .with_replica_nodes(ps.replicas.iter().map(|r| BrokerId(*r)).collect())
                        .with_isr_nodes(ps.isr.iter().map(|r| BrokerId(*r)).collect());
                    if version >= 7 {
                        p = p.with_leader_epoch(ps.leader_epoch);
                    }
                    if version >= 5 {
                        p = p.with_offline_replicas(offline);
                    }
                    if ps.leader == NO_LEADER {
                        p = p.with_error_code(ResponseError::LeaderNotAvailable.code());
                    }
                    p
                })
                .collect();
            t.with_partitions(partitions)
        })
        .collect();
    let mut resp = MetadataResponse::default().with_brokers(brokers).with_topics(topics);
    if version >= 2 {
        resp = resp.with_cluster_id(Some(StrBytes::from_static_str("ksim-cluster")));
    }
    resp.with_controller_id(BrokerId(image.brokers.keys().next().copied().unwrap_or(-1)))
}

/// Kafka topic ids are UUIDs; ours are 16 deterministic bytes.
pub fn uuid_from(bytes: [u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(bytes)
}
