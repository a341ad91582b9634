//! The group membership state machine of a consumer (Kafka's
//! AbstractCoordinator / ConsumerCoordinator state, without the I/O): the
//! member's state (unjoined, joining, syncing, stable), its generation and
//! member id, why it must rejoin, and which partitions it owns. It takes
//! coordinator answers (JoinGroup, SyncGroup, Heartbeat, OffsetCommit error
//! codes) and says what to do next; the driver (`coordinator.rs`) sends the
//! requests and the consumer runs the rebalance listener with the
//! [`Change`]s this returns.
//!
//! Eager vs cooperative (KIP-429): before joining, an eager member revokes
//! everything it owns; a cooperative one keeps its partitions (revoking only
//! those of topics it no longer subscribes to), and after SyncGroup revokes
//! the partitions the new assignment took away and rejoins once more so
//! they can be handed to their new owner. A member whose generation was
//! reset (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, kicked out after
//! max.poll.interval.ms) has lost its partitions instead.

use super::super::assignor::{RebalanceProtocol, TopicPartition};
use super::super::error::ClientError;
use std::collections::BTreeSet;

/// Generation id of a member that is in no generation.
pub const NO_GENERATION: i32 = -1;
/// Member id of a member the coordinator has not named yet.
pub const UNKNOWN_MEMBER_ID: &str = "";

/// Kafka error codes the group protocol reacts to.
pub mod codes {
    pub const NONE: i16 = 0;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const INVALID_COMMIT_OFFSET_SIZE: i16 = 28;
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
}

/// Where the member is in the group protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Not in the group (never joined, left, or reset).
    Unjoined,
    /// JoinGroup sent, waiting for the coordinator to complete the join.
    Joining,
    /// JoinGroup answered, SyncGroup not yet.
    Syncing,
    /// Assignment received; heartbeating.
    Stable,
}

/// The generation a member belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub generation_id: i32,
    pub member_id: String,
    /// The assignor the coordinator chose (JoinGroup's protocol name).
    pub protocol_name: Option<String>,
}

impl Generation {
    pub fn none() -> Generation {
        Generation {
            generation_id: NO_GENERATION,
            member_id: UNKNOWN_MEMBER_ID.to_string(),
            protocol_name: None,
        }
    }
}

/// Partitions whose ownership changed, for the rebalance listener (called in
/// this order: revoked, lost, assigned) and the consumer's fetch state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub revoked: Vec<TopicPartition>,
    pub lost: Vec<TopicPartition>,
    /// Newly owned partitions; `Some` after every SyncGroup (Kafka calls
    /// onPartitionsAssigned even with nothing new), `None` otherwise.
    pub assigned: Option<Vec<TopicPartition>>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty() && self.lost.is_empty() && self.assigned.is_none()
    }
}

/// What to do after a JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Joined: send SyncGroup (with assignments if leader).
    Joined { is_leader: bool },
    /// Send JoinGroup again at once (MEMBER_ID_REQUIRED gave us an id, or
    /// our member id / generation was reset).
    RetryNow,
    /// Send JoinGroup again after retry.backoff.ms.
    RetryLater,
    /// Look the coordinator up again, then rejoin.
    CoordinatorUnknown,
    /// The member id or generation was reset: prepare the join again (the
    /// partitions owned are lost).
    Restart,
    /// Give up: the error goes to the caller of poll.
    Fatal(ClientError),
}

/// What to do after a SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Stable with the new assignment (the change is for the listener).
    Done(Change),
    /// Rejoin (REBALANCE_IN_PROGRESS, reset generation, or a lost coordinator).
    Rejoin {
        coordinator_unknown: bool,
    },
    Fatal(ClientError),
}

/// What a heartbeat answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    Ok,
    /// The answer is for an older generation or state: nothing to do.
    Ignored,
    /// Rejoin on the next poll (REBALANCE_IN_PROGRESS, reset generation).
    Rejoin,
    CoordinatorUnknown,
    Fatal(ClientError),
}

/// The membership of one consumer in its group.
#[derive(Debug, Clone)]
pub struct GroupMembership {
    state: MemberState,
    generation: Generation,
    /// Partitions this member owns (its last assignment, less revocations).
    owned: BTreeSet<TopicPartition>,
    /// Why the member must (re)join; `None` when it need not.
    rejoin_reason: Option<String>,
    protocol: RebalanceProtocol,
    /// An error every later poll reports (FENCED_INSTANCE_ID, ...).
    fatal: Option<ClientError>,
}

impl GroupMembership {
    pub fn new(protocol: RebalanceProtocol) -> GroupMembership {
        GroupMembership {
            state: MemberState::Unjoined,
            generation: Generation::none(),
            owned: BTreeSet::new(),
            rejoin_reason: Some("not yet joined".to_string()),
            protocol,
            fatal: None,
        }
    }

    pub fn state(&self) -> MemberState {
        self.state
    }

    pub fn generation(&self) -> &Generation {
        &self.generation
    }

    pub fn protocol(&self) -> RebalanceProtocol {
        self.protocol
    }

    pub fn owned(&self) -> &BTreeSet<TopicPartition> {
        &self.owned
    }

    pub fn fatal(&self) -> Option<&ClientError> {
        self.fatal.as_ref()
    }

    pub fn rejoin_reason(&self) -> Option<&str> {
        self.rejoin_reason.as_deref()
    }

    /// Whether poll must run a rebalance before fetching.
    pub fn needs_join(&self) -> bool {
        self.fatal.is_none() && (self.state != MemberState::Stable || self.rejoin_reason.is_some())
    }

    /// The generation if the member is stable in it (commits need one).
    pub fn generation_if_stable(&self) -> Option<&Generation> {
        (self.state == MemberState::Stable && self.generation.generation_id >= 0)
            .then_some(&self.generation)
    }

    /// Whether a rebalance is under way (a commit then fails with
    /// REBALANCE_IN_PROGRESS rather than COMMIT_FAILED).
    pub fn rebalance_in_progress(&self) -> bool {
        matches!(self.state, MemberState::Joining | MemberState::Syncing)
            || (self.rejoin_reason.is_some() && self.generation.generation_id >= 0)
    }

    /// Asks for a rebalance on the next poll (Kafka's requestRejoin).
    pub fn request_rejoin(&mut self, reason: impl Into<String>) {
        if self.rejoin_reason.is_none() {
            self.rejoin_reason = Some(reason.into());
        }
    }

    /// Forgets the generation and member id (Kafka's resetGenerationOnResponseError
    /// / resetGenerationOnLeaveGroup). Owned partitions are kept, to be
    /// reported lost by the next `prepare_join`.
    pub fn reset_generation(&mut self, reason: &str) {
        tracing::debug!(
            "group member {}: resetting generation: {reason}",
            self.generation.member_id
        );
        self.generation = Generation::none();
        self.state = MemberState::Unjoined;
        self.rejoin_reason = Some(reason.to_string());
    }

    /// Kafka's onJoinPrepare: before a JoinGroup. A member whose generation
    /// was reset has lost what it owned; an eager member revokes all; a
    /// cooperative one revokes only partitions of topics it no longer
    /// subscribes to.
    pub fn prepare_join(&mut self, subscribed_topics: &BTreeSet<String>) -> Change {
        let mut change = Change::default();
        if self.generation.generation_id == NO_GENERATION
            || self.generation.member_id == UNKNOWN_MEMBER_ID
        {
            change.lost = std::mem::take(&mut self.owned).into_iter().collect();
        } else {
            match self.protocol {
                RebalanceProtocol::Eager => {
                    change.revoked = std::mem::take(&mut self.owned).into_iter().collect()
                }
                RebalanceProtocol::Cooperative => {
                    let (gone, keep): (BTreeSet<_>, BTreeSet<_>) = std::mem::take(&mut self.owned)
                        .into_iter()
                        .partition(|tp| !subscribed_topics.contains(&tp.0));
                    self.owned = keep;
                    change.revoked = gone.into_iter().collect();
                }
            }
        }
        self.state = MemberState::Joining;
        self.rejoin_reason = None;
        change
    }

    /// A JoinGroup answer. `member_id` is the id the coordinator returned
    /// (the new id with MEMBER_ID_REQUIRED).
    pub fn on_join_response(
        &mut self,
        error_code: i16,
        generation_id: i32,
        member_id: &str,
        leader: &str,
        protocol_name: Option<&str>,
    ) -> JoinOutcome {
        if self.state != MemberState::Joining {
            return JoinOutcome::RetryLater;
        }
        match error_code {
            codes::NONE => {
                assert!(
                    generation_id >= 0,
                    "a successful JoinGroup carries a generation"
                );
                assert!(
                    !member_id.is_empty(),
                    "a successful JoinGroup names the member"
                );
                self.generation = Generation {
                    generation_id,
                    member_id: member_id.to_string(),
                    protocol_name: protocol_name.map(str::to_string),
                };
                self.state = MemberState::Syncing;
                JoinOutcome::Joined {
                    is_leader: leader == member_id,
                }
            }
            codes::MEMBER_ID_REQUIRED => {
                // KIP-394: join again with the id the coordinator gave us.
                self.generation.member_id = member_id.to_string();
                JoinOutcome::RetryNow
            }
            codes::UNKNOWN_MEMBER_ID | codes::ILLEGAL_GENERATION => {
                self.reset_generation("join: member or generation unknown to the coordinator");
                JoinOutcome::Restart
            }
            codes::REBALANCE_IN_PROGRESS | codes::COORDINATOR_LOAD_IN_PROGRESS => {
                JoinOutcome::RetryLater
            }
            codes::COORDINATOR_NOT_AVAILABLE | codes::NOT_COORDINATOR => {
                JoinOutcome::CoordinatorUnknown
            }
            codes::FENCED_INSTANCE_ID
            | codes::INCONSISTENT_GROUP_PROTOCOL
            | codes::INVALID_GROUP_ID
            | codes::INVALID_SESSION_TIMEOUT
            | codes::GROUP_AUTHORIZATION_FAILED
            | codes::GROUP_MAX_SIZE_REACHED
            | codes::UNSUPPORTED_VERSION => {
                let e = ClientError::broker(error_code, "join group", None);
                self.fail(e.clone());
                JoinOutcome::Fatal(e)
            }
            _ => JoinOutcome::RetryLater,
        }
    }

    /// A SyncGroup answer with the decoded assignment (`None` if the error
    /// code is not NONE).
    pub fn on_sync_response(
        &mut self,
        error_code: i16,
        assignment: Option<Vec<TopicPartition>>,
    ) -> SyncOutcome {
        if self.state != MemberState::Syncing {
            return SyncOutcome::Rejoin {
                coordinator_unknown: false,
            };
        }
        match (error_code, assignment) {
            (codes::NONE, Some(assigned)) => {
                let new: BTreeSet<TopicPartition> = assigned.into_iter().collect();
                // Eager members revoked everything before joining.
                assert!(
                    self.protocol == RebalanceProtocol::Cooperative || self.owned.is_empty(),
                    "eager member still owns partitions at sync"
                );
                let revoked: Vec<TopicPartition> = self.owned.difference(&new).cloned().collect();
                let added: Vec<TopicPartition> = new.difference(&self.owned).cloned().collect();
                self.owned = new;
                self.state = MemberState::Stable;
                if !revoked.is_empty() {
                    // KIP-429: give the revoked partitions up, then rejoin so
                    // the leader can hand them to their new owners.
                    self.request_rejoin("partitions revoked in a cooperative rebalance");
                }
                SyncOutcome::Done(Change {
                    revoked,
                    lost: Vec::new(),
                    assigned: Some(added),
                })
            }
            (codes::NONE, None) => {
                self.state = MemberState::Unjoined;
                self.request_rejoin("SyncGroup without an assignment");
                SyncOutcome::Rejoin {
                    coordinator_unknown: false,
                }
            }
            (codes::REBALANCE_IN_PROGRESS, _) => {
                self.state = MemberState::Unjoined;
                self.request_rejoin("rebalance in progress at sync");
                SyncOutcome::Rejoin {
                    coordinator_unknown: false,
                }
            }
            (codes::UNKNOWN_MEMBER_ID | codes::ILLEGAL_GENERATION, _) => {
                self.reset_generation("sync: member or generation unknown to the coordinator");
                SyncOutcome::Rejoin {
                    coordinator_unknown: false,
                }
            }
            (codes::COORDINATOR_NOT_AVAILABLE | codes::NOT_COORDINATOR, _) => {
                self.state = MemberState::Unjoined;
                self.request_rejoin("coordinator moved during sync");
                SyncOutcome::Rejoin {
                    coordinator_unknown: true,
                }
            }
            (
                code @ (codes::FENCED_INSTANCE_ID
                | codes::GROUP_AUTHORIZATION_FAILED
                | codes::INCONSISTENT_GROUP_PROTOCOL),
                _,
            ) => {
                let e = ClientError::broker(code, "sync group", None);
                self.fail(e.clone());
                SyncOutcome::Fatal(e)
            }
            _ => {
                self.state = MemberState::Unjoined;
                self.request_rejoin("sync failed");
                SyncOutcome::Rejoin {
                    coordinator_unknown: false,
                }
            }
        }
    }

    /// The JoinGroup or SyncGroup request failed without an answer
    /// (network error, timeout): start the join over.
    pub fn on_join_failed(&mut self, reason: &str) {
        if matches!(self.state, MemberState::Joining | MemberState::Syncing) {
            self.state = MemberState::Unjoined;
            self.request_rejoin(reason.to_string());
        }
    }

    /// A Heartbeat answer for a request sent in generation `sent`.
    pub fn on_heartbeat_response(
        &mut self,
        error_code: i16,
        sent: &Generation,
    ) -> HeartbeatOutcome {
        if *sent != self.generation {
            return HeartbeatOutcome::Ignored;
        }
        match error_code {
            codes::NONE => HeartbeatOutcome::Ok,
            codes::REBALANCE_IN_PROGRESS => {
                // Only a stable member rejoins; one that is syncing already is.
                if self.state == MemberState::Stable {
                    self.request_rejoin("the coordinator is rebalancing the group");
                    HeartbeatOutcome::Rejoin
                } else {
                    HeartbeatOutcome::Ignored
                }
            }
            codes::UNKNOWN_MEMBER_ID | codes::ILLEGAL_GENERATION => {
                self.reset_generation("heartbeat: member or generation unknown to the coordinator");
                HeartbeatOutcome::Rejoin
            }
            codes::COORDINATOR_NOT_AVAILABLE | codes::NOT_COORDINATOR => {
                HeartbeatOutcome::CoordinatorUnknown
            }
            codes::FENCED_INSTANCE_ID | codes::GROUP_AUTHORIZATION_FAILED => {
                let e = ClientError::broker(error_code, "heartbeat", None);
                self.fail(e.clone());
                HeartbeatOutcome::Fatal(e)
            }
            _ => HeartbeatOutcome::Ok,
        }
    }

    /// The error an OffsetCommit error code becomes, updating the state as
    /// Kafka's OffsetCommitResponseHandler does. `None` for codes a retry
    /// may fix (coordinator moved or loading); those leave the state alone.
    pub fn on_commit_error(&mut self, error_code: i16, sent: &Generation) -> Option<ClientError> {
        let current = *sent == self.generation;
        match error_code {
            codes::COORDINATOR_LOAD_IN_PROGRESS
            | codes::COORDINATOR_NOT_AVAILABLE
            | codes::NOT_COORDINATOR => None,
            codes::REBALANCE_IN_PROGRESS => {
                if current {
                    self.request_rejoin("commit: rebalance in progress");
                }
                Some(ClientError::RebalanceInProgress)
            }
            codes::UNKNOWN_MEMBER_ID | codes::ILLEGAL_GENERATION => {
                if current {
                    self.reset_generation(
                        "commit: member or generation unknown to the coordinator",
                    );
                }
                Some(ClientError::CommitFailed(format!(
                    "the group has already rebalanced and assigned the partitions to another member ({})",
                    super::super::error::error_name(error_code)
                )))
            }
            codes::FENCED_INSTANCE_ID => {
                let e = ClientError::broker(error_code, "offset commit", None);
                self.fail(e.clone());
                Some(ClientError::CommitFailed(
                    "this member's group.instance.id was fenced by a newer instance".into(),
                ))
            }
            code => Some(ClientError::broker(code, "offset commit", None)),
        }
    }

    /// The member leaves the group (close, unsubscribe, or poll timeout):
    /// the generation is reset, and for unsubscribe/close the caller
    /// revokes what it owned with the returned change.
    pub fn on_leave(&mut self, reason: &str) {
        self.reset_generation(reason);
    }

    /// Drops every owned partition (unsubscribe, close): revoked if the
    /// member is still in a generation, lost otherwise.
    pub fn give_up_all(&mut self) -> Change {
        let all: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
        if self.generation.generation_id >= 0 {
            Change {
                revoked: all,
                ..Change::default()
            }
        } else {
            Change {
                lost: all,
                ..Change::default()
            }
        }
    }

    fn fail(&mut self, e: ClientError) {
        tracing::warn!("group member {}: fatal: {e}", self.generation.member_id);
        self.fatal = Some(e);
        self.state = MemberState::Unjoined;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_string(), p)
    }

    fn topics(ts: &[&str]) -> BTreeSet<String> {
        ts.iter().map(|s| s.to_string()).collect()
    }

    /// Joins and syncs `m` into generation `g` with `assigned`.
    fn join(
        m: &mut GroupMembership,
        g: i32,
        member: &str,
        assigned: Vec<TopicPartition>,
    ) -> Change {
        let prep = m.prepare_join(&topics(&["t"]));
        assert_eq!(
            m.on_join_response(0, g, member, member, Some("range")),
            JoinOutcome::Joined { is_leader: true }
        );
        let SyncOutcome::Done(c) = m.on_sync_response(0, Some(assigned)) else {
            panic!("sync failed")
        };
        let mut c = c;
        c.revoked.extend(prep.revoked);
        c.lost.extend(prep.lost);
        c
    }

    // KIP-394: a first JoinGroup with an empty member id gets
    // MEMBER_ID_REQUIRED and the id to join with.
    #[test]
    fn member_id_required_gives_the_id_to_rejoin_with() {
        let mut m = GroupMembership::new(RebalanceProtocol::Eager);
        assert!(m.needs_join());
        m.prepare_join(&topics(&["t"]));
        assert_eq!(
            m.on_join_response(codes::MEMBER_ID_REQUIRED, -1, "m-1", "", None),
            JoinOutcome::RetryNow
        );
        assert_eq!(m.generation().member_id, "m-1");
        assert_eq!(m.state(), MemberState::Joining);
        assert_eq!(
            m.on_join_response(0, 1, "m-1", "m-2", Some("range")),
            JoinOutcome::Joined { is_leader: false }
        );
        assert_eq!(m.state(), MemberState::Syncing);
        let SyncOutcome::Done(c) = m.on_sync_response(0, Some(vec![tp("t", 0)])) else {
            panic!()
        };
        assert_eq!(c.assigned, Some(vec![tp("t", 0)]));
        assert_eq!(m.generation_if_stable().map(|g| g.generation_id), Some(1));
        assert!(!m.needs_join());
    }

    // Eager protocol: everything is revoked before rejoining.
    #[test]
    fn eager_member_revokes_everything_before_joining() {
        let mut m = GroupMembership::new(RebalanceProtocol::Eager);
        join(&mut m, 1, "a", vec![tp("t", 0), tp("t", 1)]);
        m.request_rejoin("test");
        assert!(m.needs_join());
        let c = m.prepare_join(&topics(&["t"]));
        assert_eq!(c.revoked, vec![tp("t", 0), tp("t", 1)]);
        assert!(c.lost.is_empty());
        assert!(m.owned().is_empty());
    }

    // KIP-429: a cooperative member keeps its partitions through the join,
    // revokes only those the new assignment drops, then rejoins once more.
    #[test]
    fn cooperative_member_revokes_only_what_moves_then_rejoins() {
        let mut m = GroupMembership::new(RebalanceProtocol::Cooperative);
        join(&mut m, 1, "a", vec![tp("t", 0), tp("t", 1), tp("t", 2)]);
        m.request_rejoin("new member");
        let prep = m.prepare_join(&topics(&["t"]));
        assert!(prep.revoked.is_empty() && prep.lost.is_empty(), "{prep:?}");
        assert_eq!(
            m.owned().len(),
            3,
            "owned partitions are kept while joining"
        );
        m.on_join_response(0, 2, "a", "a", Some("cooperative-sticky"));
        let SyncOutcome::Done(c) = m.on_sync_response(0, Some(vec![tp("t", 0), tp("t", 1)])) else {
            panic!()
        };
        assert_eq!(c.revoked, vec![tp("t", 2)]);
        assert_eq!(c.assigned, Some(vec![]));
        assert!(
            m.needs_join(),
            "revoking partitions asks for a follow-up rebalance"
        );
        // The follow-up round with nothing revoked settles.
        m.prepare_join(&topics(&["t"]));
        m.on_join_response(0, 3, "a", "a", Some("cooperative-sticky"));
        let SyncOutcome::Done(c) = m.on_sync_response(0, Some(vec![tp("t", 0), tp("t", 1)])) else {
            panic!()
        };
        assert!(c.revoked.is_empty());
        assert!(!m.needs_join());
    }

    #[test]
    fn cooperative_member_revokes_partitions_of_unsubscribed_topics_before_joining() {
        let mut m = GroupMembership::new(RebalanceProtocol::Cooperative);
        m.prepare_join(&topics(&["t", "u"]));
        m.on_join_response(0, 1, "a", "a", None);
        m.on_sync_response(0, Some(vec![tp("t", 0), tp("u", 0)]));
        m.request_rejoin("subscription changed");
        let c = m.prepare_join(&topics(&["t"]));
        assert_eq!(c.revoked, vec![tp("u", 0)]);
        assert_eq!(
            m.owned().iter().cloned().collect::<Vec<_>>(),
            vec![tp("t", 0)]
        );
    }

    // Kafka's HeartbeatResponseHandler: UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION
    // reset the generation; the partitions are then lost, not revoked.
    #[test]
    fn heartbeat_unknown_member_resets_generation_and_partitions_are_lost() {
        for code in [codes::UNKNOWN_MEMBER_ID, codes::ILLEGAL_GENERATION] {
            let mut m = GroupMembership::new(RebalanceProtocol::Eager);
            join(&mut m, 4, "a", vec![tp("t", 0)]);
            let sent = m.generation().clone();
            assert_eq!(
                m.on_heartbeat_response(code, &sent),
                HeartbeatOutcome::Rejoin
            );
            assert_eq!(m.generation().generation_id, NO_GENERATION);
            assert_eq!(m.generation().member_id, "");
            assert!(m.generation_if_stable().is_none());
            let c = m.prepare_join(&topics(&["t"]));
            assert_eq!(c.lost, vec![tp("t", 0)]);
            assert!(c.revoked.is_empty());
        }
    }

    #[test]
    fn heartbeat_rebalance_in_progress_asks_to_rejoin_only_when_stable() {
        let mut m = GroupMembership::new(RebalanceProtocol::Eager);
        join(&mut m, 1, "a", vec![tp("t", 0)]);
        let sent = m.generation().clone();
        assert_eq!(
            m.on_heartbeat_response(codes::REBALANCE_IN_PROGRESS, &sent),
            HeartbeatOutcome::Rejoin
        );
        assert!(m.needs_join());
        assert_eq!(
            m.generation().generation_id,
            1,
            "the generation is kept: commits fail with REBALANCE_IN_PROGRESS"
        );
        // An answer for an older generation is ignored.
        let old = Generation {
            generation_id: 0,
            ..sent.clone()
        };
        assert_eq!(
            m.on_heartbeat_response(codes::UNKNOWN_MEMBER_ID, &old),
            HeartbeatOutcome::Ignored
        );
        assert_eq!(m.generation().generation_id, 1);
    }

    #[test]
    fn fenced_instance_id_is_fatal() {
        let mut m = GroupMembership::new(RebalanceProtocol::Eager);
        join(&mut m, 1, "a", vec![tp("t", 0)]);
        let sent = m.generation().clone();
        assert!(matches!(
            m.on_heartbeat_response(codes::FENCED_INSTANCE_ID, &sent),
            HeartbeatOutcome::Fatal(_)
        ));
        assert!(m.fatal().is_some());
        assert!(!m.needs_join(), "a fenced member does not rejoin");
    }

    // Kafka's OffsetCommitResponseHandler and sendOffsetCommitRequest.
    #[test]
    fn commit_errors_map_to_commit_failed_and_rebalance_in_progress() {
        let mut m = GroupMembership::new(RebalanceProtocol::Eager);
        join(&mut m, 2, "a", vec![tp("t", 0)]);
        let sent = m.generation().clone();
        assert_eq!(
            m.on_commit_error(codes::REBALANCE_IN_PROGRESS, &sent),
            Some(ClientError::RebalanceInProgress)
        );
        assert!(m.rebalance_in_progress());
        assert_eq!(m.on_commit_error(codes::NOT_COORDINATOR, &sent), None);
        assert!(matches!(
            m.on_commit_error(codes::ILLEGAL_GENERATION, &sent),
            Some(ClientError::CommitFailed(_))
        ));
        assert_eq!(m.generation().generation_id, NO_GENERATION);
    }

    #[test]
    fn join_errors_fatal_retry_or_rediscover() {
        let mut m = GroupMembership::new(RebalanceProtocol::Eager);
        m.prepare_join(&topics(&["t"]));
        assert_eq!(
            m.on_join_response(codes::NOT_COORDINATOR, -1, "", "", None),
            JoinOutcome::CoordinatorUnknown
        );
        assert_eq!(
            m.on_join_response(codes::REBALANCE_IN_PROGRESS, -1, "", "", None),
            JoinOutcome::RetryLater
        );
        assert!(matches!(
            m.on_join_response(codes::INCONSISTENT_GROUP_PROTOCOL, -1, "", "", None),
            JoinOutcome::Fatal(_)
        ));
        assert!(m.fatal().is_some());
    }

    #[test]
    fn sync_unknown_member_resets_and_rejoins() {
        let mut m = GroupMembership::new(RebalanceProtocol::Eager);
        m.prepare_join(&topics(&["t"]));
        m.on_join_response(0, 1, "a", "a", None);
        assert_eq!(
            m.on_sync_response(codes::UNKNOWN_MEMBER_ID, None),
            SyncOutcome::Rejoin {
                coordinator_unknown: false
            }
        );
        assert_eq!(m.generation().generation_id, NO_GENERATION);
        assert!(m.needs_join());
    }
}
