//! Availability side of the replication advice: with one broker down,
//! RF = min.insync.replicas refuses acks=all writes (NOT_ENOUGH_REPLICAS,
//! a definite failure) while RF = min.insync.replicas + 1 keeps accepting
//! them. Both keep every acknowledged write (tests/fast_scenarios.rs).
#![cfg(madsim)]

use ksim_sim::history::OpType;
use ksim_sim::run::run_seed;
use ksim_sim::scenario::Scenario;
use std::path::Path;

/// While broker 1 is surely fenced and still down (its session expired at
/// about 14 s; it restarts at 20 s), what fraction of sends completed ok.
fn ok_fraction_during_outage(file: &str, seed: u64) -> f64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fast").join(file);
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let r = run_seed(&scenario, seed).expect("run");
    let window: Vec<_> = r.history.sends().filter(|s| (15_000..20_000).contains(&s.t_ms)).collect();
    assert!(window.len() > 100, "{file}: the producer kept sending ({} sends)", window.len());
    window.iter().filter(|s| s.op_type == OpType::Ok).count() as f64 / window.len() as f64
}

#[test]
fn rf_equal_to_min_isr_is_unavailable_with_one_broker_down() {
    for seed in 0..3 {
        let equal = ok_fraction_during_outage("rf-equals-min-isr.toml", seed);
        let above = ok_fraction_during_outage("rf-above-min-isr.toml", seed);
        // RF 2: two of the three partitions have broker 1 as a replica.
        assert!(equal < 0.5, "seed {seed}: RF = min ISR accepted {equal:.2} of sends");
        assert!(above > 0.95, "seed {seed}: RF = min ISR + 1 accepted only {above:.2} of sends");
    }
}

#[test]
fn rf_equal_to_min_isr_refuses_with_not_enough_replicas_as_a_definite_failure() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fast/rf-equals-min-isr.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let r = run_seed(&scenario, 0).expect("run");
    let refused = r
        .history
        .ops
        .iter()
        .filter(|op| op.f == "send" && op.op_type == OpType::Fail)
        .filter(|op| op.error.as_deref().is_some_and(|e| e.contains("NotEnoughReplicas")))
        .count();
    assert!(refused > 100, "only {refused} sends were refused with NOT_ENOUGH_REPLICAS");
}
