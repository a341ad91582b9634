//! The group coordinator's I/O layer: routes a group to the offsets
//! partition this broker leads, parks JoinGroup/SyncGroup requests until
//! the state machine ([`super::group`]) answers them, persists group and
//! offset records to `__consumer_offsets` through the normal leader append
//! path (answered once the high watermark covers them, as acks=all), loads
//! an offsets partition's groups when this broker becomes its leader and
//! unloads them when it stops leading, and runs the timers on tokio time.
//!
//! Kafka semantics kept (GroupMetadataManager):
//! - A broker that does not lead the group's offsets partition answers
//!   NOT_COORDINATOR; a leader whose load failed, COORDINATOR_LOAD_IN_PROGRESS.
//! - Loading reads the whole log: the latest record per key wins and a
//!   tombstone deletes.
//! - Append failures map as `storeGroup`/`storeOffsets` do:
//!   NOT_LEADER_OR_FOLLOWER and KAFKA_STORAGE_ERROR → NOT_COORDINATOR;
//!   UNKNOWN_TOPIC_OR_PARTITION and NOT_ENOUGH_REPLICAS(_AFTER_APPEND) →
//!   COORDINATOR_NOT_AVAILABLE; REQUEST_TIMED_OUT stays; too-large records
//!   → UNKNOWN_SERVER_ERROR.

use super::group::{Coordinator, Effect, GroupConfig, JoinResult, SyncResult, TopicPartition, Waiter};
use super::offsets_topic::{self as ot, RecordKey, RecordValue};
use super::placement::{partition_for, GROUP_METADATA_TOPIC};
use crate::config::group_defaults as d;
use crate::config::Settings;
use crate::log::batch::iter_batches;
use crate::log::records::{decode_batch, keyed_batch};
use crate::server::BrokerShared;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// How often leadership of offsets partitions is re-checked (load/unload)
/// when no deadline is nearer.
pub const RECONCILE_INTERVAL_MS: i64 = 250;
/// Bytes read per step while loading an offsets partition.
const LOAD_READ_BYTES: usize = 1 << 20;
/// Bound on parked JoinGroup/SyncGroup requests per broker.
pub const WAITERS_MAX: usize = 100_000;

/// The answer to a parked request.
#[derive(Debug)]
pub enum Reply {
    Join(JoinResult),
    Sync(SyncResult),
}

struct Inner {
    machine: Coordinator,
    waiters: BTreeMap<Waiter, oneshot::Sender<Reply>>,
    next_waiter: Waiter,
    /// Offsets partition → the leader epoch its groups were loaded at.
    loaded: BTreeMap<i32, i32>,
    last_retention_check_ms: i64,
}

/// The broker's group coordinator (one per broker process).
pub struct GroupRuntime {
    inner: Mutex<Inner>,
    /// Wakes the timer loop (a nearer deadline may exist).
    wake: Notify,
    retention_check_interval_ms: i64,
    commit_timeout_ms: u64,
}

/// The coordinator settings from broker config (Kafka's names).
pub fn group_config(settings: &Settings) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: settings.i64_or("group.initial.rebalance.delay.ms", d::GROUP_INITIAL_REBALANCE_DELAY_MS),
        min_session_timeout_ms: settings.i64_or("group.min.session.timeout.ms", i64::from(d::GROUP_MIN_SESSION_TIMEOUT_MS)) as i32,
        max_session_timeout_ms: settings.i64_or("group.max.session.timeout.ms", i64::from(d::GROUP_MAX_SESSION_TIMEOUT_MS)) as i32,
        max_size: settings.i64_or("group.max.size", d::GROUP_MAX_SIZE as i64).max(1) as usize,
        offsets_retention_ms: settings.i64_or("offsets.retention.minutes", d::OFFSETS_RETENTION_MINUTES) * 60_000,
        offset_metadata_max_bytes: settings.i64_or("offset.metadata.max.bytes", d::OFFSET_METADATA_MAX_BYTES as i64).max(0) as usize,
    }
}

impl GroupRuntime {
    /// `member_id_prefix` makes generated member ids unique per broker
    /// process (broker id and incarnation), without randomness.
    pub fn new(settings: &Settings, member_id_prefix: String) -> Self {
        GroupRuntime {
            inner: Mutex::new(Inner {
                machine: Coordinator::new(group_config(settings), member_id_prefix),
                waiters: BTreeMap::new(),
                next_waiter: 0,
                loaded: BTreeMap::new(),
                last_retention_check_ms: 0,
            }),
            wake: Notify::new(),
            retention_check_interval_ms: settings.u64_or("offsets.retention.check.interval.ms", d::OFFSETS_RETENTION_CHECK_INTERVAL_MS).min(i64::MAX as u64)
                as i64,
            commit_timeout_ms: settings.u64_or("offsets.commit.timeout.ms", d::OFFSETS_COMMIT_TIMEOUT_MS),
        }
    }
}

/// Runs `f` on the state machine of the broker's coordinator for
/// `group_id`, after checking that this broker coordinates it (loading the
/// partition first if needed); applies the effects `f` returns.
pub fn with_group<T>(shared: &Arc<BrokerShared>, group_id: &str, f: impl FnOnce(&mut Coordinator, i64, i32) -> (T, Vec<Effect>)) -> Result<T, ResponseError> {
    let partition = route(shared, group_id)?;
    let now_ms = shared.wall_ms();
    let mut inner = shared.groups.inner.lock().unwrap();
    let (out, fx) = f(&mut inner.machine, now_ms, partition);
    apply(shared, &mut inner, fx);
    drop(inner);
    shared.groups.wake.notify_one();
    Ok(out)
}

/// Parks a request: `f` gets a fresh waiter id; the reply arrives when the
/// state machine answers it (or NOT_COORDINATOR if it is unloaded).
pub async fn park(
    shared: &Arc<BrokerShared>,
    group_id: &str,
    f: impl FnOnce(&mut Coordinator, i64, i32, Waiter) -> Vec<Effect>,
) -> Result<Reply, ResponseError> {
    let partition = route(shared, group_id)?;
    let now_ms = shared.wall_ms();
    let rx = {
        let mut inner = shared.groups.inner.lock().unwrap();
        if inner.waiters.len() >= WAITERS_MAX {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        inner.next_waiter += 1;
        let waiter = inner.next_waiter;
        let (tx, rx) = oneshot::channel();
        inner.waiters.insert(waiter, tx);
        let epoch = inner.loaded.get(&partition).copied().unwrap_or(-1);
        inner.machine.set_member_id_prefix(format!("{}.{epoch}", shared.config.id));
        let fx = f(&mut inner.machine, now_ms, partition, waiter);
        apply(shared, &mut inner, fx);
        rx
    };
    shared.groups.wake.notify_one();
    rx.await.map_err(|_| ResponseError::NotCoordinator)
}

/// (group id, protocol type, state) of every group this broker
/// coordinates now.
pub fn list_groups(shared: &Arc<BrokerShared>) -> Vec<(String, String, &'static str)> {
    reconcile(shared);
    shared.groups.inner.lock().unwrap().machine.list()
}

/// The offsets partition of `group_id` if this broker leads it and has
/// loaded it.
fn route(shared: &Arc<BrokerShared>, group_id: &str) -> Result<i32, ResponseError> {
    let count = {
        let image = shared.image.lock().unwrap();
        image.topics.get(GROUP_METADATA_TOPIC).map(|t| t.partitions.len()).unwrap_or(0)
    };
    if count == 0 {
        return Err(ResponseError::NotCoordinator);
    }
    let partition = partition_for(group_id, count as i32);
    let epoch = leader_epoch(shared, partition).ok_or(ResponseError::NotCoordinator)?;
    let mut inner = shared.groups.inner.lock().unwrap();
    if inner.loaded.get(&partition) != Some(&epoch) {
        load(shared, &mut inner, partition, epoch).map_err(|e| {
            tracing::warn!(broker = shared.config.id, partition, "cannot load offsets partition: {e}");
            ResponseError::CoordinatorLoadInProgress
        })?;
    }
    Ok(partition)
}

/// Our leader epoch of offsets partition `partition`, if we lead it.
fn leader_epoch(shared: &BrokerShared, partition: i32) -> Option<i32> {
    let parts = shared.partitions.lock().unwrap();
    parts.get(&(GROUP_METADATA_TOPIC.to_string(), partition)).filter(|p| p.is_leader()).map(|p| p.state.leader_epoch)
}

/// Reads offsets partition `partition` and installs its groups (replacing
/// whatever was loaded before).
fn load(shared: &Arc<BrokerShared>, inner: &mut Inner, partition: i32, epoch: i32) -> anyhow::Result<()> {
    let fx = inner.machine.unload_partition(partition);
    inner.loaded.remove(&partition);
    apply(shared, inner, fx);
    let mut groups: BTreeMap<String, Option<ot::GroupValue>> = BTreeMap::new();
    let mut offsets: BTreeMap<String, BTreeMap<TopicPartition, ot::OffsetValue>> = BTreeMap::new();
    let mut records = 0usize;
    {
        let parts = shared.partitions.lock().unwrap();
        let p = parts.get(&(GROUP_METADATA_TOPIC.to_string(), partition)).ok_or_else(|| anyhow::anyhow!("replica gone"))?;
        anyhow::ensure!(p.is_leader() && p.state.leader_epoch == epoch, "leadership changed while loading");
        let end = p.log.log_end_offset();
        let mut next = p.log.log_start_offset();
        while next < end {
            let bytes = p.log.read(next, end, LOAD_READ_BYTES).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if bytes.is_empty() {
                break;
            }
            for item in iter_batches(&bytes) {
                let (h, range) = item.map_err(|e| anyhow::anyhow!("{e:?}"))?;
                next = h.next_offset();
                if h.is_control() {
                    continue;
                }
                for r in decode_batch(&bytes[range])? {
                    let Some(key) = r.key.as_deref() else { continue };
                    let key = ot::decode_key(key)?;
                    let value = ot::decode_value(&key, r.value.as_deref())?;
                    records += 1;
                    match (key, value) {
                        (RecordKey::Offset { group, topic, partition }, Some(RecordValue::Offset(v))) => {
                            offsets.entry(group.clone()).or_default().insert((topic, partition), v);
                            groups.entry(group).or_insert(None);
                        }
                        (RecordKey::Offset { group, topic, partition }, None) => {
                            offsets.entry(group).or_default().remove(&(topic, partition));
                        }
                        (RecordKey::Group { group }, Some(RecordValue::Group(v))) => {
                            groups.insert(group, Some(v));
                        }
                        (RecordKey::Group { group }, None) => {
                            groups.remove(&group);
                        }
                        (k, v) => anyhow::bail!("record {k:?} with mismatched value {v:?}"),
                    }
                }
            }
        }
    }
    let now_ms = shared.wall_ms();
    let mut loaded_groups = 0;
    for (group, offs) in &offsets {
        if !offs.is_empty() && !groups.contains_key(group) {
            // Offsets of a group whose metadata was deleted (or never
            // written): an Empty group holds them.
            groups.insert(group.clone(), None);
        }
    }
    for (group, value) in groups {
        let offs = offsets.remove(&group).unwrap_or_default();
        if value.is_none() && offs.is_empty() {
            continue;
        }
        inner.machine.load_group(now_ms, partition, &group, value, offs);
        loaded_groups += 1;
    }
    inner.loaded.insert(partition, epoch);
    tracing::info!(broker = shared.config.id, partition, epoch, records, groups = loaded_groups, "loaded offsets partition");
    Ok(())
}

/// Applies the state machine's effects: replies go to parked requests;
/// records are appended now (so the log follows the machine's order) and
/// their replication is awaited in a task.
fn apply(shared: &Arc<BrokerShared>, inner: &mut Inner, fx: Vec<Effect>) {
    for e in fx {
        match e {
            Effect::Join(w, r) => reply(inner, w, Reply::Join(r)),
            Effect::Sync(w, r) => reply(inner, w, Reply::Sync(r)),
            Effect::StoreGroup { group_id, partition, value, sync_generation } => {
                let key = ot::encode_key(&RecordKey::Group { group: group_id.clone() });
                let appended = append(shared, partition, vec![(key, Some(ot::encode_group_value(&value)))]);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let result = match appended {
                        Ok(at) => wait_replicated(&shared, partition, at).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = result {
                        tracing::info!(broker = shared.config.id, group = %group_id, "group record not stored: {e:?}");
                    }
                    if let Some(generation) = sync_generation {
                        let mut inner = shared.groups.inner.lock().unwrap();
                        let fx = inner.machine.group_stored(shared.wall_ms(), &group_id, generation, result);
                        apply(&shared, &mut inner, fx);
                    }
                });
            }
            Effect::Tombstones { group_id, partition, offsets, group } => {
                let records = tombstones(&group_id, &offsets, group);
                // Removed from memory at once, as Kafka's cleanupGroupMetadata.
                inner.machine.offsets_deleted(&group_id, &offsets);
                if group {
                    inner.machine.group_deleted(&group_id);
                }
                if let Err(e) = append(shared, partition, records) {
                    tracing::warn!(broker = shared.config.id, group = %group_id, "tombstones not written: {e:?}");
                }
            }
        }
    }
}

/// Tombstones for `group_id`'s `offsets` (and its group record).
fn tombstones(group_id: &str, offsets: &[TopicPartition], group: bool) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> =
        offsets.iter().map(|(t, p)| (ot::encode_key(&RecordKey::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p }), None)).collect();
    if group {
        records.push((ot::encode_key(&RecordKey::Group { group: group_id.to_string() }), None));
    }
    records
}

/// An offset commit: validated by the state machine, appended, answered
/// once replicated; per partition, None = stored.
pub async fn commit(
    shared: &Arc<BrokerShared>,
    group_id: &str,
    generation: i32,
    member_id: &str,
    instance: Option<&str>,
    offsets: Vec<(TopicPartition, i64, i32, Option<String>)>,
) -> Result<BTreeMap<TopicPartition, Option<ResponseError>>, ResponseError> {
    let partition = route(shared, group_id)?;
    let now_ms = shared.wall_ms();
    let (plan, appended) = {
        let mut inner = shared.groups.inner.lock().unwrap();
        let plan = inner.machine.validate_commit(now_ms, partition, group_id, generation, member_id, instance, offsets)?;
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = plan
            .offsets
            .iter()
            .map(|((t, p), v)| {
                let key = RecordKey::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p };
                (ot::encode_key(&key), Some(ot::encode_offset_value(v)))
            })
            .collect();
        let appended = (!records.is_empty()).then(|| append(shared, partition, records));
        (plan, appended)
    };
    let stored = match appended {
        None => Ok(()),
        Some(Ok(at)) => wait_replicated(shared, partition, at).await,
        Some(Err(e)) => Err(e),
    };
    let mut out: BTreeMap<TopicPartition, Option<ResponseError>> = plan.offsets.iter().map(|(tp, _)| (tp.clone(), stored.err())).collect();
    out.extend(plan.refused.into_iter().map(|(tp, e)| (tp, Some(e))));
    if stored.is_ok() && !plan.offsets.is_empty() {
        let mut inner = shared.groups.inner.lock().unwrap();
        inner.machine.offsets_stored(now_ms, partition, group_id, plan.offsets);
    }
    Ok(out)
}

/// OffsetDelete: tombstones for the deletable partitions; per partition
/// (in request order) None = deleted.
pub async fn delete_offsets(shared: &Arc<BrokerShared>, group_id: &str, tps: &[TopicPartition]) -> Result<Vec<Option<ResponseError>>, ResponseError> {
    let partition = route(shared, group_id)?;
    let (mut errors, appended) = {
        let mut inner = shared.groups.inner.lock().unwrap();
        let (_, errors) = inner.machine.validate_offset_delete(group_id, tps)?;
        let deletable: Vec<TopicPartition> = tps.iter().zip(&errors).filter(|(_, e)| e.is_none()).map(|(tp, _)| tp.clone()).collect();
        inner.machine.offsets_deleted(group_id, &deletable);
        let appended = (!deletable.is_empty()).then(|| append(shared, partition, tombstones(group_id, &deletable, false)));
        (errors, appended)
    };
    let stored = match appended {
        None => Ok(()),
        Some(Ok(at)) => wait_replicated(shared, partition, at).await,
        Some(Err(e)) => Err(e),
    };
    if let Err(e) = stored {
        for slot in errors.iter_mut().filter(|e| e.is_none()) {
            *slot = Some(e);
        }
    }
    Ok(errors)
}

/// DeleteGroups for one group: an Empty group's offsets and metadata are
/// tombstoned and it is gone.
pub async fn delete_group(shared: &Arc<BrokerShared>, group_id: &str) -> Result<(), ResponseError> {
    let partition = route(shared, group_id)?;
    let appended = {
        let mut inner = shared.groups.inner.lock().unwrap();
        let (_, offsets) = inner.machine.validate_delete_group(group_id)?;
        inner.machine.group_deleted(group_id);
        append(shared, partition, tombstones(group_id, &offsets, true))
    };
    wait_replicated(shared, partition, appended?).await
}

fn reply(inner: &mut Inner, w: Waiter, r: Reply) {
    if let Some(tx) = inner.waiters.remove(&w) {
        let _ = tx.send(r); // the client may have gone
    }
}

/// Where an append ended: (last offset, leader epoch).
pub type Appended = (i64, i32);

/// Appends keyed records (a `None` value is a tombstone) to offsets
/// partition `partition` as leader.
pub fn append(shared: &Arc<BrokerShared>, partition: i32, records: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Appended, ResponseError> {
    assert!(!records.is_empty(), "empty append to {GROUP_METADATA_TOPIC}-{partition}");
    let records: Vec<(Option<Bytes>, Option<Bytes>)> = records.into_iter().map(|(k, v)| (Some(Bytes::from(k)), v.map(Bytes::from))).collect();
    let batch = keyed_batch(-1, -1, -1, &records, shared.wall_ms()).map_err(|_| ResponseError::UnknownServerError)?;
    let now_ms = shared.now_ms();
    let result = {
        let mut parts = shared.partitions.lock().unwrap();
        let r = match parts.get_mut(&(GROUP_METADATA_TOPIC.to_string(), partition)) {
            None => Err(ResponseError::NotLeaderOrFollower),
            Some(p) => p.append_as_leader(&batch, -1, now_ms).map(|info| (info.last_offset, p.state.leader_epoch)),
        };
        shared.handle_storage_failures(&mut parts);
        r
    };
    shared.progress.notify_waiters();
    result.map_err(store_error)
}

/// Waits until the high watermark covers an append (acks=all), at most
/// `offsets.commit.timeout.ms`.
pub async fn wait_replicated(shared: &Arc<BrokerShared>, partition: i32, (last_offset, leader_epoch): Appended) -> Result<(), ResponseError> {
    let key = (GROUP_METADATA_TOPIC.to_string(), partition);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(shared.groups.commit_timeout_ms);
    loop {
        let notified = shared.progress.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let status = match shared.partitions.lock().unwrap().get(&key) {
            Some(p) => p.acks_all_status(last_offset, leader_epoch),
            None => Some(Err(ResponseError::NotLeaderOrFollower)),
        };
        if let Some(done) = status {
            return done.map_err(store_error);
        }
        if tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), notified).await.is_err() {
            return Err(ResponseError::RequestTimedOut);
        }
    }
}

/// GroupMetadataManager's mapping of append errors to coordinator errors.
fn store_error(e: ResponseError) -> ResponseError {
    match e {
        ResponseError::UnknownTopicOrPartition | ResponseError::NotEnoughReplicas | ResponseError::NotEnoughReplicasAfterAppend => {
            ResponseError::CoordinatorNotAvailable
        }
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => ResponseError::NotCoordinator,
        ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge | ResponseError::InvalidFetchSize => ResponseError::UnknownServerError,
        other => other,
    }
}

/// Timers, offset retention, and loading/unloading offsets partitions as
/// leadership moves. Runs for the broker's lifetime.
pub async fn run(shared: Arc<BrokerShared>) {
    loop {
        reconcile(&shared);
        let now_ms = shared.wall_ms();
        let next = {
            let mut inner = shared.groups.inner.lock().unwrap();
            let fx = inner.machine.tick(now_ms);
            apply(&shared, &mut inner, fx);
            if now_ms - inner.last_retention_check_ms >= shared.groups.retention_check_interval_ms {
                inner.last_retention_check_ms = now_ms;
                let fx = inner.machine.expire_offsets(now_ms);
                apply(&shared, &mut inner, fx);
            }
            inner.machine.next_deadline_ms()
        };
        let wait_ms = next.map_or(RECONCILE_INTERVAL_MS, |t| (t - now_ms).clamp(1, RECONCILE_INTERVAL_MS));
        tokio::select! {
            biased;
            () = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            () = shared.groups.wake.notified() => {}
        }
    }
}

/// Unloads offsets partitions we no longer lead (or lead in a new epoch)
/// and loads the ones we now lead.
fn reconcile(shared: &Arc<BrokerShared>) {
    let led: BTreeMap<i32, i32> = {
        let parts = shared.partitions.lock().unwrap();
        parts.iter().filter(|((t, _), p)| t == GROUP_METADATA_TOPIC && p.is_leader()).map(|((_, i), p)| (*i, p.state.leader_epoch)).collect()
    };
    let mut inner = shared.groups.inner.lock().unwrap();
    let stale: Vec<i32> = inner.loaded.iter().filter(|(p, e)| led.get(p) != Some(e)).map(|(p, _)| *p).collect();
    for p in stale {
        tracing::info!(broker = shared.config.id, partition = p, "unloading offsets partition");
        inner.loaded.remove(&p);
        let fx = inner.machine.unload_partition(p);
        apply(shared, &mut inner, fx);
    }
    for (p, e) in led {
        if inner.loaded.get(&p) != Some(&e) {
            if let Err(err) = load(shared, &mut inner, p, e) {
                tracing::warn!(broker = shared.config.id, partition = p, "cannot load offsets partition: {err}");
            }
        }
    }
}
