//! Consumer groups in the harness: group-member processes subscribe and
//! record their rebalances and commits, `consumer:GROUP/N` faults hit the
//! named member, and after heal the liveness watch judges whether every
//! group settled (issue 4: "groups stable").
#![cfg(madsim)]

use ksim_sim::history::{OpType, Rebalance};
use ksim_sim::report::{SeedResult, Verdict};
use ksim_sim::run::run_seed;
use ksim_sim::scenario::{FaultAt, FaultKind, Scenario, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/fast/{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// group-members-crash-and-pause without its faults.
fn quiet_group() -> Scenario {
    let mut s = load("group-members-crash-and-pause");
    s.faults.at.clear();
    s
}

fn run(sc: &Scenario, seed: u64) -> SeedResult {
    run_seed(sc, seed).unwrap_or_else(|e| panic!("{}: {e}", sc.name))
}

/// Each member process's last rebalance.
fn last_rebalances(r: &SeedResult) -> BTreeMap<u64, Rebalance> {
    r.history.ops.iter().filter_map(|o| o.rebalance().map(|rb| (o.process, rb))).collect()
}

fn found(r: &SeedResult, key: &str) -> u64 {
    r.anomalies.get(key).copied().unwrap_or(0)
}

/// Three members of one group split six partitions: each subscribes, the
/// members' last rebalances name one generation and own every partition
/// exactly once, and their after-process commits succeed.
#[test]
fn group_members_share_the_partitions_of_one_generation() {
    let r = run(&quiet_group(), 1);
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.examples);
    let subscribers: BTreeSet<u64> = r.history.ops.iter().filter(|o| o.f == "subscribe").map(|o| o.process).collect();
    assert_eq!(subscribers.len(), 3);
    let last = last_rebalances(&r);
    assert_eq!(last.keys().copied().collect::<BTreeSet<_>>(), subscribers, "every member rebalanced");
    let generations: BTreeSet<i64> = last.values().map(|rb| rb.generation).collect();
    assert_eq!(generations.len(), 1, "one final generation: {last:?}");
    let mut owned: Vec<&String> = last.values().flat_map(|rb| &rb.assigned).collect();
    owned.sort();
    let expected: Vec<String> = (0..6).map(|p| format!("events/{p}")).collect();
    assert_eq!(owned, expected.iter().collect::<Vec<_>>(), "each partition owned once");
    let commits = r.history.ops.iter().filter(|o| o.f == "commit");
    let ok_partitions: BTreeSet<String> = commits
        .filter(|o| o.op_type == OpType::Ok)
        .flat_map(|o| o.committed_offsets().unwrap_or_default().into_keys())
        .collect();
    assert_eq!(ok_partitions.len(), 6, "every partition had an ok commit: {ok_partitions:?}");
}

/// `consumer:g1/1` is the group's second member process (process ids: the
/// two producers are 0 and 1, the members 2, 3 and 4): a crash there ends
/// that process, and a new member process joins after the restart.
#[test]
fn a_consumer_group_target_hits_the_named_member() {
    let base = run(&quiet_group(), 1);
    let mut sc = quiet_group();
    sc.faults.at.push(FaultAt::new(8_000, FaultKind::Crash, Target::Consumer { group: "g1".into(), index: 1 }, Some(3_000)));
    let r = run(&sc, 1);
    assert_eq!(r.faults, 2, "crash and restart");
    let crash = r.history.ops.iter().find(|o| o.f == "crash").expect("a crash op");
    assert_eq!(crash.process, 3, "consumer:g1/1 is process 3");
    assert!(r.history.ops.iter().filter(|o| o.process == 3).all(|o| o.t_ms <= crash.t_ms));
    let late_subscriber = r.history.ops.iter().find(|o| o.f == "subscribe" && o.t_ms > crash.t_ms).expect("restarted member");
    assert!(late_subscriber.process > 4, "a restarted member is a new process");
    assert_ne!(r.history.to_jsonl(), base.history.to_jsonl());
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.examples);
}

/// A member paused longer than session.timeout.ms is removed by the
/// coordinator: the others rebalance into a new generation without it
/// while it is paused.
#[test]
fn a_member_paused_past_its_session_timeout_is_removed() {
    let mut sc = quiet_group();
    sc.faults.at.push(FaultAt::new(14_000, FaultKind::Pause, Target::Consumer { group: "g1".into(), index: 1 }, Some(9_000)));
    let r = run(&sc, 1);
    let during: Vec<(u64, Rebalance)> = r
        .history
        .ops
        .iter()
        .filter(|o| (14_000..23_000).contains(&o.t_ms) && o.process != 3)
        .filter_map(|o| o.rebalance().map(|rb| (o.process, rb)))
        .collect();
    let without_3 = during.iter().any(|(_, rb)| rb.assigned.len() == 3);
    assert!(without_3, "the two live members took the paused member's partitions: {during:?}");
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.examples);
}

/// Processing longer than max.poll.interval.ms keeps the group churning
/// after heal: the liveness watch reports the group; with the interval
/// above the processing time the same workload settles.
#[test]
fn a_group_that_never_settles_is_a_liveness_failure() {
    let r = run(&load("max-poll-interval-exceeded"), 1);
    assert!(found(&r, "liveness") > 0, "{:?}", r.anomalies);
    let detail = &r.examples["liveness"][0].detail;
    assert!(detail.contains("group slow"), "{detail}");
    let failed_commits = r.history.ops.iter().filter(|o| o.f == "commit" && o.op_type == OpType::Fail).count();
    assert!(failed_commits > 0, "commits after being kicked out fail (CommitFailedException)");
    let ok = run(&load("max-poll-interval-respected"), 1);
    assert_eq!(found(&ok, "liveness"), 0, "{:?}", ok.examples);
    assert_eq!(ok.verdict, Verdict::Pass, "{:?}", ok.examples);
}

/// `commit = "async"` records each commitAsync when its callback runs (on
/// a later poll or at close), in order; `auto` leaves commits to the
/// client (none in the history) and still consumes everything once per
/// generation.
#[test]
fn async_commits_are_recorded_when_their_callbacks_run_and_auto_commits_are_not() {
    use ksim_sim::scenario::CommitMode;
    let mut sc = quiet_group();
    sc.consumers[0].commit = CommitMode::Async;
    let r = run(&sc, 1);
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.examples);
    let commits: Vec<_> = r.history.ops.iter().filter(|o| o.f == "commit").collect();
    assert!(commits.len() > 50, "async commits recorded: {}", commits.len());
    assert!(commits.iter().all(|o| o.op_type == OpType::Ok), "no fault: every async commit succeeds");
    // Per member and partition, callbacks complete in commit order.
    let mut last: BTreeMap<(u64, String), i64> = BTreeMap::new();
    for o in &commits {
        for (p, offset) in o.committed_offsets().unwrap() {
            let prev = last.insert((o.process, p.clone()), offset);
            assert!(prev.is_none_or(|prev| prev < offset), "process {} {p}: {prev:?} then {offset}", o.process);
        }
    }
    sc.consumers[0].commit = CommitMode::Auto;
    let r = run(&sc, 1);
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.examples);
    assert_eq!(r.history.ops.iter().filter(|o| o.f == "commit").count(), 0);
    assert!(r.history.ops.iter().filter(|o| o.f == "poll").count() > 100);
}
