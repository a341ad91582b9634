//! The fast tier: every scenario under `scenarios/fast/` meets its
//! `[expect]` section over seeds 0..20 (DESIGN.md: a `pass` sweep shows no
//! forbidden anomaly on any seed; a `violation` sweep shows one of its
//! listed anomalies on at least one seed), and a seed replays with the same
//! trace hash.
#![cfg(madsim)]

use ksim_sim::report::{SeedResult, SweepSummary};
use ksim_sim::run::run_seed;
use ksim_sim::scenario::Scenario;
use ksim_sim::sweep::{default_threads, run_seeds};
use std::path::{Path, PathBuf};

/// Seeds every fast scenario must meet its expectation on (issue 2).
const FAST_SEEDS: std::ops::Range<u64> = 0..20;

fn fast_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fast");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/fast exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fast scenarios found in {}", dir.display());
    files
}

fn sweep(path: &Path) -> Vec<SeedResult> {
    let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
    let results = run_seeds(&scenario, FAST_SEEDS, default_threads(), &|_, _| {});
    let mut ok = Vec::new();
    for (seed, r) in results {
        match r {
            Ok(r) => ok.push(r),
            Err(e) => panic!("{}: seed {seed} failed to run: {e:#}", path.display()),
        }
    }
    let summary = SweepSummary::summarise(&scenario, &ok, 0);
    for r in &ok {
        eprintln!("{}", r.to_json_line());
    }
    assert!(
        summary.met(),
        "{}: sweep does not meet its expectation: {}\nunmet seeds: {:?}",
        path.display(),
        summary.to_json_line(),
        ok.iter().filter(|r| !r.met).map(|r| (r.seed, r.anomalies.clone())).collect::<Vec<_>>()
    );
    ok
}

fn path_of(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fast").join(file)
}

/// The seeds whose verdict is `violation` (a forbidden anomaly appeared).
fn violating(results: &[SeedResult], anomaly: &str) -> usize {
    results.iter().filter(|r| r.anomalies.get(anomaly).copied().unwrap_or(0) > 0).count()
}

/// Each `pass` scenario: no seed loses an acknowledged write, and the
/// faults really ran.
macro_rules! holds {
    ($name:ident, $file:literal) => {
        #[test]
        fn $name() {
            let results = sweep(&path_of($file));
            assert!(results.iter().all(|r| r.ops > 100), "the workload ran: {:?}", results.iter().map(|r| r.ops).collect::<Vec<_>>());
            assert!(results.iter().all(|r| r.faults >= 1), "the faults were injected");
            assert_eq!(violating(&results, "lost-write"), 0);
        }
    };
}

/// Each `violation` scenario: the unsafe setting loses acknowledged writes
/// on at least one seed (the sweep's own rule), counted here too.
macro_rules! breaks {
    ($name:ident, $file:literal) => {
        breaks!($name, $file, []);
    };
    // Also: these broker-side anomalies show on at least one seed.
    ($name:ident, $file:literal, [$($also:literal),*]) => {
        #[test]
        fn $name() {
            let results = sweep(&path_of($file));
            assert!(violating(&results, "lost-write") > 0, "{} never lost a write over {FAST_SEEDS:?}", $file);
            $(assert!(violating(&results, $also) > 0, "{} never showed {} over {FAST_SEEDS:?}", $file, $also);)*
        }
    };
}

holds!(acks_all_with_min_isr_2_loses_nothing_when_leaders_crash, "acks-all-leader-crash.toml");
breaks!(acks_1_loses_acknowledged_writes_when_the_leader_crashes, "acks-1-leader-crash.toml");
holds!(unclean_election_off_waits_for_the_last_in_sync_replica, "unclean-election-off.toml");
// The stale replica's log below its HW differs from the old leader's, and
// the old leader's HW goes back when it truncates to follow; consumers past
// the truncation point are reset and read offsets again.
breaks!(unclean_election_on_elects_a_stale_replica_and_loses_writes, "unclean-election-on.toml", ["replica-divergence", "hw-regression", "nonmonotonic-poll"]);
holds!(min_isr_2_refuses_writes_the_lone_leader_could_lose, "min-isr-2-second-failure.toml");
breaks!(min_isr_1_loses_writes_on_a_second_failure, "min-isr-1-second-failure.toml");
holds!(flush_every_message_survives_whole_cluster_power_loss, "cluster-power-loss-flush-every-message.toml");
breaks!(no_flush_loses_acknowledged_writes_on_whole_cluster_power_loss, "cluster-power-loss-flush-none.toml", ["hw-regression"]);
holds!(rf_equal_to_min_isr_keeps_acknowledged_writes, "rf-equals-min-isr.toml");
holds!(rf_above_min_isr_keeps_acknowledged_writes, "rf-above-min-isr.toml");
holds!(controller_quorum_survives_active_controller_crash_and_partition, "controller-failover.toml");
holds!(failed_log_dir_loses_nothing_committed, "log-dir-failure.toml");
// A leader cut off with a producer from the rest (a `sets` partition) keeps
// acknowledging acks=1 writes alone after the controller replaced it; with
// acks=all and min ISR 2 it cannot acknowledge anything alone.
breaks!(a_zombie_leader_loses_acks_1_writes_after_a_partition, "zombie-leader-acks-1.toml", ["inconsistent-offsets"]);
holds!(a_zombie_leader_cannot_acknowledge_acks_all_writes_alone, "zombie-leader-acks-all.toml");
// Swarm testing: each seed its own subset of fault kinds, buggify on.
holds!(acks_all_survives_swarm_random_fault_mixes_with_buggify, "swarm-acks-all.toml");

// Without idempotence a retry after a lost answer (leader paused past
// request.timeout.ms, or crashed after appending) writes the value again:
// some seed shows a duplicate; acks=all still loses nothing.
#[test]
fn retries_without_idempotence_duplicate_values_when_leaders_change() {
    let results = sweep(&path_of("idempotence-off-leader-changes.toml"));
    assert!(violating(&results, "duplicate") > 0, "no duplicate over {FAST_SEEDS:?}");
    assert_eq!(violating(&results, "lost-write"), 0);
}

// KIP-98/KIP-679: the default idempotent producer's retries carry their
// producer id, epoch and sequence; the broker drops the copies, so under the
// same faults no seed shows a duplicate (it is forbidden in the scenario).
#[test]
fn idempotent_producer_writes_each_value_once_when_leaders_change() {
    let results = sweep(&path_of("idempotence-on-leader-changes.toml"));
    assert!(results.iter().all(|r| r.ops > 100 && r.faults >= 1), "the workload and faults ran");
    assert_eq!(violating(&results, "duplicate"), 0);
    assert_eq!(violating(&results, "lost-write"), 0);
}

// Idempotence is per producer session (KIP-98: deduplication by producer
// id, epoch and sequence). An application that resends what was not
// acknowledged when its producer crashed sends it from a new session with
// a new producer id (InitProducerId), so values the crashed session had
// written land twice; the duplicates name both sessions. Without the
// resend, the same crashes duplicate nothing.
#[test]
fn resending_after_a_producer_restart_duplicates_across_producer_sessions() {
    let results = sweep(&path_of("idempotence-producer-restart.toml"));
    assert!(violating(&results, "duplicate") > 0, "no duplicate over {FAST_SEEDS:?}");
    assert_eq!(violating(&results, "lost-write"), 0);
    for r in results.iter().filter(|r| r.anomalies["duplicate"] > 0) {
        assert_eq!(r.duplicates_across_sessions() as u64, r.anomalies["duplicate"], "seed {}: every duplicate crossed sessions", r.seed);
        assert!(r.to_text_line().contains("duplicate across producer sessions (idempotence is per session)"));
    }
}

#[test]
fn idempotent_producer_restart_without_resend_writes_each_value_once() {
    let results = sweep(&path_of("idempotence-producer-restart-no-resend.toml"));
    assert!(results.iter().all(|r| r.ops > 100 && r.faults >= 1), "the workload and faults ran");
    assert!(results.iter().all(|r| r.faults >= 4), "the latency and the three producer crashes ran");
    assert_eq!(violating(&results, "duplicate"), 0);
    assert_eq!(violating(&results, "lost-write"), 0);
}

// MESSAGE_TOO_LARGE (error 10, Kafka's RecordTooLargeException) is not
// retriable: a batch over the topic's max.message.bytes fails at once and
// definitely, however many retries are configured. The history shows a
// `fail` naming the error, completed well before the first retry could
// have been sent.
// Consumer groups under member faults: a crashed member is replaced, a
// member paused past session.timeout.ms is removed and rejoins, and the
// group moves to a new coordinator when the old one crashes; the group
// settles after heal with every partition owned once.
#[test]
fn consumer_group_rebalances_through_member_and_coordinator_faults() {
    let results = sweep(&path_of("group-members-crash-and-pause.toml"));
    for r in &results {
        let rebalances = r.history.ops.iter().filter(|o| o.f == "rebalance").count();
        assert!(rebalances >= 9, "seed {}: three members rebalanced more than once: {rebalances}", r.seed);
        assert_eq!(r.faults, 6, "seed {}: three faults, each started and ended", r.seed);
    }
    assert_eq!(violating(&results, "ownership"), 0);
    assert_eq!(violating(&results, "liveness"), 0);
}

// max.poll.interval.ms below the processing time of a poll: every member
// is kicked out while it processes (its commit fails with
// CommitFailedException) and the group never settles; above it, the same
// slow processing keeps a stable group.
#[test]
fn processing_longer_than_max_poll_interval_keeps_the_group_rebalancing() {
    let unsafe_results = sweep(&path_of("max-poll-interval-exceeded.toml"));
    assert_eq!(violating(&unsafe_results, "liveness"), unsafe_results.len(), "every seed churns");
    let safe = sweep(&path_of("max-poll-interval-respected.toml"));
    assert_eq!(violating(&safe, "liveness"), 0);
    for r in &safe {
        let failed_commits = r.history.ops.iter().filter(|o| o.f == "commit" && o.op_type != ksim_sim::history::OpType::Ok).count();
        assert_eq!(failed_commits, 0, "seed {}: members stay in the group, commits succeed", r.seed);
    }
}

#[test]
fn message_too_large_is_a_definite_failure_that_is_not_retried() {
    let text = r#"
name = "message-too-large"
[cluster]
brokers = 3
controllers = 1
[[topics]]
name = "events"
partitions = 1
replication_factor = 3
config = { "max.message.bytes" = 16 }
[[producers]]
topic = "events"
rate_per_s = 20
config = { "acks" = "all", "retries" = 2147483647, "retry.backoff.ms" = 2000, "retry.backoff.max.ms" = 2000, "delivery.timeout.ms" = 120000 }
[run]
duration_ms = 3000
heal_ms = 3000
final_poll_ms = 5000
[expect]
verdict = "pass"
"#;
    const RETRY_BACKOFF_MS: u64 = 2000;
    let scenario = Scenario::from_str(text, "message-too-large.toml").unwrap_or_else(|e| panic!("{e}"));
    let r = run_seed(&scenario, 0).expect("the run");
    let sends: Vec<_> = r.history.ops.iter().filter(|op| op.f == "send").collect();
    assert!(sends.len() > 20, "the producer ran: {} sends", sends.len());
    for op in &sends {
        let error = op.error.as_deref().unwrap_or("");
        assert_eq!(op.op_type, ksim_sim::history::OpType::Fail, "definite: {}", serde_json::to_string(op).unwrap());
        assert!(error.contains("MessageTooLarge"), "the error names MESSAGE_TOO_LARGE: {error}");
        let took_ms = op.t_ms - op.invoke_t_ms.expect("sends record their invocation");
        assert!(took_ms < RETRY_BACKOFF_MS, "not retried: took {took_ms} ms: {}", serde_json::to_string(op).unwrap());
    }
    assert_eq!(r.verdict, ksim_sim::report::Verdict::Pass, "{}", r.to_text_line());
}

/// Every file in scenarios/fast has a sweep test above.
#[test]
fn every_fast_scenario_has_a_sweep_test() {
    let src = include_str!("fast_scenarios.rs");
    for path in fast_scenarios() {
        let file = path.file_name().unwrap().to_str().unwrap();
        let quoted = format!("\"{file}\"");
        assert!(src.matches(&quoted).count() >= 1, "{file} has no sweep test in tests/fast_scenarios.rs");
    }
}

#[test]
fn every_fast_scenario_loads() {
    for path in fast_scenarios() {
        Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn same_seed_gives_the_same_trace_hash() {
    for path in fast_scenarios() {
        let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let a = run_seed(&scenario, 3).expect("first run");
        let b = run_seed(&scenario, 3).expect("second run");
        assert_eq!(a.trace_hash, b.trace_hash, "{} seed 3 is not deterministic", path.display());
        assert_eq!(a.ops, b.ops);
        assert_eq!(a.anomalies, b.anomalies);
    }
    let scenario = Scenario::load(&path_of("acks-1-leader-crash.toml")).unwrap();
    let c = run_seed(&scenario, 4).expect("other seed");
    let d = run_seed(&scenario, 5).expect("other seed");
    assert_ne!(c.trace_hash, d.trace_hash, "different seeds should give different runs");
}
