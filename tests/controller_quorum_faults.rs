//! A 3-controller quorum under `active-controller` faults (crash, power
//! loss, partition): the `active-controller` target finds the Raft leader,
//! and acks=all still loses nothing (DESIGN.md: default quorum size 3).
#![cfg(madsim)]

use ksim_sim::run::run_seed;
use ksim_sim::scenario::{FaultAt, FaultKind, Scenario, Target};
use std::path::Path;

fn scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fast/acks-all-leader-crash.toml");
    let mut s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    s.cluster.controllers = 3;
    s.faults.random = None;
    s.faults.at.clear();
    for (at_ms, kind) in [(6_000, FaultKind::Crash), (14_000, FaultKind::PowerLoss), (22_000, FaultKind::Partition)] {
        s.faults.at.push(FaultAt::new(at_ms, kind, Target::ActiveController, Some(5_000)));
    }
    // A broker crash after the controller failovers still moves leadership.
    s.faults.at.push(FaultAt::new(
        26_000,
        FaultKind::Crash,
        Target::Leader { topic: "events".into(), partition: 0 },
        Some(3_000),
    ));
    s
}

#[test]
fn active_controller_faults_lose_nothing() {
    let s = scenario();
    for seed in 0..4 {
        let r = run_seed(&s, seed).expect("run");
        // Each fault and its undo (restart / heal) is one action: every
        // `active-controller` target resolved to a running controller.
        assert_eq!(r.faults, 8, "seed {seed}: faults applied");
        assert!(r.met, "seed {seed}: {:?} {:?}", r.anomalies, r.notes);
    }
}
