//! The Raft core driven directly over a deterministic in-memory network.
//! Every run checks election safety (one leader per term) and state machine
//! safety (no two nodes apply different entries at one index).

use super::*;
use std::collections::VecDeque;

const ELECTION_MS: u64 = 1000;
const STEP_MS: u64 = 10;
/// Bound on messages delivered in one step (a livelock guard).
const MAX_DELIVERIES_PER_STEP: usize = 10_000;

/// A node's durable state, as the runtime would keep it on disk.
#[derive(Clone, Default)]
struct Disk {
    hard: HardState,
    log: Vec<Entry<u64>>,
}

struct Net {
    nodes: Vec<Option<RaftCore<u64>>>,
    disks: Vec<Disk>,
    applied: Vec<Vec<Entry<u64>>>,
    queue: VecDeque<(NodeId, NodeId, Message<u64>)>,
    /// Directed links that drop messages.
    cut: BTreeSet<(NodeId, NodeId)>,
    now_ms: u64,
    leaders_by_term: BTreeMap<u64, NodeId>,
    committed: BTreeMap<u64, Entry<u64>>,
    truncations: usize,
}

fn cfg(id: NodeId, n: u64) -> RaftConfig {
    RaftConfig { id, voters: (0..n).collect(), election_timeout_min_ms: ELECTION_MS, heartbeat_interval_ms: 100 }
}

impl Net {
    fn new(n: u64) -> Net {
        let mut net = Net {
            nodes: Vec::new(),
            disks: vec![Disk::default(); n as usize],
            applied: vec![Vec::new(); n as usize],
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            now_ms: 0,
            leaders_by_term: BTreeMap::new(),
            committed: BTreeMap::new(),
            truncations: 0,
        };
        for id in 0..n {
            net.nodes.push(Some(RaftCore::restore(cfg(id, n), HardState::default(), Vec::new(), 1000 + id, 0)));
        }
        net
    }

    fn n(&self) -> u64 {
        self.nodes.len() as u64
    }

    fn exec(&mut self, id: NodeId, cmds: Vec<Command<u64>>) {
        for c in cmds {
            let disk = &mut self.disks[id as usize];
            match c {
                Command::PersistHardState(hs) => disk.hard = hs,
                Command::Truncate { from_index } => {
                    disk.log.truncate(from_index as usize - 1);
                    self.truncations += 1;
                }
                Command::Append(es) => {
                    assert_eq!(es[0].index, disk.log.len() as u64 + 1);
                    disk.log.extend(es);
                }
                Command::Send { to, msg } => self.queue.push_back((id, to, msg)),
                Command::Apply(es) => {
                    for e in es {
                        // State machine safety (§5.4.3).
                        assert_eq!(e.index, self.applied[id as usize].len() as u64 + 1, "apply in order");
                        if let Some(prev) = self.committed.get(&e.index) {
                            assert_eq!(prev, &e, "two entries committed at index {}", e.index);
                        }
                        self.committed.insert(e.index, e.clone());
                        self.applied[id as usize].push(e);
                    }
                }
            }
        }
        if let Some(node) = &self.nodes[id as usize] {
            if node.is_leader() {
                // Election safety (§5.2).
                let prev = self.leaders_by_term.insert(node.term(), id);
                assert!(prev.is_none() || prev == Some(id), "two leaders in term {}", node.term());
            }
            // The durable state equals the core's view.
            assert_eq!(self.disks[id as usize].hard, node.hard_state());
            assert_eq!(self.disks[id as usize].log.as_slice(), node.entries());
        }
    }

    fn run(&mut self, ms: u64) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.now_ms += STEP_MS;
            for id in 0..self.n() {
                let now = self.now_ms;
                if let Some(node) = self.nodes[id as usize].as_mut() {
                    let cmds = node.tick(now);
                    self.exec(id, cmds);
                }
            }
            let mut delivered = 0;
            while let Some((from, to, msg)) = self.queue.pop_front() {
                delivered += 1;
                assert!(delivered < MAX_DELIVERIES_PER_STEP, "message storm");
                if self.cut.contains(&(from, to)) {
                    continue;
                }
                if let Some(node) = self.nodes[to as usize].as_mut() {
                    let cmds = node.step(msg);
                    self.exec(to, cmds);
                }
            }
        }
    }

    fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<(u64, NodeId)> =
            self.nodes.iter().flatten().filter(|n| n.is_leader()).map(|n| (n.term(), n.id())).collect();
        leaders.iter().max().map(|&(_, id)| id)
    }

    fn node(&mut self, id: NodeId) -> &mut RaftCore<u64> {
        self.nodes[id as usize].as_mut().expect("node up")
    }

    fn propose(&mut self, id: NodeId, value: u64) -> Result<u64, NotLeader> {
        let (index, cmds) = self.node(id).propose(value)?;
        self.exec(id, cmds);
        Ok(index)
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes[id as usize] = None;
        self.applied[id as usize].clear();
        self.queue.retain(|(_, to, _)| *to != id);
    }

    fn restart(&mut self, id: NodeId) {
        let d = self.disks[id as usize].clone();
        let n = self.n();
        self.nodes[id as usize] = Some(RaftCore::restore(cfg(id, n), d.hard, d.log, 7 + id + self.now_ms, self.now_ms));
    }

    fn isolate(&mut self, id: NodeId) {
        for o in 0..self.n() {
            if o != id {
                self.cut.insert((id, o));
                self.cut.insert((o, id));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn applied_values(&self, id: NodeId) -> Vec<u64> {
        self.applied[id as usize].iter().filter_map(|e| e.cmd).collect()
    }
}

// Reference: Raft §5.2 (leader election).
#[test]
fn one_leader_is_elected_and_everyone_follows_it() {
    let mut net = Net::new(3);
    net.run(5 * ELECTION_MS);
    let leader = net.leader().expect("a leader");
    let term = net.node(leader).term();
    for id in 0..3 {
        assert_eq!(net.node(id).leader(), Some(leader));
        assert_eq!(net.node(id).term(), term);
    }
    // The leader's no-op is committed everywhere.
    for id in 0..3 {
        assert_eq!(net.node(id).commit_index(), 1);
    }
}

#[test]
fn a_single_node_commits_alone() {
    let mut net = Net::new(1);
    net.run(3 * ELECTION_MS);
    assert_eq!(net.leader(), Some(0));
    let i = net.propose(0, 42).unwrap();
    assert_eq!(net.node(0).commit_index(), i);
    assert_eq!(net.applied_values(0), vec![42]);
}

// Reference: Raft §5.2 — a crashed leader is replaced in a higher term.
#[test]
fn leader_crash_elects_a_new_leader_in_a_higher_term() {
    let mut net = Net::new(3);
    net.run(5 * ELECTION_MS);
    let old = net.leader().unwrap();
    let old_term = net.node(old).term();
    net.crash(old);
    net.run(5 * ELECTION_MS);
    let new = net.leader().expect("new leader");
    assert_ne!(new, old);
    assert!(net.node(new).term() > old_term);
    assert!(net.propose(new, 7).is_ok());
    net.run(ELECTION_MS);
    let followers: Vec<NodeId> = (0..3).filter(|&i| i != old).collect();
    for id in followers {
        assert_eq!(net.applied_values(id), vec![7]);
    }
}

#[test]
fn propose_on_a_follower_names_the_leader() {
    let mut net = Net::new(3);
    net.run(5 * ELECTION_MS);
    let leader = net.leader().unwrap();
    let follower = (leader + 1) % 3;
    assert_eq!(net.propose(follower, 1), Err(NotLeader { leader_hint: Some(leader) }));
}

// Reference: Raft §5.4 — a leader cut off from the majority cannot commit,
// steps down (check-quorum), and its uncommitted entries are overwritten.
#[test]
fn minority_leader_cannot_commit_and_its_suffix_is_repaired() {
    let mut net = Net::new(3);
    net.run(5 * ELECTION_MS);
    let old = net.leader().unwrap();
    net.propose(old, 1).unwrap();
    net.run(ELECTION_MS);
    net.isolate(old);
    let lost = net.propose(old, 666).unwrap();
    net.propose(old, 667).unwrap();
    net.run(5 * ELECTION_MS);
    assert!(net.node(old).commit_index() < lost, "a minority committed");
    assert!(!net.node(old).is_leader(), "check-quorum: the cut-off leader steps down");
    let new = net.leader().expect("majority elects");
    assert_ne!(new, old);
    net.propose(new, 2).unwrap();
    net.run(ELECTION_MS);
    net.heal();
    net.run(5 * ELECTION_MS);
    // Reference: §5.3 log matching — the conflicting suffix is truncated.
    assert!(net.truncations >= 1);
    for id in 0..3 {
        assert_eq!(net.applied_values(id), vec![1, 2], "node {id}");
        let leader_log = net.disks[new as usize].log.clone();
        assert_eq!(net.node(id).entries(), leader_log.as_slice());
    }
}

// Reference: Raft §5.4.3 (leader completeness): committed entries survive
// any crash and are never overwritten.
#[test]
fn committed_entries_survive_leader_crashes() {
    let mut net = Net::new(5);
    let mut expected = Vec::new();
    for round in 0..4u64 {
        net.run(5 * ELECTION_MS);
        let leader = net.leader().expect("leader");
        for k in 0..3 {
            let v = round * 10 + k;
            net.propose(leader, v).unwrap();
            expected.push(v);
        }
        net.run(ELECTION_MS);
        net.crash(leader);
        net.run(ELECTION_MS);
        net.restart(leader);
    }
    net.run(5 * ELECTION_MS);
    // Restarted nodes re-apply from index 1 once they learn the commit index.
    for id in 0..5 {
        assert_eq!(net.applied_values(id), expected, "node {id}");
    }
}

// Reference: Raft Figure 2 "persistent state on all servers".
#[test]
fn restart_keeps_term_vote_and_log() {
    let mut net = Net::new(3);
    net.run(5 * ELECTION_MS);
    let leader = net.leader().unwrap();
    net.propose(leader, 5).unwrap();
    net.run(ELECTION_MS);
    let terms: Vec<u64> = (0..3).map(|i| net.node(i).term()).collect();
    for id in 0..3 {
        net.crash(id);
    }
    for id in 0..3 {
        net.restart(id);
        let node = net.node(id);
        assert_eq!(node.term(), terms[id as usize]);
        assert_eq!(node.commit_index(), 0, "commit is learned again, not persisted");
        assert_eq!(node.last_index(), 2);
    }
    net.run(5 * ELECTION_MS);
    let leader = net.leader().expect("re-elected");
    assert!(net.node(leader).term() > terms[0]);
    for id in 0..3 {
        assert_eq!(net.applied_values(id), vec![5]);
    }
}

// Reference: thesis §4.2.3 — a node rejoining from a partition does not
// depose a leader that the majority still hears from (pre-vote + stickiness).
#[test]
fn rejoining_node_does_not_disrupt_a_healthy_leader() {
    let mut net = Net::new(3);
    net.run(5 * ELECTION_MS);
    let leader = net.leader().unwrap();
    let term = net.node(leader).term();
    let other = (leader + 1) % 3;
    net.isolate(other);
    net.run(10 * ELECTION_MS);
    assert_eq!(net.node(other).term(), term, "pre-vote keeps the isolated node's term");
    net.heal();
    net.run(5 * ELECTION_MS);
    assert_eq!(net.leader(), Some(leader));
    assert_eq!(net.node(leader).term(), term);
}

#[test]
fn same_seeds_same_elections() {
    let trace = || {
        let mut net = Net::new(5);
        net.run(20 * ELECTION_MS);
        net.leaders_by_term.clone()
    };
    assert_eq!(trace(), trace());
}
