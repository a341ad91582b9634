//! Disk faults end to end: a failed log dir takes only its replicas offline
//! (Kafka's LogDirFailureChannel), EIO and a full disk halt a one-dir broker
//! without losing committed data, and a whole-cluster power loss loses
//! acknowledged writes unless `flush.messages=1` fsyncs before the ack.
#![cfg(madsim)]

use ksim_broker::observe::ObsEvent;
use ksim_sim::checker::CheckResult;
use ksim_sim::observations::Observed;
use ksim_sim::run::{judge, simulate_seed, RunOutput};
use ksim_sim::scenario::Scenario;
use std::collections::BTreeSet;

/// acks=all, RF 3, min ISR 2, `log_dirs` dirs per broker, one fixed fault.
fn scenario(log_dirs: u32, topic_config: &str, fault: &str) -> Scenario {
    let text = format!(
        r#"name = "disk-faults"

[cluster]
brokers = 3
controllers = 1
log_dirs = {log_dirs}
os_writeback_ms = 60000
config = {{ "min.insync.replicas" = 2 }}

[[topics]]
name = "events"
partitions = 4
replication_factor = 3
config = {{ {topic_config} }}

[[producers]]
count = 1
topic = "events"
rate_per_s = 100
keys = 8
config = {{ "acks" = "all", "enable.idempotence" = false, "retries" = 2147483647, "delivery.timeout.ms" = 30000, "request.timeout.ms" = 3000 }}

[[consumers]]
count = 1
topics = ["events"]
process_ms = 0

{fault}

[run]
duration_ms = 16000
heal_ms = 12000
final_poll_ms = 15000

[expect]
verdict = "pass"
allow = ["duplicate", "nonmonotonic-send"]
"#
    );
    Scenario::from_str(&text, "disk-faults.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn fault(kind: &str, target: &str, duration_ms: u64) -> String {
    format!("[[faults.at]]\nat_ms = 4000\nkind = \"{kind}\"\ntarget = \"{target}\"\nduration_ms = {duration_ms}\n")
}

fn run(sc: &Scenario, seed: u64) -> (RunOutput, CheckResult) {
    let out = simulate_seed(sc, seed).expect("run");
    let result = judge(sc, seed, out.clone(), 0);
    let check = CheckResult { counts: result.anomalies.clone(), anomalies: result.details.clone() };
    (out, check)
}

/// Anomalies other than the ones idempotence off allows (retried sends
/// land twice or out of order).
fn forbidden(check: &CheckResult) -> Vec<(String, u64)> {
    let allowed = ["duplicate", "nonmonotonic-send"];
    check.counts.iter().filter(|(k, &n)| n > 0 && !allowed.contains(&k.as_str())).map(|(k, &n)| (k.clone(), n)).collect()
}

/// (broker, partition, dir) of every Offline observation.
fn offline(obs: &[Observed]) -> Vec<(i32, i32, String, u64)> {
    obs.iter()
        .filter_map(|o| match &o.obs.event {
            ObsEvent::Offline { dir } => Some((o.obs.broker, o.obs.partition, dir.clone(), o.t_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_failed_log_dir_moves_its_leaders_and_the_other_dir_keeps_serving() {
    // Until heal the dir stays failed; the broker is restarted at heal.
    let sc = scenario(2, "", &fault("disk-dir-fail", "leader:events/0", 20_000));
    let (out, check) = run(&sc, 1);
    assert!(out.faults.iter().any(|f| f.action.starts_with("disk-dir-fail")), "{:?}", out.faults);
    assert_eq!(forbidden(&check), vec![], "{:?}", check.anomalies);
    assert!(out.final_reads_complete);
    let off = offline(&out.observations);
    assert!(!off.is_empty(), "a replica went offline");
    let (broker, _, dir, t_fail) = off[0].clone();
    let failed: BTreeSet<i32> = off.iter().filter(|o| o.0 == broker).map(|o| o.1).collect();
    assert!(failed.contains(&0), "events/0's replica was in the failed dir: {off:?}");
    assert!(failed.len() < 4, "only one dir's replicas failed: {off:?}");
    assert!(off.iter().all(|o| o.0 == broker && o.2 == dir), "one dir of one broker: {off:?}");
    // Leadership of events/0 moved to another broker after the failure.
    let moved = out.observations.iter().any(|o| {
        o.t_ms > t_fail && o.obs.partition == 0 && o.obs.broker != broker && matches!(o.obs.event, ObsEvent::BecameLeader { .. })
    });
    assert!(moved, "events/0 got a new leader");
    // The broker kept appending to replicas in its other dir, in the same process.
    let incarnation = out.observations.iter().find(|o| matches!(o.obs.event, ObsEvent::Offline { .. })).unwrap().obs.incarnation;
    let served = out.observations.iter().any(|o| {
        o.t_ms > t_fail + 1000
            && o.obs.broker == broker
            && o.obs.incarnation == incarnation
            && !failed.contains(&o.obs.partition)
            && matches!(o.obs.event, ObsEvent::Append { .. })
    });
    assert!(served, "broker {broker} kept serving its other dir");
}

#[test]
fn disk_eio_and_disk_full_halt_a_one_dir_broker_without_losing_committed_data() {
    for kind in ["disk-eio", "disk-full"] {
        let sc = scenario(1, "", &fault(kind, "leader:events/0", 4_000));
        let (out, check) = run(&sc, 2);
        assert!(out.faults.iter().any(|f| f.action == kind), "{kind}: {:?}", out.faults);
        assert!(out.faults.iter().any(|f| f.action == "repair-disk"), "{kind}: {:?}", out.faults);
        assert_eq!(forbidden(&check), vec![], "{kind}: {:?}", check.anomalies);
        assert!(!offline(&out.observations).is_empty(), "{kind}: the broker's dir went offline");
        assert!(out.final_reads_complete, "{kind}");
    }
}

#[test]
fn whole_cluster_power_loss_loses_acked_writes_without_flush_but_not_with_flush_messages_1() {
    let power = fault("power-loss", "all-brokers", 2_000);
    // Kafka's default: no fsync policy, the OS writes back (here: after 60 s,
    // so everything acknowledged is still in the page caches).
    let lossy: Vec<u64> = (0..3)
        .filter(|&seed| {
            let (out, check) = run(&scenario(1, "", &power), seed);
            assert_eq!(out.faults.iter().filter(|f| f.action == "power-loss").count(), 3, "{:?}", out.faults);
            check.counts["lost-write"] > 0
        })
        .collect();
    assert!(!lossy.is_empty(), "an unflushed cluster lost nothing in a power loss");
    for seed in 0..3 {
        let (_, check) = run(&scenario(1, "\"flush.messages\" = 1", &power), seed);
        assert_eq!(forbidden(&check), vec![], "seed {seed}: {:?}", check.anomalies);
    }
}
