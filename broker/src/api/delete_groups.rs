//! DeleteGroups (KafkaApis.handleDeleteGroupsRequest): an Empty group's
//! offsets and metadata are tombstoned. Unknown: GROUP_ID_NOT_FOUND; with
//! members: NON_EMPTY_GROUP; not ours: NOT_COORDINATOR.

use crate::coordinator::runtime::delete_group;
use crate::server::BrokerShared;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use std::sync::Arc;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(shared: &Arc<BrokerShared>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names {
        let code = match delete_group(shared, g.as_str()).await {
            Ok(()) => 0,
            Err(e) => e.code(),
        };
        results.push(DeletableGroupResult::default().with_group_id(g).with_error_code(code));
    }
    DeleteGroupsResponse::default().with_results(results)
}
