//! Raft for the controller quorum, as a pure state machine (events in,
//! commands out, like raft-rs's `RawNode` and openraft's engine).
//!
//! [`RaftCore`] takes messages ([`RaftCore::step`]), the passage of time
//! ([`RaftCore::tick`]) and proposals ([`RaftCore::propose`]) and answers with
//! [`Command`]s that the runtime executes **in order**: persistence commands
//! come before the sends that rely on them, so a vote or an acknowledged entry
//! is on disk before anyone hears of it.
//!
//! What is implemented (Raft paper, Ongaro & Ousterhout 2014, and Ongaro's
//! thesis §9.6): leader election with randomized timeouts, pre-vote,
//! check-quorum (a leader that has not heard from a majority for an election
//! timeout steps down) and leader stickiness (a follower that heard from a
//! leader within the timeout ignores votes), log matching with conflict
//! truncation, commitment of current-term entries only by counting (§5.4.2),
//! and a no-op entry appended by every new leader. No snapshots and no
//! membership changes: the voter set is fixed.
//!
//! # Layout
//!
//! - this file: messages, commands and the core.
//! - [`store`]: the on-disk hard state and log (`Storage`-backed).

pub mod store;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A controller's id: its index in the voter list.
pub type NodeId = u64;

/// Bound on entries in one AppendEntries message.
pub const MAX_ENTRIES_PER_APPEND: usize = 64;

/// One log entry. `cmd` is `None` for the no-op a new leader appends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<C> {
    pub term: u64,
    pub index: u64,
    pub cmd: Option<C>,
}

/// What must survive power loss besides the log (Raft Figure 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub voted_for: Option<NodeId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<C> {
    /// A (pre-)vote request. A pre-vote carries the term the candidate
    /// would use, and changes no one's term or vote.
    RequestVote { term: u64, candidate: NodeId, last_log_index: u64, last_log_term: u64, pre_vote: bool },
    VoteResponse { term: u64, from: NodeId, granted: bool, pre_vote: bool },
    AppendEntries {
        term: u64,
        leader: NodeId,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry<C>>,
        leader_commit: u64,
    },
    /// `match_index` is the last index known to match on success; on
    /// failure it is a hint: the leader retries from `match_index + 1`.
    AppendResponse { term: u64, from: NodeId, success: bool, match_index: u64 },
}

impl<C> Message<C> {
    pub fn term(&self) -> u64 {
        match self {
            Message::RequestVote { term, .. }
            | Message::VoteResponse { term, .. }
            | Message::AppendEntries { term, .. }
            | Message::AppendResponse { term, .. } => *term,
        }
    }
}

/// What the runtime must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<C> {
    /// Write the term and vote durably (fsync) before the next command.
    PersistHardState(HardState),
    /// Remove every entry with index ≥ `from_index` durably.
    Truncate { from_index: u64 },
    /// Append these entries durably (fsync) before the next command.
    Append(Vec<Entry<C>>),
    Send { to: NodeId, msg: Message<C> },
    /// These entries are committed: apply them, in order.
    Apply(Vec<Entry<C>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// `propose` on a node that is not the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLeader {
    pub leader_hint: Option<NodeId>,
}

#[derive(Debug, Clone)]
pub struct RaftConfig {
    pub id: NodeId,
    /// Every voter, this node included.
    pub voters: Vec<NodeId>,
    /// The election timeout is drawn from `[min, 2·min)` (Kafka's
    /// `controller.quorum.election.timeout.ms` is 1000).
    pub election_timeout_min_ms: u64,
    pub heartbeat_interval_ms: u64,
}

/// A small deterministic rng (splitmix64): seeded by the caller from the
/// run's seed, so elections replay exactly.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Debug, Clone)]
pub struct RaftCore<C> {
    cfg: RaftConfig,
    rng: SplitMix,
    hard: HardState,
    /// Entry with index `i` is `log[i - 1]` (no compaction).
    log: Vec<Entry<C>>,
    commit: u64,
    role: Role,
    leader: Option<NodeId>,
    now_ms: u64,
    election_deadline_ms: u64,
    /// When this node last heard from a current leader (stickiness).
    leader_contact_ms: Option<u64>,
    votes: BTreeSet<NodeId>,
    // Leader-only state.
    next_index: BTreeMap<NodeId, u64>,
    match_index: BTreeMap<NodeId, u64>,
    last_ack_ms: BTreeMap<NodeId, u64>,
    leader_since_ms: u64,
    heartbeat_due_ms: u64,
}

impl<C: Clone> RaftCore<C> {
    /// A node starting from its persisted hard state and log (empty for a
    /// new node). It starts as a follower with nothing known committed.
    pub fn restore(cfg: RaftConfig, hard: HardState, log: Vec<Entry<C>>, seed: u64, now_ms: u64) -> Self {
        assert!(cfg.voters.contains(&cfg.id), "node {} not among voters {:?}", cfg.id, cfg.voters);
        assert!(cfg.heartbeat_interval_ms < cfg.election_timeout_min_ms, "heartbeat must beat the election timeout");
        for (i, e) in log.iter().enumerate() {
            assert_eq!(e.index, i as u64 + 1, "log indexes must be contiguous from 1");
            assert!(e.term <= hard.term, "entry term {} above the persisted term {}", e.term, hard.term);
        }
        assert!(log.windows(2).all(|w| w[0].term <= w[1].term), "log terms must not decrease");
        let mut core = RaftCore {
            cfg,
            rng: SplitMix(seed),
            hard,
            log,
            commit: 0,
            role: Role::Follower,
            leader: None,
            now_ms,
            election_deadline_ms: 0,
            leader_contact_ms: None,
            votes: BTreeSet::new(),
            next_index: BTreeMap::new(),
            match_index: BTreeMap::new(),
            last_ack_ms: BTreeMap::new(),
            leader_since_ms: 0,
            heartbeat_due_ms: 0,
        };
        core.reset_election_timer();
        core
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> u64 {
        self.hard.term
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    pub fn commit_index(&self) -> u64 {
        self.commit
    }
    pub fn hard_state(&self) -> HardState {
        self.hard
    }
    pub fn last_index(&self) -> u64 {
        self.log.len() as u64
    }
    pub fn entries(&self) -> &[Entry<C>] {
        &self.log
    }

    fn last_term(&self) -> u64 {
        self.log.last().map(|e| e.term).unwrap_or(0)
    }

    fn term_at(&self, index: u64) -> Option<u64> {
        if index == 0 {
            return Some(0);
        }
        self.log.get(index as usize - 1).map(|e| e.term)
    }

    fn majority(&self) -> usize {
        self.cfg.voters.len() / 2 + 1
    }

    fn peers(&self) -> Vec<NodeId> {
        self.cfg.voters.iter().copied().filter(|&v| v != self.cfg.id).collect()
    }

    fn reset_election_timer(&mut self) {
        let min = self.cfg.election_timeout_min_ms;
        self.election_deadline_ms = self.now_ms + min + self.rng.next() % min;
    }

    fn set_hard_state(&mut self, hard: HardState, out: &mut Vec<Command<C>>) {
        assert!(hard.term >= self.hard.term, "term went back from {} to {}", self.hard.term, hard.term);
        if hard.term == self.hard.term {
            // One vote per term (§5.2): a vote once cast is never changed.
            assert!(
                self.hard.voted_for.is_none() || self.hard.voted_for == hard.voted_for,
                "node {} voting twice in term {}",
                self.cfg.id,
                hard.term
            );
        }
        if hard != self.hard {
            self.hard = hard;
            out.push(Command::PersistHardState(hard));
        }
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>, out: &mut Vec<Command<C>>) {
        if term > self.hard.term {
            self.set_hard_state(HardState { term, voted_for: None }, out);
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.reset_election_timer();
    }

    /// The passage of time: elections and leader heartbeats.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Command<C>> {
        assert!(now_ms >= self.now_ms, "time went back");
        self.now_ms = now_ms;
        let mut out = Vec::new();
        if self.role == Role::Leader {
            if self.lost_quorum() {
                // Check-quorum (thesis §6.2): a leader cut off from a
                // majority stops answering as leader.
                let term = self.hard.term;
                self.become_follower(term, None, &mut out);
                return out;
            }
            if now_ms >= self.heartbeat_due_ms {
                self.broadcast_append(&mut out);
            }
        } else if now_ms >= self.election_deadline_ms {
            self.start_pre_vote(&mut out);
        }
        out
    }

    fn lost_quorum(&self) -> bool {
        let window = self.cfg.election_timeout_min_ms * 2;
        if self.now_ms < self.leader_since_ms + window {
            return false;
        }
        let acked = self
            .peers()
            .into_iter()
            .filter(|p| self.last_ack_ms.get(p).is_some_and(|&t| self.now_ms < t + window))
            .count();
        acked + 1 < self.majority()
    }

    fn start_pre_vote(&mut self, out: &mut Vec<Command<C>>) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes = BTreeSet::from([self.cfg.id]);
        self.reset_election_timer();
        if self.votes.len() >= self.majority() {
            self.start_election(out);
            return;
        }
        self.request_votes(self.hard.term + 1, true, out);
    }

    fn start_election(&mut self, out: &mut Vec<Command<C>>) {
        let term = self.hard.term + 1;
        self.set_hard_state(HardState { term, voted_for: Some(self.cfg.id) }, out);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes = BTreeSet::from([self.cfg.id]);
        self.reset_election_timer();
        if self.votes.len() >= self.majority() {
            self.become_leader(out);
            return;
        }
        self.request_votes(term, false, out);
    }

    fn request_votes(&self, term: u64, pre_vote: bool, out: &mut Vec<Command<C>>) {
        for to in self.peers() {
            out.push(Command::Send {
                to,
                msg: Message::RequestVote {
                    term,
                    candidate: self.cfg.id,
                    last_log_index: self.last_index(),
                    last_log_term: self.last_term(),
                    pre_vote,
                },
            });
        }
    }

    fn become_leader(&mut self, out: &mut Vec<Command<C>>) {
        assert_eq!(self.role, Role::Candidate);
        assert_eq!(self.hard.voted_for, Some(self.cfg.id), "a leader voted for itself");
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.leader_since_ms = self.now_ms;
        let next = self.last_index() + 1;
        self.next_index = self.peers().into_iter().map(|p| (p, next)).collect();
        self.match_index = self.peers().into_iter().map(|p| (p, 0)).collect();
        self.last_ack_ms.clear();
        // The no-op lets the leader commit entries of earlier terms (§5.4.2, §8).
        self.append_local(None, out);
        self.maybe_commit(out);
        self.broadcast_append(out);
    }

    fn append_local(&mut self, cmd: Option<C>, out: &mut Vec<Command<C>>) -> u64 {
        assert_eq!(self.role, Role::Leader, "only a leader appends on its own");
        let entry = Entry { term: self.hard.term, index: self.last_index() + 1, cmd };
        self.log.push(entry.clone());
        out.push(Command::Append(vec![entry]));
        self.last_index()
    }

    /// Appends a command to the leader's log; it is committed when a
    /// majority stores it (watch the `Apply` commands for its index).
    pub fn propose(&mut self, cmd: C) -> Result<(u64, Vec<Command<C>>), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader { leader_hint: self.leader });
        }
        let mut out = Vec::new();
        let index = self.append_local(Some(cmd), &mut out);
        self.maybe_commit(&mut out);
        self.broadcast_append(&mut out);
        Ok((index, out))
    }

    fn broadcast_append(&mut self, out: &mut Vec<Command<C>>) {
        for to in self.peers() {
            self.send_append(to, out);
        }
        self.heartbeat_due_ms = self.now_ms + self.cfg.heartbeat_interval_ms;
    }

    fn send_append(&mut self, to: NodeId, out: &mut Vec<Command<C>>) {
        let next = self.next_index[&to];
        assert!(next >= 1 && next <= self.last_index() + 1, "next index {next} out of range");
        let prev_log_index = next - 1;
        let prev_log_term = self.term_at(prev_log_index).expect("prev within the log");
        let end = (self.last_index() as usize).min(prev_log_index as usize + MAX_ENTRIES_PER_APPEND);
        let entries = self.log[prev_log_index as usize..end].to_vec();
        out.push(Command::Send {
            to,
            msg: Message::AppendEntries {
                term: self.hard.term,
                leader: self.cfg.id,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit: self.commit,
            },
        });
    }

    /// Commits the highest current-term index a majority stores (§5.4.2:
    /// entries of earlier terms are committed only indirectly).
    fn maybe_commit(&mut self, out: &mut Vec<Command<C>>) {
        let mut n = self.last_index();
        while n > self.commit {
            if self.term_at(n) == Some(self.hard.term) {
                let stored = 1 + self.match_index.values().filter(|&&m| m >= n).count();
                if stored >= self.majority() {
                    self.advance_commit(n, out);
                    return;
                }
            } else {
                return; // older terms below: cannot count them
            }
            n -= 1;
        }
    }

    fn advance_commit(&mut self, to: u64, out: &mut Vec<Command<C>>) {
        let to = to.min(self.last_index());
        if to <= self.commit {
            return;
        }
        let from = self.commit;
        self.commit = to;
        assert!(self.commit <= self.last_index(), "commit beyond the log");
        out.push(Command::Apply(self.log[from as usize..to as usize].to_vec()));
    }

    /// A message from a peer.
    pub fn step(&mut self, msg: Message<C>) -> Vec<Command<C>> {
        let mut out = Vec::new();
        let in_lease = self.role == Role::Leader
            || (self.leader.is_some()
                && self.leader_contact_ms.is_some_and(|t| self.now_ms < t + self.cfg.election_timeout_min_ms));
        if let Message::RequestVote { term, pre_vote, .. } = &msg {
            // Leader stickiness (thesis §4.2.3): while we hear from a leader,
            // (pre-)votes for someone else are ignored, so a node rejoining
            // from a partition cannot depose a healthy leader.
            if *term > self.hard.term && in_lease && !*pre_vote {
                return out;
            }
        }
        let pre_vote_msg = matches!(msg, Message::RequestVote { pre_vote: true, .. })
            || matches!(msg, Message::VoteResponse { pre_vote: true, granted: true, .. });
        if msg.term() > self.hard.term && !pre_vote_msg {
            let leader = match &msg {
                Message::AppendEntries { leader, .. } => Some(*leader),
                _ => None,
            };
            self.become_follower(msg.term(), leader, &mut out);
        }
        match msg {
            Message::RequestVote { term, candidate, last_log_index, last_log_term, pre_vote } => {
                let up_to_date = (last_log_term, last_log_index) >= (self.last_term(), self.last_index());
                let granted = if pre_vote {
                    term > self.hard.term && up_to_date && !in_lease
                } else {
                    term == self.hard.term
                        && up_to_date
                        && self.hard.voted_for.is_none_or(|v| v == candidate)
                };
                if granted && !pre_vote {
                    self.set_hard_state(HardState { term, voted_for: Some(candidate) }, &mut out);
                    self.reset_election_timer();
                }
                let resp_term = if granted && pre_vote { term } else { self.hard.term };
                out.push(Command::Send {
                    to: candidate,
                    msg: Message::VoteResponse { term: resp_term, from: self.cfg.id, granted, pre_vote },
                });
            }
            Message::VoteResponse { term, from, granted, pre_vote } => {
                if pre_vote && self.role == Role::PreCandidate && granted && term == self.hard.term + 1 {
                    self.votes.insert(from);
                    if self.votes.len() >= self.majority() {
                        self.start_election(&mut out);
                    }
                } else if !pre_vote && self.role == Role::Candidate && granted && term == self.hard.term {
                    self.votes.insert(from);
                    if self.votes.len() >= self.majority() {
                        self.become_leader(&mut out);
                    }
                }
            }
            Message::AppendEntries { term, leader, prev_log_index, prev_log_term, entries, leader_commit } => {
                if term < self.hard.term {
                    out.push(Command::Send {
                        to: leader,
                        msg: Message::AppendResponse { term: self.hard.term, from: self.cfg.id, success: false, match_index: 0 },
                    });
                    return out;
                }
                // Election safety (§5.2): one leader per term.
                assert!(
                    self.role != Role::Leader,
                    "two leaders in term {term}: {} and {leader}",
                    self.cfg.id
                );
                if self.role != Role::Follower || self.leader != Some(leader) {
                    self.become_follower(term, Some(leader), &mut out);
                }
                self.leader_contact_ms = Some(self.now_ms);
                self.reset_election_timer();
                self.handle_append(leader, prev_log_index, prev_log_term, entries, leader_commit, &mut out);
            }
            Message::AppendResponse { term, from, success, match_index } => {
                if self.role != Role::Leader || term != self.hard.term {
                    return out;
                }
                self.last_ack_ms.insert(from, self.now_ms);
                if success {
                    let m = self.match_index.get_mut(&from).expect("known peer");
                    *m = (*m).max(match_index);
                    let n = self.next_index.get_mut(&from).expect("known peer");
                    *n = (*n).max(match_index + 1);
                    self.maybe_commit(&mut out);
                    if self.next_index[&from] <= self.last_index() {
                        self.send_append(from, &mut out);
                    }
                } else {
                    let floor = self.match_index[&from] + 1;
                    let n = self.next_index.get_mut(&from).expect("known peer");
                    *n = (match_index + 1).max(floor).min(*n);
                    self.send_append(from, &mut out);
                }
            }
        }
        out
    }

    fn handle_append(
        &mut self,
        leader: NodeId,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry<C>>,
        leader_commit: u64,
        out: &mut Vec<Command<C>>,
    ) {
        let reply = |success, match_index, term, id| Command::Send {
            to: leader,
            msg: Message::AppendResponse { term, from: id, success, match_index },
        };
        match self.term_at(prev_log_index) {
            None => {
                // Our log is too short: retry after our last entry.
                out.push(reply(false, self.last_index(), self.hard.term, self.cfg.id));
                return;
            }
            Some(t) if t != prev_log_term => {
                // Conflict at prev: back up past the whole conflicting term.
                let mut hint = prev_log_index - 1;
                while hint > self.commit && self.term_at(hint) == Some(t) {
                    hint -= 1;
                }
                out.push(reply(false, hint, self.hard.term, self.cfg.id));
                return;
            }
            Some(_) => {}
        }
        // Log matching (§5.3): skip what we already have, truncate at the
        // first conflict, append the rest. Never truncate on a mere prefix,
        // since messages may arrive out of order.
        let matched = prev_log_index + entries.len() as u64;
        let mut new = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            assert_eq!(e.index, prev_log_index + 1 + i as u64, "entries in a message are contiguous");
            if !new.is_empty() {
                new.push(e);
                continue;
            }
            match self.term_at(e.index) {
                Some(t) if t == e.term => {}
                Some(_) => {
                    assert!(e.index > self.commit, "truncating committed entry {} (commit {})", e.index, self.commit);
                    self.log.truncate(e.index as usize - 1);
                    out.push(Command::Truncate { from_index: e.index });
                    new.push(e);
                }
                None => new.push(e),
            }
        }
        if !new.is_empty() {
            assert_eq!(new[0].index, self.last_index() + 1, "appends are contiguous");
            self.log.extend(new.iter().cloned());
            out.push(Command::Append(new));
        }
        // Entries up to `matched` now equal the leader's.
        assert!(matched <= self.last_index());
        if leader_commit > self.commit {
            self.advance_commit(leader_commit.min(matched), out);
        }
        out.push(reply(true, matched, self.hard.term, self.cfg.id));
    }
}
