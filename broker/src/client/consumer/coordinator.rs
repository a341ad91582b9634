//! The async driver of group membership (Kafka's ConsumerCoordinator I/O):
//! finds the group coordinator (FindCoordinator), joins (JoinGroup, with
//! KIP-394's MEMBER_ID_REQUIRED round), runs the leader's assignor and
//! syncs (SyncGroup), heartbeats from a background task, leaves
//! (LeaveGroup), and commits and fetches offsets (OffsetCommit,
//! OffsetFetch). Every answer goes through the I/O-free
//! [`GroupMembership`](super::group::GroupMembership) held in [`Shared`].
//!
//! Two tasks run beside the consumer: the heartbeat task (every
//! heartbeat.interval.ms while the member is in a generation; it also
//! leaves the group when poll has not been called for max.poll.interval.ms)
//! and, during a rebalance, the join task (JoinGroup can wait up to the
//! rebalance timeout on the coordinator, longer than one poll). The
//! consumer aborts both when it is closed or dropped.

use super::super::assignor::protocol::{self, CONSUMER_PROTOCOL_VERSION_LATEST};
use super::super::assignor::{Assignment, PartitionAssignor, Subscription, TopicPartition};
use super::super::error::ClientError;
use super::super::metadata::Cluster;
use super::super::network::Request;
use super::group::{
    codes, Change, Generation, GroupMembership, HeartbeatOutcome, JoinOutcome, MemberState,
    SyncOutcome,
};
use super::OffsetAndMetadata;
use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, RequestKind,
    ResponseKind, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

pub const FIND_COORDINATOR_VERSION: i16 = 3;
pub const JOIN_GROUP_VERSION: i16 = 7;
pub const SYNC_GROUP_VERSION: i16 = 5;
pub const HEARTBEAT_VERSION: i16 = 4;
pub const LEAVE_GROUP_VERSION: i16 = 4;
pub const OFFSET_COMMIT_VERSION: i16 = 8;
pub const OFFSET_FETCH_VERSION: i16 = 7;
const METADATA_VERSION: i16 = 12;
/// The embedded protocol type of consumer groups.
pub const PROTOCOL_TYPE: &str = "consumer";
/// Kafka adds this to the rebalance timeout for the JoinGroup request
/// timeout (ConsumerCoordinator's JOIN_GROUP_TIMEOUT_LAPSE).
const JOIN_GROUP_TIMEOUT_LAPSE_MS: u64 = 5_000;
/// Bound on JoinGroup attempts within one join task (MEMBER_ID_REQUIRED,
/// retriable errors); the next poll starts a new task after it.
const MAX_JOIN_ATTEMPTS: u32 = 100;

/// Sends a `$kind` request to the coordinator and unwraps the matching
/// response (returning `Malformed` from the caller on any other kind).
macro_rules! call {
    ($client:expr, $kind:ident, $version:expr, $request:expr, $timeout:expr) => {
        match $client
            .send(
                ApiKey::$kind,
                $version,
                RequestKind::$kind($request),
                $timeout,
            )
            .await?
        {
            ResponseKind::$kind(r) => r,
            _ => {
                let what = concat!(stringify!($kind), ": wrong response kind");
                return Err(ClientError::Malformed(what.into()));
            }
        }
    };
}

/// Membership state shared by the consumer, the heartbeat task and the
/// join task. Never held across an await.
#[derive(Debug)]
pub(crate) struct Shared {
    pub membership: GroupMembership,
    /// The coordinator's address, `None` when unknown.
    pub coordinator: Option<SocketAddr>,
    /// When poll was last called (max.poll.interval.ms is measured from it).
    pub last_poll: Instant,
}

/// Group settings the driver needs.
#[derive(Debug, Clone)]
pub(crate) struct GroupSettings {
    pub group_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub retry_backoff_ms: u64,
    pub request_timeout_ms: u64,
}

/// A cheap handle to the group's coordinator connection and state.
#[derive(Clone)]
pub(crate) struct GroupClient {
    cluster: Arc<Cluster>,
    pub settings: Arc<GroupSettings>,
    shared: Arc<Mutex<Shared>>,
}

/// What one join task achieved.
pub(crate) enum JoinResult {
    /// Stable in a new generation; the change is for the listener, and a
    /// leader also gets the partition counts it assigned from.
    Synced {
        change: Change,
        leader_snapshot: Option<BTreeMap<String, i32>>,
    },
    /// The join has to start over (prepare_join again).
    Restart,
}

impl GroupClient {
    pub fn new(
        cluster: Arc<Cluster>,
        settings: GroupSettings,
        membership: GroupMembership,
    ) -> GroupClient {
        let shared = Shared {
            membership,
            coordinator: None,
            last_poll: Instant::now(),
        };
        GroupClient {
            cluster,
            settings: Arc::new(settings),
            shared: Arc::new(Mutex::new(shared)),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap()
    }

    pub fn is_static(&self) -> bool {
        self.settings.group_instance_id.is_some()
    }

    fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.settings.group_id.clone()))
    }

    fn instance_id(&self) -> Option<StrBytes> {
        self.settings
            .group_instance_id
            .clone()
            .map(StrBytes::from_string)
    }

    /// Forgets the coordinator (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
    /// network errors): the next request looks it up again.
    pub fn coordinator_unknown(&self) {
        self.lock().coordinator = None;
    }

    /// The coordinator's address, looked up with FindCoordinator if unknown.
    pub async fn coordinator(&self) -> Result<SocketAddr, ClientError> {
        if let Some(a) = self.lock().coordinator {
            return Ok(a);
        }
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(self.settings.group_id.clone()))
            .with_key_type(0);
        let candidates = self.cluster.any_brokers();
        let (_, resp) = self
            .cluster
            .call_any(
                ApiKey::FindCoordinator,
                FIND_COORDINATOR_VERSION,
                RequestKind::FindCoordinator(request),
                &candidates,
            )
            .await?;
        let ResponseKind::FindCoordinator(r) = resp else {
            return Err(ClientError::Malformed(
                "FindCoordinator: wrong response kind".into(),
            ));
        };
        if r.error_code != 0 {
            return Err(ClientError::broker(
                r.error_code,
                format!("find coordinator {}", self.settings.group_id),
                r.error_message.as_deref(),
            ));
        }
        let addr = match self.cluster.broker_addr(r.node_id.0).await {
            Some(a) => a,
            None => {
                let host = if r.host.as_str() == "localhost" {
                    "127.0.0.1"
                } else {
                    r.host.as_str()
                };
                let ip: std::net::IpAddr = host.parse().map_err(|_| {
                    ClientError::Malformed(format!(
                        "FindCoordinator: cannot resolve {}:{}",
                        r.host.as_str(),
                        r.port
                    ))
                })?;
                let port = u16::try_from(r.port).map_err(|_| {
                    ClientError::Malformed(format!("FindCoordinator: port {}", r.port))
                })?;
                SocketAddr::new(ip, port)
            }
        };
        tracing::debug!(
            "group {}: coordinator is node {} at {addr}",
            self.settings.group_id,
            r.node_id.0
        );
        self.lock().coordinator = Some(addr);
        Ok(addr)
    }

    /// Sends `body` to the coordinator; a network error forgets it.
    async fn send(
        &self,
        api_key: ApiKey,
        version: i16,
        body: RequestKind,
        timeout_ms: u64,
    ) -> Result<ResponseKind, ClientError> {
        let addr = self.coordinator().await?;
        let request = Request {
            api_key,
            version,
            body,
            expect_response: true,
        };
        match self
            .cluster
            .pool
            .call(addr, request, Duration::from_millis(timeout_ms))
            .await
        {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(ClientError::Malformed(format!(
                "{api_key:?}: no response body"
            ))),
            Err(e) => {
                self.coordinator_unknown();
                Err(e)
            }
        }
    }

    /// One JoinGroup round trip.
    async fn join_group(
        &self,
        member_id: &str,
        protocols: &[(String, Bytes)],
    ) -> Result<JoinGroupResponse, ClientError> {
        let request = JoinGroupRequest::default()
            .with_group_id(self.group_id())
            .with_session_timeout_ms(self.settings.session_timeout_ms as i32)
            .with_rebalance_timeout_ms(self.settings.rebalance_timeout_ms as i32)
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_group_instance_id(self.instance_id())
            .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
            .with_protocols(
                protocols
                    .iter()
                    .map(|(name, metadata)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(StrBytes::from_string(name.clone()))
                            .with_metadata(metadata.clone())
                    })
                    .collect(),
            );
        let timeout_ms = self
            .settings
            .request_timeout_ms
            .max(self.settings.rebalance_timeout_ms + JOIN_GROUP_TIMEOUT_LAPSE_MS);
        let r = call!(self, JoinGroup, JOIN_GROUP_VERSION, request, timeout_ms);
        Ok(r)
    }

    /// One SyncGroup round trip: (error code, assignment bytes).
    async fn sync_group(
        &self,
        generation: &Generation,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<(i16, Bytes), ClientError> {
        let request = SyncGroupRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(generation.generation_id)
            .with_member_id(StrBytes::from_string(generation.member_id.clone()))
            .with_group_instance_id(self.instance_id())
            .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
            .with_protocol_name(generation.protocol_name.clone().map(StrBytes::from_string))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(m))
                            .with_assignment(a)
                    })
                    .collect(),
            );
        let timeout_ms = self
            .settings
            .request_timeout_ms
            .max(self.settings.rebalance_timeout_ms + JOIN_GROUP_TIMEOUT_LAPSE_MS);
        let r = call!(self, SyncGroup, SYNC_GROUP_VERSION, request, timeout_ms);
        Ok((r.error_code, r.assignment))
    }

    /// One Heartbeat round trip: the error code.
    async fn heartbeat(&self, generation: &Generation) -> Result<i16, ClientError> {
        let request = HeartbeatRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(generation.generation_id)
            .with_member_id(StrBytes::from_string(generation.member_id.clone()))
            .with_group_instance_id(self.instance_id());
        let r = call!(
            self,
            Heartbeat,
            HEARTBEAT_VERSION,
            request,
            self.settings.request_timeout_ms
        );
        Ok(r.error_code)
    }

    /// LeaveGroup for this (dynamic) member, then its generation is reset.
    /// Static members never send it (KIP-345): the coordinator keeps their
    /// assignment until session.timeout.ms. Errors are only logged, as Kafka does.
    pub async fn leave_group(&self, reason: &str) {
        let member_id = {
            let mut st = self.lock();
            let id = st.membership.generation().member_id.clone();
            let in_group = st.membership.state() != MemberState::Unjoined
                || st.membership.generation().generation_id >= 0;
            st.membership.on_leave(reason);
            (in_group && !id.is_empty() && !self.is_static()).then_some(id)
        };
        let Some(member_id) = member_id else { return };
        let request = LeaveGroupRequest::default()
            .with_group_id(self.group_id())
            .with_members(vec![MemberIdentity::default()
                .with_member_id(StrBytes::from_string(member_id.clone()))
                .with_group_instance_id(None)]);
        match self
            .send(
                ApiKey::LeaveGroup,
                LEAVE_GROUP_VERSION,
                RequestKind::LeaveGroup(request),
                self.settings.request_timeout_ms,
            )
            .await
        {
            Ok(ResponseKind::LeaveGroup(r)) if r.error_code == 0 => {
                tracing::debug!(
                    "member {member_id} left group {}: {reason}",
                    self.settings.group_id
                )
            }
            Ok(ResponseKind::LeaveGroup(r)) => {
                tracing::debug!("LeaveGroup for {member_id}: error {}", r.error_code)
            }
            Ok(_) => tracing::debug!("LeaveGroup: wrong response kind"),
            Err(e) => tracing::debug!("LeaveGroup for {member_id} failed: {e}"),
        }
    }

    /// One OffsetCommit in `generation` (`Generation::none()` for a
    /// standalone consumer). Ok(()) when every partition committed;
    /// otherwise the first partition error code.
    pub async fn offset_commit(
        &self,
        generation: &Generation,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<i16, ClientError> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), o) in offsets {
            topics.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(o.offset)
                    .with_committed_leader_epoch(o.leader_epoch.unwrap_or(-1))
                    .with_committed_metadata(Some(StrBytes::from_string(o.metadata.clone()))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id_or_member_epoch(generation.generation_id)
            .with_member_id(StrBytes::from_string(generation.member_id.clone()))
            .with_group_instance_id(if generation.generation_id >= 0 {
                self.instance_id()
            } else {
                None
            })
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp = call!(
            self,
            OffsetCommit,
            OFFSET_COMMIT_VERSION,
            request,
            self.settings.request_timeout_ms
        );
        let mut answered = BTreeSet::new();
        let mut first_error = codes::NONE;
        for t in &resp.topics {
            for p in &t.partitions {
                answered.insert((t.name.0.to_string(), p.partition_index));
                if p.error_code != codes::NONE && first_error == codes::NONE {
                    first_error = p.error_code;
                }
            }
        }
        if let Some((t, p)) = offsets.keys().find(|tp| !answered.contains(*tp)) {
            return Err(ClientError::Malformed(format!(
                "OffsetCommit response lacks {t}-{p}"
            )));
        }
        if matches!(
            first_error,
            codes::NOT_COORDINATOR | codes::COORDINATOR_NOT_AVAILABLE
        ) {
            self.coordinator_unknown();
        }
        Ok(first_error)
    }

    /// One OffsetFetch for `partitions`: each one's committed offset
    /// (`None` when nothing is committed), or the retriable error.
    pub async fn offset_fetch(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>, ClientError> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t).or_default().push(*p);
        }
        let request = OffsetFetchRequest::default()
            .with_group_id(self.group_id())
            .with_require_stable(true)
            .with_topics(Some(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            ));
        let resp = call!(
            self,
            OffsetFetch,
            OFFSET_FETCH_VERSION,
            request,
            self.settings.request_timeout_ms
        );
        let context = format!("offset fetch for group {}", self.settings.group_id);
        if resp.error_code != codes::NONE {
            if matches!(
                resp.error_code,
                codes::NOT_COORDINATOR | codes::COORDINATOR_NOT_AVAILABLE
            ) {
                self.coordinator_unknown();
            }
            return Err(ClientError::broker(resp.error_code, context, None));
        }
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                let tp = (t.name.0.to_string(), p.partition_index);
                if !partitions.contains(&tp) {
                    continue;
                }
                if p.error_code != codes::NONE {
                    return Err(ClientError::broker(
                        p.error_code,
                        format!("{context}: {}-{}", tp.0, tp.1),
                        None,
                    ));
                }
                let committed = (p.committed_offset >= 0).then(|| OffsetAndMetadata {
                    offset: p.committed_offset,
                    leader_epoch: (p.committed_leader_epoch >= 0)
                        .then_some(p.committed_leader_epoch),
                    metadata: p.metadata.as_deref().unwrap_or("").to_string(),
                });
                out.insert(tp, committed);
            }
        }
        if let Some((t, p)) = partitions.iter().find(|tp| !out.contains_key(*tp)) {
            return Err(ClientError::Malformed(format!(
                "OffsetFetch response lacks {t}-{p}"
            )));
        }
        Ok(out)
    }

    /// The partition count of every topic the cluster has (`topics` None)
    /// or of the named ones it knows; internal topics (`__`-prefixed) are
    /// left out of the full listing, as exclude.internal.topics does.
    pub async fn partition_counts(
        &self,
        topics: Option<&BTreeSet<String>>,
    ) -> Result<BTreeMap<String, i32>, ClientError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let candidates = self.cluster.any_brokers();
        let (_, resp) = self
            .cluster
            .call_any(
                ApiKey::Metadata,
                METADATA_VERSION,
                RequestKind::Metadata(request),
                &candidates,
            )
            .await?;
        let ResponseKind::Metadata(resp) = resp else {
            return Err(ClientError::Malformed(
                "Metadata: wrong response kind".into(),
            ));
        };
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0
                || t.partitions.is_empty()
                || (topics.is_none() && (t.is_internal || name.starts_with("__")))
            {
                continue;
            }
            out.insert(name, t.partitions.len() as i32);
        }
        Ok(out)
    }
}

/// What the join task needs besides the client.
pub(crate) struct JoinContext {
    /// The member's subscribed topics, sorted.
    pub topics: Vec<String>,
    /// Assignors in preference order (the JoinGroup protocols).
    pub assignors: Vec<Arc<dyn PartitionAssignor>>,
}

/// Joins and syncs once (Kafka's joinGroupIfNeeded after onJoinPrepare):
/// JoinGroup until it succeeds or must start over, the leader's
/// assignment, SyncGroup.
pub(crate) async fn join_and_sync(
    client: GroupClient,
    ctx: JoinContext,
) -> Result<JoinResult, ClientError> {
    let backoff = Duration::from_millis(client.settings.retry_backoff_ms);
    for _ in 0..MAX_JOIN_ATTEMPTS {
        let (member_id, protocols) = {
            let st = client.lock();
            if st.membership.state() != MemberState::Joining {
                return Ok(JoinResult::Restart);
            }
            let g = st.membership.generation();
            let subscription = Subscription {
                topics: ctx.topics.clone(),
                owned_partitions: st.membership.owned().iter().cloned().collect(),
                generation_id: g.generation_id,
                ..Subscription::default()
            };
            let protocols: Vec<(String, Bytes)> = ctx
                .assignors
                .iter()
                .map(|a| {
                    let topic_set: BTreeSet<String> = ctx.topics.iter().cloned().collect();
                    let s = Subscription {
                        user_data: a.subscription_user_data(&topic_set),
                        ..subscription.clone()
                    };
                    let bytes = protocol::encode_subscription(&s, CONSUMER_PROTOCOL_VERSION_LATEST)
                        .expect("the latest version encodes");
                    (a.name().to_string(), bytes)
                })
                .collect();
            (g.member_id.clone(), protocols)
        };
        let resp = match client.join_group(&member_id, &protocols).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("group {}: JoinGroup failed: {e}", client.settings.group_id);
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let outcome = client.lock().membership.on_join_response(
            resp.error_code,
            resp.generation_id,
            resp.member_id.as_str(),
            resp.leader.as_str(),
            resp.protocol_name.as_deref(),
        );
        let is_leader = match outcome {
            JoinOutcome::Joined { is_leader } => is_leader,
            JoinOutcome::RetryNow => continue,
            JoinOutcome::RetryLater => {
                tokio::time::sleep(backoff).await;
                continue;
            }
            JoinOutcome::CoordinatorUnknown => {
                client.coordinator_unknown();
                tokio::time::sleep(backoff).await;
                continue;
            }
            JoinOutcome::Restart => return Ok(JoinResult::Restart),
            JoinOutcome::Fatal(e) => return Err(e),
        };
        let generation = client.lock().membership.generation().clone();
        let assignor = generation
            .protocol_name
            .as_deref()
            .and_then(|n| ctx.assignors.iter().find(|a| a.name() == n))
            .cloned();
        let mut leader_snapshot = None;
        let assignments = if is_leader {
            let Some(assignor) = assignor.clone() else {
                let e = ClientError::Unsupported(format!(
                    "the coordinator chose assignor {:?}, which this member does not have",
                    generation.protocol_name
                ));
                return Err(e);
            };
            match leader_assign(&client, assignor.as_ref(), &resp).await {
                Ok((a, counts)) => {
                    leader_snapshot = Some(counts);
                    a
                }
                Err(e) => {
                    tracing::warn!(
                        "group {}: leader assignment failed: {e}",
                        client.settings.group_id
                    );
                    client
                        .lock()
                        .membership
                        .on_join_failed("leader assignment failed");
                    return Ok(JoinResult::Restart);
                }
            }
        } else {
            Vec::new()
        };
        let (code, bytes) = match client.sync_group(&generation, assignments).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("group {}: SyncGroup failed: {e}", client.settings.group_id);
                client.lock().membership.on_join_failed("SyncGroup failed");
                return Ok(JoinResult::Restart);
            }
        };
        let assignment = if code == codes::NONE {
            // An empty assignment is "no partitions" (Kafka's ConsumerCoordinator).
            let decoded = if bytes.is_empty() {
                Ok(Assignment::default())
            } else {
                protocol::decode_assignment(&bytes)
            };
            match decoded {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(
                        "group {}: undecodable assignment: {e}",
                        client.settings.group_id
                    );
                    None
                }
            }
        } else {
            None
        };
        if let (Some(a), Some(assignor)) = (&assignment, &assignor) {
            assignor.on_assignment(a, generation.generation_id);
        }
        let partitions = assignment.map(|a| a.partitions);
        let outcome = client.lock().membership.on_sync_response(code, partitions);
        return match outcome {
            SyncOutcome::Done(change) => Ok(JoinResult::Synced {
                change,
                leader_snapshot,
            }),
            SyncOutcome::Rejoin {
                coordinator_unknown,
            } => {
                if coordinator_unknown {
                    client.coordinator_unknown();
                }
                Ok(JoinResult::Restart)
            }
            SyncOutcome::Fatal(e) => Err(e),
        };
    }
    client
        .lock()
        .membership
        .on_join_failed("too many JoinGroup attempts");
    Ok(JoinResult::Restart)
}

/// The leader's part: every member's subscription, the partition counts of
/// all their topics, the assignor's result encoded per member (members it
/// left out get an empty assignment).
async fn leader_assign(
    client: &GroupClient,
    assignor: &dyn PartitionAssignor,
    resp: &JoinGroupResponse,
) -> Result<(Vec<(String, Bytes)>, BTreeMap<String, i32>), ClientError> {
    let mut subscriptions = BTreeMap::new();
    for m in &resp.members {
        let mut s = protocol::decode_subscription(&m.metadata).map_err(|e| {
            ClientError::Malformed(format!("subscription of {}: {e}", m.member_id.as_str()))
        })?;
        s.group_instance_id = m.group_instance_id.as_ref().map(|i| i.to_string());
        subscriptions.insert(m.member_id.to_string(), s);
    }
    let topics: BTreeSet<String> = subscriptions
        .values()
        .flat_map(|s| s.topics.iter().cloned())
        .collect();
    let counts = client.partition_counts(Some(&topics)).await?;
    let result = assignor.assign(&counts, &subscriptions);
    let mut out = Vec::new();
    for member in subscriptions.keys() {
        let a = result
            .get(member)
            .cloned()
            .unwrap_or_else(Assignment::default);
        for (t, p) in &a.partitions {
            assert!(
                counts.get(t).is_some_and(|n| (0..*n).contains(p)),
                "assignor {} assigned {t}-{p}, which does not exist",
                assignor.name()
            );
        }
        let bytes = protocol::encode_assignment(&a, CONSUMER_PROTOCOL_VERSION_LATEST)
            .expect("the latest version encodes");
        out.push((member.clone(), bytes));
    }
    // No partition goes to two members in one generation.
    let mut seen = BTreeSet::new();
    for a in result.values() {
        for tp in &a.partitions {
            assert!(
                seen.insert(tp.clone()),
                "assignor {} gave {}-{} to two members",
                assignor.name(),
                tp.0,
                tp.1
            );
        }
    }
    // The snapshot names every subscribed topic, 0 for one that does not
    // exist yet, so that its creation rebalances the group too.
    let snapshot = topics
        .iter()
        .map(|t| (t.clone(), counts.get(t).copied().unwrap_or(0)))
        .collect();
    Ok((out, snapshot))
}

/// The heartbeat task (Kafka's HeartbeatThread): every
/// heartbeat.interval.ms, a Heartbeat while the member is in a generation;
/// a LeaveGroup once poll has not been called for max.poll.interval.ms.
pub(crate) async fn heartbeat_loop(client: GroupClient, max_poll_interval_ms: u64) {
    let interval = Duration::from_millis(client.settings.heartbeat_interval_ms);
    let max_poll_interval = Duration::from_millis(max_poll_interval_ms);
    loop {
        tokio::time::sleep(interval).await;
        let action = {
            let st = client.lock();
            let g = st.membership.generation().clone();
            let in_generation = g.generation_id >= 0
                && matches!(
                    st.membership.state(),
                    MemberState::Stable | MemberState::Syncing
                );
            if st.membership.fatal().is_some() {
                return;
            }
            if in_generation && st.last_poll.elapsed() > max_poll_interval {
                None
            } else if in_generation {
                Some(g)
            } else {
                continue;
            }
        };
        let Some(generation) = action else {
            tracing::info!(
                "group {}: member {} did not poll within max.poll.interval.ms ({max_poll_interval_ms} ms): leaving the group",
                client.settings.group_id,
                client.lock().membership.generation().member_id
            );
            client
                .leave_group("consumer poll timeout has expired")
                .await;
            continue;
        };
        match client.heartbeat(&generation).await {
            Ok(code) => {
                let outcome = client
                    .lock()
                    .membership
                    .on_heartbeat_response(code, &generation);
                match outcome {
                    HeartbeatOutcome::CoordinatorUnknown => client.coordinator_unknown(),
                    HeartbeatOutcome::Fatal(e) => {
                        tracing::warn!("group {}: heartbeat: {e}", client.settings.group_id);
                        return;
                    }
                    HeartbeatOutcome::Ok | HeartbeatOutcome::Ignored | HeartbeatOutcome::Rejoin => {
                    }
                }
            }
            Err(e) => tracing::debug!("group {}: heartbeat failed: {e}", client.settings.group_id),
        }
    }
}
