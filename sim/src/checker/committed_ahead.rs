//! `committed-ahead`: a consumer committed an offset beyond its position —
//! past records it never fetched — so a restart would skip them.
//!
//! A process's position in a partition is one past the last offset it read
//! there since it was last assigned it; before it reads anything it is the
//! group's last committed offset (where Kafka's consumer resumes). Judged
//! on ok `commit` ops and on ok txn ops' `offsets` (after the txn's own
//! polls). Positions the history cannot know (no read, nothing committed
//! before) are not judged.

use super::index::{describe, DetMap, Index, Part};
use super::Anomaly;
use crate::history::{History, OpType};
use std::collections::BTreeMap;

pub const KEY: &str = "committed-ahead";

pub fn check(h: &History, ix: &Index<'_>) -> Vec<Anomaly> {
    let mut position: DetMap<(u64, Part), i64> = DetMap::default();
    let mut committed: BTreeMap<(&str, String), i64> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, op) in h.ops.iter().enumerate().filter(|(_, op)| op.op_type == OpType::Ok) {
        let group = op.group.as_deref().unwrap_or("");
        match op.f.as_str() {
            "assign" | "rebalance" => {
                let kept: Vec<&str> = match op.rebalance() {
                    Some(_) => op.value.get("assigned"),
                    None => Some(&op.value),
                }
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
                .unwrap_or_default();
                position.retain(|&(p, part), _| p != op.process || kept.contains(&ix.name(part)));
            }
            _ => {
                for p in ix.op_polls(i) {
                    if let Some(&(last, _)) = p.reads.last() {
                        position.insert((op.process, p.part), last + 1);
                    }
                }
            }
        }
        for (partition, offset) in op.committed_offsets().unwrap_or_default() {
            let known = ix
                .part(&partition)
                .and_then(|part| position.get(&(op.process, part)))
                .map(|&p| (p, "read up to"))
                .or_else(|| committed.get(&(group, partition.clone())).map(|&c| (c, "had committed")));
            if let Some((pos, how)) = known.filter(|(pos, _)| offset > *pos) {
                let detail = format!(
                    "{} committed offset {offset}, but its position was {pos} (it {how} there)",
                    describe(h, i)
                );
                out.push(Anomaly { key: KEY, partition: partition.clone(), value: None, offset: Some(offset), detail });
            }
            committed.insert((group, partition), offset);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::history::{MicroOp, Op};

    fn check_ops(ops: Vec<Op>) -> Vec<Anomaly> {
        let h = history(ops);
        check(&h, &ix(&h))
    }

    fn read(process: u64, reads: &[(i64, i64)]) -> Op {
        Op::poll_ok(process, 0, vec![(P.into(), reads.to_vec())])
    }

    #[test]
    fn committing_the_next_offset_after_what_was_read_is_fine() {
        let h = history(vec![
            read(1, &[(0, 1), (1, 2)]),
            Op::commit_ok(1, 0, "g", &[(P, 2)]),
            Op::commit_ok(1, 0, "g", &[(P, 1)]),
        ]);
        assert!(check(&h, &ix(&h)).is_empty());
    }

    #[test]
    fn committing_beyond_the_last_read_offset_is_committed_ahead() {
        let h = history(vec![read(1, &[(0, 1), (1, 2)]), Op::commit_ok(1, 0, "g", &[(P, 5)])]);
        assert_eq!(keys(&check(&h, &ix(&h))), vec![(KEY, None, Some(5))]);
    }

    #[test]
    fn without_reads_the_groups_committed_offset_is_the_position() {
        // Process 2 took over after process 1 committed 2 and read nothing.
        let h = history(vec![
            read(1, &[(0, 1), (1, 2)]),
            Op::commit_ok(1, 0, "g", &[(P, 2)]),
            Op::rebalance_ok(2, 0, "g", 2, &[P], &[]),
            Op::commit_ok(2, 0, "g", &[(P, 2)]),
            Op::commit_ok(2, 0, "g", &[(P, 4)]),
        ]);
        assert_eq!(keys(&check(&h, &ix(&h))), vec![(KEY, None, Some(4))]);
        // With no position and nothing committed before, nothing is known.
        assert!(check_ops(vec![Op::commit_ok(3, 0, "g", &[(P, 9)])]).is_empty());
    }

    #[test]
    fn a_rebalance_that_takes_the_partition_away_forgets_the_position() {
        let h = history(vec![
            read(1, &[(0, 1), (7, 2)]),
            Op::rebalance_ok(1, 0, "g", 2, &["events/1"], &[P]),
            Op::commit_ok(1, 0, "g", &[(P, 8)]),
        ]);
        assert!(check(&h, &ix(&h)).is_empty());
    }

    #[test]
    fn a_transactions_offsets_are_judged_after_its_own_polls() {
        let t = |commit_to: i64| {
            Op::txn(1, 0, OpType::Ok, &[MicroOp::poll(P, &[(0, 1), (1, 2)]), MicroOp::send("out/0", 1, Some(0))])
                .in_group("g")
                .with_offsets(&[(P, commit_to)])
        };
        assert!(check_ops(vec![t(2)]).is_empty());
        assert_eq!(check_ops(vec![t(3)]).len(), 1);
    }
}
