//! One partition replica's replication state machine: leader and follower
//! roles, ISR tracking, high watermark and acks=all completion.
//!
//! No network I/O here: the server feeds it produce appends, follower fetch
//! positions and controller decisions, and asks it what to send (ISR changes,
//! fetch positions). The log is the only side effect.
//!
//! Kafka semantics kept:
//! - HW = min LEO over the ISR (plus any replica being added, the "maximal
//!   ISR" of KIP-497), and it never moves backwards on a leader.
//! - acks=all is refused with NOT_ENOUGH_REPLICAS when the ISR is smaller
//!   than min.insync.replicas, and completes with
//!   NOT_ENOUGH_REPLICAS_AFTER_APPEND if it shrank below it meanwhile.
//! - A follower is caught up when it fetched up to the leader's LEO, or up to
//!   the LEO the leader had at its previous fetch (Kafka's lastCaughtUpTime);
//!   it leaves the ISR after `replica.lag.time.max.ms` without catching up.
//! - Followers truncate by leader epoch (KIP-101/279, and the diverging-epoch
//!   field of Fetch v12, KIP-595), never to the high watermark alone.
//! - Stale or future leader epochs in fetches are rejected (KIP-320).

use crate::config::TopicSettings;
use crate::controller::image::{PartitionState, NO_LEADER};
use crate::log::batch::iter_batches;
use crate::log::{AppendInfo, Log, LogError};
use crate::observe::{BatchMark, ObsEvent, ObserverHandle};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use std::collections::BTreeMap;

/// A replica's view of whether it leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower { leader: i32 },
    /// No leader known (or this broker is not a replica any more).
    Offline,
}

/// What the leader knows of one follower (Kafka's `Replica` fetch state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset, from its last fetch; -1 unknown.
    pub log_end_offset: i64,
    pub last_caught_up_ms: u64,
    /// The leader's LEO when this follower last fetched.
    pub last_fetch_leader_leo: i64,
    pub last_fetch_ms: u64,
}

/// Outcome of a fetch served by a leader.
#[derive(Debug, Clone)]
pub struct FetchData {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// KIP-595: the follower's last fetched epoch diverges from ours; it must
    /// truncate to at most `end_offset` (given for `epoch`).
    pub diverging: Option<(i32, i64)>,
}

pub struct Partition {
    pub topic: String,
    pub partition: i32,
    pub broker_id: i32,
    pub log: Log,
    pub settings: TopicSettings,
    /// The controller's latest record for this partition.
    pub state: PartitionState,
    pub role: Role,
    pub high_watermark: i64,
    followers: BTreeMap<i32, FollowerState>,
    /// An AlterPartition in flight: the ISR we asked for.
    pub pending_isr: Option<Vec<i32>>,
    /// An I/O error hit this replica's log: its log dir must go offline
    /// (Kafka's LogDirFailureChannel). Set by any failing log operation.
    pub storage_failed: bool,
    /// Where observations go (the harness's checkers); None in real mode.
    observer: Option<ObserverHandle>,
    /// The HW last reported to the observer.
    observed_hw: i64,
}

pub type PResult<T> = Result<T, ResponseError>;

impl Partition {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: &str,
        partition: i32,
        broker_id: i32,
        log: Log,
        settings: TopicSettings,
        state: PartitionState,
        hw: i64,
        observer: Option<ObserverHandle>,
    ) -> Self {
        let high_watermark = hw.clamp(log.log_start_offset(), log.log_end_offset());
        if let Some(o) = &observer {
            let batches = log.batch_marks().unwrap_or_default();
            let event = ObsEvent::Opened { log_start: log.log_start_offset(), log_end: log.log_end_offset(), hw: high_watermark, batches };
            o.emit(topic, partition, event);
        }
        let mut p = Partition {
            topic: topic.to_string(),
            partition,
            broker_id,
            log,
            settings,
            state: state.clone(),
            role: Role::Offline,
            high_watermark,
            followers: BTreeMap::new(),
            pending_isr: None,
            storage_failed: false,
            observer,
            observed_hw: high_watermark,
        };
        p.apply_state(state, 0);
        p
    }

    fn emit(&self, event: ObsEvent) {
        if let Some(o) = &self.observer {
            o.emit(&self.topic, self.partition, event);
        }
    }

    /// Reports the HW if it changed since the last report.
    fn note_hw(&mut self) {
        if self.high_watermark != self.observed_hw {
            self.observed_hw = self.high_watermark;
            self.emit(ObsEvent::Hw { value: self.high_watermark });
        }
    }

    /// Reports the batches of `records` just appended at `info`'s offsets
    /// (`leader_epoch`: the epoch a leader stamped; None: as in the bytes).
    fn note_append(&self, records: &[u8], info: &AppendInfo, leader_epoch: Option<i32>) {
        if self.observer.is_none() {
            return;
        }
        let mut next = info.first_offset;
        let mut batches = Vec::new();
        for (h, _) in iter_batches(records).map_while(Result::ok) {
            if next > info.last_offset {
                break;
            }
            let last = next + h.last_offset_delta as i64;
            batches.push(BatchMark {
                base_offset: next,
                last_offset: last,
                leader_epoch: leader_epoch.unwrap_or(h.partition_leader_epoch),
                crc: h.crc,
            });
            next = last + 1;
        }
        self.emit(ObsEvent::Append { batches });
    }

    /// Maps a log failure to the client's error and notes whether it was an
    /// I/O failure (the broker then takes the replica's log dir offline).
    fn log_failed(&mut self, e: &LogError) -> ResponseError {
        let code = log_error_code(e);
        if code == ResponseError::KafkaStorageError {
            self.storage_failed = true;
        }
        code
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// Applies the controller's record if it is not older than ours.
    /// Returns true when the role or leader epoch changed.
    pub fn apply_state(&mut self, new: PartitionState, now_ms: u64) -> bool {
        let newer = (new.leader_epoch, new.partition_epoch) >= (self.state.leader_epoch, self.state.partition_epoch);
        if !newer {
            return false;
        }
        let epoch_changed = new.leader_epoch != self.state.leader_epoch;
        let role = if new.leader == self.broker_id {
            Role::Leader
        } else if new.leader == NO_LEADER || !new.replicas.contains(&self.broker_id) {
            Role::Offline
        } else {
            Role::Follower { leader: new.leader }
        };
        let role_changed = role != self.role;
        if role == Role::Leader && (role_changed || epoch_changed) {
            // Becoming leader: every follower starts "caught up now" with an
            // unknown LEO, as Kafka's makeLeader does.
            self.followers = new
                .replicas
                .iter()
                .filter(|&&r| r != self.broker_id)
                .map(|&r| {
                    (r, FollowerState { log_end_offset: -1, last_caught_up_ms: now_ms, last_fetch_leader_leo: -1, last_fetch_ms: now_ms })
                })
                .collect();
            self.pending_isr = None;
            // KIP-279: the new epoch starts at our log end, so followers of
            // the previous epoch learn where it ended before we append.
            if let Err(e) = self.log.assign_leader_epoch(new.leader_epoch) {
                tracing::error!(topic = %self.topic, partition = self.partition, "cannot record leader epoch: {e}");
                self.log_failed(&e);
            }
        }
        if self.pending_isr.as_ref().is_some_and(|p| *p == new.isr) || new.partition_epoch != self.state.partition_epoch {
            self.pending_isr = None;
        }
        let record_changed = new.leader != self.state.leader || new.isr != self.state.isr;
        self.state = new;
        self.role = role;
        if record_changed {
            self.emit(ObsEvent::PartitionState { leader: self.state.leader, isr: self.state.isr.clone() });
        }
        if epoch_changed {
            self.emit(ObsEvent::Epoch { leader_epoch: self.state.leader_epoch });
        }
        if role == Role::Leader && (role_changed || epoch_changed) {
            self.emit(ObsEvent::BecameLeader { epoch: self.state.leader_epoch });
        }
        if self.role == Role::Leader {
            self.maybe_advance_hw();
        }
        role_changed || epoch_changed
    }

    /// The ISR used for the HW: current ISR plus replicas being added.
    fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.state.isr.clone();
        if let Some(p) = &self.pending_isr {
            for r in p {
                if !isr.contains(r) {
                    isr.push(*r);
                }
            }
        }
        isr
    }

    /// Leader only: HW = min LEO of the maximal ISR; never decreases, and
    /// does not move while the ISR is smaller than min.insync.replicas
    /// (KIP-966: a write the ISR cannot make durable is not committed).
    /// Returns true if it advanced.
    pub fn maybe_advance_hw(&mut self) -> bool {
        if self.role != Role::Leader {
            return false;
        }
        if (self.maximal_isr().len() as i64) < self.settings.min_insync_replicas {
            return false;
        }
        let leo = self.log.log_end_offset();
        let mut new_hw = leo;
        for r in self.maximal_isr() {
            if r == self.broker_id {
                continue;
            }
            let f = self.followers.get(&r).map(|f| f.log_end_offset).unwrap_or(-1);
            new_hw = new_hw.min(f);
        }
        if new_hw > self.high_watermark {
            assert!(new_hw <= leo, "HW {new_hw} beyond LEO {leo}");
            self.high_watermark = new_hw;
            self.note_hw();
            true
        } else {
            false
        }
    }

    fn check_leader_epoch(&self, current_leader_epoch: i32) -> PResult<()> {
        if current_leader_epoch < 0 {
            return Ok(());
        }
        if current_leader_epoch != self.state.leader_epoch {
            tracing::debug!(
                topic = %self.topic,
                partition = self.partition,
                ours = self.state.leader_epoch,
                theirs = current_leader_epoch,
                "KIP-320 epoch mismatch"
            );
        }
        if current_leader_epoch < self.state.leader_epoch {
            return Err(ResponseError::FencedLeaderEpoch);
        }
        if current_leader_epoch > self.state.leader_epoch {
            return Err(ResponseError::UnknownLeaderEpoch);
        }
        Ok(())
    }

    /// Produce path. `acks == -1` checks min.insync.replicas first.
    pub fn append_as_leader(&mut self, records: &[u8], acks: i16, now_ms: u64) -> PResult<AppendInfo> {
        if self.role != Role::Leader {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        // Kafka checks each batch against max.message.bytes (the topic
        // override, else the broker's message.max.bytes): nothing of the
        // request's partition is appended if one is too large.
        for item in crate::log::batch::iter_batches(records) {
            match item {
                Ok((h, _)) if h.total_len() > self.settings.max_message_bytes => return Err(ResponseError::MessageTooLarge),
                Ok(_) => {}
                Err(_) => return Err(ResponseError::CorruptMessage),
            }
        }
        if acks == -1 && (self.state.isr.len() as i64) < self.settings.min_insync_replicas {
            return Err(ResponseError::NotEnoughReplicas);
        }
        let recompressed;
        let records = match crate::log::records::codec_by_name(&self.settings.compression_type) {
            None => records, // `producer`: stored as sent
            Some(target) => {
                recompressed = recompress_all(records, target)?;
                &recompressed[..]
            }
        };
        let info = match self.log.append_as_leader(records, self.state.leader_epoch) {
            Ok(info) => info,
            Err(e) => return Err(self.log_failed(&e)),
        };
        if info.duplicate {
            // KIP-98: a retried batch is answered with its original offsets
            // (acks=all then waits for the original to be replicated).
            return Ok(info);
        }
        self.note_append(records, &info, Some(self.state.leader_epoch));
        // flush.messages / flush.ms: the fsync happens before the append can
        // count towards the HW (and so before any acknowledgement).
        if let Err(e) = self.log.maybe_flush(now_ms) {
            return Err(self.log_failed(&e));
        }
        self.maybe_advance_hw();
        Ok(info)
    }

    /// Whether an acks=all append ending at `last_offset` (in `leader_epoch`)
    /// is done: Some(Ok) replicated, Some(Err) failed, None still waiting.
    pub fn acks_all_status(&self, last_offset: i64, leader_epoch: i32) -> Option<PResult<()>> {
        if self.role != Role::Leader || self.state.leader_epoch != leader_epoch {
            return Some(Err(ResponseError::NotLeaderOrFollower));
        }
        let under_min_isr = (self.state.isr.len() as i64) < self.settings.min_insync_replicas;
        if self.high_watermark > last_offset {
            if under_min_isr {
                return Some(Err(ResponseError::NotEnoughReplicasAfterAppend));
            }
            return Some(Ok(()));
        }
        if under_min_isr && self.pending_isr.as_ref().is_none_or(|p| (p.len() as i64) < self.settings.min_insync_replicas) {
            // Appended, but the ISR shrank below min.insync.replicas: the HW
            // cannot reach this write until the ISR grows back.
            return Some(Err(ResponseError::NotEnoughReplicasAfterAppend));
        }
        None
    }

    /// A consumer fetch: committed data only (below the HW).
    pub fn read_for_consumer(&mut self, offset: i64, current_leader_epoch: i32, max_bytes: usize) -> PResult<FetchData> {
        if self.role != Role::Leader {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        self.check_leader_epoch(current_leader_epoch)?;
        if offset < self.log.log_start_offset() || offset > self.log.log_end_offset() {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let records = if offset < self.high_watermark {
            match self.log.read(offset, self.high_watermark, max_bytes) {
                Ok(r) => r,
                Err(e) => return Err(self.log_failed(&e)),
            }
        } else {
            Bytes::new()
        };
        Ok(FetchData {
            records,
            high_watermark: self.high_watermark,
            log_start_offset: self.log.log_start_offset(),
            log_end_offset: self.log.log_end_offset(),
            diverging: None,
        })
    }

    /// A follower fetch at `fetch_offset`: validates the epoch, detects
    /// divergence, records the follower's progress and may advance the HW.
    pub fn read_for_follower(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        current_leader_epoch: i32,
        max_bytes: usize,
        now_ms: u64,
    ) -> PResult<FetchData> {
        if self.role != Role::Leader {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        self.check_leader_epoch(current_leader_epoch)?;
        if !self.state.replicas.contains(&replica) {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        let leo = self.log.log_end_offset();
        let base = FetchData {
            records: Bytes::new(),
            high_watermark: self.high_watermark,
            log_start_offset: self.log.log_start_offset(),
            log_end_offset: leo,
            diverging: None,
        };
        if last_fetched_epoch >= 0 {
            match self.log.end_offset_for_epoch(last_fetched_epoch) {
                Some((epoch, end)) if epoch != last_fetched_epoch || end < fetch_offset => {
                    return Ok(FetchData { diverging: Some((epoch, end)), ..base });
                }
                None => return Ok(FetchData { diverging: Some((-1, self.log.log_start_offset())), ..base }),
                _ => {}
            }
        }
        if fetch_offset > leo {
            // The follower has more than we do (and no epoch told it so):
            // it must truncate to our log end.
            let epoch = self.log.latest_epoch().unwrap_or(-1);
            return Ok(FetchData { diverging: Some((epoch, leo)), ..base });
        }
        if fetch_offset < self.log.log_start_offset() {
            return Err(ResponseError::OffsetOutOfRange);
        }
        // Kafka's Replica.updateFetchState.
        let f = self.followers.entry(replica).or_insert(FollowerState {
            log_end_offset: -1,
            last_caught_up_ms: 0,
            last_fetch_leader_leo: -1,
            last_fetch_ms: now_ms,
        });
        if fetch_offset >= leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_leader_leo = leo;
        f.last_fetch_ms = now_ms;
        self.maybe_advance_hw();
        let records = if fetch_offset < leo {
            match self.log.read(fetch_offset, leo, max_bytes) {
                Ok(r) => r,
                Err(e) => return Err(self.log_failed(&e)),
            }
        } else {
            Bytes::new()
        };
        Ok(FetchData { records, high_watermark: self.high_watermark, ..base })
    }

    /// Leader only: the ISR to ask the controller for, if it should change
    /// (shrink laggards first; otherwise add one caught-up follower).
    pub fn wanted_isr_change(&self, lag_time_max_ms: u64, now_ms: u64) -> Option<Vec<i32>> {
        if self.role != Role::Leader || self.pending_isr.is_some() {
            return None;
        }
        let isr = &self.state.isr;
        let lagging: Vec<i32> = isr
            .iter()
            .copied()
            .filter(|&r| r != self.broker_id)
            .filter(|r| {
                let f = self.followers.get(r);
                f.is_none_or(|f| now_ms.saturating_sub(f.last_caught_up_ms) > lag_time_max_ms)
            })
            .collect();
        if !lagging.is_empty() {
            return Some(isr.iter().copied().filter(|r| !lagging.contains(r)).collect());
        }
        let epoch_start = self
            .log
            .end_offset_for_epoch(self.state.leader_epoch - 1)
            .map(|(_, o)| o)
            .unwrap_or(0);
        for (&r, f) in &self.followers {
            if !isr.contains(&r)
                && f.log_end_offset >= self.high_watermark
                && f.log_end_offset >= epoch_start
                && now_ms.saturating_sub(f.last_caught_up_ms) <= lag_time_max_ms
            {
                let mut new_isr = isr.clone();
                new_isr.push(r);
                new_isr.sort_unstable();
                return Some(new_isr);
            }
        }
        None
    }

    /// Follower: (fetch offset, last fetched epoch) for its next fetch.
    pub fn follower_fetch_position(&self) -> (i64, i32) {
        (self.log.log_end_offset(), self.log.latest_epoch().unwrap_or(-1))
    }

    /// Follower: the leader says our log diverges at (epoch, end_offset).
    /// Truncate to the end of that epoch in our own log, at most end_offset.
    pub fn truncate_on_divergence(&mut self, epoch: i32, end_offset: i64) -> PResult<i64> {
        let ours = match self.log.end_offset_for_epoch(epoch) {
            Some((_, o)) => o,
            None => self.log.log_start_offset(),
        };
        let target = end_offset.min(ours).min(self.log.log_end_offset());
        if let Err(e) = self.log.truncate_to(target) {
            return Err(self.log_failed(&e));
        }
        self.emit(ObsEvent::Truncate { to: target });
        self.high_watermark = self.high_watermark.min(target);
        self.note_hw();
        Ok(target)
    }

    /// Housekeeping for `cleanup.policy`: retention (delete) and compaction.
    /// Returns (segments deleted, segments compacted). `wall_ms` is ms since
    /// the epoch. Both work below the HW only.
    pub fn retention_pass(&mut self, wall_ms: i64) -> PResult<usize> {
        if !self.settings.cleanup_policy.delete {
            return Ok(0);
        }
        self.log
            .delete_retained_segments(wall_ms, self.settings.retention_ms, self.settings.retention_bytes, self.high_watermark)
            .map_err(|e| log_error_code(&e))
    }

    /// `producer.id.expiration.ms`: forgets idempotent producers idle that
    /// long (`wall_ms`: ms since the epoch). Returns how many went.
    pub fn expire_producers(&mut self, wall_ms: i64) -> usize {
        self.log.remove_expired_producers(wall_ms, self.settings.producer_id_expiration_ms)
    }

    /// One cleaner pass if the topic is compacted.
    pub fn clean_pass(&mut self, wall_ms: i64) -> PResult<crate::log::cleaner::CleanStats> {
        if !self.settings.cleanup_policy.compact {
            return Ok(Default::default());
        }
        self.log.clean(self.high_watermark, wall_ms, self.settings.delete_retention_ms).map_err(|e| log_error_code(&e))
    }

    /// Follower: the leader's log start offset (Fetch response) moved past
    /// whole segments of ours; delete them.
    pub fn follow_log_start(&mut self, leader_log_start_offset: i64) {
        let upto = leader_log_start_offset.min(self.high_watermark);
        if upto > self.log.log_start_offset() {
            if let Err(e) = self.log.advance_log_start(upto) {
                tracing::warn!(topic = %self.topic, partition = self.partition, "follower retention failed: {e}");
            }
        }
    }

    /// Follower: the leader answered OFFSET_OUT_OF_RANGE and its log starts
    /// past our log end (retention removed what we miss): restart our log at
    /// the leader's log start offset, as Kafka's fetcher does.
    pub fn reset_to_leader_log_start(&mut self, leader_log_start_offset: i64) -> PResult<bool> {
        if leader_log_start_offset <= self.log.log_end_offset() {
            return Ok(false);
        }
        self.log.truncate_fully_and_start_at(leader_log_start_offset).map_err(|e| log_error_code(&e))?;
        self.high_watermark = leader_log_start_offset;
        Ok(true)
    }

    /// Follower: appends fetched batches and takes the leader's HW.
    pub fn append_as_follower(&mut self, records: &[u8], leader_hw: i64, now_ms: u64) -> PResult<()> {
        if !records.is_empty() {
            let info = match self.log.append_as_follower(records) {
                Ok(info) => info,
                Err(e) => return Err(self.log_failed(&e)),
            };
            self.note_append(records, &info, None);
            // The fsync comes before the next fetch reports the new LEO.
            if let Err(e) = self.log.maybe_flush(now_ms) {
                return Err(self.log_failed(&e));
            }
        }
        let hw = leader_hw.min(self.log.log_end_offset());
        if hw > self.high_watermark {
            self.high_watermark = hw;
            self.note_hw();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// `compression.type` other than `producer`: every batch not already in the
/// target codec is decoded and re-encoded with it (Kafka's LogValidator
/// recompression); batches already in it keep their bytes.
fn recompress_all(records: &[u8], target: kafka_protocol::records::Compression) -> PResult<Vec<u8>> {
    let mut out = Vec::with_capacity(records.len());
    for item in crate::log::batch::iter_batches(records) {
        let (h, range) = item.map_err(|_| ResponseError::CorruptMessage)?;
        let bytes = &records[range];
        h.validate(bytes).map_err(|_| ResponseError::CorruptMessage)?;
        if h.compression() == target as u8 || h.is_control() {
            out.extend_from_slice(bytes);
        } else {
            out.extend(crate::log::records::recompress(bytes, target).map_err(|_| ResponseError::CorruptMessage)?);
        }
    }
    Ok(out)
}

impl Partition {
    /// Time-based flush (`flush.ms`), from the housekeeping loop.
    pub fn maybe_flush(&mut self, now_ms: u64) -> PResult<()> {
        match self.log.maybe_flush(now_ms) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.log_failed(&e)),
        }
    }

    /// Reports that the replica went offline with its log dir.
    pub fn note_offline(&self, dir: &str) {
        self.emit(ObsEvent::Offline { dir: dir.to_string() });
    }
}

/// Maps a log failure to the Kafka error a client sees.
pub fn log_error_code(e: &crate::log::LogError) -> ResponseError {
    use crate::log::producer_state::ProducerError;
    use crate::log::LogError as E;
    match e {
        E::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        E::CorruptBatch(_) | E::InvalidRecords(_) => ResponseError::CorruptMessage,
        E::StaleLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        E::NonContiguous { .. } => ResponseError::UnknownServerError,
        E::Producer(p) => match p {
            ProducerError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            ProducerError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            ProducerError::InvalidSequence { .. } => ResponseError::InvalidRecord,
        },
        E::CorruptCheckpoint { .. } | E::Io(_) | E::Offline(_) => ResponseError::KafkaStorageError,
    }
}
