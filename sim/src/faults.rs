//! Fault schedules and their injection.
//!
//! A schedule is the scenario's fixed `[[faults.at]]` entries plus, when
//! `[faults] random` is set, faults drawn from the seed: one every
//! `every_ms = [lo, hi]` until `heal_ms`, each of a kind from `kinds`, at a
//! random target. At `heal_ms` every fault stops: stopped nodes restart,
//! paused ones resume, partitions heal, broken disks are repaired.
//!
//! The schedule draws from its own stream of the seed ([`schedule_rng`]) and
//! names each random fault's target when it is drawn (`broker:N`), so a
//! seed's schedule written out as fixed `[[faults.at]]` entries
//! ([`FaultEvent::to_fault_at`], used by `ksim shrink`) replays the same run:
//! the injector's own draws (`random` targets written in the file, torn
//! power-loss writes, dir choice) do not depend on the schedule's.
//!
//! Disk faults (the broker reacts as Kafka: the I/O error takes the log dir
//! offline, and a broker with no dir left halts):
//! - `disk-eio`: appends, truncates, fsyncs and checkpoint writes on the
//!   node's disk fail with EIO;
//! - `disk-full`: appends and checkpoint writes fail with ENOSPC;
//! - `disk-dir-fail`: one log dir of the broker fails (every operation under
//!   it): the dir holding a `leader:`/`follower:` target's replica, else one
//!   drawn from the seeded rng.
//!
//! After `duration_ms` (or at heal) the disk is repaired and the node's
//! process restarted, since Kafka brings a failed dir back only on restart.

use crate::cluster::{Cluster, NodeRef};
use crate::scenario::{FaultAt, FaultKind, Scenario, Target};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a random fault lasts when the scenario does not say.
pub const RANDOM_FAULT_DURATION_MS: (u64, u64) = (1_000, 8_000);
/// The ChaCha stream [`schedule`] draws from (the injector uses stream 0).
pub const SCHEDULE_RNG_STREAM: u64 = 1;

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FaultEvent {
    pub at_ms: u64,
    pub kind: FaultKind,
    pub target: Target,
    pub duration_ms: Option<u64>,
}

impl FaultEvent {
    /// The event as a fixed `[[faults.at]]` entry (a schedule made explicit).
    pub fn to_fault_at(&self) -> FaultAt {
        FaultAt { at_ms: self.at_ms, kind: self.kind.clone(), target: self.target.clone(), duration_ms: self.duration_ms }
    }
}

/// The rng a seed's schedule is drawn from: its own stream, so that the
/// injector's draws are the same whether random faults come from
/// `[faults] random` or are written out as fixed entries.
pub fn schedule_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(SCHEDULE_RNG_STREAM);
    rng
}

/// Kinds this build can inject.
pub fn supported(kind: &FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::Crash
            | FaultKind::Restart
            | FaultKind::PowerLoss
            | FaultKind::Pause
            | FaultKind::Partition
            | FaultKind::DiskEio
            | FaultKind::DiskFull
            | FaultKind::DiskDirFail
    )
}

/// The full schedule for one seed, sorted by time (ties keep file order).
pub fn schedule(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Vec<FaultEvent> {
    let heal_ms = scenario.run.heal_ms;
    let mut events: Vec<FaultEvent> = scenario
        .faults
        .at
        .iter()
        .filter(|f| f.at_ms < heal_ms)
        .map(|f| FaultEvent { at_ms: f.at_ms, kind: f.kind.clone(), target: f.target.clone(), duration_ms: f.duration_ms })
        .collect();
    if let Some(random) = &scenario.faults.random {
        let (lo, hi) = (random.every_ms[0], random.every_ms[1].max(random.every_ms[0]));
        let mut t = rng.random_range(lo..=hi);
        while t < heal_ms && !random.kinds.is_empty() {
            let kind = random.kinds[rng.random_range(0..random.kinds.len())].clone();
            let duration = rng.random_range(RANDOM_FAULT_DURATION_MS.0..=RANDOM_FAULT_DURATION_MS.1);
            let target = random_target(scenario, rng);
            events.push(FaultEvent { at_ms: t, kind, target, duration_ms: Some(duration) });
            t += rng.random_range(lo..=hi);
        }
    }
    events.sort_by_key(|e| e.at_ms);
    events
}

/// A random fault's target, named when the schedule is drawn (as
/// [`resolve`] does for `random`: a broker) so the schedule shows it.
fn random_target(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Target {
    Target::Broker(rng.random_range(0..scenario.cluster.brokers.max(1)))
}

/// What the injector did, for the trace and the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FaultLogEntry {
    pub t_ms: u64,
    pub action: String,
    pub node: String,
}

/// Pending undo actions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Undo {
    Restart(NodeRef),
    Resume(NodeRef),
    Heal(NodeRef),
    RepairDisk(NodeRef),
}

/// Runs the schedule against the cluster from time `start` on. Returns the
/// log of applied actions. Stops every fault at `heal_ms`.
pub async fn inject(
    cluster: &std::sync::Mutex<Cluster>,
    events: Vec<FaultEvent>,
    heal_ms: u64,
    rng: &mut ChaCha8Rng,
    start: tokio::time::Instant,
) -> Vec<FaultLogEntry> {
    let mut log = Vec::new();
    // (time, undo): what to revert and when.
    let mut undos: Vec<(u64, Undo)> = Vec::new();
    let mut paused: BTreeSet<NodeRef> = BTreeSet::new();
    let mut isolated: BTreeSet<NodeRef> = BTreeSet::new();
    let mut broken_disks: BTreeSet<NodeRef> = BTreeSet::new();
    let mut queue = events.into_iter().peekable();
    loop {
        let next_event = queue.peek().map(|e| e.at_ms);
        let next_undo = undos.iter().map(|u| u.0).min();
        let next = [next_event, next_undo, Some(heal_ms)].into_iter().flatten().min().expect("heal_ms");
        tokio::time::sleep_until(start + Duration::from_millis(next)).await;
        let now_ms = next;
        if now_ms >= heal_ms && next_event.is_none_or(|t| t >= heal_ms) && next_undo.is_none_or(|t| t >= heal_ms) {
            // Heal: revert everything still in effect.
            let mut c = cluster.lock().unwrap();
            for n in std::mem::take(&mut paused) {
                c.handle.resume(c_node(&c, n));
                log.push(FaultLogEntry { t_ms: now_ms, action: "resume".into(), node: n.to_string() });
            }
            for n in std::mem::take(&mut isolated) {
                heal_node(&c, n);
                log.push(FaultLogEntry { t_ms: now_ms, action: "heal".into(), node: n.to_string() });
            }
            for n in std::mem::take(&mut broken_disks) {
                c.repair_disk(n);
                log.push(FaultLogEntry { t_ms: now_ms, action: "repair-disk".into(), node: n.to_string() });
            }
            let down: Vec<NodeRef> = all_nodes(&c).into_iter().filter(|n| !c.is_up(*n)).collect();
            for n in down {
                c.restart(n);
                log.push(FaultLogEntry { t_ms: now_ms, action: "restart".into(), node: n.to_string() });
            }
            return log;
        }
        // Undo actions due now.
        let due: Vec<Undo> = {
            let mut due: Vec<(u64, Undo)> = undos.iter().filter(|u| u.0 <= now_ms).cloned().collect();
            due.sort();
            undos.retain(|u| u.0 > now_ms);
            due.into_iter().map(|u| u.1).collect()
        };
        for u in due {
            let mut c = cluster.lock().unwrap();
            match u {
                Undo::Restart(n) if !c.is_up(n) => {
                    c.restart(n);
                    log.push(FaultLogEntry { t_ms: now_ms, action: "restart".into(), node: n.to_string() });
                }
                Undo::Resume(n) if paused.remove(&n) => {
                    c.handle.resume(c_node(&c, n));
                    log.push(FaultLogEntry { t_ms: now_ms, action: "resume".into(), node: n.to_string() });
                }
                Undo::Heal(n) if isolated.remove(&n) => {
                    heal_node(&c, n);
                    log.push(FaultLogEntry { t_ms: now_ms, action: "heal".into(), node: n.to_string() });
                }
                Undo::RepairDisk(n) if broken_disks.remove(&n) => {
                    c.repair_disk(n);
                    log.push(FaultLogEntry { t_ms: now_ms, action: "repair-disk".into(), node: n.to_string() });
                }
                _ => {}
            }
        }
        // Faults due now.
        while queue.peek().is_some_and(|e| e.at_ms <= now_ms) {
            let ev = queue.next().expect("peeked");
            let mut c = cluster.lock().unwrap();
            let targets = resolve(&c, &ev.target, rng);
            for n in targets {
                let action: Option<String> = match ev.kind {
                    FaultKind::DiskEio if c.is_up(n) => {
                        c.break_disk(n, |f| {
                            f.eio_on_append = true;
                            f.eio_on_sync = true;
                        });
                        broken_disks.insert(n);
                        Some("disk-eio".into())
                    }
                    FaultKind::DiskFull if c.is_up(n) => {
                        c.break_disk(n, |f| f.full = true);
                        broken_disks.insert(n);
                        Some("disk-full".into())
                    }
                    FaultKind::DiskDirFail if c.is_up(n) => match n {
                        NodeRef::Broker(b) => {
                            let dir = replica_of_target(&ev.target)
                                .and_then(|(t, p)| c.dir_of_replica(b, t, p))
                                .unwrap_or_else(|| c.log_dirs[rng.random_range(0..c.log_dirs.len())].clone());
                            c.break_disk(n, |f| {
                                f.failed_dirs.insert(dir.clone());
                            });
                            broken_disks.insert(n);
                            Some(format!("disk-dir-fail {dir}"))
                        }
                        NodeRef::Controller(_) => None,
                    },
                    _ => None,
                };
                let action = action.or_else(|| match ev.kind {
                    FaultKind::Crash if c.is_up(n) => {
                        c.crash(n);
                        Some("crash".to_string())
                    }
                    FaultKind::PowerLoss if c.is_up(n) => {
                        c.power_loss(n, rng);
                        Some("power-loss".to_string())
                    }
                    FaultKind::Restart => {
                        if c.is_up(n) {
                            c.crash(n);
                        }
                        undos.push((now_ms + ev.duration_ms.unwrap_or(0), Undo::Restart(n)));
                        Some("stop-for-restart".to_string())
                    }
                    FaultKind::Pause if c.is_up(n) && !paused.contains(&n) => {
                        c.handle.pause(c_node(&c, n));
                        paused.insert(n);
                        Some("pause".to_string())
                    }
                    FaultKind::Partition if !isolated.contains(&n) => {
                        isolate_node(&c, n);
                        isolated.insert(n);
                        Some("isolate".to_string())
                    }
                    _ => None,
                });
                let Some(action) = action else { continue };
                log.push(FaultLogEntry { t_ms: now_ms, action, node: n.to_string() });
                if let Some(d) = ev.duration_ms {
                    let undo = match ev.kind {
                        FaultKind::Crash | FaultKind::PowerLoss => Some(Undo::Restart(n)),
                        FaultKind::Pause => Some(Undo::Resume(n)),
                        FaultKind::Partition => Some(Undo::Heal(n)),
                        FaultKind::DiskEio | FaultKind::DiskFull | FaultKind::DiskDirFail => Some(Undo::RepairDisk(n)),
                        _ => None,
                    };
                    if let Some(u) = undo {
                        undos.push((now_ms + d, u));
                    }
                }
            }
        }
    }
}

/// The partition a `leader:`/`follower:` target names.
fn replica_of_target(target: &Target) -> Option<(&str, i32)> {
    match target {
        Target::Leader { topic, partition } | Target::Follower { topic, partition } => Some((topic.as_str(), *partition)),
        _ => None,
    }
}

fn c_node(c: &Cluster, n: NodeRef) -> madsim::task::NodeId {
    match n {
        NodeRef::Broker(i) => c.brokers[i].node.id(),
        NodeRef::Controller(i) => c.controllers[i].node.id(),
    }
}

fn isolate_node(c: &Cluster, n: NodeRef) {
    let net = madsim::net::NetSim::current();
    net.clog_node(c_node(c, n));
}

fn heal_node(c: &Cluster, n: NodeRef) {
    let net = madsim::net::NetSim::current();
    net.unclog_node(c_node(c, n));
}

fn all_nodes(c: &Cluster) -> Vec<NodeRef> {
    (0..c.brokers.len()).map(NodeRef::Broker).chain((0..c.controllers.len()).map(NodeRef::Controller)).collect()
}

/// Resolves a target to nodes using the controller's current image.
pub fn resolve(c: &Cluster, target: &Target, rng: &mut ChaCha8Rng) -> Vec<NodeRef> {
    let nb = c.brokers.len();
    let image = || c.controller_image();
    match target {
        Target::Broker(n) if (*n as usize) < nb => vec![NodeRef::Broker(*n as usize)],
        Target::AllBrokers => (0..nb).map(NodeRef::Broker).collect(),
        Target::Controller(n) if (*n as usize) < c.controllers.len() => vec![NodeRef::Controller(*n as usize)],
        Target::ActiveController => c.active_controller().map(|i| vec![NodeRef::Controller(i)]).unwrap_or_default(),
        Target::Leader { topic, partition } => image()
            .and_then(|img| img.partition(topic, *partition).map(|p| p.leader))
            .filter(|&l| l >= 0 && (l as usize) < nb)
            .map(|l| vec![NodeRef::Broker(l as usize)])
            .unwrap_or_default(),
        Target::Follower { topic, partition } => image()
            .and_then(|img| {
                let p = img.partition(topic, *partition)?;
                p.replicas.iter().copied().find(|&r| r != p.leader)
            })
            .map(|r| vec![NodeRef::Broker(r as usize)])
            .unwrap_or_default(),
        Target::Random => vec![NodeRef::Broker(rng.random_range(0..nb))],
        _ => Vec::new(),
    }
}
