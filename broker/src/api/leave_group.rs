//! LeaveGroup (KafkaApis.handleLeaveGroupRequest): members leave and the
//! group rebalances.
//!
//! - v0–v2: one `member_id`; the error is top-level.
//! - v3+: a batch of members (KIP-345), each with a member id or a
//!   `group.instance.id`, answered one by one.

use crate::coordinator::runtime::with_group;
use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use std::sync::Arc;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;
/// First version with a batch of members.
const BATCH_VERSION: i16 = 3;

pub fn handle(shared: &Arc<BrokerShared>, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = req.group_id.0.to_string();
    let leaving: Vec<(String, Option<String>)> = if version >= BATCH_VERSION {
        req.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string()))).collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    if version >= BATCH_VERSION && leaving.is_empty() {
        return LeaveGroupResponse::default().with_error_code(ResponseError::InvalidRequest.code());
    }
    let errors = match with_group(shared, &group_id, |machine, now_ms, _| machine.leave(now_ms, &group_id, &leaving)) {
        Ok(errors) => errors,
        Err(e) => return LeaveGroupResponse::default().with_error_code(e.code()),
    };
    assert_eq!(errors.len(), leaving.len(), "one answer per leaving member");
    if version < BATCH_VERSION {
        return LeaveGroupResponse::default().with_error_code(errors[0].map_or(0, |e| e.code()));
    }
    let members = leaving
        .into_iter()
        .zip(errors)
        .map(|((id, instance), e)| {
            MemberResponse::default().with_member_id(id.into()).with_group_instance_id(instance.map(Into::into)).with_error_code(e.map_or(0, |e| e.code()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
