//! Fetch: consumers read below the high watermark; followers
//! (`replica_id >= 0`) read to the log end, report their position and get diverging-epoch
//! answers (KIP-595). An empty answer long-polls up to max_wait_ms.

use crate::replica::FetchData;
use crate::server::BrokerShared;
use kafka_protocol::messages::fetch_response::{EpochEndOffset, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use std::sync::Arc;
use std::time::Duration;

pub async fn handle(shared: &Arc<BrokerShared>, req: FetchRequest) -> FetchResponse {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    loop {
        let notified = shared.progress.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (resp, bytes, any_error) = read_once(shared, &req);
        if bytes >= req.min_bytes.max(1) as usize || any_error || tokio::time::Instant::now() >= deadline {
            return resp;
        }
        if tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), notified).await.is_err() {
            return read_once(shared, &req).0;
        }
    }
}

/// One pass over the requested partitions: (response, record bytes, errors?).
fn read_once(shared: &BrokerShared, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let replica = req.replica_id.0;
    let now_ms = shared.now_ms();
    let mut total = 0usize;
    let mut any_error = false;
    let mut hw_moved = false;
    let mut parts = shared.partitions.lock().unwrap();
    let responses = req
        .topics
        .iter()
        .map(|ft| {
            let name = ft.topic.0.to_string();
            let partitions = ft
                .partitions
                .iter()
                .map(|fp| {
                    let base = PartitionData::default().with_partition_index(fp.partition).with_high_watermark(-1).with_last_stable_offset(-1);
                    let max_bytes = (fp.partition_max_bytes.max(0) as usize).min(req.max_bytes.max(0) as usize);
                    // Sent with errors too, so a follower below it can restart there.
                    let log_start = parts.get(&(name.clone(), fp.partition)).map_or(-1, |p| p.log.log_start_offset());
                    let result = match parts.get_mut(&(name.clone(), fp.partition)) {
                        None => Err(shared.missing_replica_error(&(name.clone(), fp.partition))),
                        Some(p) if replica >= 0 => {
                            let hw_before = p.high_watermark;
                            let r = p.read_for_follower(replica, fp.fetch_offset, fp.last_fetched_epoch, fp.current_leader_epoch, max_bytes, now_ms);
                            hw_moved |= p.high_watermark != hw_before;
                            r
                        }
                        Some(p) => p.read_for_consumer(fp.fetch_offset, fp.current_leader_epoch, max_bytes),
                    };
                    match result {
                        Ok(FetchData { records, high_watermark, log_start_offset, diverging, .. }) => {
                            total += records.len();
                            let mut d = base
                                .with_high_watermark(high_watermark)
                                .with_last_stable_offset(high_watermark)
                                .with_log_start_offset(log_start_offset)
                                .with_records(Some(records));
                            if let Some((epoch, end_offset)) = diverging {
                                any_error = true;
                                d = d.with_diverging_epoch(EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset));
                            }
                            d
                        }
                        Err(e) => {
                            any_error = true;
                            base.with_error_code(e.code()).with_log_start_offset(log_start).with_records(Some(bytes::Bytes::new()))
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default().with_topic(ft.topic.clone()).with_partitions(partitions)
        })
        .collect();
    shared.handle_storage_failures(&mut parts);
    drop(parts);
    if hw_moved {
        shared.progress.notify_waiters();
    }
    (FetchResponse::default().with_responses(responses), total, any_error)
}
