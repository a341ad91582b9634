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

#[test]
fn acks_all_with_min_isr_2_loses_nothing_when_leaders_crash() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fast/acks-all-leader-crash.toml");
    let results = sweep(&path);
    assert!(results.iter().all(|r| r.ops > 100), "the workload ran: {:?}", results.iter().map(|r| r.ops).collect::<Vec<_>>());
    assert!(results.iter().all(|r| r.faults >= 2), "the fixed leader crashes were injected");
}

#[test]
fn acks_1_loses_acknowledged_writes_when_the_leader_crashes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fast/acks-1-leader-crash.toml");
    let results = sweep(&path);
    let lossy = results.iter().filter(|r| r.anomalies.get("lost-write").copied().unwrap_or(0) > 0).count();
    assert!(lossy > 0, "acks=1 never lost a write over {FAST_SEEDS:?}");
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
        for seed in [3u64, 11] {
            let a = run_seed(&scenario, seed).expect("first run");
            let b = run_seed(&scenario, seed).expect("second run");
            assert_eq!(a.trace_hash, b.trace_hash, "{} seed {seed} is not deterministic", path.display());
            assert_eq!(a.ops, b.ops);
            assert_eq!(a.anomalies, b.anomalies);
        }
        let c = run_seed(&scenario, 4).expect("other seed");
        let d = run_seed(&scenario, 5).expect("other seed");
        assert_ne!(c.trace_hash, d.trace_hash, "different seeds should give different runs");
    }
}
