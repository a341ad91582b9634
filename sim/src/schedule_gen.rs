//! Generated fault schedules and workload shapes: proptest strategies over a
//! base scenario, for property tests such as "no schedule of crashes,
//! pauses and partitions makes acks=all lose a write"
//! (tests/generated_schedules.rs).
//!
//! A generated case is the base scenario with its `[faults] random` section
//! replaced by generated fixed `[[faults.at]]` entries (kinds among the
//! scenario's own, targets that exist in it, times inside the main phase)
//! and its workload reshaped (processes, rate, phase lengths). When a
//! property fails, proptest shrinks the case through these strategies'
//! value trees: fewer faults, earlier, shorter, a smaller workload.

use crate::scenario::{ClientCounts, FaultAt, FaultKind, Scenario, Target};
use proptest::prelude::*;
use proptest::sample::select;
use std::ops::RangeInclusive;

/// Bounds of a generated case.
#[derive(Debug, Clone)]
pub struct GenLimits {
    /// How many faults a schedule has.
    pub faults: RangeInclusive<usize>,
    /// How long each fault lasts.
    pub fault_duration_ms: RangeInclusive<u64>,
    /// Processes per `[[producers]]` entry.
    pub producers: RangeInclusive<u32>,
    /// Sends per second per producer process.
    pub rate_per_s: RangeInclusive<u32>,
    /// Processes per `[[consumers]]` entry (0 drops the entry).
    pub consumers: RangeInclusive<u32>,
    /// The main phase (faults happen in `0..heal_ms`).
    pub heal_ms: RangeInclusive<u64>,
    /// The workload goes on this long after heal.
    pub after_heal_ms: RangeInclusive<u64>,
}

impl Default for GenLimits {
    /// Small, quick cases: up to 6 faults in a 8–20 s main phase.
    fn default() -> Self {
        GenLimits {
            faults: 1..=6,
            fault_duration_ms: 500..=8_000,
            producers: 1..=2,
            rate_per_s: 20..=200,
            consumers: 0..=1,
            heal_ms: 8_000..=20_000,
            after_heal_ms: 4_000..=10_000,
        }
    }
}

/// The shape of a generated workload, applied to every client entry.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadShape {
    /// Processes per `[[producers]]` entry.
    pub producers: u32,
    pub rate_per_s: u32,
    /// Processes per `[[consumers]]` entry; 0 drops the consumers.
    pub consumers: u32,
    pub heal_ms: u64,
    pub duration_ms: u64,
}

impl WorkloadShape {
    /// `base` with this workload (faults untouched).
    pub fn apply(&self, base: &Scenario) -> Scenario {
        let mut sc = base.clone();
        for p in &mut sc.producers {
            p.count = self.producers;
            p.rate_per_s = self.rate_per_s as f64;
        }
        if self.consumers == 0 {
            sc.consumers.clear();
        }
        for c in &mut sc.consumers {
            c.count = self.consumers;
        }
        sc.run.heal_ms = self.heal_ms;
        sc.run.duration_ms = self.duration_ms;
        sc
    }
}

/// Fault kinds the scenario itself uses (its `random` kinds, then its fixed
/// faults' kinds), each once.
pub fn allowed_kinds(scenario: &Scenario) -> Vec<FaultKind> {
    let mut kinds: Vec<FaultKind> = Vec::new();
    let random = scenario.faults.random.iter().flat_map(|r| r.kinds.iter());
    for k in random.chain(scenario.faults.at.iter().map(|f| &f.kind)) {
        if !kinds.contains(k) {
            kinds.push(k.clone());
        }
    }
    kinds
}

/// Targets that exist in `scenario`: every broker, and every partition's
/// leader and a follower.
pub fn targets(scenario: &Scenario) -> Vec<Target> {
    let mut out: Vec<Target> = (0..scenario.cluster.brokers).map(Target::Broker).collect();
    for t in &scenario.topics {
        for p in 0..t.partitions as i32 {
            out.push(Target::Leader { topic: t.name.clone(), partition: p });
            if t.replication_factor > 1 {
                out.push(Target::Follower { topic: t.name.clone(), partition: p });
            }
        }
    }
    out
}

/// Targets a fault of `kind` can hit in `scenario`: consumers
/// for `slow-consumer`, producers and consumers for `clock-jump`, `random` for the
/// network-wide kinds (their target is unused), [`targets`] otherwise.
pub fn targets_for(scenario: &Scenario, kind: &FaultKind) -> Vec<Target> {
    let clients = ClientCounts::of(scenario);
    match kind {
        FaultKind::SlowConsumer => clients.consumers.clone(),
        FaultKind::ClockJump => (0..clients.clients()).map(|n| clients.client(n)).collect(),
        FaultKind::Latency | FaultKind::Loss => vec![Target::Random],
        _ => targets(scenario),
    }
}

/// One fault in `scenario`: a kind from `kinds` (those with a target in
/// it), a target it can hit, starting in `0..heal_ms`, lasting `duration_ms`.
pub fn fault_at(scenario: &Scenario, kinds: Vec<FaultKind>, duration_ms: RangeInclusive<u64>) -> impl Strategy<Value = FaultAt> {
    let choices: Vec<(FaultKind, Vec<Target>)> = kinds
        .into_iter()
        .map(|k| {
            let t = targets_for(scenario, &k);
            (k, t)
        })
        .filter(|(_, t)| !t.is_empty())
        .collect();
    assert!(!choices.is_empty(), "no fault kind has a target in scenario `{}`", scenario.name);
    let heal_ms = scenario.run.heal_ms.max(1);
    let kind_and_target = select(choices).prop_flat_map(|(kind, targets)| (Just(kind), select(targets)));
    (kind_and_target, 0..heal_ms, duration_ms)
        .prop_map(|((kind, target), at_ms, d)| FaultAt::new(at_ms, kind, target, Some(d)))
}

/// A schedule for `scenario` (its `heal_ms` bounds the times), sorted by time.
pub fn fault_schedule(
    scenario: &Scenario,
    kinds: Vec<FaultKind>,
    count: RangeInclusive<usize>,
    duration_ms: RangeInclusive<u64>,
) -> impl Strategy<Value = Vec<FaultAt>> {
    let one = fault_at(scenario, kinds, duration_ms);
    proptest::collection::vec(one, count).prop_map(|mut faults| {
        faults.sort_by_key(|f| f.at_ms);
        faults
    })
}

/// A workload shape within `limits`.
pub fn workload_shape(limits: &GenLimits) -> impl Strategy<Value = WorkloadShape> {
    (
        limits.producers.clone(),
        limits.rate_per_s.clone(),
        limits.consumers.clone(),
        limits.heal_ms.clone(),
        limits.after_heal_ms.clone(),
    )
        .prop_map(|(producers, rate_per_s, consumers, heal_ms, after)| WorkloadShape {
            producers,
            rate_per_s,
            consumers,
            heal_ms,
            duration_ms: heal_ms + after,
        })
}

/// A whole case: `base` reshaped by a generated workload, with a generated
/// schedule of `kinds` instead of its own faults (no `random` section).
pub fn generated_scenario(base: &Scenario, kinds: Vec<FaultKind>, limits: GenLimits) -> impl Strategy<Value = Scenario> {
    assert!(!kinds.is_empty(), "a generated schedule needs at least one fault kind");
    let base = base.clone();
    workload_shape(&limits).prop_flat_map(move |shape| {
        let mut sc = shape.apply(&base);
        sc.faults.random = None;
        sc.faults.at.clear();
        fault_schedule(&sc, kinds.clone(), limits.faults.clone(), limits.fault_duration_ms.clone()).prop_map(
            move |faults| {
                let mut case = sc.clone();
                case.faults.at = faults;
                case
            },
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::test_runner::{Config, RngSeed, TestRunner};

    /// A small scenario with random and fixed faults and two client entries
    /// (also the fixture of `shrink`'s tests).
    pub(crate) fn fixture() -> Scenario {
        let text = r#"
name = "gen"
[cluster]
brokers = 3
[[topics]]
name = "events"
partitions = 2
replication_factor = 3
[[producers]]
count = 3
topic = "events"
rate_per_s = 100
[[producers]]
topic = "events"
rate_per_s = 10
[[consumers]]
count = 2
topics = ["events"]
[faults]
random = { kinds = ["crash", "pause"], every_ms = [1000, 3000] }
[run]
duration_ms = 40000
heal_ms = 30000
[expect]
verdict = "violation"
anomalies = ["lost-write"]
"#;
        let mut sc = Scenario::from_str(text, "gen.toml").unwrap();
        sc.faults.at = vec![
            FaultAt::new(100, FaultKind::Partition, Target::Broker(1), None),
            FaultAt::new(200, FaultKind::SlowConsumer, Target::AssignConsumer(1), None),
        ];
        // Still a valid file.
        Scenario::from_str(&sc.to_toml().unwrap(), "gen.toml").unwrap()
    }

    #[test]
    fn allowed_kinds_and_targets_come_from_the_scenario() {
        let sc = fixture();
        assert_eq!(allowed_kinds(&sc), vec![FaultKind::Crash, FaultKind::Pause, FaultKind::Partition, FaultKind::SlowConsumer]);
        assert_eq!(targets_for(&sc, &FaultKind::SlowConsumer), vec![Target::AssignConsumer(0), Target::AssignConsumer(1)]);
        assert_eq!(targets_for(&sc, &FaultKind::ClockJump).len(), 6, "four producer and two consumer processes");
        let t: Vec<String> = targets(&sc).iter().map(Target::to_string).collect();
        assert_eq!(
            t,
            ["broker:0", "broker:1", "broker:2", "leader:events/0", "follower:events/0", "leader:events/1", "follower:events/1"]
        );
    }

    /// Every generated case is a valid scenario file (it validates after a
    /// TOML round trip) whose faults fit its phases, kinds and targets.
    #[test]
    fn generated_cases_are_valid_scenarios_within_the_limits() {
        let sc = fixture();
        let limits = GenLimits::default();
        let strategy = generated_scenario(&sc, allowed_kinds(&sc), limits.clone());
        let config = Config { cases: 64, rng_seed: RngSeed::Fixed(1), failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new(config);
        runner
            .run(&strategy, |case| {
                let text = case.to_toml().expect("serialises");
                let again = Scenario::from_str(&text, "generated").map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&again, &case);
                prop_assert!(case.faults.random.is_none());
                prop_assert!(limits.faults.contains(&case.faults.at.len()));
                prop_assert!(case.faults.at.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
                for f in &case.faults.at {
                    prop_assert!(f.at_ms < case.run.heal_ms);
                    prop_assert!(allowed_kinds(&sc).contains(&f.kind));
                    prop_assert!(targets_for(&case, &f.kind).contains(&f.target));
                }
                prop_assert!(limits.heal_ms.contains(&case.run.heal_ms));
                prop_assert!(case.run.duration_ms > case.run.heal_ms);
                prop_assert!(case.producers.iter().all(|p| limits.producers.contains(&p.count)));
                Ok(())
            })
            .unwrap();
    }

    /// proptest shrinks a failing case through these strategies: a property
    /// that fails whenever some crash hits broker 2 shrinks to that one fault.
    #[test]
    fn a_failing_property_shrinks_to_one_fault() {
        let sc = fixture();
        let strategy = generated_scenario(&sc, allowed_kinds(&sc), GenLimits::default());
        let config = Config { cases: 256, rng_seed: RngSeed::Fixed(7), failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&strategy, |case| {
            let hit = case.faults.at.iter().any(|f| f.kind == FaultKind::Crash && f.target == Target::Broker(2));
            prop_assert!(!hit);
            Ok(())
        });
        match result {
            Err(proptest::test_runner::TestError::Fail(_, minimal)) => {
                assert_eq!(minimal.faults.at.len(), 1, "{:?}", minimal.faults.at);
                assert_eq!((&minimal.faults.at[0].kind, &minimal.faults.at[0].target), (&FaultKind::Crash, &Target::Broker(2)));
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
