//! OffsetCommit (KafkaApis.handleOffsetCommitRequest): validated by the
//! group coordinator (generation, member, static instance; a standalone
//! commit with generation -1 and no member id only while the group has no
//! members), appended to `__consumer_offsets` and answered once replicated.
//!
//! - v2–v4 carry a retention time, ignored as Kafka 2.1+ does (KIP-211).
//! - v6+ carry the committed leader epoch; v7+ the group instance id.
//! - Metadata longer than `offset.metadata.max.bytes`:
//!   OFFSET_METADATA_TOO_LARGE for that partition.
//! - A group-level failure is reported on every partition.

use crate::coordinator::runtime::commit;
use crate::server::BrokerShared;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use std::sync::Arc;

pub const MIN_VERSION: i16 = 2;
pub const MAX_VERSION: i16 = 8;

pub async fn handle(shared: &Arc<BrokerShared>, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let offsets = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let epoch = if version >= 6 { p.committed_leader_epoch } else { -1 };
                ((t.name.0.to_string(), p.partition_index), p.committed_offset, epoch, p.committed_metadata.as_ref().map(|m| m.to_string()))
            })
        })
        .collect();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let result = commit(shared, &group_id, req.generation_id_or_member_epoch, req.member_id.as_str(), instance.as_deref(), offsets).await;
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let error = match &result {
                        Err(e) => Some(*e),
                        Ok(per) => per.get(&(t.name.0.to_string(), p.partition_index)).copied().flatten(),
                    };
                    OffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
