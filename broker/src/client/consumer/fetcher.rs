//! The consumer's fetch state: a position per partition it reads, Fetch
//! v12 to each partition's leader (all leaders concurrently), record
//! batches decoded and returned in offset order per partition, at most
//! max.poll.records per poll (the rest stays buffered for the next poll).
//! Which partitions are read (assigned by hand or by the group) is the
//! caller's business: every call names them.
//!
//! OFFSET_OUT_OF_RANGE and never-set positions are resolved with
//! auto.offset.reset through ListOffsets; leadership errors refresh the
//! metadata and the partition is fetched again on the next round.
//!
//! Time: a leader whose fetch failed is not fetched from again until
//! retry.backoff.ms later on the consumer's wall clock ([`ClientClock`](crate::client::ClientClock)),
//! kept as a wall-clock instant as Kafka keeps a node's backoff: a clock
//! stepped back during a backoff holds it until the clock has caught up.

use super::super::config::{ConsumerConfig, OffsetReset};
use super::super::error::ClientError;
use super::super::metadata::{is_stale_metadata_code, Cluster};
use crate::log::batch::{iter_batches, BatchError};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const FETCH_VERSION: i16 = 12;
pub const LIST_OFFSETS_VERSION: i16 = 7;
/// ListOffsets timestamps (Kafka's sentinels).
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;

use super::super::assignor::TopicPartition;

/// One record returned by `poll`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp: i64,
}

/// Fetched but not yet returned records of one partition.
#[derive(Debug, Default)]
struct Buffered {
    records: VecDeque<ConsumerRecord>,
    /// The position once every buffered record has been returned (past any
    /// control records or skipped tail of the last batch).
    next_position: i64,
}

/// Positions, fetched-but-unreturned records and leader backoffs of the
/// partitions a consumer reads (assigned by hand or by its group).
pub(crate) struct Fetcher {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    /// Offset of the next record to return, per partition; absent until
    /// set by `seek`, a committed offset, or auto.offset.reset.
    positions: BTreeMap<TopicPartition, i64>,
    buffers: BTreeMap<TopicPartition, Buffered>,
    /// Leaders (node ids) whose last fetch failed, with the wall-clock ms
    /// before which they are not fetched from again.
    backoff_until_ms: BTreeMap<i32, i64>,
}

impl Fetcher {
    pub(crate) fn new(cluster: Arc<Cluster>, config: ConsumerConfig) -> Fetcher {
        Fetcher { cluster, config, positions: BTreeMap::new(), buffers: BTreeMap::new(), backoff_until_ms: BTreeMap::new() }
    }

    /// Forgets positions and buffered records of partitions not in `keep`:
    /// records of a partition no longer owned are never returned.
    pub(crate) fn retain(&mut self, keep: &BTreeSet<TopicPartition>) {
        self.positions.retain(|tp, _| keep.contains(tp));
        self.buffers.retain(|tp, _| keep.contains(tp));
    }

    /// Sets the next offset to read, dropping what was buffered.
    pub(crate) fn seek(&mut self, tp: TopicPartition, offset: i64) {
        self.buffers.remove(&tp);
        self.positions.insert(tp, offset);
    }

    pub(crate) fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.positions.get(tp).copied()
    }

    /// Up to max.poll.records buffered records of `owned` partitions,
    /// advancing positions; None when nothing is buffered.
    pub(crate) fn drain_buffers(&mut self, owned: &BTreeSet<TopicPartition>) -> Option<Vec<ConsumerRecord>> {
        let mut out = Vec::new();
        for (tp, buf) in self.buffers.iter_mut() {
            assert!(owned.contains(tp), "buffered records of {}-{} which is not owned", tp.0, tp.1);
            while out.len() < self.config.max_poll_records {
                let Some(r) = buf.records.pop_front() else { break };
                self.positions.insert(tp.clone(), r.offset + 1);
                out.push(r);
            }
            if buf.records.is_empty() {
                self.positions.insert(tp.clone(), buf.next_position);
            }
        }
        self.buffers.retain(|_, b| !b.records.is_empty());
        (!out.is_empty()).then_some(out)
    }

    /// Resolves positions of `partitions` that were never set (or were
    /// reset) with auto.offset.reset. Returns false if some could not be
    /// resolved yet.
    pub(crate) async fn resolve_positions(&mut self, partitions: &BTreeSet<TopicPartition>) -> Result<bool, ClientError> {
        let missing: Vec<TopicPartition> = partitions.iter().filter(|tp| !self.positions.contains_key(*tp)).cloned().collect();
        if missing.is_empty() {
            return Ok(true);
        }
        let timestamp = match self.config.auto_offset_reset {
            OffsetReset::Earliest => EARLIEST_TIMESTAMP,
            OffsetReset::Latest => LATEST_TIMESTAMP,
            OffsetReset::None => {
                let (topic, partition) = missing[0].clone();
                return Err(ClientError::NoOffsetForPartition { topic, partition });
            }
        };
        let mut all = true;
        for (tp, r) in list_offsets(&self.cluster, &missing, timestamp).await {
            match r {
                Ok(offset) => {
                    tracing::debug!("{}-{}: position reset to {offset}", tp.0, tp.1);
                    self.positions.insert(tp, offset);
                }
                Err(e) => {
                    tracing::debug!("{}-{}: offset reset failed: {e}", tp.0, tp.1);
                    self.cluster.invalidate();
                    all = false;
                }
            }
        }
        Ok(all)
    }

    /// One Fetch per leader for the `owned` partitions with a position,
    /// concurrently; buffers what comes back. Returns false if some
    /// partition could not be fetched this round.
    pub(crate) async fn fetch_round(&mut self, owned: &BTreeSet<TopicPartition>, max_wait: Duration) -> Result<bool, ClientError> {
        let with_position: Vec<TopicPartition> =
            owned.iter().filter(|tp| self.positions.contains_key(*tp)).cloned().collect();
        let (by_leader, failed) = group_by_leader(&self.cluster, &with_position).await;
        let mut all_ok = failed.is_empty();
        for (tp, e) in failed {
            tracing::debug!("{}-{}: no leader to fetch from: {e}", tp.0, tp.1);
            self.cluster.invalidate();
        }
        let wait_ms = max_wait.as_millis().min(self.config.fetch_max_wait_ms as u128) as i32;
        let now_ms = self.config.clock.now_ms();
        self.backoff_until_ms.retain(|_, until| *until > now_ms);
        let mut tasks = Vec::new();
        for (node, (addr, parts)) in by_leader {
            if self.backoff_until_ms.contains_key(&node) {
                all_ok = false;
                continue;
            }
            let parts: Vec<(TopicPartition, i32, i64)> = parts.into_iter().map(|(tp, epoch)| {
                let position = self.positions[&tp];
                (tp, epoch, position)
            }).collect();
            let request = self.fetch_request(&parts, wait_ms);
            let cluster = self.cluster.clone();
            let handle = tokio::spawn(async move {
                cluster.pool.request(addr, ApiKey::Fetch, FETCH_VERSION, RequestKind::Fetch(request)).await
            });
            tasks.push((node, parts, handle));
        }
        let backoff_ms = i64::try_from(self.config.network.retry_backoff_ms).unwrap_or(i64::MAX);
        for (node, parts, handle) in tasks {
            let result = match handle.await {
                Ok(r) => r,
                Err(e) => Err(ClientError::Network { addr: "(fetch task)".into(), message: e.to_string(), sent: true }),
            };
            match result {
                Ok(ResponseKind::Fetch(resp)) => all_ok &= self.absorb(&parts, resp)?,
                Ok(_) => {
                    tracing::warn!("Fetch: wrong response kind");
                    all_ok = false;
                }
                Err(e) => {
                    tracing::debug!("fetch failed: {e}");
                    self.cluster.invalidate();
                    self.backoff_until_ms.insert(node, self.config.clock.now_ms().saturating_add(backoff_ms));
                    all_ok = false;
                }
            }
        }
        Ok(all_ok)
    }

    /// A Fetch for (partition, leader epoch, position) triples.
    fn fetch_request(&self, parts: &[(TopicPartition, i32, i64)], wait_ms: i32) -> FetchRequest {
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for ((topic, partition), leader_epoch, offset) in parts {
            topics.entry(topic).or_default().push(
                FetchPartition::default()
                    .with_partition(*partition)
                    .with_current_leader_epoch(*leader_epoch)
                    .with_fetch_offset(*offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(self.config.max_partition_fetch_bytes),
            );
        }
        FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(wait_ms)
            .with_min_bytes(self.config.fetch_min_bytes)
            .with_max_bytes(self.config.fetch_max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| FetchTopic::default().with_topic(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
                    .collect(),
            )
    }

    /// Takes one Fetch response in. Returns false if some partition failed.
    fn absorb(&mut self, asked: &[(TopicPartition, i32, i64)], resp: FetchResponse) -> Result<bool, ClientError> {
        if resp.error_code != 0 {
            tracing::debug!("fetch error {}", resp.error_code);
            self.cluster.invalidate();
            return Ok(false);
        }
        let mut all_ok = true;
        for t in resp.responses {
            let topic = t.topic.0.to_string();
            for p in t.partitions {
                let tp = (topic.clone(), p.partition_index);
                // Only answers for what we asked, at the position we asked.
                let Some(&(_, _, offset)) = asked.iter().find(|(a, _, _)| *a == tp) else { continue };
                if self.positions.get(&tp) != Some(&offset) || self.buffers.contains_key(&tp) {
                    continue;
                }
                match p.error_code {
                    0 => {}
                    OFFSET_OUT_OF_RANGE => {
                        tracing::debug!("{}-{}: offset {offset} out of range, resetting", tp.0, tp.1);
                        self.positions.remove(&tp);
                        all_ok = false;
                        continue;
                    }
                    code => {
                        tracing::debug!("{}-{}: fetch error {code}", tp.0, tp.1);
                        if is_stale_metadata_code(code) {
                            self.cluster.invalidate();
                        }
                        all_ok = false;
                        continue;
                    }
                }
                let data = p.records.unwrap_or_default();
                let (records, next) = decode_records(&tp, &data, offset)?;
                if next > offset {
                    self.buffers.insert(tp, Buffered { records: records.into(), next_position: next });
                }
            }
        }
        Ok(all_ok)
    }
}

/// Decodes the whole batches in `data` (a trailing partial batch is
/// ignored, as Kafka does), skipping control batches and records below
/// `position`. Returns the records and the offset after the last batch.
fn decode_records(tp: &TopicPartition, data: &Bytes, position: i64) -> Result<(Vec<ConsumerRecord>, i64), ClientError> {
    let corrupt = |message: String| ClientError::CorruptRecords { topic: tp.0.clone(), partition: tp.1, message };
    let mut out = Vec::new();
    let mut next = position;
    for item in iter_batches(data) {
        let (header, range) = match item {
            Ok(x) => x,
            Err(BatchError::Truncated { .. }) => break,
            Err(e) => return Err(corrupt(e.to_string())),
        };
        if header.last_offset() < position {
            continue;
        }
        next = next.max(header.next_offset());
        if header.is_control() {
            continue;
        }
        let mut bytes = data.slice(range);
        let set = RecordBatchDecoder::decode(&mut bytes).map_err(|e| corrupt(e.to_string()))?;
        for r in set.records {
            if r.offset < position {
                continue;
            }
            out.push(ConsumerRecord {
                topic: tp.0.clone(),
                partition: tp.1,
                offset: r.offset,
                key: r.key,
                value: r.value,
                timestamp: r.timestamp,
            });
        }
    }
    // Offsets within a partition must only go up.
    for w in out.windows(2) {
        if w[1].offset <= w[0].offset {
            return Err(corrupt(format!("offsets not increasing: {} then {}", w[0].offset, w[1].offset)));
        }
    }
    Ok((out, next))
}

/// Partitions grouped by their leader's node id, each with the leader
/// epoch metadata gave it (partitions sharing a leader may be in different
/// epochs), and the partitions without a known leader.
type ByLeader = BTreeMap<i32, (SocketAddr, Vec<(TopicPartition, i32)>)>;

async fn group_by_leader(cluster: &Cluster, partitions: &[TopicPartition]) -> (ByLeader, Vec<(TopicPartition, ClientError)>) {
    let mut by_leader = ByLeader::new();
    let mut failed = Vec::new();
    for tp in partitions {
        match cluster.leader(&tp.0, tp.1).await {
            Ok(l) => by_leader.entry(l.node_id).or_insert((l.addr, Vec::new())).1.push((tp.clone(), l.leader_epoch)),
            Err(e) => failed.push((tp.clone(), e)),
        }
    }
    (by_leader, failed)
}

/// ListOffsets for `partitions` at `timestamp` (LATEST/EARLIEST), one
/// request per leader. Each partition gets its offset or its error.
pub async fn list_offsets(
    cluster: &Cluster,
    partitions: &[TopicPartition],
    timestamp: i64,
) -> Vec<(TopicPartition, Result<i64, ClientError>)> {
    let (by_leader, failed) = group_by_leader(cluster, partitions).await;
    let mut out: Vec<(TopicPartition, Result<i64, ClientError>)> = failed.into_iter().map(|(tp, e)| (tp, Err(e))).collect();
    for (_, (addr, tps)) in by_leader {
        let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for ((t, p), leader_epoch) in &tps {
            topics.entry(t).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(*p)
                    .with_current_leader_epoch(*leader_epoch)
                    .with_timestamp(timestamp),
            );
        }
        let request = ListOffsetsRequest::default().with_replica_id((-1).into()).with_isolation_level(0).with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| ListOffsetsTopic::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
                .collect(),
        );
        let tps: Vec<TopicPartition> = tps.into_iter().map(|(tp, _)| tp).collect();
        let resp = cluster.pool.request(addr, ApiKey::ListOffsets, LIST_OFFSETS_VERSION, RequestKind::ListOffsets(request)).await;
        let resp = match resp {
            Ok(ResponseKind::ListOffsets(r)) => r,
            Ok(_) => {
                let e = ClientError::Malformed("ListOffsets: wrong response kind".into());
                out.extend(tps.into_iter().map(|tp| (tp, Err(e.clone()))));
                continue;
            }
            Err(e) => {
                out.extend(tps.into_iter().map(|tp| (tp, Err(e.clone()))));
                continue;
            }
        };
        for tp in tps {
            let found = resp
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == tp.0)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == tp.1);
            let r = match found {
                None => Err(ClientError::Malformed(format!("ListOffsets response lacks {}-{}", tp.0, tp.1))),
                Some(p) if p.error_code != 0 => {
                    if is_stale_metadata_code(p.error_code) {
                        cluster.invalidate();
                    }
                    Err(ClientError::broker(p.error_code, format!("list offsets {}-{}", tp.0, tp.1), None))
                }
                Some(p) if p.offset < 0 => Err(ClientError::Malformed(format!("ListOffsets: offset {} for {}-{}", p.offset, tp.0, tp.1))),
                Some(p) => Ok(p.offset),
            };
            out.push((tp, r));
        }
    }
    out
}
