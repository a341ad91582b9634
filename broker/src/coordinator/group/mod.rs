//! The classic group coordinator as a pure state machine (Kafka's
//! GroupCoordinator + GroupMetadata + MemberMetadata, before KIP-848).
//!
//! It takes "now" (wall ms from the broker's clock) and events — JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup, offset commits, ticks, loads from the
//! log — and returns [`Effect`]s: replies to parked JoinGroup/SyncGroup
//! requests (identified by a [`Waiter`] the I/O layer allocated) and group
//! records to persist. Timers are deadlines kept here; the runtime
//! (`coordinator::runtime`) sleeps on tokio time until [`Coordinator::next_deadline_ms`]
//! and calls [`Coordinator::tick`].
//!
//! Kafka semantics kept (GroupCoordinator.scala, 3.x):
//! - States Empty → PreparingRebalance → CompletingRebalance → Stable, and
//!   Dead for removed groups.
//! - A new group waits `group.initial.rebalance.delay.ms` (extended while
//!   members keep arriving, up to the rebalance timeout) before its first
//!   generation; later rebalances complete when every known member
//!   rejoined, or after the largest rebalance timeout, removing the rest.
//! - Protocol selection by vote over the protocols every member supports.
//! - JoinGroup v4+ with an empty member id gets MEMBER_ID_REQUIRED and a
//!   generated id (KIP-394); ids here are `client_id-<prefix>-<counter>`,
//!   deterministic, instead of a random UUID.
//! - Static membership (KIP-345): a known `group.instance.id` rejoining
//!   with an empty member id replaces the old member id (then fenced with
//!   FENCED_INSTANCE_ID); in a Stable group with unchanged protocols it
//!   keeps its assignment and no rebalance happens.
//! - Session timeouts remove members (static ones too) and rebalance.
//! - Offset commits validated as GroupCoordinator.handleCommitOffsets:
//!   generation -1 with an empty member id is a standalone commit, allowed
//!   only for a group with no members.

#[cfg(test)]
mod tests;

use crate::coordinator::offsets_topic::{GroupValue, MemberValue, OffsetValue};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use std::collections::{BTreeMap, BTreeSet};

/// Identifies one parked JoinGroup or SyncGroup request.
pub type Waiter = u64;
pub type TopicPartition = (String, i32);

/// Broker settings the coordinator follows (Kafka's names in
/// `config::group_defaults`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub offsets_retention_ms: i64,
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        use crate::config::group_defaults as d;
        GroupConfig {
            initial_rebalance_delay_ms: d::GROUP_INITIAL_REBALANCE_DELAY_MS,
            min_session_timeout_ms: d::GROUP_MIN_SESSION_TIMEOUT_MS,
            max_session_timeout_ms: d::GROUP_MAX_SESSION_TIMEOUT_MS,
            max_size: d::GROUP_MAX_SIZE,
            offsets_retention_ms: d::OFFSETS_RETENTION_MINUTES * 60_000,
            offset_metadata_max_bytes: d::OFFSET_METADATA_MAX_BYTES,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name DescribeGroups and ListGroups report.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup request, decoded from any version.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member must first obtain an id (KIP-394).
    pub require_known_member_id: bool,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata): only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub fn error(member_id: &str, e: ResponseError) -> Self {
        JoinResult {
            error: Some(e),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(e: ResponseError) -> Self {
        SyncResult { error: Some(e), protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Join(Waiter, JoinResult),
    Sync(Waiter, SyncResult),
    /// Append this group record to the group's offsets partition; report
    /// the outcome with [`Coordinator::group_stored`] when `sync_generation` is
    /// Some (a leader's SyncGroup waits on it).
    StoreGroup {
        group_id: String,
        partition: i32,
        value: GroupValue,
        sync_generation: Option<i32>,
    },
    /// Append tombstones for these offsets (and the group record when
    /// `group` is true): retention or group deletion.
    Tombstones {
        group_id: String,
        partition: i32,
        offsets: Vec<TopicPartition>,
        group: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// A JoinGroup parked until the rebalance completes.
    join_waiter: Option<Waiter>,
    /// A SyncGroup parked until the leader's assignment is stored.
    sync_waiter: Option<Waiter>,
    /// Session expiry: the last heartbeat (or join/sync) + session timeout.
    heartbeat_deadline_ms: i64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A committed offset with the time it was committed.
pub type OffsetEntry = OffsetValue;

#[derive(Debug, Clone)]
pub struct Group {
    pub group_id: String,
    /// The `__consumer_offsets` partition holding it.
    pub partition: i32,
    pub state: GroupState,
    pub state_timestamp_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id → member id (KIP-345).
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending_members: BTreeMap<String, i64>,
    /// PreparingRebalance: when the join phase ends regardless.
    join_deadline_ms: Option<i64>,
    /// A new group's initial delay: (rebalance time left after this window,
    /// member count when the window opened).
    initial_delay: Option<(i64, usize)>,
    /// The leader's assignment while it is being stored.
    pending_assignment: Option<BTreeMap<String, Bytes>>,
    pub offsets: BTreeMap<TopicPartition, OffsetEntry>,
}

impl Group {
    fn new(group_id: &str, partition: i32, now_ms: i64) -> Self {
        Group {
            group_id: group_id.to_string(),
            partition,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            join_deadline_ms: None,
            initial_delay: None,
            pending_assignment: None,
            offsets: BTreeMap::new(),
        }
    }

    fn transition(&mut self, to: GroupState, now_ms: i64) {
        let ok = matches!(
            (self.state, to),
            (GroupState::Empty, GroupState::PreparingRebalance)
                | (GroupState::Stable, GroupState::PreparingRebalance)
                | (GroupState::CompletingRebalance, GroupState::PreparingRebalance)
                | (GroupState::PreparingRebalance, GroupState::CompletingRebalance)
                | (GroupState::PreparingRebalance, GroupState::Empty)
                | (GroupState::CompletingRebalance, GroupState::Stable)
                | (_, GroupState::Dead)
        );
        assert!(ok, "group {}: illegal transition {:?} -> {:?}", self.group_id, self.state, to);
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    /// Protocols every member supports (Kafka's `candidateProtocols`).
    fn candidate_protocols(&self) -> BTreeSet<String> {
        let mut it = self.members.values();
        let Some(first) = it.next() else { return BTreeSet::new() };
        let mut set: BTreeSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            let theirs: BTreeSet<String> = m.protocols.iter().map(|(n, _)| n.clone()).collect();
            set = set.intersection(&theirs).cloned().collect();
        }
        set
    }

    /// Kafka's `supportsProtocols`: an Empty group takes any non-empty
    /// protocol list; otherwise the type must match and one protocol must
    /// be supported by every current member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let candidates = self.candidate_protocols();
        self.protocol_type.as_deref() == Some(protocol_type) && protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// Protocol selection by vote: each member votes for its most preferred
    /// candidate; the most votes win (ties: the earliest in the leader's, or
    /// first member's, preference order).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let order_member = self.leader.as_ref().and_then(|l| self.members.get(l)).or_else(|| self.members.values().next())?;
        let max = votes.values().copied().max()?;
        order_member.protocols.iter().map(|(n, _)| n.as_str()).find(|n| votes.get(n) == Some(&max)).map(str::to_string)
    }

    /// Topics the members of a consumer group subscribe to, from their
    /// metadata for the selected protocol (ConsumerProtocolSubscription:
    /// version i16, topics as an array of strings, then fields we skip).
    /// None if any member's metadata does not parse.
    fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        let protocol = self.protocol.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(consumer_subscription_topics(&m.metadata(protocol))?);
        }
        Some(topics)
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members.values().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0)
    }

    fn is_fenced(&self, member_id: &str, instance: Option<&str>) -> bool {
        match instance {
            Some(i) => self.static_members.get(i).is_some_and(|m| m != member_id),
            None => false,
        }
    }

    /// The group record Kafka stores for the current generation with the
    /// given assignment.
    fn record(&self, assignment: &BTreeMap<String, Bytes>) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: assignment.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    fn current_assignment(&self) -> BTreeMap<String, Bytes> {
        self.members.values().map(|m| (m.member_id.clone(), m.assignment.clone())).collect()
    }

    fn join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if with_members {
                self.members.values().map(|m| (m.member_id.clone(), m.group_instance_id.clone(), m.metadata(&protocol))).collect()
            } else {
                Vec::new()
            },
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult { error: None, protocol_type: self.protocol_type.clone(), protocol_name: self.protocol.clone(), assignment }
    }
}

/// What DescribeGroups reports of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// What DescribeGroups reports of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

/// A validated offset commit: what the runtime must store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPlan {
    pub partition: i32,
    /// Accepted offsets.
    pub offsets: Vec<(TopicPartition, OffsetEntry)>,
    /// Partitions refused one by one (OFFSET_METADATA_TOO_LARGE).
    pub refused: Vec<(TopicPartition, ResponseError)>,
}

/// All groups of the offsets partitions this broker coordinates.
#[derive(Debug)]
pub struct Coordinator {
    pub config: GroupConfig,
    pub groups: BTreeMap<String, Group>,
    /// Makes member ids unique across coordinator incarnations.
    member_id_prefix: String,
    next_member_id: u64,
}

impl Coordinator {
    pub fn new(config: GroupConfig, member_id_prefix: String) -> Self {
        Coordinator { config, groups: BTreeMap::new(), member_id_prefix, next_member_id: 0 }
    }

    /// Generated member ids start with `prefix` from now on (the runtime
    /// sets broker id and leader epoch of the group's offsets partition, so
    /// ids never repeat across coordinator moves and restarts).
    pub fn set_member_id_prefix(&mut self, prefix: String) {
        self.member_id_prefix = prefix;
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.next_member_id += 1;
        format!("{client_id}-{}-{}", self.member_id_prefix, self.next_member_id)
    }

    // ---------------------------------------------------------------- join

    pub fn join(&mut self, now_ms: i64, partition: i32, req: JoinRequest, waiter: Waiter) -> Vec<Effect> {
        let mut fx = Vec::new();
        let fail = |e| vec![Effect::Join(waiter, JoinResult::error(&req.member_id, e))];
        if req.group_id.is_empty() || !storable(&req.group_id) {
            return fail(ResponseError::InvalidGroupId);
        }
        // Everything the group record keeps must fit its i16-length strings
        // (flexible versions can send longer ones).
        let names = [&req.member_id, &req.protocol_type].into_iter().chain(req.group_instance_id.as_ref()).chain(req.protocols.iter().map(|(n, _)| n));
        if !names.into_iter().all(|n| storable(n)) || req.client_id.len() + MEMBER_ID_SUFFIX_MAX_BYTES > i16::MAX as usize {
            return fail(ResponseError::InvalidRequest);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms || req.session_timeout_ms > self.config.max_session_timeout_ms {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let exists = self.groups.contains_key(&req.group_id);
        if !exists && !req.member_id.is_empty() {
            return fail(ResponseError::UnknownMemberId);
        }
        let max_size = self.config.max_size;
        let group = self.groups.entry(req.group_id.clone()).or_insert_with(|| Group::new(&req.group_id, partition, now_ms));
        group.partition = partition;
        if group.state == GroupState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        let known = !req.member_id.is_empty() && (group.members.contains_key(&req.member_id) || group.pending_members.contains_key(&req.member_id));
        let known_static = req.group_instance_id.as_ref().is_some_and(|i| group.static_members.contains_key(i));
        if !known && !known_static && group.members.len() + group.pending_members.len() >= max_size {
            return fail(ResponseError::GroupMaxSizeReached);
        }
        if req.member_id.is_empty() {
            self.join_unknown_member(now_ms, req, waiter, &mut fx);
        } else {
            self.join_known_member(now_ms, req, waiter, &mut fx);
        }
        fx
    }

    fn join_unknown_member(&mut self, now_ms: i64, req: JoinRequest, waiter: Waiter, fx: &mut Vec<Effect>) {
        let new_id = self.new_member_id(&req.client_id);
        let group = self.groups.get_mut(&req.group_id).expect("group created by join");
        if group.state != GroupState::Empty && !group.supports_protocols(&req.protocol_type, &req.protocols) {
            fx.push(Effect::Join(waiter, JoinResult::error("", ResponseError::InconsistentGroupProtocol)));
            return;
        }
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old_id) = group.static_members.get(&instance).cloned() {
                replace_static_member(group, &old_id, &new_id, fx);
                let protocols_changed = !group.members[&new_id].same_protocols(&req.protocols);
                if group.state == GroupState::Stable && !protocols_changed {
                    // KIP-345: the same instance is back with the same
                    // subscription: no rebalance, same assignment. The
                    // leader learns it leads but gets no member list.
                    let m = group.members.get_mut(&new_id).expect("replaced member");
                    update_member(m, &req, now_ms);
                    let value = group.record(&group.current_assignment());
                    fx.push(Effect::StoreGroup { group_id: group.group_id.clone(), partition: group.partition, value, sync_generation: None });
                    fx.push(Effect::Join(waiter, group.join_result(&new_id, false)));
                    return;
                }
                let mut req = req;
                req.member_id = new_id;
                self.join_known_member(now_ms, req, waiter, fx);
                return;
            }
        } else if req.require_known_member_id {
            // KIP-394: hand out the id; the member must rejoin with it.
            let expiry = now_ms + i64::from(req.session_timeout_ms);
            group.pending_members.insert(new_id.clone(), expiry);
            fx.push(Effect::Join(waiter, JoinResult::error(&new_id, ResponseError::MemberIdRequired)));
            return;
        }
        add_member_and_rebalance(group, &self.config, now_ms, new_id, &req, waiter, fx);
    }

    fn join_known_member(&mut self, now_ms: i64, req: JoinRequest, waiter: Waiter, fx: &mut Vec<Effect>) {
        let config = self.config.clone();
        let group = self.groups.get_mut(&req.group_id).expect("group exists");
        let member_id = req.member_id.clone();
        if group.pending_members.remove(&member_id).is_some() {
            if !group.supports_protocols(&req.protocol_type, &req.protocols) {
                fx.push(Effect::Join(waiter, JoinResult::error(&member_id, ResponseError::InconsistentGroupProtocol)));
                return;
            }
            add_member_and_rebalance(group, &config, now_ms, member_id, &req, waiter, fx);
            return;
        }
        if group.is_fenced(&member_id, req.group_instance_id.as_deref()) {
            fx.push(Effect::Join(waiter, JoinResult::error(&member_id, ResponseError::FencedInstanceId)));
            return;
        }
        if !group.members.contains_key(&member_id) {
            fx.push(Effect::Join(waiter, JoinResult::error(&member_id, ResponseError::UnknownMemberId)));
            return;
        }
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            fx.push(Effect::Join(waiter, JoinResult::error(&member_id, ResponseError::InconsistentGroupProtocol)));
            return;
        }
        match group.state {
            GroupState::PreparingRebalance => {
                let m = group.members.get_mut(&member_id).expect("member");
                if let Some(old) = m.join_waiter.take() {
                    // A retried JoinGroup replaces the parked one.
                    fx.push(Effect::Join(old, JoinResult::error(&member_id, ResponseError::RebalanceInProgress)));
                }
                update_member(m, &req, now_ms);
                m.join_waiter = Some(waiter);
                try_complete_join(group, now_ms, fx);
            }
            GroupState::CompletingRebalance => {
                let m = group.members.get_mut(&member_id).expect("member");
                if m.same_protocols(&req.protocols) {
                    // A lost JoinGroup response: answer again.
                    m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                    let is_leader = group.leader.as_deref() == Some(member_id.as_str());
                    fx.push(Effect::Join(waiter, group.join_result(&member_id, is_leader)));
                } else {
                    update_member(m, &req, now_ms);
                    m.join_waiter = Some(waiter);
                    prepare_rebalance(group, now_ms, &config, fx);
                }
            }
            GroupState::Stable => {
                let is_leader = group.leader.as_deref() == Some(member_id.as_str());
                let m = group.members.get_mut(&member_id).expect("member");
                if is_leader || !m.same_protocols(&req.protocols) {
                    // The leader rejoining (e.g. its subscription changed)
                    // or a changed member forces a new generation.
                    update_member(m, &req, now_ms);
                    m.join_waiter = Some(waiter);
                    prepare_rebalance(group, now_ms, &config, fx);
                } else {
                    m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                    fx.push(Effect::Join(waiter, group.join_result(&member_id, false)));
                }
            }
            GroupState::Empty | GroupState::Dead => {
                fx.push(Effect::Join(waiter, JoinResult::error(&member_id, ResponseError::UnknownMemberId)));
            }
        }
    }

    // ---------------------------------------------------------------- sync

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        now_ms: i64,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        waiter: Waiter,
    ) -> Vec<Effect> {
        let fail = |e| vec![Effect::Sync(waiter, SyncResult::error(e))];
        let Some(group) = self.groups.get_mut(group_id) else { return fail(ResponseError::UnknownMemberId) };
        if group.state == GroupState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(member_id, instance) {
            return fail(ResponseError::FencedInstanceId);
        }
        if !group.members.contains_key(member_id) {
            return fail(ResponseError::UnknownMemberId);
        }
        if generation != group.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        // SyncGroup v5: the protocol must match the one the group chose.
        if protocol_type.is_some_and(|t| Some(t) != group.protocol_type.as_deref()) || protocol_name.is_some_and(|n| Some(n) != group.protocol.as_deref()) {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        match group.state {
            GroupState::Empty => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                let m = group.members.get_mut(member_id).expect("member");
                if let Some(old) = m.sync_waiter.replace(waiter) {
                    let mut fx = vec![Effect::Sync(old, SyncResult::error(ResponseError::RebalanceInProgress))];
                    fx.extend(self.sync_leader(now_ms, group_id, member_id, assignments));
                    return fx;
                }
                m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                self.sync_leader(now_ms, group_id, member_id, assignments)
            }
            GroupState::Stable => {
                let m = group.members.get_mut(member_id).expect("member");
                m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                let assignment = m.assignment.clone();
                vec![Effect::Sync(waiter, group.sync_result(assignment))]
            }
            GroupState::Dead => unreachable!("checked above"),
        }
    }

    /// The leader's SyncGroup: store its assignment (members it left out
    /// get an empty one) before anyone gets it.
    fn sync_leader(&mut self, _now_ms: i64, group_id: &str, member_id: &str, assignments: Vec<(String, Bytes)>) -> Vec<Effect> {
        let group = self.groups.get_mut(group_id).expect("group");
        if group.leader.as_deref() != Some(member_id) || group.pending_assignment.is_some() {
            return Vec::new();
        }
        let mut assignment: BTreeMap<String, Bytes> = group.members.keys().map(|id| (id.clone(), Bytes::new())).collect();
        for (id, a) in assignments {
            if let Some(slot) = assignment.get_mut(&id) {
                *slot = a;
            }
        }
        let value = group.record(&assignment);
        group.pending_assignment = Some(assignment);
        vec![Effect::StoreGroup { group_id: group_id.to_string(), partition: group.partition, value, sync_generation: Some(group.generation) }]
    }

    /// The outcome of storing the leader's assignment for `generation`.
    pub fn group_stored(&mut self, now_ms: i64, group_id: &str, generation: i32, result: Result<(), ResponseError>) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(group) = self.groups.get_mut(group_id) else { return fx };
        if group.state != GroupState::CompletingRebalance || group.generation != generation {
            return fx;
        }
        let Some(assignment) = group.pending_assignment.take() else { return fx };
        match result {
            Ok(()) => {
                for m in group.members.values_mut() {
                    m.assignment = assignment.get(&m.member_id).cloned().unwrap_or_default();
                }
                group.transition(GroupState::Stable, now_ms);
                let ids: Vec<String> = group.members.keys().cloned().collect();
                for id in ids {
                    let m = group.members.get_mut(&id).expect("member");
                    if let Some(w) = m.sync_waiter.take() {
                        m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                        let a = m.assignment.clone();
                        fx.push(Effect::Sync(w, group.sync_result(a)));
                    }
                }
            }
            Err(e) => {
                for m in group.members.values_mut() {
                    m.assignment = Bytes::new();
                    if let Some(w) = m.sync_waiter.take() {
                        fx.push(Effect::Sync(w, SyncResult::error(e)));
                    }
                }
                let config = self.config.clone();
                prepare_rebalance(group, now_ms, &config, &mut fx);
            }
        }
        fx
    }

    // ----------------------------------------------------------- heartbeat

    pub fn heartbeat(&mut self, now_ms: i64, group_id: &str, generation: i32, member_id: &str, instance: Option<&str>) -> Result<(), ResponseError> {
        let Some(group) = self.groups.get_mut(group_id) else { return Err(ResponseError::UnknownMemberId) };
        if group.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(member_id, instance) {
            return Err(ResponseError::FencedInstanceId);
        }
        let Some(m) = group.members.get_mut(member_id) else { return Err(ResponseError::UnknownMemberId) };
        if generation != group.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        match group.state {
            GroupState::Empty => Err(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                Err(ResponseError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                Ok(())
            }
            GroupState::Dead => unreachable!("checked above"),
        }
    }

    // --------------------------------------------------------------- leave

    /// LeaveGroup for each (member id, instance id); the per-member errors
    /// in order.
    pub fn leave(&mut self, now_ms: i64, group_id: &str, leaving: &[(String, Option<String>)]) -> (Vec<Option<ResponseError>>, Vec<Effect>) {
        let mut fx = Vec::new();
        let config = self.config.clone();
        let Some(group) = self.groups.get_mut(group_id) else {
            return (leaving.iter().map(|_| Some(ResponseError::UnknownMemberId)).collect(), fx);
        };
        if group.state == GroupState::Dead {
            return (leaving.iter().map(|_| Some(ResponseError::CoordinatorNotAvailable)).collect(), fx);
        }
        let mut errors = Vec::with_capacity(leaving.len());
        for (member_id, instance) in leaving {
            // KIP-345: a static member may leave by instance id alone.
            let id = match (member_id.is_empty(), instance) {
                (true, Some(i)) => group.static_members.get(i).cloned(),
                _ => Some(member_id.clone()),
            };
            let Some(id) = id else {
                errors.push(Some(ResponseError::UnknownMemberId));
                continue;
            };
            if group.is_fenced(&id, instance.as_deref()) {
                errors.push(Some(ResponseError::FencedInstanceId));
                continue;
            }
            if group.pending_members.remove(&id).is_some() {
                errors.push(None);
                try_complete_join(group, now_ms, &mut fx);
                continue;
            }
            if !group.members.contains_key(&id) {
                errors.push(Some(ResponseError::UnknownMemberId));
                continue;
            }
            remove_member_and_update(group, &config, now_ms, &id, &mut fx);
            errors.push(None);
        }
        (errors, fx)
    }

    // ---------------------------------------------------------------- time

    /// The earliest deadline (session expiry, join phase end, pending
    /// member expiry), if any.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut see = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
        for g in self.groups.values() {
            if let Some(t) = g.join_deadline_ms {
                see(t);
            }
            for &t in g.pending_members.values() {
                see(t);
            }
            for m in g.members.values() {
                if m.join_waiter.is_none() && m.sync_waiter.is_none() {
                    see(m.heartbeat_deadline_ms);
                }
            }
        }
        next
    }

    /// Fires every deadline at or before `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let config = self.config.clone();
        for group in self.groups.values_mut() {
            let expired_pending: Vec<String> = group.pending_members.iter().filter(|(_, &t)| t <= now_ms).map(|(id, _)| id.clone()).collect();
            for id in expired_pending {
                group.pending_members.remove(&id);
            }
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none() && m.heartbeat_deadline_ms <= now_ms)
                .map(|m| m.member_id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %group.group_id, member = %id, "session timeout: member removed");
                remove_member_and_update(group, &config, now_ms, &id, &mut fx);
            }
            if group.state == GroupState::PreparingRebalance && group.join_deadline_ms.is_some_and(|t| t <= now_ms) {
                join_deadline_reached(group, &config, now_ms, &mut fx);
            } else {
                try_complete_join(group, now_ms, &mut fx);
            }
        }
        fx
    }

    // ------------------------------------------------------------- offsets

    /// Validates an offset commit as GroupCoordinator.handleCommitOffsets
    /// does. A standalone commit (generation < 0; clients also send an
    /// empty member id) to an unknown group creates an Empty group for the
    /// offsets once they are stored.
    #[allow(clippy::too_many_arguments)]
    pub fn validate_commit(
        &mut self,
        now_ms: i64,
        partition: i32,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        offsets: Vec<(TopicPartition, i64, i32, Option<String>)>,
    ) -> Result<CommitPlan, ResponseError> {
        if group_id.is_empty() || !storable(group_id) {
            return Err(ResponseError::InvalidGroupId);
        }
        match self.groups.get_mut(group_id) {
            None => {
                // Not a group member's commit (or one from an older
                // generation of a group that is gone).
                if generation >= 0 {
                    return Err(ResponseError::IllegalGeneration);
                }
            }
            Some(group) => {
                if group.state == GroupState::Dead {
                    return Err(ResponseError::CoordinatorNotAvailable);
                }
                if group.is_fenced(member_id, instance) {
                    return Err(ResponseError::FencedInstanceId);
                }
                // Kafka accepts any generation < 0 for an Empty group
                // (clients send -1 and an empty member id).
                let standalone = generation < 0 && group.state == GroupState::Empty;
                if !standalone {
                    if group.state == GroupState::CompletingRebalance {
                        return Err(ResponseError::RebalanceInProgress);
                    }
                    let Some(m) = group.members.get_mut(member_id) else { return Err(ResponseError::UnknownMemberId) };
                    if generation != group.generation {
                        return Err(ResponseError::IllegalGeneration);
                    }
                    m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                }
            }
        }
        let mut plan = CommitPlan { partition, offsets: Vec::new(), refused: Vec::new() };
        for (tp, offset, leader_epoch, metadata) in offsets {
            let metadata = metadata.unwrap_or_default();
            if !storable(&tp.0) {
                plan.refused.push((tp, ResponseError::InvalidTopicException));
                continue;
            }
            if metadata.len() > self.config.offset_metadata_max_bytes || !storable(&metadata) {
                plan.refused.push((tp, ResponseError::OffsetMetadataTooLarge));
                continue;
            }
            plan.offsets.push((tp, OffsetValue { offset, leader_epoch, metadata, commit_timestamp_ms: now_ms }));
        }
        Ok(plan)
    }

    /// Offsets were stored: they become visible to OffsetFetch.
    pub fn offsets_stored(&mut self, now_ms: i64, partition: i32, group_id: &str, offsets: Vec<(TopicPartition, OffsetEntry)>) {
        let group = self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id, partition, now_ms));
        if group.state == GroupState::Dead {
            return;
        }
        group.offsets.extend(offsets);
    }

    /// Committed offsets of `group_id`: all of them (`None`), or the ones
    /// asked for, -1 for partitions without a commit.
    pub fn fetch_offsets(&self, group_id: &str, wanted: Option<&[TopicPartition]>) -> Vec<(TopicPartition, OffsetEntry)> {
        let none = OffsetValue { offset: -1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: -1 };
        let group = self.groups.get(group_id).filter(|g| g.state != GroupState::Dead);
        match wanted {
            None => group.map(|g| g.offsets.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
            Some(tps) => tps.iter().map(|tp| (tp.clone(), group.and_then(|g| g.offsets.get(tp)).cloned().unwrap_or_else(|| none.clone()))).collect(),
        }
    }

    /// OffsetDelete (KIP-496, GroupCoordinator.handleDeleteOffsets): per
    /// partition, None when it may be deleted. An Empty group may delete
    /// anything; a live consumer group only topics none of its members
    /// subscribes to (else GROUP_SUBSCRIBED_TO_TOPIC); any other live group
    /// is NON_EMPTY_GROUP.
    pub fn validate_offset_delete(&self, group_id: &str, tps: &[TopicPartition]) -> Result<(i32, Vec<Option<ResponseError>>), ResponseError> {
        let Some(group) = self.groups.get(group_id).filter(|g| g.state != GroupState::Dead) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        if group.state == GroupState::Empty {
            let errors = tps.iter().map(|(t, _)| (!storable(t)).then_some(ResponseError::UnknownTopicOrPartition)).collect();
            return Ok((group.partition, errors));
        }
        if group.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return Err(ResponseError::NonEmptyGroup);
        }
        let subscribed = group.subscribed_topics();
        let errors = tps
            .iter()
            .map(|(topic, _)| match &subscribed {
                _ if !storable(topic) => Some(ResponseError::UnknownTopicOrPartition),
                Some(topics) if !topics.contains(topic) => None,
                _ => Some(ResponseError::GroupSubscribedToTopic),
            })
            .collect();
        Ok((group.partition, errors))
    }

    /// Tombstones were written for these offsets.
    pub fn offsets_deleted(&mut self, group_id: &str, tps: &[TopicPartition]) {
        if let Some(g) = self.groups.get_mut(group_id) {
            for tp in tps {
                g.offsets.remove(tp);
            }
        }
    }

    /// DeleteGroups: an Empty group may be deleted; returns the partition
    /// and its offsets (to tombstone), or the error.
    pub fn validate_delete_group(&self, group_id: &str) -> Result<(i32, Vec<TopicPartition>), ResponseError> {
        let Some(group) = self.groups.get(group_id).filter(|g| g.state != GroupState::Dead) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        if group.state != GroupState::Empty {
            return Err(ResponseError::NonEmptyGroup);
        }
        Ok((group.partition, group.offsets.keys().cloned().collect()))
    }

    /// The group's tombstones are written: it is gone.
    pub fn group_deleted(&mut self, group_id: &str) {
        if self.groups.get(group_id).is_some_and(|g| g.members.is_empty()) {
            self.groups.remove(group_id);
        }
    }

    /// Offset retention (KIP-211): offsets of an Empty group expire
    /// `offsets.retention.minutes` after the group became Empty (for groups
    /// without a protocol type — standalone committers — after each
    /// offset's commit). An Empty group left without offsets is removed.
    pub fn expire_offsets(&mut self, now_ms: i64) -> Vec<Effect> {
        let retention = self.config.offsets_retention_ms;
        let mut fx = Vec::new();
        for group in self.groups.values_mut() {
            if group.state != GroupState::Empty {
                continue;
            }
            let expired: Vec<TopicPartition> = group
                .offsets
                .iter()
                .filter(|(_, v)| {
                    let base = if group.protocol_type.is_some() { group.state_timestamp_ms } else { v.commit_timestamp_ms };
                    base + retention <= now_ms
                })
                .map(|(k, _)| k.clone())
                .collect();
            let remove_group = expired.len() == group.offsets.len();
            if expired.is_empty() && !remove_group {
                continue;
            }
            fx.push(Effect::Tombstones { group_id: group.group_id.clone(), partition: group.partition, offsets: expired, group: remove_group });
        }
        fx
    }

    // --------------------------------------------------------- describe

    pub fn describe(&self, group_id: &str) -> Option<DescribedGroup> {
        let g = self.groups.get(group_id)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        Some(DescribedGroup {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == GroupState::Stable { protocol.clone() } else { String::new() },
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if g.state == GroupState::Stable { m.metadata(&protocol) } else { Bytes::new() },
                    assignment: if g.state == GroupState::Stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        })
    }

    /// (group id, protocol type, state) of every group.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        self.groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| (g.group_id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state.name()))
            .collect()
    }

    // ------------------------------------------------------ load / unload

    /// Installs a group read from the log (its latest record). A group
    /// with members comes back Stable, members' sessions restarted at
    /// `now_ms`; without members, Empty.
    pub fn load_group(&mut self, now_ms: i64, partition: i32, group_id: &str, value: Option<GroupValue>, offsets: BTreeMap<TopicPartition, OffsetEntry>) {
        let mut g = Group::new(group_id, partition, now_ms);
        g.offsets = offsets;
        if let Some(v) = value {
            g.generation = v.generation;
            g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
            g.protocol = v.protocol.clone();
            g.leader = v.leader;
            g.state_timestamp_ms = if v.current_state_timestamp_ms >= 0 { v.current_state_timestamp_ms } else { now_ms };
            let protocol = v.protocol.unwrap_or_default();
            for mv in v.members {
                if let Some(i) = &mv.group_instance_id {
                    g.static_members.insert(i.clone(), mv.member_id.clone());
                }
                g.members.insert(
                    mv.member_id.clone(),
                    Member {
                        member_id: mv.member_id,
                        group_instance_id: mv.group_instance_id,
                        client_id: mv.client_id,
                        client_host: mv.client_host,
                        session_timeout_ms: mv.session_timeout_ms,
                        rebalance_timeout_ms: mv.rebalance_timeout_ms,
                        protocol_type: g.protocol_type.clone().unwrap_or_default(),
                        protocols: vec![(protocol.clone(), mv.subscription)],
                        assignment: mv.assignment,
                        join_waiter: None,
                        sync_waiter: None,
                        heartbeat_deadline_ms: now_ms + i64::from(mv.session_timeout_ms),
                    },
                );
            }
            g.state = if g.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        }
        self.groups.insert(group_id.to_string(), g);
    }

    /// Drops every group of `partition` (leadership lost); parked requests
    /// get NOT_COORDINATOR.
    pub fn unload_partition(&mut self, partition: i32) -> Vec<Effect> {
        let mut fx = Vec::new();
        let ids: Vec<String> = self.groups.values().filter(|g| g.partition == partition).map(|g| g.group_id.clone()).collect();
        for id in ids {
            let g = self.groups.remove(&id).expect("listed");
            for m in g.members.values() {
                if let Some(w) = m.join_waiter {
                    fx.push(Effect::Join(w, JoinResult::error(&m.member_id, ResponseError::NotCoordinator)));
                }
                if let Some(w) = m.sync_waiter {
                    fx.push(Effect::Sync(w, SyncResult::error(ResponseError::NotCoordinator)));
                }
            }
        }
        fx
    }
}

// ------------------------------------------------------------- helpers

/// Room a generated member id needs after the client id (`-<broker>.<epoch>-<counter>`).
const MEMBER_ID_SUFFIX_MAX_BYTES: usize = 64;

/// Whether `s` fits an i16-length string of the `__consumer_offsets`
/// records.
fn storable(s: &str) -> bool {
    s.len() <= i16::MAX as usize
}

/// The protocol type of Kafka consumers (their metadata is a
/// ConsumerProtocolSubscription).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics of a ConsumerProtocolSubscription (any version: all start
/// with version i16 and topics as an i32-counted array of i16-length
/// strings).
pub fn consumer_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut buf = metadata.get(2..)?;
    let count = i32::from_be_bytes(buf.get(..4)?.try_into().ok()?);
    buf = &buf[4..];
    if count < 0 || count as usize > buf.len() {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(buf.get(..2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        let name = buf.get(2..2 + len)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
        buf = &buf[2 + len..];
    }
    Some(topics)
}

fn update_member(m: &mut Member, req: &JoinRequest, now_ms: i64) {
    m.client_id = req.client_id.clone();
    m.client_host = req.client_host.clone();
    m.session_timeout_ms = req.session_timeout_ms;
    m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    m.protocol_type = req.protocol_type.clone();
    m.protocols = req.protocols.clone();
    m.heartbeat_deadline_ms = now_ms + i64::from(req.session_timeout_ms);
}

/// KIP-345: `new_id` takes over the static member `old_id`; the old id's
/// parked requests are fenced.
fn replace_static_member(group: &mut Group, old_id: &str, new_id: &str, fx: &mut Vec<Effect>) {
    let mut m = group.members.remove(old_id).expect("static member listed");
    if let Some(w) = m.join_waiter.take() {
        fx.push(Effect::Join(w, JoinResult::error(old_id, ResponseError::FencedInstanceId)));
    }
    if let Some(w) = m.sync_waiter.take() {
        fx.push(Effect::Sync(w, SyncResult::error(ResponseError::FencedInstanceId)));
    }
    m.member_id = new_id.to_string();
    let instance = m.group_instance_id.clone().expect("static member has an instance id");
    if group.leader.as_deref() == Some(old_id) {
        group.leader = Some(new_id.to_string());
    }
    if let Some(a) = group.pending_assignment.as_mut() {
        if let Some(v) = a.remove(old_id) {
            a.insert(new_id.to_string(), v);
        }
    }
    group.members.insert(new_id.to_string(), m);
    group.static_members.insert(instance, new_id.to_string());
}

#[allow(clippy::too_many_arguments)]
fn add_member_and_rebalance(group: &mut Group, config: &GroupConfig, now_ms: i64, member_id: String, req: &JoinRequest, waiter: Waiter, fx: &mut Vec<Effect>) {
    if group.members.is_empty() {
        group.protocol_type = Some(req.protocol_type.clone());
    }
    if let Some(i) = &req.group_instance_id {
        group.static_members.insert(i.clone(), member_id.clone());
    }
    group.members.insert(
        member_id.clone(),
        Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            join_waiter: Some(waiter),
            sync_waiter: None,
            heartbeat_deadline_ms: now_ms + i64::from(req.session_timeout_ms),
        },
    );
    if group.leader.is_none() {
        group.leader = Some(member_id);
    }
    match group.state {
        GroupState::PreparingRebalance => try_complete_join(group, now_ms, fx),
        _ => prepare_rebalance(group, now_ms, config, fx),
    }
}

/// Kafka's prepareRebalance: parked SyncGroups fail with
/// REBALANCE_IN_PROGRESS; an Empty group waits the initial delay.
fn prepare_rebalance(group: &mut Group, now_ms: i64, config: &GroupConfig, fx: &mut Vec<Effect>) {
    if group.state == GroupState::CompletingRebalance {
        group.pending_assignment = None;
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.sync_waiter.take() {
                fx.push(Effect::Sync(w, SyncResult::error(ResponseError::RebalanceInProgress)));
            }
        }
    }
    let rebalance_timeout = group.rebalance_timeout_ms();
    if group.state == GroupState::Empty {
        let delay = config.initial_rebalance_delay_ms.min(rebalance_timeout);
        group.initial_delay = Some(((rebalance_timeout - delay).max(0), group.members.len()));
        group.join_deadline_ms = Some(now_ms + delay);
    } else {
        group.initial_delay = None;
        group.join_deadline_ms = Some(now_ms + rebalance_timeout);
    }
    group.transition(GroupState::PreparingRebalance, now_ms);
    try_complete_join(group, now_ms, fx);
}

/// Completes the join phase early when every member rejoined (not during
/// a new group's initial delay).
fn try_complete_join(group: &mut Group, now_ms: i64, fx: &mut Vec<Effect>) {
    if group.state == GroupState::PreparingRebalance && group.initial_delay.is_none() && group.all_members_joined() {
        complete_join(group, now_ms, fx);
    }
}

fn join_deadline_reached(group: &mut Group, config: &GroupConfig, now_ms: i64, fx: &mut Vec<Effect>) {
    if let Some((remaining, members_then)) = group.initial_delay {
        // Kafka's InitialDelayedJoin: while members keep arriving, wait
        // another delay, up to the rebalance timeout.
        if group.members.len() > members_then && remaining > 0 {
            let delay = config.initial_rebalance_delay_ms.min(remaining);
            group.initial_delay = Some((remaining - delay, group.members.len()));
            group.join_deadline_ms = Some(now_ms + delay);
            return;
        }
        group.initial_delay = None;
    }
    complete_join(group, now_ms, fx);
}

/// Kafka's onCompleteJoin: members that did not rejoin are removed, the
/// generation advances, a protocol is chosen and every joined member is
/// answered (the leader with the member list).
fn complete_join(group: &mut Group, now_ms: i64, fx: &mut Vec<Effect>) {
    assert_eq!(group.state, GroupState::PreparingRebalance, "group {}", group.group_id);
    group.join_deadline_ms = None;
    group.initial_delay = None;
    let gone: Vec<String> = group.members.values().filter(|m| m.join_waiter.is_none()).map(|m| m.member_id.clone()).collect();
    for id in gone {
        tracing::info!(group = %group.group_id, member = %id, "did not rejoin in time: removed");
        remove_member(group, &id);
    }
    group.pending_members.clear();
    group.generation += 1;
    if group.members.is_empty() {
        group.protocol = None;
        group.leader = None;
        group.transition(GroupState::Empty, now_ms);
        let value = group.record(&BTreeMap::new());
        fx.push(Effect::StoreGroup { group_id: group.group_id.clone(), partition: group.partition, value, sync_generation: None });
        return;
    }
    if group.leader.as_ref().is_none_or(|l| !group.members.contains_key(l)) {
        group.leader = group.members.keys().next().cloned();
    }
    group.protocol = group.select_protocol();
    assert!(group.protocol.is_some(), "group {}: members share no protocol", group.group_id);
    group.transition(GroupState::CompletingRebalance, now_ms);
    let leader = group.leader.clone().expect("leader chosen");
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let result = group.join_result(&id, id == leader);
        let m = group.members.get_mut(&id).expect("member");
        m.heartbeat_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
        let w = m.join_waiter.take().expect("every remaining member joined");
        fx.push(Effect::Join(w, result));
    }
}

fn remove_member(group: &mut Group, member_id: &str) -> Option<Member> {
    let m = group.members.remove(member_id)?;
    if let Some(i) = &m.group_instance_id {
        if group.static_members.get(i).is_some_and(|id| id == member_id) {
            group.static_members.remove(i);
        }
    }
    if group.leader.as_deref() == Some(member_id) {
        group.leader = group.members.keys().next().cloned();
    }
    Some(m)
}

/// Kafka's removeMemberAndUpdateGroup.
fn remove_member_and_update(group: &mut Group, config: &GroupConfig, now_ms: i64, member_id: &str, fx: &mut Vec<Effect>) {
    let Some(m) = remove_member(group, member_id) else { return };
    if let Some(w) = m.join_waiter {
        fx.push(Effect::Join(w, JoinResult::error(member_id, ResponseError::UnknownMemberId)));
    }
    if let Some(w) = m.sync_waiter {
        fx.push(Effect::Sync(w, SyncResult::error(ResponseError::UnknownMemberId)));
    }
    match group.state {
        GroupState::Dead | GroupState::Empty => {}
        GroupState::Stable | GroupState::CompletingRebalance => prepare_rebalance(group, now_ms, config, fx),
        GroupState::PreparingRebalance => try_complete_join(group, now_ms, fx),
    }
}
