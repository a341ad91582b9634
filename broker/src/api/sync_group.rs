//! SyncGroup (KafkaApis.handleSyncGroupRequest): the leader hands out the
//! assignment; every member waits for its share, which is stored in
//! `__consumer_offsets` before anyone gets it.
//!
//! - v3+ carry `group.instance.id` (KIP-345).
//! - v5 carries the protocol type and name, checked against the group's
//!   (INCONSISTENT_GROUP_PROTOCOL), and answers them.

use crate::coordinator::group::SyncResult;
use crate::coordinator::runtime::{park, Reply};
use crate::server::BrokerShared;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(shared: &Arc<BrokerShared>, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let group_id = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let protocol_type = req.protocol_type.as_ref().map(|s| s.to_string());
    let protocol_name = req.protocol_name.as_ref().map(|s| s.to_string());
    let assignments = req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
    let result = match park(shared, &group_id, |machine, now_ms, _, waiter| {
        machine.sync(
            now_ms,
            &group_id,
            req.generation_id,
            &member_id,
            instance.as_deref(),
            protocol_type.as_deref(),
            protocol_name.as_deref(),
            assignments,
            waiter,
        )
    })
    .await
    {
        Ok(Reply::Sync(r)) => r,
        Ok(Reply::Join(_)) => unreachable!("a SyncGroup waiter answered with a JoinGroup reply"),
        Err(e) => SyncResult::error(e),
    };
    let mut resp = SyncGroupResponse::default().with_error_code(result.error.map_or(0, |e| e.code())).with_assignment(result.assignment);
    if version >= 5 {
        resp = resp.with_protocol_type(result.protocol_type.map(StrBytes::from_string)).with_protocol_name(result.protocol_name.map(StrBytes::from_string));
    }
    resp
}
