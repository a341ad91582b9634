//! OffsetDelete (KIP-496, KafkaApis.handleOffsetDeleteRequest): deletes a
//! group's committed offsets by writing tombstones to `__consumer_offsets`.
//! An unknown group is GROUP_ID_NOT_FOUND; a partition of a group that is
//! consuming (not Empty) is GROUP_SUBSCRIBED_TO_TOPIC.

use crate::coordinator::runtime::delete_offsets;
use crate::server::BrokerShared;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use std::sync::Arc;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(shared: &Arc<BrokerShared>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let tps: Vec<(String, i32)> = req.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index))).collect();
    let errors = match delete_offsets(shared, req.group_id.as_str(), &tps).await {
        Ok(errors) => errors,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let mut errors = errors.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let e = errors.next().expect("one answer per partition");
                    OffsetDeleteResponsePartition::default().with_partition_index(p.partition_index).with_error_code(e.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
