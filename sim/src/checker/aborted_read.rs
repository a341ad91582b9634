//! `aborted-read` (Jepsen's G1a): an ok poll returned a value whose write
//! definitely did not happen — its send failed (`fail`), or the transaction
//! that sent it aborted (a `txn` op of type `fail`). Kafka's
//! read_committed consumers must never see aborted records; no consumer may
//! see a record whose produce definitely failed. Consumers at
//! read_uncommitted may see aborted transactions' records: scenarios that
//! use them allow this key.
//!
//! Reported once per value (with the first reader). A transaction reading
//! its own write is `precommitted-read`, not this.

use super::index::{describe, DetMap, Index, Part};
use super::Anomaly;
use crate::history::{History, OpType};
use std::collections::BTreeSet;

pub const KEY: &str = "aborted-read";

pub fn check(h: &History, ix: &Index<'_>) -> Vec<Anomaly> {
    // Values whose writer definitely failed (few): only reads of these
    // need a closer look.
    let mut failed: DetMap<(Part, i64), usize> = DetMap::default();
    for s in ix.sends.iter().filter(|s| s.op_type == OpType::Fail) {
        if let Some(w) = ix.writer(s.part, s.value).filter(|&w| h.ops[w].op_type == OpType::Fail) {
            failed.insert((s.part, s.value), w);
        }
    }
    let mut reported: BTreeSet<(Part, i64)> = BTreeSet::new();
    let mut out = Vec::new();
    if failed.is_empty() {
        return out;
    }
    for r in (0..h.ops.len()).filter(|&r| h.ops[r].op_type == OpType::Ok) {
        for p in ix.op_polls(r) {
            for &(offset, value) in &p.reads {
                let Some(&w) = failed.get(&(p.part, value)) else {
                    continue;
                };
                let writer = &h.ops[w];
                if w == r || !reported.insert((p.part, value)) {
                    continue;
                }
                let why = match (writer.f.as_str(), &writer.error) {
                    ("txn", _) => "its transaction aborted".to_string(),
                    (_, Some(e)) => format!("its send failed: {e}"),
                    (_, None) => "its send failed".to_string(),
                };
                let detail =
                    format!("{} read value {value} at offset {offset}, but {why} ({})", describe(h, r), describe(h, w));
                out.push(Anomaly::new(KEY, p.partition, Some(value), Some(offset), detail));
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

    fn run(h: &History) -> Vec<(Option<i64>, Option<i64>)> {
        check(h, &Index::build(h)).iter().map(|a| (a.value, a.offset)).collect()
    }

    #[test]
    fn reading_a_definitely_failed_send_is_an_aborted_read() {
        let h =
            history(vec![ok(1, 0), Op::send_fail(1, 0, P, 2).with_error("MESSAGE_TOO_LARGE"), poll(&[(0, 1), (1, 2)])]);
        assert_eq!(run(&h), vec![(Some(2), Some(1))]);
        assert!(check(&h, &Index::build(&h))[0].detail.contains("MESSAGE_TOO_LARGE"));
    }

    #[test]
    fn reading_an_aborted_transactions_write_is_an_aborted_read() {
        let aborted = Op::txn(1, 0, OpType::Fail, &[MicroOp::send(P, 5, None), MicroOp::send("events/1", 6, None)]);
        let h = history(vec![aborted, poll(&[(3, 5)]), poll(&[(3, 5)])]);
        assert_eq!(run(&h), vec![(Some(5), Some(3))], "once per value");
    }

    #[test]
    fn reading_ok_and_unknown_writes_is_fine() {
        let unknown = Op::txn(1, 0, OpType::Info, &[MicroOp::send(P, 5, None)]);
        let h = history(vec![ok(1, 0), Op::send_info(1, 0, P, 2), unknown, poll(&[(0, 1), (1, 2), (2, 5)])]);
        assert!(run(&h).is_empty());
    }

    #[test]
    fn polls_of_failed_ops_do_not_count_as_reads() {
        let reader = Op::txn(2, 0, OpType::Fail, &[MicroOp::poll(P, &[(1, 2)])]);
        let h = history(vec![Op::send_fail(1, 0, P, 2), reader]);
        assert!(run(&h).is_empty());
    }
}
