//! DescribeGroups (KafkaApis.handleDescribeGroupsRequest): state, protocol
//! and members of each group this broker coordinates.
//!
//! - A group this broker does not coordinate: NOT_COORDINATOR for it.
//! - An unknown group: state `Dead`, no error (v6's GROUP_ID_NOT_FOUND is
//!   not served).
//! - Member metadata and assignments are reported only when Stable, as
//!   Kafka does; v4+ add the group instance id.

use crate::coordinator::runtime::with_group;
use crate::server::BrokerShared;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;
/// Kafka's "no operations computed" marker (KIP-430).
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn handle(shared: &Arc<BrokerShared>, req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|group_id| {
            let out = DescribedGroup::default().with_group_id(group_id.clone()).with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            match with_group(shared, group_id.as_str(), |machine, _, _| (machine.describe(group_id.as_str()), Vec::new())) {
                Err(e) => out.with_error_code(e.code()),
                Ok(None) => out.with_group_state(StrBytes::from_static_str("Dead")),
                Ok(Some(g)) => out
                    .with_group_state(StrBytes::from_static_str(g.state))
                    .with_protocol_type(StrBytes::from_string(g.protocol_type))
                    .with_protocol_data(StrBytes::from_string(g.protocol))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(StrBytes::from_string(m.member_id))
                                    .with_group_instance_id(if version >= 4 { m.group_instance_id.map(StrBytes::from_string) } else { None })
                                    .with_client_id(StrBytes::from_string(m.client_id))
                                    .with_client_host(StrBytes::from_string(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
