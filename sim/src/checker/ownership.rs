//! `ownership`: consumer-group partition ownership (KIP-429's invariant:
//! a partition has at most one owner per generation).
//!
//! 1. Two members' rebalances in one group and generation both assign a
//!    partition.
//! 2. A subscribed consumer read records from a partition its latest
//!    rebalance did not assign it (or before any rebalance). Consumers that
//!    `assign` partitions themselves own what they assign and are not judged.

use super::index::describe;
use super::Anomaly;
use crate::history::{History, OpType};
use std::collections::{BTreeMap, BTreeSet};

pub const KEY: &str = "ownership";

/// What a process consumes by: its group's assignment, or its own `assign`.
enum Mode {
    /// Subscribed: owns what its latest rebalance assigned (generation).
    Group {
        generation: Option<i64>,
        owned: BTreeSet<String>,
    },
    Manual,
}

pub fn check(h: &History) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut owners: BTreeMap<(&str, i64, &str), Vec<usize>> = BTreeMap::new();
    let mut modes: BTreeMap<u64, Mode> = BTreeMap::new();
    for (i, op) in h.ops.iter().enumerate().filter(|(_, op)| op.op_type == OpType::Ok) {
        match op.f.as_str() {
            "subscribe" => {
                modes.insert(op.process, Mode::Group { generation: None, owned: BTreeSet::new() });
            }
            "assign" => {
                modes.insert(op.process, Mode::Manual);
            }
            "rebalance" => {
                let Some(r) = op.rebalance() else { continue };
                let group = op.group.as_deref().unwrap_or("");
                if let Some(list) = op.value.get("assigned").and_then(|a| a.as_array()) {
                    for p in list.iter().filter_map(|p| p.as_str()) {
                        owners.entry((group, r.generation, p)).or_default().push(i);
                    }
                }
                modes.insert(
                    op.process,
                    Mode::Group { generation: Some(r.generation), owned: r.assigned.into_iter().collect() },
                );
            }
            _ => {
                let Some(Mode::Group { generation, owned }) = modes.get(&op.process) else {
                    continue;
                };
                for p in op.all_poll_views().filter(|p| !p.reads.is_empty() && !owned.contains(p.partition)) {
                    let gen = generation
                        .map_or_else(|| "before its first rebalance".into(), |g| format!("in generation {g}"));
                    let owned: Vec<&str> = owned.iter().map(String::as_str).collect();
                    let detail =
                        format!("{} read offset {} though it owned only {owned:?} {gen}", describe(h, i), p.reads[0].0);
                    out.push(Anomaly {
                        key: KEY,
                        partition: p.partition.into(),
                        value: Some(p.reads[0].1),
                        offset: Some(p.reads[0].0),
                        detail,
                    });
                }
            }
        }
    }
    for ((group, generation, partition), by) in owners {
        let members: BTreeSet<u64> = by.iter().map(|&i| h.ops[i].process).collect();
        if members.len() > 1 {
            let detail = format!("group {group:?} generation {generation} assigned it to processes {members:?}");
            out.push(Anomaly { key: KEY, partition: partition.into(), value: None, offset: None, detail });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::history::Op;

    const Q: &str = "events/1";

    fn poll_by(process: u64, partition: &str) -> Op {
        Op::poll_ok(process, 0, vec![(partition.into(), vec![(0, 1)])])
    }

    #[test]
    fn members_owning_disjoint_partitions_and_reading_them_are_fine() {
        let h = history(vec![
            Op::subscribe_ok(1, 0, "g", &["events"]),
            Op::subscribe_ok(2, 0, "g", &["events"]),
            Op::rebalance_ok(1, 1, "g", 1, &[P], &[]),
            Op::rebalance_ok(2, 1, "g", 1, &[Q], &[]),
            poll_by(1, P),
            poll_by(2, Q),
            // Generation 2 moves P to process 2.
            Op::rebalance_ok(1, 2, "g", 2, &[], &[P]),
            Op::rebalance_ok(2, 2, "g", 2, &[P, Q], &[]),
            poll_by(2, P),
        ]);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn one_partition_assigned_to_two_members_in_one_generation_is_an_ownership_violation() {
        let h = history(vec![Op::rebalance_ok(1, 1, "g", 3, &[P], &[]), Op::rebalance_ok(2, 1, "g", 3, &[P, Q], &[])]);
        let a = check(&h);
        assert_eq!(keys(&a), vec![(KEY, None, None)]);
        assert!(a[0].detail.contains("generation 3") && a[0].detail.contains("{1, 2}"), "{}", a[0].detail);
        // Another group, or another generation, may own it too.
        let h = history(vec![
            Op::rebalance_ok(1, 1, "g", 3, &[P], &[]),
            Op::rebalance_ok(2, 1, "h", 3, &[P], &[]),
            Op::rebalance_ok(3, 1, "g", 4, &[P], &[]),
        ]);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn reading_a_partition_the_member_was_not_assigned_is_an_ownership_violation() {
        let h = history(vec![
            Op::subscribe_ok(1, 0, "g", &["events"]),
            Op::rebalance_ok(1, 1, "g", 1, &[P], &[]),
            poll_by(1, Q),
        ]);
        assert_eq!(keys(&check(&h)), vec![(KEY, Some(1), Some(0))]);
        // Before the first rebalance a subscribed consumer owns nothing.
        let h = history(vec![Op::subscribe_ok(1, 0, "g", &["events"]), poll_by(1, P)]);
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn assign_mode_consumers_are_not_judged() {
        let h = history(vec![Op::assign_ok(1, 0, vec![P.into()]), poll_by(1, Q), poll_by(2, Q)]);
        assert!(check(&h).is_empty());
    }
}
