//! One seed end to end: build the cluster, create topics, run the workload
//! under the fault schedule, heal, read everything back, check.

use crate::checker;
use crate::cluster::{client_ip, ClientRole, Cluster, ClusterSpec, ProcessIds};
use crate::faults::{self, FaultEvent, FaultLogEntry};
use crate::history::History;
use crate::observations::{Observed, RunObserver};
use crate::report::{SeedArtifacts, SeedResult, Verdict};
use crate::scenario::{ClientCounts, FaultKind, Scenario, Target};
use crate::trace::TraceHasher;
use crate::workload::{self, consumer, group_consumer, producer, ClientControl, Event, Recorder};
use ksim_broker::client::admin::COORDINATOR_GROUP;
use ksim_broker::client::{Admin, AdminConfig, Consumer, ConsumerConfig};
use ksim_broker::config::Settings;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bound on cluster setup (registration, topic creation, leaders).
pub const SETUP_TIMEOUT_MS: u64 = 60_000;
/// How often the harness checks whether every client finished.
pub const CLIENT_DONE_POLL_MS: u64 = 50;
/// How often the liveness watch reads the controller's image after heal.
pub const RECOVERY_POLL_MS: u64 = 100;

/// What the simulation produced, before checking.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub events: Vec<Event>,
    pub faults: Vec<FaultLogEntry>,
    /// The schedule the injector ran (targets as written, before
    /// resolution), so reports can name each fault window's target.
    pub fault_schedule: Vec<FaultEvent>,
    pub sim_ms: u64,
    /// The final reader reached the end of every partition.
    pub final_reads_complete: bool,
    /// Partitions without a leader or a full-enough ISR `liveness_ms` after
    /// heal (empty: the cluster recovered in time).
    pub unrecovered: Vec<String>,
    /// Consumer groups not stable `liveness_ms` after heal, with why
    /// ([`checker::liveness::GroupSettling`]; empty: all settled).
    pub unstable_groups: Vec<String>,
    /// With `[faults] random.swarm`: the kinds this seed enabled.
    pub swarm_kinds: Option<Vec<FaultKind>>,
    /// What brokers reported about their replicas, in order, stamped in
    /// ms since the main phase began (the history's clock).
    pub observations: Vec<Observed>,
    /// Observations over the bound (not kept).
    pub observations_dropped: u64,
}

/// A TOML config value as the string Kafka's config parsers expect.
pub fn value_string(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn settings_of(map: &BTreeMap<String, toml::Value>) -> Settings {
    Settings(map.iter().map(|(k, v)| (k.clone(), value_string(v))).collect())
}

fn string_map(map: &BTreeMap<String, toml::Value>) -> BTreeMap<String, String> {
    settings_of(map).0
}

/// Runs one seed and judges it against the scenario's expectation.
pub fn run_seed(scenario: &Scenario, seed: u64) -> anyhow::Result<SeedResult> {
    let wall = std::time::Instant::now();
    let out = simulate_seed(scenario, seed)?;
    let wall_ms = wall.elapsed().as_millis() as u64;
    Ok(judge(scenario, seed, out, wall_ms))
}

/// Runs one seed's simulation in a fresh runtime, without judging it.
pub fn simulate_seed(scenario: &Scenario, seed: u64) -> anyhow::Result<RunOutput> {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(simulate(scenario.clone(), seed))
}

/// Turns a run's output into its verdict, anomalies and trace hash.
pub fn judge(scenario: &Scenario, seed: u64, out: RunOutput, wall_ms: u64) -> SeedResult {
    let history = to_history(&out.events);
    let mut hasher = TraceHasher::new();
    for line in history.to_jsonl().lines() {
        hasher.line(line);
    }
    for f in &out.faults {
        hasher.line(&serde_json::to_string(f).expect("fault log entry serialises"));
    }
    let mut anomalies = checker::check_run(&history, &out.observations).anomalies;
    anomalies.extend(checker::liveness::check(out.final_reads_complete, scenario.run.final_poll_ms));
    anomalies.extend(checker::liveness::check_recovery(&out.unrecovered, scenario.run.liveness_ms));
    anomalies.extend(checker::liveness::check_groups(&out.unstable_groups, scenario.run.liveness_ms));
    let check = checker::CheckResult::from_anomalies(anomalies);
    let mut result =
        SeedResult::judge(scenario, seed, history, check, hasher.finish(), out.sim_ms, wall_ms, out.faults.len() as u64);
    result.swarm = out.swarm_kinds.clone();
    if out.observations_dropped > 0 {
        result.notes.push(format!("{} broker observations over the bound were not checked", out.observations_dropped));
    }
    result.artifacts = Some(Arc::new(SeedArtifacts {
        observations: out.observations,
        observations_dropped: out.observations_dropped,
        fault_log: out.faults,
        fault_schedule: out.fault_schedule,
        final_reads_complete: out.final_reads_complete,
    }));
    result
}

/// Maps recorder events onto the history contract.
pub fn to_history(events: &[Event]) -> History {
    use crate::history::{MicroOp, Op, OpType};
    let mut h = History::default();
    for e in events {
        let op = match e {
            Event::Send { process, invoke_t_ms, t_ms, partition, key, value, outcome } => {
                let offset = match outcome {
                    workload::SendOutcome::Ok(offset) => *offset,
                    _ => None,
                };
                let micro = MicroOp::Send { partition: partition.clone(), value: *value, offset, key: key.clone() };
                classified(Op::micro(*process, "send", *t_ms, OpType::Ok, &[micro]).invoked_at(*invoke_t_ms), outcome)
            }
            Event::Poll { process, t_ms, reads } => Op::poll_ok(*process, *t_ms, reads.clone()),
            Event::Assign { process, t_ms, partitions } => Op::assign_ok(*process, *t_ms, partitions.clone()),
            Event::Crash { process, t_ms } => Op::crash_info(*process, *t_ms),
            Event::Subscribe { process, t_ms, group, topics } => {
                let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                Op::subscribe_ok(*process, *t_ms, group, &topics)
            }
            Event::Rebalance { process, t_ms, group, generation, assigned, revoked } => {
                let assigned: Vec<&str> = assigned.iter().map(String::as_str).collect();
                let revoked: Vec<&str> = revoked.iter().map(String::as_str).collect();
                Op::rebalance_ok(*process, *t_ms, group, *generation, &assigned, &revoked)
            }
            Event::Commit { process, t_ms, group, offsets, outcome } => {
                let offsets: Vec<(&str, i64)> = offsets.iter().map(|(p, o)| (p.as_str(), *o)).collect();
                classified(Op::commit_ok(*process, *t_ms, group, &offsets), outcome)
            }
        };
        h.push(op);
    }
    h
}

/// `op` (recorded as `ok`) as its outcome says: `ok`, or `fail` / `info`
/// with the client's error.
fn classified(op: crate::history::Op, outcome: &workload::SendOutcome) -> crate::history::Op {
    use crate::history::{Op, OpType};
    match outcome {
        workload::SendOutcome::Ok(_) => op,
        workload::SendOutcome::Fail(e) => Op { op_type: OpType::Fail, ..op }.with_error(e),
        workload::SendOutcome::Info(e) => Op { op_type: OpType::Info, ..op }.with_error(e),
    }
}

/// The simulation itself (runs inside the madsim runtime).
pub async fn simulate(sc: Scenario, seed: u64) -> anyhow::Result<RunOutput> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let spec = ClusterSpec {
        brokers: sc.cluster.brokers as usize,
        controllers: sc.cluster.controllers as usize,
        log_dirs: sc.cluster.log_dirs as usize,
        os_writeback_ms: sc.cluster.os_writeback_ms,
        settings: settings_of(&sc.cluster.config),
    };
    for k in sc.faults.at.iter().map(|f| &f.kind).chain(sc.faults.random.iter().flat_map(|r| &r.kinds)) {
        anyhow::ensure!(faults::supported(k), "fault kind {k:?} is not implemented yet");
    }
    let observer = Arc::new(RunObserver::new());
    let cluster = Arc::new(Mutex::new(Cluster::build(&spec, Some(observer.clone()))));
    let bootstrap = cluster.lock().unwrap().bootstrap();
    let handle = madsim::runtime::Handle::current();
    // Client machines take addresses in creation order.
    let next_ip = std::cell::Cell::new(0usize);
    let take_ip = || {
        next_ip.set(next_ip.get() + 1);
        client_ip(next_ip.get() - 1)
    };
    let client_node = |name: String| handle.create_node().name(name).ip(take_ip()).build();

    // Setup: create topics, wait for leaders.
    let admin_node = client_node("admin".into());
    let topics: Vec<(String, i32, i32, BTreeMap<String, String>)> = sc
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.partitions as i32, t.replication_factor as i32, string_map(&t.config)))
        .collect();
    let coordinator_groups: BTreeSet<String> = sc
        .faults
        .at
        .iter()
        .filter_map(|f| match &f.target {
            Target::Coordinator(g) => Some(g.clone()),
            _ => None,
        })
        .collect();
    let b = bootstrap.clone();
    let setup = admin_node.spawn(async move {
        let admin = Admin::new(b.clone(), AdminConfig::from_map(&BTreeMap::new()).expect("default admin config"));
        for (name, partitions, rf, configs) in &topics {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(SETUP_TIMEOUT_MS);
            loop {
                match admin.create_topic(name, *partitions, *rf, configs.clone()).await {
                    Ok(()) => break,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        return Err(anyhow::anyhow!("creating topic {name}: {e}"));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
            admin
                .wait_for_leaders(name, *partitions, Duration::from_millis(SETUP_TIMEOUT_MS))
                .await
                .map_err(|e| anyhow::anyhow!("waiting for leaders of {name}: {e}"))?;
            // Metadata can name a leader before that broker has applied the
            // change: wait until every leader answers ListOffsets, so the
            // workload starts on a ready cluster.
            let mut probe = Consumer::new(b.clone(), ConsumerConfig::from_map(&BTreeMap::new()).expect("default consumer config"));
            let parts: Vec<(String, i32)> = (0..*partitions).map(|p| (name.clone(), p)).collect();
            probe.end_offsets(&parts).await.map_err(|e| anyhow::anyhow!("leaders of {name} not ready: {e}"))?;
        }
        // Groups a `coordinator:GROUP` fault targets: look up their
        // coordinators as a consumer does on startup, which creates the
        // offsets topic, so the target resolves during the main phase.
        for group in &coordinator_groups {
            admin
                .find_coordinator(COORDINATOR_GROUP, group)
                .await
                .map_err(|e| anyhow::anyhow!("finding the coordinator of group {group}: {e}"))?;
        }
        Ok::<(), anyhow::Error>(())
    });
    setup.await.map_err(|e| anyhow::anyhow!("setup task: {e}"))??;

    // Main phase.
    let start = tokio::time::Instant::now();
    let rec = Arc::new(Recorder::new(start));
    let duration_ms = sc.run.duration_ms;
    let partitions_of: BTreeMap<String, i32> = sc.topics.iter().map(|t| (t.name.clone(), t.partitions as i32)).collect();
    let ids = Arc::new(ProcessIds::default());
    for p in &sc.producers {
        for _ in 0..p.count {
            let control = Arc::new(ClientControl::default());
            let (topic, partitions, rate_per_s, keys) = (p.topic.clone(), partitions_of[&p.topic], p.rate_per_s, p.keys as u64);
            let (config, bootstrap, rec2, ctl) = (string_map(&p.config), bootstrap.clone(), rec.clone(), control.clone());
            // Captured by the node's workload, so it outlives the node's crashes.
            let outbox = p.resend_unacked_on_restart.then(|| Arc::new(producer::Outbox::default()));
            let workload = move |process| {
                let spec = producer::ProducerSpec {
                    process,
                    topic: topic.clone(),
                    partitions,
                    rate_per_s,
                    keys,
                    config: config.clone(),
                    seed,
                    stop_ms: duration_ms,
                    control: ctl.clone(),
                    outbox: outbox.clone(),
                };
                producer::run(spec, bootstrap.clone(), rec2.clone())
            };
            cluster.lock().unwrap().add_client(ClientRole::Producer, take_ip(), &ids, &rec, control, workload);
        }
    }
    let consumer_topics = |names: &[String]| -> Vec<(String, i32)> {
        names.iter().map(|t| (t.clone(), partitions_of[t])).collect()
    };
    let mut consumer_targets = ClientCounts::of(&sc).consumers.into_iter();
    for c in &sc.consumers {
        for _ in 0..c.count {
            let target = consumer_targets.next().expect("one target per consumer process");
            let control = Arc::new(ClientControl::default());
            let (bootstrap, rec2, ctl) = (bootstrap.clone(), rec.clone(), control.clone());
            let (config, process_ms) = (string_map(&c.config), c.process_ms);
            let role = ClientRole::Consumer(target);
            let mut cluster = cluster.lock().unwrap();
            match &c.group {
                None => {
                    let topics = consumer_topics(&c.topics);
                    let workload = move |process| {
                        let spec = consumer::ConsumerSpec {
                            process,
                            topics: topics.clone(),
                            config: config.clone(),
                            process_ms,
                            stop_ms: duration_ms,
                            control: ctl.clone(),
                        };
                        consumer::run(spec, bootstrap.clone(), rec2.clone())
                    };
                    cluster.add_client(role, take_ip(), &ids, &rec, control, workload)
                }
                Some(group) => {
                    let (group, topics, commit) = (group.clone(), c.topics.clone(), c.commit);
                    let workload = move |process| {
                        let spec = group_consumer::GroupConsumerSpec {
                            process,
                            group: group.clone(),
                            topics: topics.clone(),
                            config: config.clone(),
                            commit,
                            process_ms,
                            stop_ms: duration_ms,
                            control: ctl.clone(),
                        };
                        group_consumer::run(spec, bootstrap.clone(), rec2.clone())
                    };
                    cluster.add_client(role, take_ip(), &ids, &rec, control, workload)
                }
            };
        }
    }
    // The schedule has its own rng stream: `rng` (the injector's) sees the
    // same draws whether random faults are drawn here or written out.
    let plan = faults::plan(&sc, &mut faults::schedule_rng(seed));
    let fault_schedule = plan.events.clone();
    let heal_ms = sc.run.heal_ms.min(duration_ms);
    if sc.faults.buggify {
        madsim::buggify::enable();
    }
    let fault_log = faults::inject(&cluster, plan.events, heal_ms, &mut rng, start).await;
    if sc.faults.buggify {
        madsim::buggify::disable();
    }
    // Liveness after heal: the controller must show every partition led and
    // in sync again within liveness_ms (watched while the workload ends).
    let recovery = tokio::spawn(watch_recovery(
        cluster.clone(),
        settings_of(&sc.cluster.config),
        start + Duration::from_millis(heal_ms + sc.run.liveness_ms),
    ));
    // Groups must settle too, while their members still run.
    let groups = tokio::spawn(watch_groups(
        cluster.clone(),
        group_partitions(&sc),
        start + Duration::from_millis(heal_ms),
        // Judged while the members run: they leave at duration_ms.
        start + Duration::from_millis((heal_ms + sc.run.liveness_ms).min(duration_ms.saturating_sub(RECOVERY_POLL_MS))),
    ));
    while !cluster.lock().unwrap().clients_finished() {
        tokio::time::sleep(Duration::from_millis(CLIENT_DONE_POLL_MS)).await;
    }

    // Final polls: one fresh reader over every topic.
    let all_topics: Vec<String> = sc.topics.iter().map(|t| t.name.clone()).collect();
    let node = client_node("final-reader".into());
    let spec = consumer::ConsumerSpec {
        process: ids.next(),
        topics: consumer_topics(&all_topics),
        config: BTreeMap::new(),
        process_ms: 0,
        stop_ms: u64::MAX,
        control: Arc::new(ClientControl::default()),
    };
    let deadline_ms = rec.now_ms() + sc.run.final_poll_ms;
    let complete = node
        .spawn(consumer::final_poll(spec, bootstrap.clone(), rec.clone(), deadline_ms))
        .await
        .unwrap_or(false);
    let unrecovered = recovery.await.unwrap_or_else(|e| vec![format!("recovery watch failed: {e}")]);
    let unstable_groups = groups.await.unwrap_or_else(|e| vec![format!("group watch failed: {e}")]);
    let (observations, observations_dropped) = observer.take_since(start);
    Ok(RunOutput {
        events: rec.take(),
        faults: fault_log,
        fault_schedule,
        sim_ms: rec.now_ms(),
        final_reads_complete: complete,
        unrecovered,
        unstable_groups,
        swarm_kinds: plan.swarm_kinds,
        observations,
        observations_dropped,
    })
}

/// Polls the controller's image until every partition has a leader and a
/// full-enough ISR ([`checker::liveness::unrecovered`]) or `deadline`
/// passes; returns what was still unrecovered then (empty: recovered).
async fn watch_recovery(cluster: Arc<Mutex<Cluster>>, broker: Settings, deadline: tokio::time::Instant) -> Vec<String> {
    loop {
        let stuck = match cluster.lock().unwrap().controller_image() {
            Some(img) => checker::liveness::unrecovered(&img, &broker),
            None => vec!["no committed image on any controller".to_string()],
        };
        if stuck.is_empty() || tokio::time::Instant::now() >= deadline {
            return stuck;
        }
        tokio::time::sleep(Duration::from_millis(RECOVERY_POLL_MS)).await;
    }
}

/// Every partition of each group's topics (`topic/p`), per group.
fn group_partitions(sc: &Scenario) -> BTreeMap<String, BTreeSet<String>> {
    let partitions_of: BTreeMap<&str, u32> = sc.topics.iter().map(|t| (t.name.as_str(), t.partitions)).collect();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &sc.consumers {
        let Some(group) = &c.group else { continue };
        let parts = out.entry(group.clone()).or_default();
        for t in &c.topics {
            parts.extend((0..partitions_of[t.as_str()]).map(|p| workload::tp_key(t, p as i32)));
        }
    }
    out
}

/// The longest a group must hold one stable generation before its
/// liveness deadline (half the window after heal when that is shorter).
pub const GROUP_HOLD_MS: u64 = 5_000;

/// Samples every consumer group from heal to `deadline` and returns why
/// each group that did not settle ([`checker::liveness::GroupSettling`])
/// did not (empty: all settled). No group, or no time left before the
/// workload stops: returns at once without judging.
async fn watch_groups(
    cluster: Arc<Mutex<Cluster>>,
    groups: BTreeMap<String, BTreeSet<String>>,
    heal: tokio::time::Instant,
    deadline: tokio::time::Instant,
) -> Vec<String> {
    if groups.is_empty() || deadline <= heal {
        return Vec::new();
    }
    let hold_ms = GROUP_HOLD_MS.min(deadline.duration_since(heal).as_millis() as u64 / 2);
    let ms_since_heal = |t: tokio::time::Instant| t.saturating_duration_since(heal).as_millis() as u64;
    let mut settling: BTreeMap<&str, checker::liveness::GroupSettling> = BTreeMap::new();
    loop {
        let now = tokio::time::Instant::now();
        {
            let c = cluster.lock().unwrap();
            for (group, partitions) in &groups {
                let state = checker::liveness::group_state(group, &c.group_members(group), partitions);
                settling.entry(group).or_default().observe(state, ms_since_heal(now));
            }
        }
        if now >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(RECOVERY_POLL_MS)).await;
    }
    settling.iter().filter_map(|(g, s)| s.unsettled(g, ms_since_heal(deadline), hold_ms)).collect()
}

/// Convenience for tests: the verdict of one seed.
pub fn verdict_of(scenario: &Scenario, seed: u64) -> anyhow::Result<Verdict> {
    Ok(run_seed(scenario, seed)?.verdict)
}
