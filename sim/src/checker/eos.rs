//! `eos-violation`: a consume-transform-produce pipeline's output is not
//! exactly its input, once (Kafka's exactly-once semantics, KIP-98 and
//! KIP-447).
//!
//! A transform is a `txn` op that both polls and sends; committed (`ok`)
//! transforms of one group must together:
//!
//! 1. consume each input value at most once (a value consumed by two
//!    committed transactions was processed twice: the offsets committed
//!    with the first did not hold);
//! 2. consume every input value below the group's final committed offset
//!    of its partition (the group committed past a value nobody
//!    processed);
//! 3. have each output value appear once in the output (read at one
//!    offset only).
//!
//! The group's committed offsets come from `commit` ops and from the
//! `offsets` a txn committed with its transaction; the last ok one per
//! partition is final. Input values are the partition's version order.

use super::index::{describe, DetMap, Index, Part};
use super::Anomaly;
use crate::history::{History, OpType};
use std::collections::{BTreeMap, BTreeSet};

pub const KEY: &str = "eos-violation";

/// ((input partition, value), the committed transform that consumed it).
type Consumed = ((Part, i64), usize);

pub fn check(h: &History, ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut push = |partition: &str, value: i64, offset: Option<i64>, detail: String| {
        out.push(Anomaly { key: KEY, partition: partition.into(), value: Some(value), offset, detail });
    };
    // Per group: ((input partition, value), a committed transform that
    // consumed it), in history order.
    let mut consumed: BTreeMap<&str, Vec<Consumed>> = BTreeMap::new();
    // Outputs of committed transforms: (partition, value) → the transform.
    let mut outputs: DetMap<(Part, i64), usize> = DetMap::default();
    // Per group, partition → the last committed offset.
    let mut committed: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    for (i, op) in h.ops.iter().enumerate().filter(|(_, op)| op.op_type == OpType::Ok) {
        let group = op.group.as_deref().unwrap_or("");
        let (sends, polls) = (ix.op_sends(i), ix.op_polls(i));
        if op.f == "txn" && !sends.is_empty() && !polls.is_empty() {
            let by_input = consumed.entry(group).or_default();
            for p in polls {
                by_input.extend(p.reads.iter().map(|&(_, v)| ((p.part, v), i)));
            }
            outputs.extend(sends.iter().map(|s| ((s.part, s.value), i)));
        }
        if let Some(offsets) = op.committed_offsets() {
            committed.entry(group).or_default().extend(offsets);
        }
    }
    for (group, mut by_input) in consumed {
        // Stable: each input's transforms stay in history order.
        by_input.sort_by_key(|(input, _)| *input);
        let mut inputs: Vec<Part> = Vec::new();
        for same in by_input.chunk_by(|a, b| a.0 == b.0) {
            let (part, value) = same[0].0;
            if inputs.last() != Some(&part) {
                inputs.push(part);
            }
            if same.len() > 1 {
                let who: Vec<String> = same.iter().map(|&(_, i)| describe(h, i)).collect();
                let detail = format!(
                    "group {group:?}: input value {value} was processed by {} committed transactions: {}",
                    same.len(),
                    who.join(", ")
                );
                push(ix.name(part), value, ix.offset(part, value), detail);
            }
        }
        for part in inputs {
            let partition = ix.name(part);
            let Some(&end) = committed.get(group).and_then(|c| c.get(partition)) else {
                continue;
            };
            for &(offset, value) in ix.orders[part as usize].iter().take_while(|(o, _)| *o < end) {
                if by_input.binary_search_by_key(&(part, value), |(input, _)| *input).is_err() {
                    let detail = format!("group {group:?} committed offset {end} past input value {value} at offset {offset}, which no committed transaction processed");
                    push(partition, value, Some(offset), detail);
                }
            }
        }
    }
    // Where each output was read: (partition, value, offset), distinct.
    let mut read_at: Vec<(Part, i64, i64)> = Vec::new();
    for p in ix.ok_polls() {
        read_at.extend(p.reads.iter().filter(|(_, v)| outputs.contains_key(&(p.part, *v))).map(|&(o, v)| (p.part, v, o)));
    }
    read_at.sort_unstable();
    read_at.dedup();
    for same in read_at.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)).filter(|s| s.len() > 1) {
        let (part, value) = (same[0].0, same[0].1);
        let offsets: BTreeSet<i64> = same.iter().map(|r| r.2).collect();
        let t = outputs[&(part, value)];
        let detail = format!("output value {value} of {} appears at offsets {offsets:?}", describe(h, t));
        push(ix.name(part), value, offsets.first().copied(), detail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{MicroOp, Op};

    const IN: &str = "in/0";
    const OUT: &str = "out/0";

    /// A committed transform reading input (offset, value) pairs and
    /// forwarding each value to the output at the given offsets.
    fn transform(reads: &[(i64, i64)], out_offsets: &[i64], commit_to: i64) -> Op {
        let mut micro = vec![MicroOp::poll(IN, reads)];
        micro.extend(reads.iter().zip(out_offsets).map(|(&(_, v), &o)| MicroOp::send(OUT, v, Some(o))));
        Op::txn(1, 0, OpType::Ok, &micro).in_group("g").with_offsets(&[(IN, commit_to)])
    }

    fn input(value: i64, offset: i64) -> Op {
        Op::send_ok(9, 0, IN, value, Some(offset))
    }

    fn run(ops: Vec<Op>) -> Vec<(Option<i64>, Option<i64>)> {
        let h = History { ops };
        check(&h, &Index::build(&h)).iter().map(|a| (a.value, a.offset)).collect()
    }

    #[test]
    fn each_input_processed_once_and_output_once_is_exactly_once() {
        let ops = vec![
            input(1, 0),
            input(2, 1),
            transform(&[(0, 1)], &[0], 1),
            Op::txn(1, 0, OpType::Fail, &[MicroOp::poll(IN, &[(1, 2)]), MicroOp::send(OUT, 2, None)]).in_group("g"),
            transform(&[(1, 2)], &[2], 2),
            Op::poll_ok(5, 0, vec![(OUT.into(), vec![(0, 1), (2, 2)])]),
        ];
        assert!(run(ops).is_empty());
    }

    #[test]
    fn an_input_processed_by_two_committed_transactions_is_a_violation() {
        let ops = vec![input(1, 0), transform(&[(0, 1)], &[0], 1), transform(&[(0, 1)], &[1], 1)];
        assert_eq!(run(ops), vec![(Some(1), Some(0))]);
    }

    #[test]
    fn committing_past_an_unprocessed_input_is_a_violation() {
        let ops =
            vec![input(1, 0), input(2, 1), input(3, 2), transform(&[(0, 1)], &[0], 1), transform(&[(2, 3)], &[1], 3)];
        assert_eq!(run(ops), vec![(Some(2), Some(1))]);
    }

    #[test]
    fn an_offset_commit_op_also_moves_the_group_past_inputs() {
        let ops = vec![input(1, 0), input(2, 1), transform(&[(0, 1)], &[0], 1), Op::commit_ok(1, 0, "g", &[(IN, 2)])];
        assert_eq!(run(ops), vec![(Some(2), Some(1))]);
    }

    #[test]
    fn an_output_written_twice_is_a_violation() {
        let ops = vec![
            input(1, 0),
            transform(&[(0, 1)], &[0], 1),
            Op::poll_ok(5, 0, vec![(OUT.into(), vec![(0, 1), (1, 1)])]),
        ];
        assert_eq!(run(ops), vec![(Some(1), Some(0))]);
    }
}
