//! FindCoordinator: which broker coordinates a consumer group or a
//! transactional id (KafkaApis.getCoordinator).
//!
//! - The coordinator is the leader of the key's internal-topic partition
//!   (`coordinator::placement`), if that leader is alive (not fenced).
//! - If the internal topic does not exist yet, the broker asks the
//!   controller to create it and answers COORDINATOR_NOT_AVAILABLE; the
//!   client retries. A leaderless partition or a fenced leader is also
//!   COORDINATOR_NOT_AVAILABLE.
//! - v0–v3 carry one key (v0 always a group); v4+ batch keys (KIP-699) and
//!   answer per key in `coordinators`.
//! - Unknown key types: INVALID_REQUEST.

use crate::controller::image::NO_LEADER;
use crate::controller::rpc::{ControllerRequest, ControllerResponse};
use crate::coordinator::placement::{partition_for, CoordinatorType};
use crate::server::heartbeat::{controller_call, heartbeat_once};
use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const MIN_VERSION: i16 = 0;
/// v5 only widens the error set (KIP-890); v6 adds share groups (not served).
pub const MAX_VERSION: i16 = 5;
/// First version with batched keys (KIP-699).
const BATCHED_VERSION: i16 = 4;

/// A key's answer: the coordinator's (node id, host, port), or an error.
type Lookup = Result<(i32, String, i32), (ResponseError, String)>;

pub async fn handle(shared: &Arc<BrokerShared>, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let key_type = if version >= 1 { req.key_type } else { 0 };
    if version >= BATCHED_VERSION {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in req.coordinator_keys {
            let found = lookup(shared, key_type, key.as_str()).await;
            let mut c = Coordinator::default().with_key(key);
            c = match found {
                Ok((node, host, port)) => c.with_node_id(BrokerId(node)).with_host(StrBytes::from_string(host)).with_port(port),
                Err((e, msg)) => c
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(msg))),
            };
            coordinators.push(c);
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let resp = FindCoordinatorResponse::default();
    match lookup(shared, key_type, req.key.as_str()).await {
        Ok((node, host, port)) => resp.with_node_id(BrokerId(node)).with_host(StrBytes::from_string(host)).with_port(port),
        Err((e, msg)) => {
            let resp = resp.with_node_id(BrokerId(-1)).with_port(-1).with_error_code(e.code());
            if version >= 1 {
                resp.with_error_message(Some(StrBytes::from_string(msg)))
            } else {
                resp
            }
        }
    }
}

async fn lookup(shared: &Arc<BrokerShared>, key_type: i8, key: &str) -> Lookup {
    let Some(kind) = CoordinatorType::from_key_type(key_type) else {
        return Err((ResponseError::InvalidRequest, format!("unknown coordinator key type {key_type}")));
    };
    let topic = kind.topic();
    let image = shared.image.lock().unwrap().clone();
    let Some(info) = image.topics.get(topic) else {
        create_internal_topic(shared, kind).await;
        return Err((ResponseError::CoordinatorNotAvailable, format!("{topic} is being created")));
    };
    if info.partitions.is_empty() {
        return Err((ResponseError::CoordinatorNotAvailable, format!("{topic} has no partitions")));
    }
    // Placement uses the topic's actual partition count, which is the
    // configured one unless an operator changed the setting afterwards
    // (Kafka warns against that: groups would move).
    let partition = partition_for(key, info.partitions.len() as i32);
    let leader = info
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .map(|p| p.leader)
        .filter(|&l| l != NO_LEADER && !image.is_fenced(l));
    match leader.and_then(|l| image.brokers.get(&l)) {
        Some(b) => Ok((b.id, b.host.clone(), b.port as i32)),
        None => Err((ResponseError::CoordinatorNotAvailable, format!("{topic}-{partition} has no live leader"))),
    }
}

/// Asks the controller to create `kind`'s internal topic, then pulls the
/// image. Failures (too few brokers for the replication factor, no active
/// controller) are logged; the next lookup tries again.
async fn create_internal_topic(shared: &Arc<BrokerShared>, kind: CoordinatorType) {
    let settings = &shared.config.settings;
    let call = ControllerRequest::CreateTopic {
        name: kind.topic().to_string(),
        partitions: kind.partitions(settings),
        replication_factor: kind.replication_factor(settings),
        configs: kind.topic_configs(settings),
    };
    match controller_call(shared, &call).await {
        Ok(ControllerResponse::CreateTopic { result: Ok(()) }) => {
            tracing::info!(broker = shared.config.id, topic = kind.topic(), "created internal topic");
            let _ = heartbeat_once(shared, &BTreeMap::new()).await;
        }
        other => tracing::info!(broker = shared.config.id, topic = kind.topic(), ?other, "internal topic not created"),
    }
}
