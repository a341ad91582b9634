//! Follower fetchers: one task per leader this broker follows, fetching
//! every followed partition of that leader with Fetch v12 (replica_id set),
//! truncating on a diverging epoch (KIP-595) and appending what it gets.

use super::BrokerShared;
use crate::protocol::{decode_response, encode_request, read_frame, write_frame};
use crate::replica::Role;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Fetch version used between brokers (topic names, diverging epochs).
pub const REPLICA_FETCH_VERSION: i16 = 12;
/// Kafka's `replica.fetch.backoff.ms` default.
pub const REPLICA_FETCH_BACKOFF_MS: u64 = 1_000;
/// Added to the long-poll wait to bound one fetch round trip.
pub const REPLICA_FETCH_TIMEOUT_SLACK_MS: u64 = 5_000;

pub async fn fetcher_loop(shared: Arc<BrokerShared>, leader: i32) {
    let me = shared.config.id;
    let mut conn: Option<TcpStream> = None;
    let mut correlation_id = 0i32;
    loop {
        super::buggify::maybe_delay(super::buggify::SLOW_FOLLOWER_FETCH).await;
        // Partitions we follow on `leader`: (topic, partition, offset, last epoch, leader epoch).
        // Scan and (maybe) deregister under the fetchers lock, so a concurrent
        // apply_image either sees us registered or spawns a new fetcher.
        let fetchers = shared.fetchers.lock().unwrap();
        let wanted: Vec<(String, i32, i64, i32, i32)> = {
            let parts = shared.partitions.lock().unwrap();
            parts
                .values()
                .filter(|p| p.role == Role::Follower { leader })
                .map(|p| {
                    let (off, last_epoch) = p.follower_fetch_position();
                    (p.topic.clone(), p.partition, off, last_epoch, p.state.leader_epoch)
                })
                .collect()
        };
        if wanted.is_empty() {
            let mut fetchers = fetchers;
            fetchers.remove(&leader);
            return;
        }
        drop(fetchers);
        let addr = {
            let image = shared.image.lock().unwrap();
            image.brokers.get(&leader).map(|b| format!("{}:{}", b.host, b.port))
        };
        let Some(addr) = addr else {
            tokio::time::sleep(Duration::from_millis(REPLICA_FETCH_BACKOFF_MS)).await;
            continue;
        };
        if conn.is_none() {
            match tokio::time::timeout(Duration::from_millis(REPLICA_FETCH_BACKOFF_MS), TcpStream::connect(addr.as_str())).await {
                Ok(Ok(s)) => conn = Some(s),
                _ => {
                    tokio::time::sleep(Duration::from_millis(REPLICA_FETCH_BACKOFF_MS)).await;
                    continue;
                }
            }
        }
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (t, p, off, last_epoch, leader_epoch) in &wanted {
            let part = FetchPartition::default()
                .with_partition(*p)
                .with_current_leader_epoch(*leader_epoch)
                .with_fetch_offset(*off)
                .with_last_fetched_epoch(*last_epoch)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(crate::config::defaults::REPLICA_FETCH_MAX_BYTES as i32);
            match topics.iter_mut().find(|ft| ft.topic.0.as_str() == t) {
                Some(ft) => ft.partitions.push(part),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.clone())))
                        .with_partitions(vec![part]),
                ),
            }
        }
        let wait_ms = shared.config.replica_fetch_wait_max_ms();
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(me))
            .with_max_wait_ms(wait_ms as i32)
            .with_min_bytes(1)
            .with_max_bytes(10 * crate::config::defaults::REPLICA_FETCH_MAX_BYTES as i32)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics);
        correlation_id = correlation_id.wrapping_add(1);
        let frame = match encode_request(ApiKey::Fetch, REPLICA_FETCH_VERSION, correlation_id, &format!("replica-{me}"), &RequestKind::Fetch(req)) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(broker = me, "cannot encode fetch: {e}");
                return;
            }
        };
        let stream = conn.as_mut().expect("connected above");
        let round_trip = async {
            write_frame(stream, &frame).await?;
            read_frame(stream).await?.ok_or_else(|| std::io::Error::other("leader closed the connection"))
        };
        let resp = match tokio::time::timeout(Duration::from_millis(wait_ms + REPLICA_FETCH_TIMEOUT_SLACK_MS), round_trip).await {
            Ok(Ok(bytes)) => decode_response(ApiKey::Fetch, REPLICA_FETCH_VERSION, bytes),
            _ => {
                conn = None;
                tokio::time::sleep(Duration::from_millis(REPLICA_FETCH_BACKOFF_MS)).await;
                continue;
            }
        };
        let Ok((cid, ResponseKind::Fetch(resp))) = resp else {
            conn = None;
            continue;
        };
        assert_eq!(cid, correlation_id, "fetch response correlation id");
        let now_ms = shared.now_ms();
        let mut backoff = false;
        {
            let mut parts = shared.partitions.lock().unwrap();
            for topic in &resp.responses {
                for pd in &topic.partitions {
                    let key = (topic.topic.0.to_string(), pd.partition_index);
                    let Some(sent_epoch) = wanted.iter().find(|w| w.0 == key.0 && w.1 == key.1).map(|w| w.4) else { continue };
                    let Some(p) = parts.get_mut(&key) else { continue };
                    if p.role != (Role::Follower { leader }) || p.state.leader_epoch != sent_epoch {
                        continue; // role changed while the fetch was out
                    }
                    if pd.error_code == kafka_protocol::error::ResponseError::OffsetOutOfRange.code() {
                        match p.reset_to_leader_log_start(pd.log_start_offset) {
                            Ok(true) => {
                                tracing::info!(broker = me, topic = %key.0, partition = key.1, start = pd.log_start_offset, "restarted log at the leader's log start");
                                continue;
                            }
                            Ok(false) => {}
                            Err(e) => tracing::error!(broker = me, "reset to leader log start failed: {e}"),
                        }
                    }
                    if pd.error_code != 0 {
                        backoff = true;
                        continue;
                    }
                    if pd.diverging_epoch.epoch != -1 || pd.diverging_epoch.end_offset != -1 {
                        match p.truncate_on_divergence(pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset) {
                            Ok(to) => tracing::info!(broker = me, topic = %key.0, partition = key.1, to, "truncated on diverging epoch"),
                            Err(e) => tracing::error!(broker = me, "truncate failed: {e}"),
                        }
                        continue;
                    }
                    let records = pd.records.as_deref().unwrap_or(&[]);
                    if let Err(e) = p.append_as_follower(records, pd.high_watermark, now_ms) {
                        tracing::warn!(broker = me, topic = %key.0, partition = key.1, "follower append failed: {e}");
                        backoff = true;
                    }
                    p.follow_log_start(pd.log_start_offset);
                }
            }
            shared.handle_storage_failures(&mut parts);
        }
        shared.progress.notify_waiters();
        if backoff || resp.error_code != 0 {
            tokio::time::sleep(Duration::from_millis(REPLICA_FETCH_BACKOFF_MS)).await;
        }
    }
}
