//! `precommitted-read`: a transaction read its own write. Kafka's
//! read_committed consumers never see records of open transactions, so a
//! consume-produce transaction that polls a partition it is sending to must
//! not get back what it sent before committing (Jepsen's Kafka checker,
//! "precommitted reads"). Judged on every txn op whatever its outcome: the
//! poll happened before the outcome was known.

use super::index::describe;
use super::Anomaly;
use crate::history::History;
use std::collections::BTreeSet;

pub const KEY: &str = "precommitted-read";

pub fn check(h: &History) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (i, op) in h.ops.iter().enumerate().filter(|(_, op)| op.f == "txn") {
        let sent: BTreeSet<(&str, i64)> = op.send_views(i).map(|s| (s.partition, s.value)).collect();
        if sent.is_empty() {
            continue;
        }
        for p in op.all_poll_views() {
            for &(offset, value) in p.reads.iter().filter(|(_, v)| sent.contains(&(p.partition, *v))) {
                let detail = format!("{} read value {value} at offset {offset}, which it sent itself", describe(h, i));
                out.push(Anomaly {
                    key: KEY,
                    partition: p.partition.into(),
                    value: Some(value),
                    offset: Some(offset),
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
    use crate::history::{MicroOp, Op, OpType};

    #[test]
    fn a_transaction_polling_its_own_uncommitted_send_is_a_precommitted_read() {
        let t = Op::txn(1, 0, OpType::Ok, &[MicroOp::send(P, 7, Some(3)), MicroOp::poll(P, &[(2, 6), (3, 7)])]);
        let a = check(&history(vec![t]));
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
        assert!(check(&history(vec![t, poll(&[(3, 7)])])).is_empty());
    }
}
