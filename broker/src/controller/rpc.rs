//! Broker ↔ controller messages.
//!
//! # Format
//!
//! These are internal to ksim (Kafka's KRaft uses BrokerHeartbeat, a metadata
//! log fetch and AlterPartition; we keep the same meanings in a simpler
//! shape): one JSON document per frame, framed like Kafka requests, one
//! request per connection round trip.
//!
//! Controllers talk Raft to each other on the same listener with
//! [`ControllerRequest::Raft`]: one-way frames on a long-lived connection per
//! peer, never answered in place (the reply is a Raft message of its own).

use super::image::{MetadataImage, PartitionState};
use super::raft::Message;
use crate::config::Settings;
use crate::protocol::{read_frame, write_frame};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// Periodic liveness + registration; answered with the image when the
    /// broker's copy is older.
    Heartbeat {
        broker_id: i32,
        incarnation: u64,
        host: String,
        port: u16,
        known_version: u64,
        /// Replicas whose log dir failed in this incarnation (KRaft's
        /// BrokerHeartbeat `OfflineLogDirs`, by replica rather than dir id):
        /// they leave the ISR and lose leadership.
        #[serde(default)]
        offline_replicas: Vec<(String, i32)>,
    },
    /// A leader asks to change its partition's ISR.
    AlterPartition {
        broker_id: i32,
        topic: String,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
    CreateTopic { name: String, partitions: i32, replication_factor: i32, configs: Settings },
    /// Changes to an existing topic (partitions, config overrides).
    TopicAdmin(super::state::TopicCommand),
    /// KIP-730 AllocateProducerIds: a broker asks for a block of producer
    /// ids to hand out to InitProducerId callers. `incarnation` must be the
    /// broker's registered one (Kafka's broker epoch check).
    AllocateProducerIds { broker_id: i32, incarnation: u64 },
    /// Controller ↔ controller Raft traffic; a log entry is the metadata
    /// image a decision produced.
    Raft(Message<MetadataImage>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerResponse {
    Heartbeat { image: Option<MetadataImage>, fenced: bool },
    AlterPartition { result: Result<PartitionState, RpcError> },
    CreateTopic { result: Result<(), RpcError> },
    TopicAdmin { result: Result<(), RpcError> },
    AllocateProducerIds { result: Result<ProducerIdBlock, RpcError> },
    /// NOT_CONTROLLER (Kafka error 41): this controller is not the active
    /// one; `leader` is the active controller's address when known.
    NotController { leader: Option<SocketAddr> },
}

/// A block of producer ids `[first, first + len)` given to one broker
/// (KIP-730's AllocateProducerIds response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    pub first: i64,
    pub len: i32,
}

/// Errors carried as Kafka error codes so brokers can pass them on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i16,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into() }
    }
}

/// One request/response round trip to `addr`, bounded by `timeout`.
pub async fn call(
    addr: SocketAddr,
    req: &ControllerRequest,
    timeout: Duration,
) -> anyhow::Result<ControllerResponse> {
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        write_frame(&mut stream, &serde_json::to_vec(req)?).await?;
        let frame = read_frame(&mut stream)
            .await?
            .ok_or_else(|| anyhow::anyhow!("controller closed the connection"))?;
        Ok::<_, anyhow::Error>(serde_json::from_slice(&frame)?)
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| anyhow::anyhow!("controller {addr} timed out"))?
}
