//! Fault schedules and their injection.
//!
//! A schedule is the scenario's fixed `[[faults.at]]` entries plus, when
//! `[faults] random` is set, faults drawn from the seed: one every
//! `every_ms = [lo, hi]` until `heal_ms`, each of a kind from `kinds` (with
//! `swarm = true`, from a seeded non-empty subset of `kinds`, reported with
//! the run), at a random target. At `heal_ms` every fault stops: stopped
//! nodes (servers and clients) restart, paused ones resume, partitions heal,
//! the network's latency and loss return to normal, broken disks are
//! repaired, stalled consumers resume and jumped clocks come back.
//!
//! Node faults (`crash`, `power-loss`, `restart`, `pause`, `partition`) hit
//! servers and clients alike; a crashed client's history process ends with
//! a `crash` op and it restarts as a new process.
//!
//! `shutdown` stops a broker gracefully (Kafka's clean shutdown: it stops
//! serving, closes every log — fsync, producer snapshot at the log end —
//! and writes `.kafka_cleanshutdown`, so its next start skips log
//! recovery); a controller is simply stopped. With `duration_ms` (or at
//! heal) it is started again, as after `crash`.
//!
//! Partition shapes (`shape = …` on a `partition`, see
//! [`PartitionShape`]): `isolate` (default), `sets`, `one-way`, `bridge`,
//! `majority`. Clients stay with the side that keeps working: every node but
//! the isolated / one-way target, the larger bridge half, the majority.
//!
//! Network faults (`latency`, `loss`) are network-wide (madsim's network
//! config is global): every packet's latency is drawn from `latency_ms`, or
//! a packet is dropped with probability `rate` (TCP turns loss into
//! retransmit delay). Their target is not used.
//!
//! Client faults: `slow-consumer` makes an assign-mode consumer wait
//! `process_ms` after every poll; `clock-jump` moves a client's wall clock
//! by `jump_ms`: a producer's records' CreateTime, a consumer's poll
//! deadline and fetch backoffs (see `ksim_broker::client::clock`).
//!
//! Random mixes: node faults hit a broker drawn from the seed; with
//! `client_crashes = P` a share P of random crashes and restarts hit a
//! producer or assign-mode consumer instead; with `shapes = [...]` each
//! random partition draws its shape (and, for `sets`, two broker sides).
//! These draws happen only when the options are set, so scenarios without
//! them keep their schedules.
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

use ksim_broker::coordinator::placement::{partition_for, GROUP_METADATA_TOPIC};
use crate::cluster::{Cluster, NodeRef};
use crate::scenario::{ClientCounts, FaultAt, FaultKind, PartitionShape, Probability, RandomFaults, Scenario, Target};
use madsim::net::NetSim;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long a random fault lasts when the scenario does not say.
pub const RANDOM_FAULT_DURATION_MS: (u64, u64) = (1_000, 8_000);
/// The ChaCha stream [`schedule`] draws from (the injector uses stream 0).
pub const SCHEDULE_RNG_STREAM: u64 = 1;
/// `latency` without `latency_ms`: packets take this long (ms, drawn per packet).
pub const DEFAULT_LATENCY_MS: [u64; 2] = [50, 400];
/// `loss` without `rate`: the share of packets dropped.
pub const DEFAULT_LOSS_RATE: f64 = 0.05;
/// `slow-consumer` without `process_ms`: the wait after every poll.
pub const DEFAULT_SLOW_CONSUMER_PROCESS_MS: u64 = 2_000;
/// Random clock jumps move a client's clock by up to this much either way.
pub const RANDOM_CLOCK_JUMP_MS_MAX: i64 = 3_600_000;

/// Kind-specific options of one fault (see [`FaultAt`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultOptions {
    pub shape: Option<PartitionShape>,
    pub sides: Option<Vec<Vec<Target>>>,
    pub latency_ms: Option<[u64; 2]>,
    pub rate: Option<Probability>,
    pub process_ms: Option<u64>,
    pub jump_ms: Option<i64>,
}

impl FaultOptions {
    pub fn of(f: &FaultAt) -> FaultOptions {
        FaultOptions {
            shape: f.shape,
            sides: f.sides.clone(),
            latency_ms: f.latency_ms,
            rate: f.rate,
            process_ms: f.process_ms,
            jump_ms: f.jump_ms,
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FaultEvent {
    pub at_ms: u64,
    pub kind: FaultKind,
    pub target: Target,
    pub duration_ms: Option<u64>,
    /// Shape, latency, rate, … (defaults when unset).
    pub options: FaultOptions,
}

impl FaultEvent {
    /// A fixed `[[faults.at]]` entry as an event.
    pub fn of(f: &FaultAt) -> FaultEvent {
        FaultEvent {
            at_ms: f.at_ms,
            kind: f.kind.clone(),
            target: f.target.clone(),
            duration_ms: f.duration_ms,
            options: FaultOptions::of(f),
        }
    }

    /// The event as a fixed `[[faults.at]]` entry (a schedule made explicit).
    pub fn to_fault_at(&self) -> FaultAt {
        let o = &self.options;
        FaultAt {
            shape: o.shape,
            sides: o.sides.clone(),
            latency_ms: o.latency_ms,
            rate: o.rate,
            process_ms: o.process_ms,
            jump_ms: o.jump_ms,
            ..FaultAt::new(self.at_ms, self.kind.clone(), self.target.clone(), self.duration_ms)
        }
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

/// Kinds this build can inject (every kind of DESIGN.md).
pub fn supported(kind: &FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::Crash
            | FaultKind::Shutdown
            | FaultKind::Restart
            | FaultKind::PowerLoss
            | FaultKind::Pause
            | FaultKind::Partition
            | FaultKind::Latency
            | FaultKind::Loss
            | FaultKind::DiskEio
            | FaultKind::DiskFull
            | FaultKind::DiskDirFail
            | FaultKind::SlowConsumer
            | FaultKind::ClockJump
    )
}

/// One seed's fault plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Sorted by time (ties keep file order, fixed faults first).
    pub events: Vec<FaultEvent>,
    /// With `swarm = true`: the kinds this seed's random faults use.
    pub swarm_kinds: Option<Vec<FaultKind>>,
}

/// The full schedule for one seed, sorted by time (ties keep file order).
pub fn schedule(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Vec<FaultEvent> {
    plan(scenario, rng).events
}

/// The seed's schedule and, for swarm testing, the kinds it enabled.
pub fn plan(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Schedule {
    let heal_ms = scenario.run.heal_ms;
    let mut events: Vec<FaultEvent> = scenario
        .faults
        .at
        .iter()
        .filter(|f| f.at_ms < heal_ms)
        .map(FaultEvent::of)
        .collect();
    let mut swarm_kinds = None;
    if let Some(random) = &scenario.faults.random {
        let kinds = if random.swarm {
            let chosen = swarm_subset(&random.kinds, rng);
            swarm_kinds = Some(chosen.clone());
            chosen
        } else {
            random.kinds.clone()
        };
        let (lo, hi) = (random.every_ms[0], random.every_ms[1].max(random.every_ms[0]));
        let mut t = rng.random_range(lo..=hi);
        while t < heal_ms && !kinds.is_empty() {
            let kind = kinds[rng.random_range(0..kinds.len())].clone();
            let duration = rng.random_range(RANDOM_FAULT_DURATION_MS.0..=RANDOM_FAULT_DURATION_MS.1);
            let mut options = FaultOptions::default();
            if kind == FaultKind::ClockJump {
                options.jump_ms = Some(rng.random_range(-RANDOM_CLOCK_JUMP_MS_MAX..=RANDOM_CLOCK_JUMP_MS_MAX));
            }
            let mut target = random_target(scenario, random, &kind, rng);
            // Draws only a scenario that asks for shapes makes, so older
            // scenarios keep their schedules.
            if kind == FaultKind::Partition && !random.shapes.is_empty() {
                let shape = random.shapes[rng.random_range(0..random.shapes.len())];
                if shape == PartitionShape::Sets {
                    let sides = broker_sides(scenario.cluster.brokers, rng);
                    target = sides[0][0].clone();
                    options.sides = Some(sides);
                }
                options.shape = (shape != PartitionShape::Isolate).then_some(shape);
            }
            events.push(FaultEvent { at_ms: t, kind, target, duration_ms: Some(duration), options });
            t += rng.random_range(lo..=hi);
        }
    }
    events.sort_by_key(|e| e.at_ms);
    Schedule { events, swarm_kinds }
}

/// Swarm testing (Groce et al.): each kind is in with probability 1/2; an
/// empty draw takes one kind at random. Keeps the order of `kinds`.
pub fn swarm_subset(kinds: &[FaultKind], rng: &mut ChaCha8Rng) -> Vec<FaultKind> {
    let mut distinct: Vec<FaultKind> = Vec::new();
    for k in kinds {
        if !distinct.contains(k) {
            distinct.push(k.clone());
        }
    }
    let mut chosen: Vec<FaultKind> = distinct.iter().filter(|_| rng.random_bool(0.5)).cloned().collect();
    if chosen.is_empty() && !distinct.is_empty() {
        chosen.push(distinct[rng.random_range(0..distinct.len())].clone());
    }
    chosen
}

/// A random fault's target, named when the schedule is drawn so the
/// schedule shows it, as [`resolve_for`] picks for `random`: a consumer for
/// `slow-consumer`, a producer or consumer for `clock-jump`, with
/// `client_crashes = P` a client for a share P of crashes and restarts, a
/// broker otherwise; network-wide kinds keep `random` (their target is not
/// used).
fn random_target(scenario: &Scenario, random: &RandomFaults, kind: &FaultKind, rng: &mut ChaCha8Rng) -> Target {
    let clients = ClientCounts::of(scenario);
    let any_client = |rng: &mut ChaCha8Rng| clients.client(rng.random_range(0..clients.clients()));
    match kind {
        FaultKind::Latency | FaultKind::Loss => Target::Random,
        FaultKind::SlowConsumer if !clients.consumers.is_empty() => {
            clients.consumers[rng.random_range(0..clients.consumers.len())].clone()
        }
        FaultKind::ClockJump if clients.clients() > 0 => any_client(rng),
        FaultKind::SlowConsumer | FaultKind::ClockJump => Target::Random,
        FaultKind::Crash | FaultKind::Restart
            if random.client_crashes.is_some_and(|p| rng.random_bool(p.0)) && clients.clients() > 0 =>
        {
            any_client(rng)
        }
        _ => Target::Broker(rng.random_range(0..scenario.cluster.brokers.max(1))),
    }
}

/// Two seeded, non-empty sides splitting the brokers (a `sets` partition).
fn broker_sides(brokers: u32, rng: &mut ChaCha8Rng) -> Vec<Vec<Target>> {
    let mut ids: Vec<u32> = (0..brokers).collect();
    ids.shuffle(rng);
    let cut = rng.random_range(1..ids.len().max(2));
    let mut b = ids.split_off(cut.min(ids.len()));
    let mut a = ids;
    a.sort_unstable();
    b.sort_unstable();
    vec![a.into_iter().map(Target::Broker).collect(), b.into_iter().map(Target::Broker).collect()]
}

/// What the injector did, for the trace and the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FaultLogEntry {
    pub t_ms: u64,
    pub action: String,
    pub node: String,
}

/// What undoes one applied fault.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Undo {
    Restart(NodeRef),
    Resume(NodeRef),
    /// Unclog an isolated node.
    Heal(NodeRef),
    /// Unclog these directed links (refcounted: overlapping cuts stay).
    Unclog(Vec<(NodeRef, NodeRef)>),
    RepairDisk(NodeRef),
    /// End network fault number N (latency or loss).
    EndNetwork(u64),
    Unstall(NodeRef),
    /// Move the client's clock back by this much.
    ClockBack(NodeRef, i64),
}

/// A network-wide fault in effect.
#[derive(Debug, Clone, Copy)]
enum NetFault {
    Latency([u64; 2]),
    Loss(f64),
}

/// The injector's state: what is in effect and how to undo it.
struct Injector {
    log: Vec<FaultLogEntry>,
    /// (until, sequence, undo), applied in that order.
    active: Vec<(u64, u64, Undo)>,
    seq: u64,
    /// Directed links cut, with how many faults cut each.
    links: BTreeMap<(NodeRef, NodeRef), u32>,
    /// Network faults in effect, by number, and the config before any.
    net: BTreeMap<u64, NetFault>,
    net_base: Option<madsim::net::Config>,
}

impl Injector {
    fn push(&mut self, t_ms: u64, action: impl Into<String>, node: impl Into<String>) {
        self.log.push(FaultLogEntry { t_ms, action: action.into(), node: node.into() });
    }

    fn holds(&self, undo: &Undo) -> bool {
        self.active.iter().any(|(_, _, u)| u == undo)
    }

    fn add(&mut self, until: u64, undo: Undo) {
        self.seq += 1;
        self.active.push((until, self.seq, undo));
    }

    /// Recomputes madsim's network config from the faults in effect: the
    /// highest latency range and loss rate win.
    fn apply_network(&mut self) {
        let net = NetSim::current();
        if self.net_base.is_none() {
            let mut base = None;
            net.update_config(|c| base = Some(c.clone()));
            self.net_base = base;
        }
        let mut config = self.net_base.clone().expect("base config read");
        for f in self.net.values() {
            match *f {
                NetFault::Latency([lo, hi]) => {
                    let (lo, hi) = (Duration::from_millis(lo), Duration::from_millis(hi.max(lo) + 1));
                    if hi > config.send_latency.end {
                        config.send_latency = lo..hi;
                    }
                }
                NetFault::Loss(r) => config.packet_loss_rate = config.packet_loss_rate.max(r),
            }
        }
        net.update_config(|c| *c = config);
    }

    fn clog(&mut self, c: &Cluster, links: &[(NodeRef, NodeRef)]) {
        let net = NetSim::current();
        for &(a, b) in links {
            let n = self.links.entry((a, b)).or_insert(0);
            if *n == 0 {
                net.clog_link(c.node_id(a), c.node_id(b));
            }
            *n += 1;
        }
    }

    fn unclog(&mut self, c: &Cluster, links: &[(NodeRef, NodeRef)]) {
        let net = NetSim::current();
        for &(a, b) in links {
            if let Some(n) = self.links.get_mut(&(a, b)) {
                *n -= 1;
                if *n == 0 {
                    self.links.remove(&(a, b));
                    net.unclog_link(c.node_id(a), c.node_id(b));
                }
            }
        }
    }

    /// Reverts one fault and logs what it did.
    fn undo(&mut self, c: &mut Cluster, undo: Undo, now_ms: u64) {
        match undo {
            Undo::Restart(n) if !c.is_up(n) => {
                c.restart(n);
                self.push(now_ms, "restart", n.to_string());
            }
            Undo::Resume(n) => {
                if c.is_up(n) {
                    c.handle.resume(c.node_id(n));
                }
                self.push(now_ms, "resume", n.to_string());
            }
            Undo::Heal(n) => {
                NetSim::current().unclog_node(c.node_id(n));
                self.push(now_ms, "heal", n.to_string());
            }
            Undo::Unclog(links) => {
                self.unclog(c, &links);
                self.push(now_ms, "heal-partition", links.first().map(|l| l.0.to_string()).unwrap_or_default());
            }
            Undo::RepairDisk(n) => {
                c.repair_disk(n);
                self.push(now_ms, "repair-disk", n.to_string());
            }
            Undo::EndNetwork(id) => {
                self.net.remove(&id);
                self.apply_network();
                self.push(now_ms, "restore-network", "network");
            }
            Undo::Unstall(n) => {
                if let Some(client) = c.client(n) {
                    client.control.set_stall_ms(0);
                }
                self.push(now_ms, "unstall", n.to_string());
            }
            Undo::ClockBack(n, delta) => {
                if let Some(client) = c.client(n) {
                    client.control.clock.jump(-delta);
                }
                self.push(now_ms, format!("clock-jump {}", -delta), n.to_string());
            }
            Undo::Restart(_) => {}
        }
    }
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
    let mut inj =
        Injector { log: Vec::new(), active: Vec::new(), seq: 0, links: BTreeMap::new(), net: BTreeMap::new(), net_base: None };
    let mut queue = events.into_iter().peekable();
    loop {
        let next_event = queue.peek().map(|e| e.at_ms);
        let next_undo = inj.active.iter().map(|u| u.0).min();
        let next = [next_event, next_undo, Some(heal_ms)].into_iter().flatten().min().expect("heal_ms");
        tokio::time::sleep_until(start + Duration::from_millis(next)).await;
        let now_ms = next;
        if now_ms >= heal_ms && next_event.is_none_or(|t| t >= heal_ms) && next_undo.is_none_or(|t| t >= heal_ms) {
            // Heal: revert everything still in effect, in the order applied.
            let mut c = cluster.lock().unwrap();
            let mut rest = std::mem::take(&mut inj.active);
            rest.sort_by_key(|u| u.1);
            for (_, _, u) in rest {
                inj.undo(&mut c, u, now_ms);
            }
            let down: Vec<NodeRef> = c.all_nodes().into_iter().filter(|n| !c.is_up(*n)).collect();
            for n in down {
                c.restart(n);
                inj.push(now_ms, "restart", n.to_string());
            }
            return inj.log;
        }
        // Undo actions due now.
        let mut due: Vec<(u64, u64, Undo)> = inj.active.iter().filter(|u| u.0 <= now_ms).cloned().collect();
        due.sort();
        inj.active.retain(|u| u.0 > now_ms);
        for (_, _, u) in due {
            let mut c = cluster.lock().unwrap();
            inj.undo(&mut c, u, now_ms);
        }
        // Faults due now.
        while queue.peek().is_some_and(|e| e.at_ms <= now_ms) {
            let ev = queue.next().expect("peeked");
            let mut c = cluster.lock().unwrap();
            let until = ev.duration_ms.map_or(heal_ms, |d| now_ms + d);
            apply(&mut inj, &mut c, &ev, now_ms, until, rng);
        }
    }
}

/// Applies one fault at `now_ms`, to be undone at `until`.
fn apply(inj: &mut Injector, c: &mut Cluster, ev: &FaultEvent, now_ms: u64, until: u64, rng: &mut ChaCha8Rng) {
    match ev.kind {
        FaultKind::Latency | FaultKind::Loss => {
            let (fault, action) = if ev.kind == FaultKind::Latency {
                let [lo, hi] = ev.options.latency_ms.unwrap_or(DEFAULT_LATENCY_MS);
                (NetFault::Latency([lo, hi]), format!("latency {lo}..{hi}ms"))
            } else {
                let r = ev.options.rate.map_or(DEFAULT_LOSS_RATE, |p| p.0);
                (NetFault::Loss(r), format!("loss {r}"))
            };
            inj.seq += 1;
            let id = inj.seq;
            inj.net.insert(id, fault);
            inj.apply_network();
            inj.push(now_ms, action, "network");
            inj.add(until, Undo::EndNetwork(id));
            return;
        }
        FaultKind::Partition if ev.options.shape.is_some_and(|s| s != PartitionShape::Isolate) => {
            let shape = ev.options.shape.expect("checked");
            let targets = resolve_for(c, &ev.kind, &ev.target, rng);
            let Some((links, sides)) = partition_links(c, shape, &targets, ev.options.sides.as_deref(), rng) else {
                return;
            };
            inj.clog(c, &links);
            let name = |ns: &[NodeRef]| ns.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",");
            let action = format!("partition {shape} [{}] [{}]", name(&sides.0), name(&sides.1));
            inj.push(now_ms, action, targets.first().map(|n| n.to_string()).unwrap_or_else(|| "-".into()));
            inj.add(until, Undo::Unclog(links));
            return;
        }
        _ => {}
    }
    for n in resolve_for(c, &ev.kind, &ev.target, rng) {
        let (action, undo): (String, Option<Undo>) = match ev.kind {
            FaultKind::DiskEio if c.is_up(n) && n.is_server() => {
                c.break_disk(n, |f| {
                    f.eio_on_append = true;
                    f.eio_on_sync = true;
                });
                ("disk-eio".into(), Some(Undo::RepairDisk(n)))
            }
            FaultKind::DiskFull if c.is_up(n) && n.is_server() => {
                c.break_disk(n, |f| f.full = true);
                ("disk-full".into(), Some(Undo::RepairDisk(n)))
            }
            FaultKind::DiskDirFail if c.is_up(n) => match n {
                NodeRef::Broker(b) => {
                    let dir = replica_of_target(&ev.target)
                        .and_then(|(t, p)| c.dir_of_replica(b, t, p))
                        .unwrap_or_else(|| c.log_dirs[rng.random_range(0..c.log_dirs.len())].clone());
                    c.break_disk(n, |f| {
                        f.failed_dirs.insert(dir.clone());
                    });
                    (format!("disk-dir-fail {dir}"), Some(Undo::RepairDisk(n)))
                }
                _ => continue,
            },
            FaultKind::Crash if c.is_up(n) => {
                c.crash(n);
                ("crash".into(), ev.duration_ms.is_some().then_some(Undo::Restart(n)))
            }
            FaultKind::Shutdown if c.is_up(n) && n.is_server() => {
                c.shutdown(n);
                ("shutdown".into(), ev.duration_ms.is_some().then_some(Undo::Restart(n)))
            }
            FaultKind::PowerLoss if c.is_up(n) => {
                c.power_loss(n, rng);
                ("power-loss".into(), ev.duration_ms.is_some().then_some(Undo::Restart(n)))
            }
            FaultKind::Restart => {
                if c.is_up(n) {
                    c.crash(n);
                }
                inj.add(now_ms + ev.duration_ms.unwrap_or(0), Undo::Restart(n));
                ("stop-for-restart".into(), None)
            }
            FaultKind::Pause if c.is_up(n) && !inj.holds(&Undo::Resume(n)) => {
                c.handle.pause(c.node_id(n));
                ("pause".into(), Some(Undo::Resume(n)))
            }
            FaultKind::Partition if !inj.holds(&Undo::Heal(n)) => {
                NetSim::current().clog_node(c.node_id(n));
                ("isolate".into(), Some(Undo::Heal(n)))
            }
            FaultKind::SlowConsumer if !inj.holds(&Undo::Unstall(n)) => {
                let Some(client) = c.client(n) else { continue };
                let ms = ev.options.process_ms.unwrap_or(DEFAULT_SLOW_CONSUMER_PROCESS_MS);
                client.control.set_stall_ms(ms);
                (format!("slow-consumer {ms}ms"), Some(Undo::Unstall(n)))
            }
            FaultKind::ClockJump => {
                let Some(client) = c.client(n) else { continue };
                let delta = ev.options.jump_ms.unwrap_or(0);
                client.control.clock.jump(delta);
                (format!("clock-jump {delta}"), Some(Undo::ClockBack(n, delta)))
            }
            _ => continue,
        };
        // Disk repairs happen at `until`, as other undos; a crash or power
        // loss without a duration stays down until heal restarts it.
        if matches!(ev.kind, FaultKind::DiskEio | FaultKind::DiskFull | FaultKind::DiskDirFail) && inj.holds(&Undo::RepairDisk(n))
        {
            inj.push(now_ms, action, n.to_string());
            continue;
        }
        inj.push(now_ms, action, n.to_string());
        if let Some(u) = undo {
            inj.add(until, u);
        }
    }
}

/// The directed links a partition shape cuts, and its two sides (for the log).
#[allow(clippy::type_complexity)]
fn partition_links(
    c: &Cluster,
    shape: PartitionShape,
    targets: &[NodeRef],
    sides: Option<&[Vec<Target>]>,
    rng: &mut ChaCha8Rng,
) -> Option<(Vec<(NodeRef, NodeRef)>, (Vec<NodeRef>, Vec<NodeRef>))> {
    let all = c.all_nodes();
    let rest = |a: &BTreeSet<NodeRef>| -> Vec<NodeRef> { all.iter().copied().filter(|n| !a.contains(n)).collect() };
    let side = |ts: &[Target], rng: &mut ChaCha8Rng| -> BTreeSet<NodeRef> {
        ts.iter().flat_map(|t| resolve(c, t, rng)).collect()
    };
    let (a, b, both_ways): (Vec<NodeRef>, Vec<NodeRef>, bool) = match shape {
        PartitionShape::Isolate => {
            let a: BTreeSet<NodeRef> = targets.iter().copied().collect();
            (a.iter().copied().collect(), rest(&a), true)
        }
        PartitionShape::Sets | PartitionShape::OneWay => {
            let (a, b) = match sides {
                Some([s0, s1]) => {
                    let a = side(s0, rng);
                    let b: BTreeSet<NodeRef> = side(s1, rng).difference(&a).copied().collect();
                    (a, b.into_iter().collect())
                }
                _ => {
                    let a: BTreeSet<NodeRef> = targets.iter().copied().collect();
                    let b = rest(&a);
                    (a, b)
                }
            };
            (a.into_iter().collect(), b, shape == PartitionShape::Sets)
        }
        PartitionShape::Bridge => {
            let bridge: BTreeSet<NodeRef> = targets.iter().take(1).copied().collect();
            let mut servers: Vec<NodeRef> = all.iter().copied().filter(|n| n.is_server() && !bridge.contains(n)).collect();
            servers.shuffle(rng);
            let mut h2 = servers.split_off(servers.len().div_ceil(2));
            let mut h1 = servers;
            h1.extend(all.iter().copied().filter(|n| !n.is_server()));
            h1.sort();
            h2.sort();
            (h1, h2, true)
        }
        PartitionShape::Majority => {
            let mut minority: BTreeSet<NodeRef> = BTreeSet::new();
            for (count, is) in [
                (c.brokers.len(), (|n: &NodeRef| matches!(n, NodeRef::Broker(_))) as fn(&NodeRef) -> bool),
                (c.controllers.len(), |n: &NodeRef| matches!(n, NodeRef::Controller(_))),
            ] {
                let size = (count.saturating_sub(1)) / 2;
                let mut mine: Vec<NodeRef> = targets.iter().copied().filter(is).collect();
                let mut others: Vec<NodeRef> = all.iter().copied().filter(|n| is(n) && !mine.contains(n)).collect();
                others.shuffle(rng);
                while mine.len() < size {
                    let Some(n) = others.pop() else { break };
                    mine.push(n);
                }
                minority.extend(mine);
            }
            (minority.iter().copied().collect(), rest(&minority), true)
        }
    };
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut links = Vec::new();
    for &x in &a {
        for &y in &b {
            if x != y {
                links.push((x, y));
                if both_ways {
                    links.push((y, x));
                }
            }
        }
    }
    Some((links, (a, b)))
}

/// The partition a `leader:`/`follower:` target names.
fn replica_of_target(target: &Target) -> Option<(&str, i32)> {
    match target {
        Target::Leader { topic, partition } | Target::Follower { topic, partition } => Some((topic.as_str(), *partition)),
        _ => None,
    }
}

/// Resolves a target for a fault kind: `random` picks among what the kind
/// can hit (a consumer for `slow-consumer`, a client for `clock-jump`,
/// nothing for network-wide kinds, a broker otherwise).
pub fn resolve_for(c: &Cluster, kind: &FaultKind, target: &Target, rng: &mut ChaCha8Rng) -> Vec<NodeRef> {
    match (kind, target) {
        (FaultKind::Latency | FaultKind::Loss, _) => Vec::new(),
        (FaultKind::SlowConsumer, Target::Random) if !c.consumers.is_empty() => {
            vec![NodeRef::Consumer(rng.random_range(0..c.consumers.len()))]
        }
        (FaultKind::ClockJump, Target::Random) if !c.producers.is_empty() || !c.consumers.is_empty() => {
            let n = rng.random_range(0..c.producers.len() + c.consumers.len());
            match n.checked_sub(c.producers.len()) {
                None => vec![NodeRef::Producer(n)],
                Some(i) => vec![NodeRef::Consumer(i)],
            }
        }
        (FaultKind::SlowConsumer | FaultKind::ClockJump, Target::Random) => Vec::new(),
        _ => resolve(c, target, rng),
    }
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
        Target::Coordinator(group) => image()
            .and_then(|img| {
                let offsets = img.topics.get(GROUP_METADATA_TOPIC)?;
                let p = partition_for(group, i32::try_from(offsets.partitions.len()).ok().filter(|&n| n > 0)?);
                img.partition(GROUP_METADATA_TOPIC, p).map(|p| p.leader)
            })
            .filter(|&l| l >= 0 && (l as usize) < nb)
            .map(|l| vec![NodeRef::Broker(l as usize)])
            .unwrap_or_default(),
        Target::Producer(n) if (*n as usize) < c.producers.len() => vec![NodeRef::Producer(*n as usize)],
        Target::AssignConsumer(_) | Target::Consumer { .. } => c.consumer_named(target).into_iter().collect(),
        Target::Random => vec![NodeRef::Broker(rng.random_range(0..nb))],
        _ => Vec::new(),
    }
}
