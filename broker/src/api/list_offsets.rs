//! ListOffsets: earliest (-2) and latest (-1, the high watermark for
//! read_uncommitted) offsets; answered by the leader only.

use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;

pub fn handle(shared: &BrokerShared, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let parts = shared.partitions.lock().unwrap();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|lp| {
                    let r = ListOffsetsPartitionResponse::default().with_partition_index(lp.partition_index).with_timestamp(-1);
                    let Some(p) = parts.get(&(name.clone(), lp.partition_index)) else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code()).with_offset(-1);
                    };
                    if !p.is_leader() {
                        return r.with_error_code(ResponseError::NotLeaderOrFollower.code()).with_offset(-1);
                    }
                    if lp.current_leader_epoch >= 0 && lp.current_leader_epoch != p.state.leader_epoch {
                        let code = if lp.current_leader_epoch < p.state.leader_epoch {
                            ResponseError::FencedLeaderEpoch
                        } else {
                            ResponseError::UnknownLeaderEpoch
                        };
                        return r.with_error_code(code.code()).with_offset(-1);
                    }
                    let offset = match lp.timestamp {
                        EARLIEST_TIMESTAMP => p.log.log_start_offset(),
                        LATEST_TIMESTAMP => p.high_watermark,
                        _ => -1, // timestamp search: not yet
                    };
                    r.with_offset(offset).with_leader_epoch(p.state.leader_epoch)
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
