//! `ksim shrink` (issue 4): a seed's schedule made explicit replays the same
//! run, and a known-unsafe scenario's failing seed with many random faults
//! shrinks to at most three faults that still lose an acknowledged write,
//! written as a scenario file that replays it.
#![cfg(madsim)]

use ksim_sim::report::SeedResult;
use ksim_sim::run::run_seed;
use ksim_sim::faults::{self, FaultEvent};
use ksim_sim::scenario::{FaultAt, FaultKind, PartitionShape, Probability, RandomFaults, Scenario, Target};
use std::collections::BTreeSet;
use ksim_sim::shrink::{self, make_explicit, Progress, ShrinkOptions};
use std::path::{Path, PathBuf};

/// acks=1 under random crashes, pauses and partitions (issue 4's test case).
const UNSAFE: &str = "scenarios/slow/acks-1-random-faults.toml";
/// Seeds searched for one that loses a write.
const SEEDS_SEARCHED: std::ops::Range<u64> = 0..12;
/// Run budget of the shrink below (keeps the test near 30 s on one core).
const MAX_RUNS: usize = 45;

fn load(rel: &str) -> Scenario {
    Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap_or_else(|e| panic!("{e}"))
}

fn shows(r: &SeedResult, key: &str) -> bool {
    r.anomalies.get(key).is_some_and(|&n| n > 0)
}

/// The first seed that loses a write (which seeds do depends on the whole
/// simulation, so the test looks rather than naming one).
fn losing_seed(sc: &Scenario) -> (u64, SeedResult) {
    for seed in SEEDS_SEARCHED {
        let r = run_seed(sc, seed).expect("run");
        if shows(&r, "lost-write") {
            return (seed, r);
        }
    }
    panic!("{} lost no write over seeds {SEEDS_SEARCHED:?}", sc.name);
}

/// Scenario files of a tier that have a `[faults] random` section.
fn random_fault_scenarios(tier: &str) -> Vec<(PathBuf, Scenario)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(tier);
    let mut files: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("tier dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let sc = Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            (p, sc)
        })
        .filter(|(_, sc)| sc.faults.random.is_some())
        .collect()
}

/// `sc`'s schedule for `seed`, written out as fixed `[[faults.at]]`
/// entries and read back from TOML, runs with the original trace hash.
fn assert_explicit_replay(path: &Path, sc: &Scenario, seed: u64) {
    let explicit = make_explicit(sc, seed);
    assert!(explicit.faults.random.is_none());
    assert!(explicit.faults.at.len() > sc.faults.at.len(), "{}: random faults written out", path.display());
    let text = explicit.to_toml().expect("serialises");
    let loaded = Scenario::from_str(&text, "explicit.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let original = run_seed(sc, seed).expect("original run");
    let again = run_seed(&loaded, seed).expect("explicit run");
    assert_eq!(again.trace_hash, original.trace_hash, "{} seed {seed}:\n{text}", path.display());
    assert_eq!(again.anomalies, original.anomalies);
}

/// Every scenario with a `[faults] random` section: its schedule for a
/// seed, written out and read back, runs with the original trace hash
/// (random targets are named when drawn, and the injector's own draws —
/// disk dir choice, `random` targets of fixed faults — do not shift).
#[test]
fn explicit_schedule_replays_the_original_trace() {
    let mut checked = 0;
    for tier in ["fast", "slow"] {
        for (path, sc) in random_fault_scenarios(tier) {
            assert_explicit_replay(&path, &sc, 1);
            checked += 1;
        }
    }
    assert!(checked >= 2, "scenarios with random faults checked: {checked}");
}

/// The same over more seeds of the fast tier (seed 1 is above).
#[test]
fn explicit_schedules_of_fast_scenarios_replay_over_seeds_0_to_2() {
    let scenarios = random_fault_scenarios("fast");
    assert!(scenarios.len() >= 2, "fast scenarios with random faults: {}", scenarios.len());
    for (path, sc) in &scenarios {
        for seed in [0, 2] {
            assert_explicit_replay(path, sc, seed);
        }
    }
}

/// The same with every fault kind in a swarm mix, plus fixed faults whose
/// `random` target and torn power-loss writes the injector draws at run
/// time: the written-out schedule still replays the original trace.
#[test]
fn explicit_swarm_schedule_of_every_kind_replays_the_original_trace() {
    let mut sc = load("scenarios/fast/acks-all-leader-crash.toml");
    use FaultKind::*;
    let kinds = vec![Crash, Pause, Partition, Latency, Loss, SlowConsumer, ClockJump, PowerLoss, DiskEio];
    sc.faults.random = Some(RandomFaults { swarm: true, ..RandomFaults::new(kinds, [1500, 3000]) });
    let mut cut = FaultAt::new(9_000, Partition, Target::Broker(1), Some(3_000));
    cut.shape = Some(PartitionShape::Majority);
    sc.faults.at = vec![FaultAt::new(5_000, PowerLoss, Target::Random, Some(2_000)), cut];
    let sc = Scenario::from_str(&sc.to_toml().unwrap(), "swarm.toml").unwrap_or_else(|e| panic!("{e}"));
    for seed in [1, 2] {
        let explicit = make_explicit(&sc, seed);
        let loaded = Scenario::from_str(&explicit.to_toml().unwrap(), "explicit.toml").unwrap_or_else(|e| panic!("{e}"));
        let original = run_seed(&sc, seed).expect("original run");
        let again = run_seed(&loaded, seed).expect("explicit run");
        assert!(original.faults > 3, "faults ran: {}", original.faults);
        assert_eq!(again.trace_hash, original.trace_hash, "seed {seed}: {:?}", explicit.faults.at);
    }
}

/// What a scheduled fault shows of the new random draws: its partition
/// shape, or the client role a crash or restart hits.
fn drawn(e: &FaultEvent) -> Option<String> {
    match (&e.kind, &e.target) {
        (FaultKind::Partition, _) => Some(e.options.shape.unwrap_or(PartitionShape::Isolate).to_string()),
        (FaultKind::Crash | FaultKind::Restart, Target::Producer(_)) => Some(format!("{} producer", e.kind)),
        (FaultKind::Crash | FaultKind::Restart, Target::AssignConsumer(_)) => Some(format!("{} consumer", e.kind)),
        _ => None,
    }
}

/// `shapes` and `client_crashes` in a random mix: one seed's schedule
/// holds every partition shape and crashes of both client roles; the
/// injector applies them (its log names each shape and the crashed
/// clients), and the schedule written out replays the original trace.
#[test]
fn random_mixes_draw_every_partition_shape_and_client_crashes_and_replay_explicitly() {
    use FaultKind::*;
    let mut sc = load("scenarios/fast/acks-all-leader-crash.toml");
    use PartitionShape::*;
    sc.faults.random = Some(RandomFaults {
        shapes: vec![Isolate, OneWay, Sets, Bridge, Majority],
        client_crashes: Some(Probability(0.5)),
        ..RandomFaults::new(vec![Partition, Crash, Restart], [600, 1200])
    });
    sc.faults.at.clear();
    let sc = Scenario::from_str(&sc.to_toml().unwrap(), "mix.toml").unwrap_or_else(|e| panic!("{e}"));
    let wanted: BTreeSet<String> = ["isolate", "one-way", "sets", "bridge", "majority", "crash producer", "crash consumer"]
        .map(String::from)
        .into();
    let draws = |seed| -> BTreeSet<String> {
        faults::schedule(&sc, &mut faults::schedule_rng(seed)).iter().filter_map(drawn).collect()
    };
    let seed = (0..20).find(|&s| draws(s).is_superset(&wanted)).expect("a seed draws every shape and client crash");
    let explicit = make_explicit(&sc, seed);
    let sets = explicit.faults.at.iter().find(|f| f.shape == Some(Sets)).expect("a sets partition");
    assert!(sets.sides.as_ref().is_some_and(|s| s.len() == 2 && s.iter().all(|side| !side.is_empty())), "{sets:?}");
    let loaded = Scenario::from_str(&explicit.to_toml().unwrap(), "explicit.toml").unwrap_or_else(|e| panic!("{e}"));
    let original = run_seed(&sc, seed).expect("original run");
    let again = run_seed(&loaded, seed).expect("explicit run");
    assert_eq!(again.trace_hash, original.trace_hash, "seed {seed}: {:?}", explicit.faults.at);
    let log = &original.artifacts.as_ref().expect("artifacts").fault_log;
    for shape in ["one-way", "sets", "bridge", "majority"] {
        let action = format!("partition {shape} ");
        assert!(log.iter().any(|l| l.action.starts_with(&action)), "no {shape} partition applied: {log:?}");
    }
    for client in ["producer-", "consumer-"] {
        assert!(log.iter().any(|l| l.action == "crash" && l.node.starts_with(client)), "no {client} crash: {log:?}");
    }
}

#[test]
fn shrinking_an_acks_1_loss_keeps_lost_write_with_at_most_3_faults() {
    let sc = load(UNSAFE);
    let (seed, original) = losing_seed(&sc);
    let mut lines = Vec::new();
    let mut progress = |p: &Progress| lines.push(p.to_text_line());
    // The anomaly is named: which side effects other checkers report on
    // acks=1 runs is not what this test is about (`failing_anomaly` has
    // its own unit test).
    let options = ShrinkOptions { max_runs: MAX_RUNS, anomaly: Some("lost-write".into()) };
    let shrunk = shrink::shrink(&sc, seed, &options, &mut progress).expect("shrinks");
    eprintln!("{}", lines.join("\n"));

    assert_eq!(shrunk.anomaly, "lost-write");
    assert_eq!(shrunk.origin_count, original.anomalies["lost-write"]);
    assert!(shrunk.explicit_same_trace, "the explicit schedule replays the original run");
    assert!(shrunk.explicit_faults >= 5, "the origin has many faults: {}", shrunk.explicit_faults);
    let kept = &shrunk.scenario.faults.at;
    assert!(kept.len() <= 3, "{} faults kept: {kept:?}", kept.len());
    assert!(shrunk.scenario.faults.random.is_none());
    assert!(shows(&shrunk.result, "lost-write"));
    assert!(shrunk.runs <= MAX_RUNS && lines.len() == shrunk.runs, "progress after every run");
    assert!(shrunk.scenario.run.duration_ms < sc.run.duration_ms, "{:?}", shrunk.scenario.run);

    // The file replays it: same anomaly, same trace.
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("acks-1-random-faults-seed-{seed}.toml"));
    let text = shrunk.file_text(UNSAFE, path.to_str().unwrap()).expect("file text");
    std::fs::write(&path, &text).unwrap();
    assert!(text.starts_with("# Minimal failing case"), "{text}");
    for needle in [UNSAFE, &format!("seed {seed}"), "lost-write", &format!("ksim replay {} --seed {seed}", path.display())] {
        assert!(text.contains(needle), "header names {needle}:\n{text}");
    }
    let written = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(written.faults.at, shrunk.scenario.faults.at);
    let replayed = run_seed(&written, seed).expect("replay");
    assert!(shows(&replayed, "lost-write"), "{}", replayed.to_text_line());
    assert_eq!(replayed.trace_hash, shrunk.result.trace_hash);
}

/// A seed that does not show the anomaly asked for has nothing to shrink.
#[test]
fn shrinking_a_seed_without_the_anomaly_is_an_error() {
    let sc = load("scenarios/fast/rf-above-min-isr.toml");
    let options = ShrinkOptions { anomaly: Some("lost-write".into()), ..ShrinkOptions::default() };
    let err = shrink::shrink(&sc, 0, &options, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("does not show `lost-write`"), "{err}");
}
