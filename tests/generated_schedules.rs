//! Property tests over generated fault schedules (sim/src/schedule_gen.rs):
//! acks=all with replication factor 3 and min.insync.replicas 2 never loses
//! an acknowledged write, whatever crashes, pauses and partitions of brokers,
//! leaders and followers hit it, with whatever workload. A failing case is
//! shrunk by proptest (fewer, earlier, shorter faults; a smaller workload)
//! and printed as the scenario plus seed; write it out with
//! `Scenario::to_toml` to replay it with `ksim replay`.
//!
//! The default run tries a few cases with a fixed proptest seed (quick and
//! the same on every CI run); the `#[ignore]`d one tries many with a fresh
//! seed each time (`cargo test --release --test generated_schedules -- --ignored`).
#![cfg(madsim)]

use ksim_sim::run::run_seed;
use ksim_sim::scenario::{FaultKind, Scenario};
use ksim_sim::schedule_gen::{generated_scenario, GenLimits};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use std::path::Path;

/// The safe configuration the property is about.
const SAFE: &str = "scenarios/fast/acks-all-leader-crash.toml";
/// Cases of the default run.
const QUICK_CASES: u32 = 8;
/// Cases of the ignored run.
const MANY_CASES: u32 = 64;
/// Shrink steps on failure (each is a simulation run).
const SHRINK_ITERS_MAX: u32 = 64;

fn safe() -> Scenario {
    Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(SAFE)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the property: no generated case loses an acknowledged write.
fn acks_all_never_loses_a_write(cases: u32, rng_seed: RngSeed) {
    let kinds = vec![FaultKind::Crash, FaultKind::Pause, FaultKind::Partition];
    let strategy = (generated_scenario(&safe(), kinds, GenLimits::default()), 0u64..1_000);
    let config = Config {
        cases,
        rng_seed,
        failure_persistence: None,
        max_shrink_iters: SHRINK_ITERS_MAX,
        ..Config::default()
    };
    let faults_run = std::cell::Cell::new(0usize);
    let result = TestRunner::new(config).run(&strategy, |(case, seed)| {
        let r = run_seed(&case, seed).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        faults_run.set(faults_run.get() + usize::from(r.faults > 0));
        prop_assert_eq!(
            r.anomalies["lost-write"],
            0,
            "seed {}: {}\n{}",
            seed,
            r.to_text_line(),
            case.to_toml().unwrap_or_default()
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(faults_run.get() > 0, "the generated faults were injected");
}

#[test]
fn acks_all_min_isr_2_loses_nothing_under_generated_crash_pause_partition_schedules() {
    acks_all_never_loses_a_write(QUICK_CASES, RngSeed::Fixed(4));
}

#[test]
#[ignore = "slow: many generated cases (run with --release)"]
fn acks_all_min_isr_2_loses_nothing_under_many_generated_schedules() {
    acks_all_never_loses_a_write(MANY_CASES, RngSeed::Random);
}
