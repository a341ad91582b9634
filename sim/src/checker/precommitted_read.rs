//! `precommitted-read`: a transaction read its own write. Kafka's
//! read_committed consumers never see records of open transactions, so a
//! consume-produce transaction that polls a partition it is sending to must
//! not get back what it sent before committing (Jepsen's Kafka checker,
//! "precommitted reads"). Judged on every txn op whatever its outcome: the
//! poll happened before the outcome was known.

use super::index::{describe, Index, Part};
use super::Anomaly;
use crate::history::History;
use std::collections::BTreeSet;

pub const KEY: &str = "precommitted-read";

pub fn check(h: &History, ix: &Index<'_>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (i, _) in h.ops.iter().enumerate().filter(|(_, op)| op.f == "txn") {
        let sent: BTreeSet<(Part, i64)> = ix.op_sends(i).iter().map(|s| (s.part, s.value)).collect();
        if sent.is_empty() {
            continue;
        }
        for p in ix.op_polls(i) {
            for &(offset, value) in p.reads.iter().filter(|(_, v)| sent.contains(&(p.part, *v))) {
                let detail = format!("{} read value {value} at offset {offset}, which it sent itself", describe(h, i));
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
    use crate::history::{MicroOp, Op, OpType};

    #[test]
    fn a_transaction_polling_its_own_uncommitted_send_is_a_precommitted_read() {
        let t = Op::txn(1, 0, OpType::Ok, &[MicroOp::send(P, 7, Some(3)), MicroOp::poll(P, &[(2, 6), (3, 7)])]);
        let h = history(vec![t]);
        let a = check(&h, &ix(&h));
        assert_eq!(keys(&a), vec![(KEY, Some(7), Some(3))]);
    }

    #[test]
    fn reading_other_values_or_another_partition_is_fine() {
        let t = Op::txn(
            1,
            0,
            OpType::Ok,
            &[MicroOp::send(P, 7, Some(3)), MicroOp::poll(P, &[(2, 6)]), MicroOp::poll("events/1", &[(0, 7)])],
        );
        // A later op reading the committed value is an ordinary read.
        let h = history(vec![t, poll(&[(3, 7)])]);
        assert!(check(&h, &ix(&h)).is_empty());
    }
}
