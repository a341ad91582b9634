//! The consumer: assign mode (`assign`, positions set by `seek`, committed
//! offsets or auto.offset.reset) and group mode (`subscribe`,
//! `subscribe_pattern`: partitions assigned by the group's leader through
//! the coordinator, as Kafka's KafkaConsumer with its ConsumerCoordinator).
//!
//! # Layout
//!
//! - this file: [`Consumer`] (poll, commits, subscriptions, close), the
//!   rebalance listener and the public types.
//! - `fetcher`: positions, Fetch v12 to every leader, offset reset via
//!   ListOffsets.
//! - `group`: the membership state machine, free of I/O (unjoined,
//!   joining, syncing, stable; generation, member id, rejoin reasons, eager
//!   vs cooperative revocation).
//! - `coordinator`: its async driver (FindCoordinator, JoinGroup,
//!   SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch), the join
//!   task and the heartbeat task.
//!
//! The embedded protocol's bytes (subscriptions, assignments) come from
//! `assignor::protocol`.
//!
//! # Group mode, as Kafka does it
//!
//! poll joins or rejoins when needed (running the rebalance listener on the
//! caller's task), auto-commits the positions of the previous poll every
//! auto.commit.interval.ms, then fetches. New partitions start at their
//! committed offset (OffsetFetch), else at auto.offset.reset. Eager members
//! revoke everything before joining (committing first when auto-commit is
//! on, Kafka's onJoinPrepare); cooperative members keep reading their
//! partitions through a rebalance and give up only those reassigned.
//! Records of a partition no longer owned are never returned.
//!
//! Time: poll deadlines and fetch backoffs run on the consumer's wall
//! clock ([`ClientClock`]); heartbeats, max.poll.interval.ms and the
//! auto-commit interval on tokio's (simulated) monotonic clock.

mod coordinator;
mod fetcher;
pub mod group;

pub use fetcher::{
    list_offsets, ConsumerRecord, EARLIEST_TIMESTAMP, FETCH_VERSION, LATEST_TIMESTAMP,
    LIST_OFFSETS_VERSION,
};

use super::assignor::{by_name, PartitionAssignor, RebalanceProtocol, TopicPartition};
use super::clock::{ClientClock, Timer};
use super::config::{AssignorChoice, ConsumerConfig};
use super::error::{ClientError, ConfigError};
use super::metadata::Cluster;
use super::network::Pool;
use coordinator::{GroupClient, GroupSettings, JoinContext, JoinResult};
use fetcher::Fetcher;
use group::{Change, Generation, GroupMembership};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A committed offset (Kafka's OffsetAndMetadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The offset of the next record to read.
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: String,
}

impl OffsetAndMetadata {
    pub fn new(offset: i64) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }
    }
}

/// Called with the outcome of a `commit_async`.
pub type CommitCallback = Box<dyn FnOnce(Result<(), ClientError>) + Send>;

/// Kafka's ConsumerGroupMetadata (what a transactional producer sends
/// with the offsets it commits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One change of a member's assignment, as the listener saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebalanceEvent {
    pub generation_id: i32,
    pub member_id: String,
    pub assigned: Vec<(String, i32)>,
    pub revoked: Vec<(String, i32)>,
    pub lost: Vec<(String, i32)>,
    /// The member's whole assignment after this event.
    pub owned: Vec<(String, i32)>,
}

/// Kafka's ConsumerRebalanceListener, called from poll (and close,
/// unsubscribe) on the caller's task.
pub trait ConsumerRebalanceListener: Send {
    fn on_partitions_revoked(&mut self, partitions: &[(String, i32)]);
    fn on_partitions_assigned(&mut self, partitions: &[(String, i32)]);
    /// Partitions taken away without a chance to commit (the member was
    /// removed from the group); by default treated as revoked.
    fn on_partitions_lost(&mut self, partitions: &[(String, i32)]) {
        self.on_partitions_revoked(partitions)
    }
}

/// How the consumer picks its partitions.
#[derive(Debug)]
enum Subscription {
    None,
    /// `assign`: partitions chosen by the caller.
    Manual,
    /// `subscribe`: the group assigns partitions of these topics.
    Topics(BTreeSet<String>),
    /// `subscribe_pattern`: the topics matching the regex, re-evaluated on
    /// metadata refresh.
    Pattern {
        regex: regex::Regex,
        matched: BTreeSet<String>,
    },
}

impl Subscription {
    fn is_group(&self) -> bool {
        matches!(self, Subscription::Topics(_) | Subscription::Pattern { .. })
    }

    fn topics(&self) -> BTreeSet<String> {
        match self {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern { matched, .. } => matched.clone(),
            Subscription::None | Subscription::Manual => BTreeSet::new(),
        }
    }
}

/// Most commit_async calls waiting for the next poll/commit/close.
const MAX_PENDING_ASYNC_COMMITS: usize = 1_000;

/// The group side of a consumer with a group.id.
struct GroupState {
    client: GroupClient,
    assignors: Vec<Arc<dyn PartitionAssignor>>,
    heartbeat: Option<JoinHandle<()>>,
    join: Option<JoinHandle<Result<JoinResult, ClientError>>>,
    /// Partition counts the last assignment this member led was made
    /// from; a change in them (as seen at a metadata refresh) rebalances.
    leader_snapshot: Option<BTreeMap<String, i32>>,
    /// When the subscription's metadata was last checked.
    metadata_checked: Option<Instant>,
    next_auto_commit: Instant,
}

pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    subscription: Subscription,
    /// Partitions read now: the manual assignment or what the group gave.
    owned: BTreeSet<TopicPartition>,
    /// Owned partitions whose committed offset has not been looked up yet
    /// (only with a group.id); they are not reset or fetched until then.
    awaiting_committed: BTreeSet<TopicPartition>,
    fetcher: Fetcher,
    group: Option<GroupState>,
    /// In a Mutex only so that `Consumer` is Sync (poll's future holds
    /// `&self` across awaits); always reached through `get_mut`.
    listener: Mutex<Option<Box<dyn ConsumerRebalanceListener>>>,
    events: Vec<RebalanceEvent>,
    /// commit_async calls not yet sent (Mutex as for `listener`).
    pending_async: Mutex<VecDeque<PendingCommit>>,
}

/// A queued commit_async.
type PendingCommit = (
    BTreeMap<TopicPartition, OffsetAndMetadata>,
    Option<CommitCallback>,
);

impl Drop for Consumer {
    /// A dropped consumer stops heartbeating at once (the harness "crashes"
    /// a client by dropping it); the coordinator removes it after
    /// session.timeout.ms.
    fn drop(&mut self) {
        if let Some(g) = &self.group {
            if let Some(h) = &g.heartbeat {
                h.abort();
            }
            if let Some(h) = &g.join {
                h.abort();
            }
        }
    }
}

impl Consumer {
    pub fn new(bootstrap: Vec<SocketAddr>, config: ConsumerConfig) -> Consumer {
        let pool = Pool::new(config.network.clone());
        let cluster = Arc::new(Cluster::new(bootstrap, pool));
        let group = config.group_id.clone().map(|group_id| {
            let settings = GroupSettings {
                group_id,
                group_instance_id: config.group_instance_id.clone(),
                session_timeout_ms: config.session_timeout_ms,
                rebalance_timeout_ms: config.max_poll_interval_ms,
                heartbeat_interval_ms: config.heartbeat_interval_ms,
                retry_backoff_ms: config.network.retry_backoff_ms,
                request_timeout_ms: config.network.request_timeout_ms,
            };
            GroupState {
                client: GroupClient::new(
                    cluster.clone(),
                    settings,
                    GroupMembership::new(config.rebalance_protocol),
                ),
                assignors: resolve_assignors(&config.assignors),
                heartbeat: None,
                join: None,
                leader_snapshot: None,
                metadata_checked: None,
                next_auto_commit: Instant::now()
                    + Duration::from_millis(config.auto_commit_interval_ms),
            }
        });
        Consumer {
            fetcher: Fetcher::new(cluster.clone(), config.clone()),
            cluster,
            config,
            subscription: Subscription::None,
            owned: BTreeSet::new(),
            awaiting_committed: BTreeSet::new(),
            group,
            listener: Mutex::new(None),
            events: Vec::new(),
            pending_async: Mutex::new(VecDeque::new()),
        }
    }

    /// Replaces the assignment (assign mode; ends a subscription without a
    /// rebalance callback, as Kafka requires unsubscribe first); positions
    /// of partitions still assigned are kept.
    pub fn assign(&mut self, partitions: Vec<(String, i32)>) {
        if self.subscription.is_group() {
            tracing::warn!("assign() while subscribed: the subscription ends");
            self.leave_group_in_background("assign() replaces the subscription");
        }
        self.subscription = Subscription::Manual;
        self.owned = partitions.into_iter().collect();
        self.awaiting_committed.retain(|tp| self.owned.contains(tp));
        if self.group.is_some() {
            let new: Vec<TopicPartition> = self
                .owned
                .iter()
                .filter(|tp| self.fetcher.position(tp).is_none())
                .cloned()
                .collect();
            self.awaiting_committed.extend(new);
        }
        self.fetcher.retain(&self.owned);
    }

    /// The partitions this consumer reads now (assigned by hand or by the group).
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.owned.iter().cloned().collect()
    }

    /// Subscribes to `topics` through the group (needs group.id); the
    /// next poll joins or rejoins.
    pub fn subscribe(&mut self, topics: Vec<String>) {
        self.set_subscription(Subscription::Topics(topics.into_iter().collect()));
    }

    /// `subscribe` with a rebalance listener, called from poll.
    pub fn subscribe_with_listener(
        &mut self,
        topics: Vec<String>,
        listener: Box<dyn ConsumerRebalanceListener>,
    ) {
        *self.listener.get_mut().unwrap() = Some(listener);
        self.subscribe(topics);
    }

    /// Subscribes to every topic whose whole name matches `pattern`
    /// (Kafka's `subscribe(Pattern)`), re-evaluated on each metadata
    /// refresh (metadata.max.age.ms): a topic created later is picked up.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<(), ConfigError> {
        let anchored = format!("^(?:{pattern})$");
        let regex = regex::Regex::new(&anchored).map_err(|e| ConfigError::Invalid {
            key: "subscribe_pattern".into(),
            value: pattern.into(),
            reason: e.to_string(),
        })?;
        self.set_subscription(Subscription::Pattern {
            regex,
            matched: BTreeSet::new(),
        });
        if let Some(g) = &mut self.group {
            g.metadata_checked = None;
        }
        Ok(())
    }

    fn set_subscription(&mut self, subscription: Subscription) {
        if matches!(self.subscription, Subscription::Manual) {
            self.owned.clear();
            self.awaiting_committed.clear();
            self.fetcher.retain(&self.owned);
        }
        let changed =
            self.subscription.topics() != subscription.topics() || !self.subscription.is_group();
        self.subscription = subscription;
        if let Some(g) = &self.group {
            if changed {
                g.client
                    .lock()
                    .membership
                    .request_rejoin("subscription changed");
            }
        }
    }

    /// Ends the subscription or assignment: owned partitions are revoked
    /// (the listener is told) and the member leaves the group.
    pub fn unsubscribe(&mut self) {
        if self.subscription.is_group() {
            if let Some(g) = &self.group {
                let change = g.client.lock().membership.give_up_all();
                self.apply_change(change);
            }
            self.leave_group_in_background("the consumer unsubscribed");
        }
        self.subscription = Subscription::None;
        self.owned.clear();
        self.awaiting_committed.clear();
        self.fetcher.retain(&self.owned);
    }

    /// Sends LeaveGroup without waiting (unsubscribe and assign are not async).
    fn leave_group_in_background(&mut self, reason: &'static str) {
        let Some(g) = &mut self.group else { return };
        if let Some(h) = g.join.take() {
            h.abort();
        }
        let client = g.client.clone();
        tokio::spawn(async move { client.leave_group(reason).await });
    }

    /// Sets the next offset to read; ignored (with a warning) for a
    /// partition that is not assigned, as Kafka refuses it.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        let tp = (topic.to_string(), partition);
        if !self.owned.contains(&tp) {
            tracing::warn!("seek on unassigned partition {topic}-{partition} ignored");
            return;
        }
        self.awaiting_committed.remove(&tp);
        self.fetcher.seek(tp, offset);
    }

    /// The offset of the next record `poll` will return for the partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.fetcher.position(&(topic.to_string(), partition))
    }

    /// The consumer's wall clock.
    pub fn clock(&self) -> &ClientClock {
        &self.config.clock
    }

    /// The member's group, generation and ids; `None` without a group.id.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let g = self.group.as_ref()?;
        let generation = g.client.lock().membership.generation().clone();
        Some(ConsumerGroupMetadata {
            group_id: g.client.settings.group_id.clone(),
            generation_id: generation.generation_id,
            member_id: generation.member_id,
            group_instance_id: g.client.settings.group_instance_id.clone(),
        })
    }

    /// The assignment changes since the last call, oldest first.
    pub fn take_rebalance_events(&mut self) -> Vec<RebalanceEvent> {
        std::mem::take(&mut self.events)
    }

    /// Returns fetched records, waiting at most `timeout` for some to
    /// arrive. In group mode it first joins or rejoins the group if needed
    /// (running the listener), and auto-commits. Errors only for what
    /// retrying cannot fix (auto.offset.reset=none with no valid position,
    /// corrupt record data, a fenced static member, no group.id).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let mut timer = Timer::new(&self.config.clock, timeout);
        self.complete_async_commits().await;
        if self.subscription.is_group() {
            let Some(g) = &mut self.group else {
                return Err(ClientError::Unsupported(
                    "subscribe needs a group.id".into(),
                ));
            };
            g.client.lock().last_poll = Instant::now();
            if g.heartbeat.is_none() {
                let client = g.client.clone();
                g.heartbeat = Some(tokio::spawn(coordinator::heartbeat_loop(
                    client,
                    self.config.max_poll_interval_ms,
                )));
            }
        }
        self.maybe_auto_commit().await;
        loop {
            if self.subscription.is_group() {
                // Kafka resets the poll timer on every round inside poll.
                if let Some(g) = &self.group {
                    g.client.lock().last_poll = Instant::now();
                }
                self.check_metadata().await;
                self.ensure_active_group(&mut timer).await?;
            }
            if let Some(records) = self.fetcher.drain_buffers(&self.owned) {
                return Ok(records);
            }
            timer.update();
            let committed_ok = self.refresh_committed_offsets().await;
            let resettable: BTreeSet<TopicPartition> = self
                .owned
                .difference(&self.awaiting_committed)
                .cloned()
                .collect();
            let resolved = self.fetcher.resolve_positions(&resettable).await?;
            timer.update();
            let fetched = self
                .fetcher
                .fetch_round(&self.owned, timer.remaining())
                .await?;
            let progressed = resolved && fetched && committed_ok;
            if let Some(records) = self.fetcher.drain_buffers(&self.owned) {
                return Ok(records);
            }
            timer.update();
            if timer.is_expired() {
                return Ok(Vec::new());
            }
            if !progressed || self.owned.is_empty() {
                let backoff = Duration::from_millis(self.config.network.retry_backoff_ms);
                tokio::time::sleep(backoff.min(timer.remaining())).await;
            }
        }
    }

    /// Kafka's ensureActiveGroup: prepares and starts a join when one is
    /// needed and waits for it (at most until the poll deadline; a member
    /// that still owns partitions, cooperatively, keeps fetching meanwhile
    /// and only checks whether the join is done).
    async fn ensure_active_group(&mut self, timer: &mut Timer) -> Result<(), ClientError> {
        // Bounded: each round either finishes a join or starts one.
        for _ in 0..4 {
            let g = self.group.as_mut().expect("group mode has a group");
            if let Some(e) = g.client.lock().membership.fatal().cloned() {
                return Err(e);
            }
            if let Some(handle) = g.join.as_mut() {
                timer.update();
                let wait = if self.owned.is_empty() {
                    timer.remaining()
                } else {
                    Duration::ZERO
                };
                let done = if handle.is_finished() || !wait.is_zero() {
                    tokio::time::timeout(wait, handle).await.ok()
                } else {
                    None
                };
                let Some(result) = done else { return Ok(()) };
                g.join = None;
                match result {
                    Ok(Ok(JoinResult::Synced {
                        change,
                        leader_snapshot,
                    })) => {
                        g.leader_snapshot = leader_snapshot;
                        self.apply_change(change);
                    }
                    Ok(Ok(JoinResult::Restart)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(e) => tracing::warn!("join task ended: {e}"),
                }
                continue;
            }
            if !g.client.lock().membership.needs_join() {
                return Ok(());
            }
            self.start_join().await;
        }
        Ok(())
    }

    /// Kafka's onJoinPrepare, then the join task.
    async fn start_join(&mut self) {
        let g = self.group.as_ref().expect("group mode has a group");
        let stable = g.client.lock().membership.generation_if_stable().cloned();
        if self.config.enable_auto_commit {
            if let Some(generation) = stable {
                let offsets = self.owned_positions();
                if !offsets.is_empty() {
                    if let Err(e) = self.commit_in(&generation, offsets).await {
                        tracing::info!("auto-commit before rebalance failed: {e}");
                    }
                }
            }
        }
        let topics = self.subscription.topics();
        let g = self.group.as_ref().expect("group mode has a group");
        let change = g.client.lock().membership.prepare_join(&topics);
        self.apply_change(change);
        let g = self.group.as_mut().expect("group mode has a group");
        let ctx = JoinContext {
            topics: topics.into_iter().collect(),
            assignors: g.assignors.clone(),
        };
        if ctx.assignors.is_empty() {
            let e = ClientError::Unsupported(format!(
                "no implementation of any configured assignor {:?}",
                self.config.assignors
            ));
            g.client.lock().membership.on_join_failed("no assignor");
            g.join = Some(tokio::spawn(async move { Err(e) }));
            return;
        }
        g.join = Some(tokio::spawn(coordinator::join_and_sync(
            g.client.clone(),
            ctx,
        )));
    }

    /// Runs the listener for a change, records the event and updates what
    /// is read: revoked and lost partitions are dropped with their
    /// buffered records, new ones wait for their committed offset.
    fn apply_change(&mut self, change: Change) {
        if change.is_empty() {
            return;
        }
        let Some(g) = &self.group else { return };
        let (generation, owned) = {
            let st = g.client.lock();
            (
                st.membership.generation().clone(),
                st.membership.owned().clone(),
            )
        };
        if let Some(l) = self.listener.get_mut().unwrap().as_mut() {
            if !change.revoked.is_empty() {
                l.on_partitions_revoked(&change.revoked);
            }
            if !change.lost.is_empty() {
                l.on_partitions_lost(&change.lost);
            }
            if let Some(assigned) = &change.assigned {
                l.on_partitions_assigned(assigned);
            }
        }
        let assigned = change.assigned.unwrap_or_default();
        self.owned = owned;
        self.fetcher.retain(&self.owned);
        self.awaiting_committed.retain(|tp| self.owned.contains(tp));
        self.awaiting_committed.extend(
            assigned
                .iter()
                .filter(|tp| self.fetcher.position(tp).is_none())
                .cloned(),
        );
        self.events.push(RebalanceEvent {
            generation_id: generation.generation_id,
            member_id: generation.member_id,
            assigned,
            revoked: change.revoked,
            lost: change.lost,
            owned: self.owned.iter().cloned().collect(),
        });
    }

    /// Looks up committed offsets of partitions that need one
    /// (refreshCommittedOffsetsIfNeeded). False if the lookup failed.
    async fn refresh_committed_offsets(&mut self) -> bool {
        if self.awaiting_committed.is_empty() {
            return true;
        }
        let Some(g) = &self.group else {
            self.awaiting_committed.clear();
            return true;
        };
        let wanted: Vec<TopicPartition> = self.awaiting_committed.iter().cloned().collect();
        match g.client.offset_fetch(&wanted).await {
            Ok(found) => {
                for (tp, committed) in found {
                    self.awaiting_committed.remove(&tp);
                    if let Some(c) = committed {
                        tracing::debug!(
                            "{}-{}: starting at committed offset {}",
                            tp.0,
                            tp.1,
                            c.offset
                        );
                        self.fetcher.seek(tp, c.offset);
                    }
                }
                true
            }
            Err(e) => {
                tracing::debug!("committed offsets lookup failed: {e}");
                false
            }
        }
    }

    /// Pattern subscriptions and the leader's partition counts are checked
    /// every metadata.max.age.ms (and at once after subscribe_pattern).
    async fn check_metadata(&mut self) {
        let g = self.group.as_mut().expect("group mode has a group");
        let due = g.metadata_checked.is_none_or(|t| {
            t.elapsed() >= Duration::from_millis(self.config.network.metadata_max_age_ms)
        });
        let is_pattern = matches!(self.subscription, Subscription::Pattern { .. });
        if !due || (!is_pattern && g.leader_snapshot.is_none()) {
            return;
        }
        g.metadata_checked = Some(Instant::now());
        let counts = match g.client.partition_counts(None).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("metadata refresh failed: {e}");
                return;
            }
        };
        if let Subscription::Pattern { regex, matched } = &mut self.subscription {
            let now: BTreeSet<String> = counts
                .keys()
                .filter(|t| regex.is_match(t))
                .cloned()
                .collect();
            if now != *matched {
                tracing::debug!("pattern subscription now matches {now:?}");
                *matched = now;
                g.client
                    .lock()
                    .membership
                    .request_rejoin("pattern subscription matches different topics");
            }
        }
        if let Some(snapshot) = &g.leader_snapshot {
            let changed = snapshot
                .iter()
                .any(|(t, n)| counts.get(t).copied().unwrap_or(0) != *n);
            if changed {
                g.client
                    .lock()
                    .membership
                    .request_rejoin("partition counts of subscribed topics changed");
            }
        }
    }

    /// Auto-commit (Kafka's maybeAutoCommitOffsetsAsync): the positions of
    /// the previous poll, every auto.commit.interval.ms.
    async fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit {
            return;
        }
        let Some(g) = self.group.as_mut() else { return };
        if Instant::now() < g.next_auto_commit {
            return;
        }
        g.next_auto_commit =
            Instant::now() + Duration::from_millis(self.config.auto_commit_interval_ms);
        // A subscribed member commits in its generation; an assigning
        // consumer with a group.id as a standalone one (Kafka does both).
        let generation = match self.subscription {
            Subscription::Manual => Generation::none(),
            Subscription::None => return,
            Subscription::Topics(_) | Subscription::Pattern { .. } => {
                match g.client.lock().membership.generation_if_stable() {
                    Some(generation) => generation.clone(),
                    None => return,
                }
            }
        };
        let offsets = self.owned_positions();
        if offsets.is_empty() {
            return;
        }
        if let Err(e) = self.commit_in(&generation, offsets).await {
            tracing::info!("auto-commit failed: {e}");
        }
    }

    /// The position of every owned partition that has one.
    fn owned_positions(&self) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.owned
            .iter()
            .filter_map(|tp| {
                self.fetcher
                    .position(tp)
                    .map(|o| (tp.clone(), OffsetAndMetadata::new(o)))
            })
            .collect()
    }

    /// Commits the positions of all owned partitions.
    pub async fn commit_sync(&mut self) -> Result<(), ClientError> {
        let offsets = self.owned_positions();
        self.commit_sync_offsets(offsets).await
    }

    /// Commits `offsets` (the offset of the next record to read, per
    /// partition), retrying retriable errors until default.api.timeout.ms.
    /// CommitFailed when the member is no longer in the group's
    /// generation; RebalanceInProgress during a rebalance.
    pub async fn commit_sync_offsets(
        &mut self,
        offsets: BTreeMap<(String, i32), OffsetAndMetadata>,
    ) -> Result<(), ClientError> {
        self.complete_async_commits().await;
        self.commit_now(offsets).await
    }

    /// Queues a commit of `offsets` (the owned positions now, if `None`); it
    /// is sent and its callback run on a later poll, commit or close, in
    /// call order.
    pub fn commit_async(
        &mut self,
        offsets: Option<BTreeMap<(String, i32), OffsetAndMetadata>>,
        callback: Option<CommitCallback>,
    ) {
        let offsets = offsets.unwrap_or_else(|| self.owned_positions());
        let pending = self.pending_async.get_mut().unwrap();
        if pending.len() >= MAX_PENDING_ASYNC_COMMITS {
            if let Some(cb) = callback {
                cb(Err(ClientError::Timeout(
                    "too many async commits pending; poll to complete them".into(),
                )));
            }
            return;
        }
        pending.push_back((offsets, callback));
    }

    async fn complete_async_commits(&mut self) {
        while let Some((offsets, callback)) = self.pending_async.get_mut().unwrap().pop_front() {
            let r = self.commit_now(offsets).await;
            if let Err(e) = &r {
                tracing::debug!("async commit failed: {e}");
            }
            if let Some(cb) = callback {
                cb(r);
            }
        }
    }

    /// Kafka's sendOffsetCommitRequest: a subscribed consumer commits in
    /// its stable generation (none: CommitFailed, or RebalanceInProgress
    /// while rebalancing); an assigning one as a standalone member
    /// (generation -1, no member id).
    async fn commit_now(
        &mut self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<(), ClientError> {
        let Some(g) = &self.group else {
            return Err(ClientError::Unsupported("commit needs a group.id".into()));
        };
        if offsets.is_empty() {
            return Ok(());
        }
        let generation = if self.subscription.is_group() {
            let st = g.client.lock();
            match st.membership.generation_if_stable() {
                Some(gen) => gen.clone(),
                None if st.membership.rebalance_in_progress() => return Err(ClientError::RebalanceInProgress),
                None => {
                    return Err(ClientError::CommitFailed(
                        "the consumer is not part of an active group; it is likely that it was kicked out of the group".into(),
                    ))
                }
            }
        } else {
            Generation::none()
        };
        self.commit_in(&generation, offsets).await
    }

    /// OffsetCommit in `generation`, retried until default.api.timeout.ms.
    async fn commit_in(
        &self,
        generation: &Generation,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<(), ClientError> {
        let g = self.group.as_ref().expect("commits need a group");
        let mut timer = Timer::new(
            &self.config.clock,
            Duration::from_millis(self.config.default_api_timeout_ms),
        );
        let backoff = Duration::from_millis(self.config.network.retry_backoff_ms);
        loop {
            let last = match g.client.offset_commit(generation, &offsets).await {
                Ok(group::codes::NONE) => return Ok(()),
                Ok(code) => {
                    let mapped = g.client.lock().membership.on_commit_error(code, generation);
                    match mapped {
                        Some(e) => return Err(e),
                        None => ClientError::broker(code, "offset commit", None),
                    }
                }
                Err(e) if e.is_retriable() => e,
                Err(e) => return Err(e),
            };
            timer.update();
            if timer.is_expired() {
                return Err(ClientError::Timeout(format!("commit: {last}")));
            }
            tokio::time::sleep(backoff.min(timer.remaining())).await;
        }
    }

    /// The last committed offset of each partition (`None`: nothing
    /// committed), retrying retriable errors until default.api.timeout.ms.
    pub async fn committed(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), Option<OffsetAndMetadata>>, ClientError> {
        let Some(g) = &self.group else {
            return Err(ClientError::Unsupported(
                "committed needs a group.id".into(),
            ));
        };
        let mut timer = Timer::new(
            &self.config.clock,
            Duration::from_millis(self.config.default_api_timeout_ms),
        );
        loop {
            let e = match g.client.offset_fetch(partitions).await {
                Ok(found) => return Ok(found),
                Err(e) if e.is_retriable() => e,
                Err(e) => return Err(e),
            };
            timer.update();
            if timer.is_expired() {
                return Err(ClientError::Timeout(format!("committed: {e}")));
            }
            tokio::time::sleep(
                Duration::from_millis(self.config.network.retry_backoff_ms).min(timer.remaining()),
            )
            .await;
        }
    }

    /// Completes pending async commits, auto-commits (if enabled), revokes
    /// the owned partitions and leaves the group (dynamic members only:
    /// a static member's assignment waits session.timeout.ms for it), then
    /// stops the background tasks.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.complete_async_commits().await;
        let mut result = Ok(());
        if self.subscription.is_group() {
            if let Some(g) = &mut self.group {
                if let Some(h) = g.join.take() {
                    h.abort();
                }
                let stable = g.client.lock().membership.generation_if_stable().cloned();
                if let (true, Some(generation)) = (self.config.enable_auto_commit, stable) {
                    let offsets = self.owned_positions();
                    if !offsets.is_empty() {
                        result = self.commit_in(&generation, offsets).await;
                    }
                }
                let g = self.group.as_ref().expect("checked above");
                let change = g.client.lock().membership.give_up_all();
                self.apply_change(change);
                let g = self.group.as_ref().expect("checked above");
                g.client.leave_group("the consumer is being closed").await;
            }
        }
        if let Some(g) = &mut self.group {
            if let Some(h) = g.heartbeat.take() {
                h.abort();
            }
        }
        self.subscription = Subscription::None;
        self.owned.clear();
        self.fetcher.retain(&self.owned);
        result
    }

    /// The latest offset (the high watermark) of each partition, retrying
    /// retriable errors until default.api.timeout.ms.
    pub async fn end_offsets(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<((String, i32), i64)>, ClientError> {
        let mut timer = Timer::new(
            &self.config.clock,
            Duration::from_millis(self.config.default_api_timeout_ms),
        );
        let mut found: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        loop {
            let missing: Vec<TopicPartition> = partitions
                .iter()
                .filter(|tp| !found.contains_key(*tp))
                .cloned()
                .collect();
            if missing.is_empty() {
                return Ok(partitions
                    .iter()
                    .map(|tp| (tp.clone(), found[tp]))
                    .collect());
            }
            let mut last_error = None;
            for (tp, r) in list_offsets(&self.cluster, &missing, LATEST_TIMESTAMP).await {
                match r {
                    Ok(o) => {
                        found.insert(tp, o);
                    }
                    Err(e) if e.is_retriable() => last_error = Some(e),
                    Err(e) => return Err(e),
                }
            }
            if let Some(e) = last_error {
                timer.update();
                if timer.is_expired() {
                    return Err(ClientError::Timeout(format!("end_offsets: {e}")));
                }
                self.cluster.invalidate();
                tokio::time::sleep(Duration::from_millis(self.config.network.retry_backoff_ms))
                    .await;
            }
        }
    }

    /// The rebalance protocol this consumer follows.
    pub fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.config.rebalance_protocol
    }
}

/// The assignor objects for the configured strategy: built-ins through
/// `assignor::by_name` (those it does not provide yet are left out, with
/// a warning), custom ones as given.
fn resolve_assignors(choices: &[AssignorChoice]) -> Vec<Arc<dyn PartitionAssignor>> {
    let mut out: Vec<Arc<dyn PartitionAssignor>> = Vec::new();
    for c in choices {
        match c {
            AssignorChoice::Custom(a) => out.push(a.clone()),
            AssignorChoice::BuiltIn(name) => match by_name(name) {
                Some(a) => out.push(Arc::from(a)),
                None => tracing::warn!(
                    "assignor {name} is not available in this build; left out of JoinGroup"
                ),
            },
        }
    }
    out
}
