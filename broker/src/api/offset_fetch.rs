//! OffsetFetch (KafkaApis.handleOffsetFetchRequest): committed offsets of
//! a group; -1 for partitions without a commit; `topics` null asks for all.
//!
//! - v1 reports errors per partition only; v2+ also top-level.
//! - v7+ `require_stable` (KIP-447): pending transactional commits would
//!   answer UNSTABLE_OFFSET_COMMIT; transactions are not built yet, so no
//!   commit is ever pending and the condition always holds.
//! - v8+ batch groups (KIP-709), each answered with its own error.

use crate::coordinator::group::TopicPartition;
use crate::coordinator::runtime::with_group;
use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 8;
/// First version with batched groups (KIP-709).
const BATCHED_VERSION: i16 = 8;

/// One fetched offset: (offset, leader epoch, metadata).
type Fetched = BTreeMap<String, Vec<(i32, i64, i32, String)>>;

fn fetch(shared: &Arc<BrokerShared>, group_id: &str, wanted: Option<Vec<TopicPartition>>) -> Result<Fetched, ResponseError> {
    let offsets = with_group(shared, group_id, |machine, _, _| (machine.fetch_offsets(group_id, wanted.as_deref()), Vec::new()))?;
    let mut by_topic: Fetched = BTreeMap::new();
    for ((topic, partition), v) in offsets {
        by_topic.entry(topic).or_default().push((partition, v.offset, v.leader_epoch, v.metadata));
    }
    Ok(by_topic)
}

/// Builds the response topics (`$topic`, with `$partition` entries) of
/// fetched offsets: v1–v7 and v8 use distinct types of the same shape.
macro_rules! response_topics {
    ($by_topic:expr, $topic:ident, $partition:ident) => {
        $by_topic
            .into_iter()
            .map(|(topic, ps)| {
                $topic::default().with_name(TopicName(StrBytes::from_string(topic))).with_partitions(
                    ps.into_iter()
                        .map(|(p, offset, epoch, metadata)| {
                            $partition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(StrBytes::from_string(metadata)))
                        })
                        .collect(),
                )
            })
            .collect()
    };
}

pub fn handle(shared: &Arc<BrokerShared>, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= BATCHED_VERSION {
        let groups = req
            .groups
            .iter()
            .map(|g| {
                let wanted =
                    g.topics.as_ref().map(|ts| ts.iter().flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.0.to_string(), *p))).collect::<Vec<_>>());
                let out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                match fetch(shared, g.group_id.as_str(), wanted) {
                    Err(e) => out.with_error_code(e.code()),
                    Ok(by_topic) => out.with_topics(response_topics!(by_topic, OffsetFetchResponseTopics, OffsetFetchResponsePartitions)),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group_id: GroupId = req.group_id.clone();
    let wanted = req.topics.as_ref().map(|ts| ts.iter().flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.0.to_string(), *p))).collect::<Vec<_>>());
    match fetch(shared, group_id.as_str(), wanted) {
        Ok(by_topic) => OffsetFetchResponse::default().with_topics(response_topics!(by_topic, OffsetFetchResponseTopic, OffsetFetchResponsePartition)),
        Err(e) => {
            // v1 has no top-level error: every asked partition carries it.
            let topics = req
                .topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(-1)
                                .with_committed_leader_epoch(-1)
                                .with_error_code(e.code())
                        })
                        .collect();
                    OffsetFetchResponseTopic::default().with_name(t.name).with_partitions(partitions)
                })
                .collect();
            let resp = OffsetFetchResponse::default().with_topics(topics);
            if version >= 2 {
                resp.with_error_code(e.code())
            } else {
                resp
            }
        }
    }
}
