//! `assignment-incomplete`: after heal a consumer group must settle on one
//! generation that assigns every partition of its subscribed topics to a
//! live member.
//!
//! Judged at the end of the history, per group with live subscribers (a
//! subscriber leaves by `assign`-ing or crashing): the group's final
//! generation is the highest any ok rebalance reached; every known
//! partition of a subscribed topic must be in some live member's
//! assignment of that generation, and every live subscriber must have
//! joined it. A group that never formed a generation is incomplete too.
//! Known partitions are those the history mentions anywhere.

use super::index::Index;
use super::Anomaly;
use crate::history::{History, OpType};
use std::collections::{BTreeMap, BTreeSet};

pub const KEY: &str = "assignment-incomplete";

fn topic_of(partition: &str) -> &str {
    partition.rsplit_once('/').map_or(partition, |(t, _)| t)
}

/// Per group: live subscribers' topics, and each member's last rebalance.
#[derive(Default)]
struct Group {
    subscribers: BTreeMap<u64, Vec<String>>,
    /// process → (generation, assigned)
    joined: BTreeMap<u64, (i64, Vec<String>)>,
}

pub fn check(h: &History, ix: &Index<'_>) -> Vec<Anomaly> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut known: BTreeSet<String> = BTreeSet::new();
    for op in &h.ops {
        known.extend(op.end_offsets().unwrap_or_default().into_keys());
        let group = op.group.clone().unwrap_or_default();
        match (op.f.as_str(), op.op_type) {
            ("crash", _) | ("assign", OpType::Ok) => {
                for g in groups.values_mut() {
                    g.subscribers.remove(&op.process);
                    g.joined.remove(&op.process);
                }
            }
            ("subscribe", OpType::Ok) => {
                let topics = op.subscribed_topics().unwrap_or_default();
                groups.entry(group).or_default().subscribers.insert(op.process, topics);
            }
            ("rebalance", OpType::Ok) => {
                if let Some(r) = op.rebalance() {
                    known.extend(r.assigned.iter().cloned());
                    groups.entry(group).or_default().joined.insert(op.process, (r.generation, r.assigned));
                }
            }
            _ => {}
        }
    }
    if groups.values().all(|g| g.subscribers.is_empty()) {
        return Vec::new();
    }
    known.extend(ix.names.iter().map(|p| p.to_string()));
    let mut out = Vec::new();
    let mut push = |partition: String, detail: String| {
        out.push(Anomaly { key: KEY, partition, value: None, offset: None, detail });
    };
    for (name, g) in groups.iter().filter(|(_, g)| !g.subscribers.is_empty()) {
        let live = |p: &u64| g.subscribers.contains_key(p);
        let Some(last) = g.joined.iter().filter(|(p, _)| live(p)).map(|(_, (gen, _))| *gen).max() else {
            push(String::new(), format!("group {name:?} never formed a generation"));
            continue;
        };
        for p in g.subscribers.keys().filter(|p| g.joined.get(p).is_none_or(|j| j.0 < last)) {
            push(
                String::new(),
                format!("group {name:?}: live subscriber process {p} is not in the final generation {last}"),
            );
        }
        let owned: BTreeSet<&str> = g
            .joined
            .iter()
            .filter(|(p, j)| live(p) && j.0 == last)
            .flat_map(|(_, j)| j.1.iter().map(String::as_str))
            .collect();
        let topics: BTreeSet<&str> = g.subscribers.values().flatten().map(String::as_str).collect();
        for p in known.iter().filter(|p| topics.contains(topic_of(p)) && !owned.contains(p.as_str())) {
            push(p.clone(), format!("group {name:?}: no live member owns it in the final generation {last}"));
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

    fn base() -> Vec<Op> {
        vec![
            ok(1, 0),
            Op::send_ok(1, 0, Q, 2, Some(0)),
            Op::subscribe_ok(5, 0, "g", &["events"]),
            Op::subscribe_ok(6, 0, "g", &["events"]),
        ]
    }

    fn run(ops: Vec<Op>) -> Vec<(String, String)> {
        let h = history(ops);
        check(&h, &ix(&h)).into_iter().map(|a| (a.partition, a.detail)).collect()
    }

    #[test]
    fn a_final_generation_covering_every_partition_is_complete() {
        let mut ops = base();
        ops.extend([
            Op::rebalance_ok(5, 1, "g", 1, &[P, Q], &[]),
            Op::rebalance_ok(5, 2, "g", 2, &[P], &[Q]),
            Op::rebalance_ok(6, 2, "g", 2, &[Q], &[]),
        ]);
        assert!(run(ops).is_empty());
    }

    #[test]
    fn a_partition_nobody_owns_in_the_final_generation_is_incomplete() {
        let mut ops = base();
        ops.extend([Op::rebalance_ok(5, 2, "g", 2, &[P], &[]), Op::rebalance_ok(6, 2, "g", 2, &[], &[])]);
        assert_eq!(run(ops).into_iter().map(|a| a.0).collect::<Vec<_>>(), vec![Q.to_string()]);
    }

    #[test]
    fn a_crashed_owner_leaves_its_partitions_unowned_until_a_new_generation() {
        let mut ops = base();
        ops.extend([Op::rebalance_ok(5, 2, "g", 2, &[P], &[]), Op::rebalance_ok(6, 2, "g", 2, &[Q], &[])]);
        ops.push(Op::new(6, "crash", OpType::Info, 3, serde_json::Value::Null));
        assert_eq!(run(ops.clone()).len(), 1);
        ops.push(Op::rebalance_ok(5, 4, "g", 3, &[P, Q], &[]));
        assert!(run(ops).is_empty());
    }

    #[test]
    fn a_group_that_never_formed_or_a_member_left_behind_is_incomplete() {
        let a = run(base());
        assert_eq!(a.len(), 1);
        assert!(a[0].1.contains("never formed"), "{a:?}");
        let mut ops = base();
        ops.push(Op::rebalance_ok(5, 2, "g", 2, &[P, Q], &[]));
        let a = run(ops);
        assert_eq!(a.len(), 1);
        assert!(a[0].1.contains("process 6 is not in the final generation 2"), "{a:?}");
    }
}
