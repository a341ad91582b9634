//! One file per Kafka API the broker answers; `dispatch` routes a decoded
//! request to its handler.

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod describe_configs;
pub mod fetch;
pub mod find_coordinator;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

use crate::protocol::DecodedRequest;
use crate::server::BrokerShared;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
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
];

pub fn supported(api: ApiKey, version: i16) -> bool {
    SUPPORTED.iter().any(|&(a, lo, hi)| a == api && (lo..=hi).contains(&version))
}

/// Routes a request; `None` means send no response (acks=0 produce).
/// Requests for APIs or versions we do not implement get `None` too after
/// logging, and the connection is kept (the client will time out); the
/// dispatcher is not reached for versions the codec cannot decode.
pub async fn dispatch(shared: &Arc<BrokerShared>, req: DecodedRequest) -> Option<ResponseKind> {
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
        _ => None,
    }
}
