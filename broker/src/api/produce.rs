//! Produce: append each partition's batches as leader, then answer at once
//! (acks=1), never (acks=0), or when the high watermark passes the append
//! (acks=all), bounded by the request's timeout_ms.

use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use std::sync::Arc;
use std::time::Duration;

/// An acks=all append waiting for replication.
struct Waiting {
    topic_idx: usize,
    part_idx: usize,
    topic: String,
    partition: i32,
    last_offset: i64,
    leader_epoch: i32,
}

pub async fn handle(shared: &Arc<BrokerShared>, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    let now_ms = shared.now_ms();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    let mut waiting = Vec::new();
    {
        let mut parts = shared.partitions.lock().unwrap();
        for (ti, td) in req.topic_data.iter().enumerate() {
            let name = td.name.0.to_string();
            let mut responses = Vec::with_capacity(td.partition_data.len());
            for (pi, pd) in td.partition_data.iter().enumerate() {
                let r = PartitionProduceResponse::default().with_index(pd.index).with_base_offset(-1).with_log_append_time_ms(-1);
                let result = match (parts.get_mut(&(name.clone(), pd.index)), pd.records.as_ref()) {
                    (None, _) => Err(if shared.image.lock().unwrap().topics.contains_key(&name) {
                        shared.missing_replica_error(&(name.clone(), pd.index))
                    } else {
                        ResponseError::UnknownTopicOrPartition
                    }),
                    (Some(_), None) => Err(ResponseError::CorruptMessage),
                    (Some(p), Some(records)) => p.append_as_leader(records, acks, now_ms).map(|info| {
                        if acks == -1 {
                            waiting.push(Waiting {
                                topic_idx: ti,
                                part_idx: pi,
                                topic: name.clone(),
                                partition: pd.index,
                                last_offset: info.last_offset,
                                leader_epoch: p.state.leader_epoch,
                            });
                        }
                        (info.first_offset, p.log.log_start_offset())
                    }),
                };
                responses.push(match result {
                    Ok((base, start)) => r.with_base_offset(base).with_log_start_offset(start),
                    Err(e) => r.with_error_code(e.code()),
                });
            }
            topics.push(TopicProduceResponse::default().with_name(td.name.clone()).with_partition_responses(responses));
        }
        shared.handle_storage_failures(&mut parts);
    }
    shared.progress.notify_waiters();
    if acks == 0 {
        return None;
    }
    if !waiting.is_empty() {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
        loop {
            let notified = shared.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let parts = shared.partitions.lock().unwrap();
                waiting.retain(|w| {
                    let status = match parts.get(&(w.topic.clone(), w.partition)) {
                        Some(p) => p.acks_all_status(w.last_offset, w.leader_epoch),
                        None => Some(Err(shared.missing_replica_error(&(w.topic.clone(), w.partition)))),
                    };
                    match status {
                        None => true,
                        Some(Ok(())) => false,
                        Some(Err(e)) => {
                            set_error(&mut topics, w, e);
                            false
                        }
                    }
                });
            }
            if waiting.is_empty() {
                break;
            }
            if tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), notified).await.is_err() {
                for w in &waiting {
                    set_error(&mut topics, w, ResponseError::RequestTimedOut);
                }
                break;
            }
        }
    }
    Some(ProduceResponse::default().with_responses(topics))
}

fn set_error(topics: &mut [TopicProduceResponse], w: &Waiting, e: ResponseError) {
    let r = &mut topics[w.topic_idx].partition_responses[w.part_idx];
    r.error_code = e.code();
    r.base_offset = -1;
}
