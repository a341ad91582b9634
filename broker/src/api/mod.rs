//! One file per Kafka API the broker answers; `dispatch` routes a decoded
//! request to its handler.
//!
//! Group coordinator APIs (answered through `coordinator::runtime`):
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups, ListGroups,
//! OffsetCommit, OffsetFetch, OffsetDelete, DeleteGroups.

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod describe_configs;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use crate::protocol::DecodedRequest;
use crate::server::BrokerShared;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use std::net::SocketAddr;
use std::sync::Arc;

/// (api, min version, max version) this broker implements.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::InitProducerId, init_producer_id::MIN_VERSION, init_producer_id::MAX_VERSION),
    (ApiKey::FindCoordinator, find_coordinator::MIN_VERSION, find_coordinator::MAX_VERSION),
    (ApiKey::JoinGroup, join_group::MIN_VERSION, join_group::MAX_VERSION),
    (ApiKey::SyncGroup, sync_group::MIN_VERSION, sync_group::MAX_VERSION),
    (ApiKey::Heartbeat, heartbeat::MIN_VERSION, heartbeat::MAX_VERSION),
    (ApiKey::LeaveGroup, leave_group::MIN_VERSION, leave_group::MAX_VERSION),
    (ApiKey::DescribeGroups, describe_groups::MIN_VERSION, describe_groups::MAX_VERSION),
    (ApiKey::ListGroups, list_groups::MIN_VERSION, list_groups::MAX_VERSION),
    (ApiKey::OffsetCommit, offset_commit::MIN_VERSION, offset_commit::MAX_VERSION),
    (ApiKey::OffsetFetch, offset_fetch::MIN_VERSION, offset_fetch::MAX_VERSION),
    (ApiKey::OffsetDelete, offset_delete::MIN_VERSION, offset_delete::MAX_VERSION),
    (ApiKey::DeleteGroups, delete_groups::MIN_VERSION, delete_groups::MAX_VERSION),
];

pub fn supported(api: ApiKey, version: i16) -> bool {
    SUPPORTED.iter().any(|&(a, lo, hi)| a == api && (lo..=hi).contains(&version))
}

/// Routes a request; `None` means send no response (acks=0 produce).
/// Requests for APIs or versions we do not implement get `None` too after
/// logging, and the connection is kept (the client will time out); the
/// dispatcher is not reached for versions the codec cannot decode.
/// `peer` is the client's address (JoinGroup records it as the member's
/// host).
pub async fn dispatch(shared: &Arc<BrokerShared>, req: DecodedRequest, peer: SocketAddr) -> Option<ResponseKind> {
    let version = req.header.request_api_version;
    if !supported(req.api_key, version) {
        tracing::warn!(broker = shared.config.id, api = ?req.api_key, version, "unsupported request");
        return None;
    }
    match req.body {
        RequestKind::ApiVersions(_) => Some(ResponseKind::ApiVersions(api_versions::handle())),
        RequestKind::Metadata(r) => Some(ResponseKind::Metadata(metadata::handle(shared, r, version).await)),
        RequestKind::CreateTopics(r) => Some(ResponseKind::CreateTopics(create_topics::handle(shared, r, version).await)),
        RequestKind::Produce(r) => produce::handle(shared, r).await.map(ResponseKind::Produce),
        RequestKind::Fetch(r) => Some(ResponseKind::Fetch(fetch::handle(shared, r).await)),
        RequestKind::ListOffsets(r) => Some(ResponseKind::ListOffsets(list_offsets::handle(shared, r))),
        RequestKind::CreatePartitions(r) => Some(ResponseKind::CreatePartitions(create_partitions::handle(shared, r).await)),
        RequestKind::DescribeConfigs(r) => Some(ResponseKind::DescribeConfigs(describe_configs::handle(shared, r, version))),
        RequestKind::IncrementalAlterConfigs(r) => {
            Some(ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(shared, r).await))
        }
        RequestKind::FindCoordinator(r) => Some(ResponseKind::FindCoordinator(find_coordinator::handle(shared, r, version).await)),
        RequestKind::InitProducerId(r) => Some(ResponseKind::InitProducerId(init_producer_id::handle(shared, r).await)),
        RequestKind::JoinGroup(r) => {
            let client_id = req.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
            Some(ResponseKind::JoinGroup(join_group::handle(shared, r, version, &client_id, peer).await))
        }
        RequestKind::SyncGroup(r) => Some(ResponseKind::SyncGroup(sync_group::handle(shared, r, version).await)),
        RequestKind::Heartbeat(r) => Some(ResponseKind::Heartbeat(heartbeat::handle(shared, r))),
        RequestKind::LeaveGroup(r) => Some(ResponseKind::LeaveGroup(leave_group::handle(shared, r, version))),
        RequestKind::DescribeGroups(r) => Some(ResponseKind::DescribeGroups(describe_groups::handle(shared, r, version))),
        RequestKind::ListGroups(r) => Some(ResponseKind::ListGroups(list_groups::handle(shared, r, version))),
        RequestKind::OffsetCommit(r) => Some(ResponseKind::OffsetCommit(offset_commit::handle(shared, r, version).await)),
        RequestKind::OffsetFetch(r) => Some(ResponseKind::OffsetFetch(offset_fetch::handle(shared, r, version))),
        RequestKind::OffsetDelete(r) => Some(ResponseKind::OffsetDelete(offset_delete::handle(shared, r).await)),
        RequestKind::DeleteGroups(r) => Some(ResponseKind::DeleteGroups(delete_groups::handle(shared, r).await)),
        _ => None,
    }
}
