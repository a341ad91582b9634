//! Heartbeat (KafkaApis.handleHeartbeatRequest): keeps a member's session
//! alive; REBALANCE_IN_PROGRESS tells it to rejoin. v3+ carry
//! `group.instance.id` (KIP-345).

use crate::coordinator::runtime::with_group;
use crate::server::BrokerShared;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use std::sync::Arc;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

pub fn handle(shared: &Arc<BrokerShared>, req: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let result = with_group(shared, &group_id, |machine, now_ms, _| {
        (machine.heartbeat(now_ms, &group_id, req.generation_id, req.member_id.as_str(), instance.as_deref()), Vec::new())
    })
    .and_then(|r| r);
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
