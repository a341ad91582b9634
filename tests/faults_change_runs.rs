//! Every fault kind this build injects changes what clients observe: the
//! same seed with and without one fault gives different histories (the
//! fault log is left out of the comparison, so this is not trivially true).
#![cfg(madsim)]

use ksim_sim::run::run_seed;
use ksim_sim::scenario::{FaultAt, FaultKind, Scenario, Target};
use std::path::Path;

fn quiet_base() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fast/acks-1-leader-crash.toml");
    let mut s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    s.faults.random = None;
    s.faults.at.clear();
    s.run.duration_ms = 16_000;
    s.run.heal_ms = 12_000;
    s.run.final_poll_ms = 15_000;
    s
}

fn with_fault(kind: FaultKind, target: Target) -> Scenario {
    let mut s = quiet_base();
    s.faults.at.push(FaultAt { at_ms: 4_000, kind, target, duration_ms: Some(4_000) });
    s
}

#[test]
fn each_fault_kind_changes_the_history() {
    let seed = 1;
    let base = run_seed(&quiet_base(), seed).expect("base run");
    assert_eq!(base.faults, 0);
    let base_history = base.history.to_jsonl();
    let leader = Target::Leader { topic: "events".into(), partition: 0 };
    let cases = [
        (FaultKind::Crash, leader.clone()),
        (FaultKind::PowerLoss, leader.clone()),
        (FaultKind::PowerLoss, Target::AllBrokers),
        (FaultKind::Restart, leader.clone()),
        (FaultKind::Pause, leader.clone()),
        (FaultKind::Partition, leader.clone()),
        (FaultKind::DiskEio, leader.clone()),
        (FaultKind::DiskFull, leader.clone()),
        (FaultKind::DiskDirFail, leader.clone()),
    ];
    for (kind, target) in cases {
        let r = run_seed(&with_fault(kind.clone(), target.clone()), seed).expect("faulted run");
        assert!(r.faults > 0, "{kind:?} on {target:?} was not injected");
        assert_ne!(r.history.to_jsonl(), base_history, "{kind:?} on {target:?} did not change what clients saw");
    }
}

#[test]
fn a_fault_free_acks_1_run_loses_nothing() {
    // The violation in acks-1-leader-crash comes from the faults, not the workload.
    for seed in 0..3 {
        let r = run_seed(&quiet_base(), seed).expect("run");
        assert_eq!(r.anomalies.values().sum::<u64>(), 0, "seed {seed}: {:?}", r.anomalies);
    }
}

/// The liveness bound is enforced: a final-poll phase too short to read the
/// partitions to their ends is reported as `liveness` (and is forbidden in
/// a `pass` scenario).
#[test]
fn a_final_reader_that_cannot_catch_up_within_the_bound_is_a_liveness_anomaly() {
    let mut s = quiet_base();
    s.expect.verdict = ksim_sim::report::Verdict::Pass;
    s.expect.anomalies.clear();
    let ok = run_seed(&s, 2).expect("run");
    assert_eq!(ok.anomalies.get("liveness"), Some(&0));
    s.run.final_poll_ms = 1;
    let stuck = run_seed(&s, 2).expect("run");
    assert_eq!(stuck.anomalies.get("liveness"), Some(&1));
    assert_eq!(stuck.verdict, ksim_sim::report::Verdict::Violation);
}
