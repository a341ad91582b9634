//! ListGroups (KafkaApis.handleListGroupsRequest): the groups of every
//! offsets partition this broker coordinates. v4+ filter by state
//! (KIP-518, case-insensitive) and report it.

use crate::coordinator::runtime::list_groups;
use crate::server::BrokerShared;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

pub fn handle(shared: &Arc<BrokerShared>, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let filter: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = list_groups(shared)
        .into_iter()
        .filter(|(_, _, state)| filter.is_empty() || filter.contains(&state.to_lowercase()))
        .map(|(id, protocol_type, state)| {
            let g = ListedGroup::default().with_group_id(GroupId(StrBytes::from_string(id))).with_protocol_type(StrBytes::from_string(protocol_type));
            if version >= 4 {
                g.with_group_state(StrBytes::from_static_str(state))
            } else {
                g
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
