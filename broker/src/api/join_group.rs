//! JoinGroup (KafkaApis.handleJoinGroupRequest): a member joins or rejoins
//! a classic group; the request is parked until the rebalance completes
//! (see `coordinator::group`).
//!
//! - v0 has no rebalance timeout: the session timeout is used.
//! - v4+: a new member must rejoin with the id it got in
//!   MEMBER_ID_REQUIRED (KIP-394); older versions get an id at once.
//! - v5+ carry `group.instance.id` (KIP-345).
//! - v7+ answer the protocol type; v8 carries a reason (KIP-800); v9
//!   (KIP-814 `skip_assignment`) is not served.

use crate::coordinator::group::JoinRequest;
use crate::coordinator::runtime::{park, Reply};
use crate::server::BrokerShared;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use std::net::SocketAddr;
use std::sync::Arc;

pub const MIN_VERSION: i16 = 0;
/// v8 only adds the `reason` (KIP-800), logged; v9's `skip_assignment`
/// (KIP-814) is not served.
pub const MAX_VERSION: i16 = 8;
/// First version where a new member must obtain its id first (KIP-394).
const MEMBER_ID_REQUIRED_VERSION: i16 = 4;

pub async fn handle(shared: &Arc<BrokerShared>, req: JoinGroupRequest, version: i16, client_id: &str, peer: SocketAddr) -> JoinGroupResponse {
    let group_id = req.group_id.0.to_string();
    if let Some(reason) = &req.reason {
        tracing::debug!(broker = shared.config.id, group = %group_id, member = %req.member_id.as_str(), reason = %reason.as_str(), "JoinGroup");
    }
    let join = JoinRequest {
        group_id: group_id.clone(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: format!("/{}", peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        require_known_member_id: version >= MEMBER_ID_REQUIRED_VERSION,
    };
    let result = match park(shared, &group_id, |machine, now_ms, partition, waiter| machine.join(now_ms, partition, join, waiter)).await {
        Ok(Reply::Join(r)) => r,
        Ok(Reply::Sync(_)) => unreachable!("a JoinGroup waiter answered with a SyncGroup reply"),
        Err(e) => crate::coordinator::group::JoinResult::error(&req.member_id, e),
    };
    let mut resp = JoinGroupResponse::default()
        .with_error_code(result.error.map_or(0, |e| e.code()))
        .with_generation_id(result.generation)
        .with_protocol_name(result.protocol_name.map(StrBytes::from_string))
        .with_leader(StrBytes::from_string(result.leader))
        .with_member_id(StrBytes::from_string(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_group_instance_id(if version >= 5 { instance.map(StrBytes::from_string) } else { None })
                        .with_metadata(metadata)
                })
                .collect(),
        );
    if version >= 7 {
        resp = resp.with_protocol_type(result.protocol_type.map(StrBytes::from_string));
    }
    if version < 7 && resp.protocol_name.is_none() {
        // Before v7 the protocol name is not nullable.
        resp.protocol_name = Some(StrBytes::default());
    }
    resp
}
