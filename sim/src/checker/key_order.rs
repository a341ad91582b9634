//! `key-order` (an extension of DESIGN.md's catalogue): sends of one key
//! to one partition that happened one after the other in real time — the
//! first acknowledged before the second was invoked — must land at
//! increasing offsets, whichever producers sent them. A log that puts a
//! later send of a key before an earlier one breaks Kafka's per-key order.
//!
//! Needs the record key (fifth element of a send micro-op) and invocation
//! times; sends without them are not judged. Offsets come from the
//! acknowledgement, else from where a reader found the value.

use super::index::{describe, DetMap, Index, Part};
use super::Anomaly;
use crate::history::{History, OpType};

pub const KEY: &str = "key-order";

/// One judged send: (invoked, completed, offset, value, op index).
type Timed = (u64, u64, i64, i64, usize);

pub fn check(h: &History, ix: &Index<'_>) -> Vec<Anomaly> {
    let mut by_key: DetMap<(Part, &str), Vec<Timed>> = DetMap::default();
    for s in &ix.sends {
        let (Some(key), Some(invoked)) = (s.key, s.invoke_t_ms) else {
            continue;
        };
        if s.op_type == OpType::Fail {
            continue;
        }
        if let Some(o) = s.offset.or_else(|| ix.offset(s.part, s.value)) {
            by_key.entry((s.part, key)).or_default().push((invoked, s.t_ms, o, s.value, s.op_index));
        }
    }
    let mut by_key: Vec<((Part, &str), Vec<Timed>)> = by_key.into_iter().collect();
    by_key.sort_unstable_by_key(|(k, _)| *k);
    let mut out = Vec::new();
    for ((part, key), mut sends) in by_key {
        let partition = ix.name(part);
        // Sweep the sends in invocation order, folding in every send
        // completed strictly before the current one was invoked; the
        // highest offset among them must stay below the current offset.
        // Only an acknowledgement bounds a later send: an `info` send's
        // completion time says nothing about when (or whether) it was
        // written, and its offset may be another session's copy of the
        // value (a restarted producer resending it).
        let mut done: Vec<Timed> = sends.iter().filter(|s| h.ops[s.4].op_type == OpType::Ok).copied().collect();
        done.sort_by_key(|s| (s.1, s.4));
        sends.sort_by_key(|s| (s.0, s.4));
        let mut next = 0;
        let mut highest: Option<Timed> = None;
        for b in &sends {
            while next < done.len() && done[next].1 < b.0 {
                if highest.is_none_or(|m| done[next].2 > m.2) {
                    highest = Some(done[next]);
                }
                next += 1;
            }
            if let Some(a) = highest.filter(|a| a.2 >= b.2) {
                let detail = format!(
                    "key {key}: value {} ({}) was acknowledged at offset {} by {} ms, before value {} ({}) was invoked at {} ms, which landed at offset {}",
                    a.3,
                    describe(h, a.4),
                    a.2,
                    a.1,
                    b.3,
                    describe(h, b.4),
                    b.0,
                    b.2
                );
                out.push(Anomaly {
                    key: KEY,
                    partition: partition.into(),
                    value: Some(b.3),
                    offset: Some(b.2),
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

    fn keyed(process: u64, invoke: u64, done: u64, key: &str, value: i64, offset: i64) -> Op {
        let m = MicroOp::Send { partition: P.into(), value, offset: Some(offset), key: Some(key.into()) };
        Op::micro(process, "send", done, OpType::Ok, &[m]).invoked_at(invoke)
    }

    fn run(h: &History) -> Vec<(Option<i64>, Option<i64>)> {
        check(h, &Index::build(h)).iter().map(|a| (a.value, a.offset)).collect()
    }

    #[test]
    fn sequential_sends_of_a_key_at_increasing_offsets_keep_key_order() {
        let h = history(vec![keyed(1, 0, 5, "k1", 1, 0), keyed(2, 6, 9, "k1", 2, 3), keyed(1, 10, 12, "k1", 3, 4)]);
        assert!(run(&h).is_empty());
    }

    #[test]
    fn a_send_invoked_after_another_was_acknowledged_but_landing_before_it_breaks_key_order() {
        // Another producer's send of k1 acknowledged at 7 by 5 ms; ours,
        // invoked at 6 ms, landed at 3 (the log reordered them).
        let h = history(vec![keyed(1, 0, 5, "k1", 1, 7), keyed(2, 6, 9, "k1", 2, 3)]);
        assert_eq!(run(&h), vec![(Some(2), Some(3))]);
    }

    #[test]
    fn overlapping_sends_and_other_keys_are_not_ordered() {
        let h = history(vec![
            keyed(1, 0, 5, "k1", 1, 7),
            keyed(2, 5, 9, "k1", 2, 3), // invoked as the first completed: concurrent
            keyed(3, 6, 9, "k2", 3, 4), // another key
        ]);
        assert!(run(&h).is_empty());
    }

    #[test]
    fn an_unacknowledged_send_does_not_order_the_sends_after_it() {
        // Process 1 crashed at 5 ms with values 1 and 2 unacknowledged
        // (info); its successor, process 2, sent both again from 6 ms (they
        // landed at 4 and 5). Value 2's info completion is no
        // acknowledgement at offset 5 before value 1 was resent.
        let info = |value, invoke| {
            let m = MicroOp::Send { partition: P.into(), value, offset: None, key: Some("k1".into()) };
            Op::micro(1, "send", 5, OpType::Info, &[m]).invoked_at(invoke)
        };
        let h = history(vec![info(1, 0), info(2, 1), keyed(2, 6, 8, "k1", 1, 4), keyed(2, 6, 8, "k1", 2, 5)]);
        assert!(run(&h).is_empty(), "{:?}", check(&h, &Index::build(&h)));
        // Another producer's value 3, acknowledged at 6 by 5 ms, still
        // orders both resends.
        let mut ops = h.ops.clone();
        ops.insert(2, keyed(3, 1, 5, "k1", 3, 6));
        assert_eq!(run(&history(ops)), vec![(Some(1), Some(4)), (Some(2), Some(5))]);
    }

    #[test]
    fn sends_without_keys_or_invocation_times_are_not_judged() {
        let h = history(vec![
            Op::send_ok(1, 5, P, 1, Some(7)).invoked_at(0),
            Op::send_ok(1, 9, P, 2, Some(3)).invoked_at(6),
            Op::micro(
                1,
                "send",
                20,
                OpType::Ok,
                &[MicroOp::Send { partition: P.into(), value: 3, offset: Some(1), key: Some("k".into()) }],
            ),
        ]);
        assert!(run(&h).is_empty());
    }
}
