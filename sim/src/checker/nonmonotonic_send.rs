//! Producer send order (Jepsen's Kafka checker):
//!
//! - `nonmonotonic-send`: a process's later send to a partition lands at or
//!   below the offset of its earlier one. "Later" is invocation order
//!   (`invoke_t_ms`, ties broken by history order); histories without
//!   invocation times fall back to completion order. Sends invoked in the
//!   same millisecond are concurrent and not judged against each other.
//! - `int-nonmonotonic-send`: two sends to one partition inside one op (a
//!   transaction, or a batch of sends) land in the opposite order.
//!
//! Kafka allows reordering when idempotence is off, retries are on and
//! `max.in.flight.requests.per.connection` > 1: the checker only reports,
//! scenarios decide (`[expect] allow`). Offsets come from the
//! acknowledgement, else from where a reader found the value; sends that
//! definitely failed are not judged.

use super::index::{describe, DetMap, Index, Part};
use super::Anomaly;
use crate::history::{History, OpType};

pub const KEY: &str = "nonmonotonic-send";
pub const INT_KEY: &str = "int-nonmonotonic-send";

/// One op's sends to one partition (in micro-op order, the first and the last).
struct OpSends {
    op_index: usize,
    /// Invocation time if recorded, else completion time.
    order_ms: u64,
    /// Whether `order_ms` is an invocation time (then equal times are
    /// concurrent invocations).
    invoked: bool,
    /// The first send's (value, offset).
    first: (i64, i64),
    /// The last send's offset.
    last: i64,
}

pub fn check(h: &History, ix: &Index<'_>) -> Vec<Anomaly> {
    let mut per_process: DetMap<(u64, Part), Vec<OpSends>> = DetMap::default();
    let mut out = Vec::new();
    // This op's sends with a known offset: (partition, value, offset).
    let mut landed: Vec<(Part, i64, i64)> = Vec::new();
    for (i, op) in h.ops.iter().enumerate() {
        if op.op_type == OpType::Fail {
            continue;
        }
        landed.clear();
        for s in ix.op_sends(i) {
            if let Some(o) = s.offset.or_else(|| ix.offset(s.part, s.value)) {
                landed.push((s.part, s.value, o));
            }
        }
        // Stable: each partition's sends stay in micro-op order.
        landed.sort_by_key(|l| l.0);
        for group in landed.chunk_by(|a, b| a.0 == b.0) {
            let (part, partition) = (group[0].0, ix.name(group[0].0));
            for w in group.windows(2) {
                let ((_, v1, o1), (_, v2, o2)) = (w[0], w[1]);
                if o2 <= o1 {
                    let detail = format!(
                        "{} sent value {v1} then {v2}, but they landed at offsets {o1} and {o2}",
                        describe(h, i)
                    );
                    out.push(Anomaly {
                        key: INT_KEY,
                        partition: partition.into(),
                        value: Some(v2),
                        offset: Some(o2),
                        detail,
                    });
                }
            }
            let order_ms = op.invoke_t_ms.unwrap_or(op.t_ms);
            let (first, last) = (group[0], group[group.len() - 1]);
            let e =
                OpSends { op_index: i, order_ms, invoked: op.invoke_t_ms.is_some(), first: (first.1, first.2), last: last.2 };
            per_process.entry((op.process, part)).or_default().push(e);
        }
    }
    let mut per_process: Vec<((u64, Part), Vec<OpSends>)> = per_process.into_iter().collect();
    per_process.sort_unstable_by_key(|(k, _)| *k);
    for ((_, part), mut ops) in per_process {
        let partition = ix.name(part);
        ops.sort_by_key(|e| (e.order_ms, e.op_index));
        // The previous group of concurrent invocations: (its time, the
        // highest last offset among its ops, that op), and the current one.
        let mut prev: Option<(u64, i64, usize)> = None;
        let mut cur: Option<(u64, i64, usize)> = None;
        for e in &ops {
            let last = e.last;
            let same_group = e.invoked && cur.is_some_and(|c| c.0 == e.order_ms);
            if !same_group {
                prev = cur;
                cur = Some((e.order_ms, last, e.op_index));
            } else if let Some(c) = cur.as_mut().filter(|c| last > c.1) {
                *c = (c.0, last, e.op_index);
            }
            let (v, first) = e.first;
            if let Some((_, prev_last, prev_op)) = prev.filter(|p| first <= p.1) {
                let detail = format!(
                    "{} sent value {v} after {} sent up to offset {prev_last}, yet it landed at offset {first}",
                    describe(h, e.op_index),
                    describe(h, prev_op),
                );
                out.push(Anomaly {
                    key: KEY,
                    partition: partition.into(),
                    value: Some(v),
                    offset: Some(first),
                    detail,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::history::{MicroOp, Op};

    fn send_at(process: u64, invoke_t_ms: u64, t_ms: u64, value: i64, offset: i64) -> Op {
        Op::send_ok(process, t_ms, P, value, Some(offset)).invoked_at(invoke_t_ms)
    }

    fn run(h: &History) -> Vec<&'static str> {
        check(h, &Index::build(h)).iter().map(|a| a.key).collect()
    }

    #[test]
    fn sends_landing_in_invocation_order_are_monotonic() {
        // Completed out of order, but invoked in offset order: fine.
        let h = history(vec![send_at(1, 0, 9, 1, 0), send_at(1, 1, 5, 2, 1), send_at(1, 2, 6, 3, 2)]);
        assert!(run(&h).is_empty());
    }

    #[test]
    fn a_later_invoked_send_at_a_lower_offset_is_nonmonotonic() {
        // Invoked 1 then 2; a retry put 1 after 2 (idempotence off, in-flight > 1).
        let h = history(vec![send_at(1, 1, 5, 2, 10), send_at(1, 0, 9, 1, 11)]);
        assert_eq!(run(&h), vec![KEY]);
        let a = &check(&h, &Index::build(&h))[0];
        assert_eq!((a.value, a.offset), (Some(2), Some(10)));
    }

    #[test]
    fn without_invocation_times_completion_order_is_used() {
        let h = history(vec![ok(1, 5), ok(2, 4)]);
        assert_eq!(run(&h), vec![KEY]);
    }

    #[test]
    fn same_millisecond_invocations_are_concurrent() {
        let h = history(vec![send_at(1, 3, 5, 2, 11), send_at(1, 3, 6, 1, 10)]);
        assert!(run(&h).is_empty());
        // But the next invocation is judged against the highest of them.
        let h = history(vec![send_at(1, 3, 5, 2, 11), send_at(1, 3, 6, 1, 10), send_at(1, 4, 7, 3, 10)]);
        assert_eq!(run(&h), vec![KEY]);
    }

    #[test]
    fn other_processes_partitions_and_failed_sends_are_not_compared() {
        let h = history(vec![
            send_at(1, 0, 1, 1, 5),
            send_at(2, 1, 2, 2, 4),
            Op::send_ok(1, 3, "events/1", 3, Some(0)).invoked_at(2),
            Op::send_fail(1, 4, P, 4).invoked_at(3),
        ]);
        assert!(run(&h).is_empty());
    }

    #[test]
    fn offsets_of_unacknowledged_sends_come_from_reads() {
        let h = history(vec![send_at(1, 0, 1, 1, 5), Op::send_info(1, 2, P, 2).invoked_at(1), poll(&[(3, 2), (5, 1)])]);
        assert_eq!(run(&h), vec![KEY]);
    }

    #[test]
    fn sends_inside_one_transaction_in_the_wrong_order_are_int_nonmonotonic() {
        let txn = |a: i64, b: i64| {
            Op::txn(
                1,
                0,
                OpType::Ok,
                &[MicroOp::send(P, 1, Some(a)), MicroOp::send("events/1", 9, Some(0)), MicroOp::send(P, 2, Some(b))],
            )
        };
        assert!(run(&history(vec![txn(3, 4)])).is_empty());
        assert_eq!(run(&history(vec![txn(4, 3)])), vec![INT_KEY]);
    }
}
