//! `hanging-txn`: after heal a partition's last stable offset stays below
//! its log end — some transaction was never completed (KIP-664 calls these
//! hanging transactions), and read_committed consumers cannot pass it.
//!
//! Judged on the last `end-offsets` op per partition: the harness records
//! one after the workload stopped and faults healed, when no transaction
//! should still be open.

use super::Anomaly;
use crate::history::{EndOffsets, History, OpType};
use std::collections::BTreeMap;

pub const KEY: &str = "hanging-txn";

pub fn check(h: &History) -> Vec<Anomaly> {
    let mut last: BTreeMap<String, (u64, EndOffsets)> = BTreeMap::new();
    for op in h.ops.iter().filter(|op| op.op_type == OpType::Ok) {
        for (p, ends) in op.end_offsets().unwrap_or_default() {
            last.insert(p, (op.t_ms, ends));
        }
    }
    last.into_iter()
        .filter(|(_, (_, e))| e.last_stable < e.log_end)
        .map(|(partition, (t_ms, e))| Anomaly {
            key: KEY,
            partition,
            value: None,
            offset: Some(e.last_stable),
            detail: format!(
                "at {t_ms} ms the last stable offset was {} below the log end {}",
                e.last_stable, e.log_end
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::history::Op;

    #[test]
    fn a_final_last_stable_offset_below_the_log_end_is_a_hanging_transaction() {
        let h = history(vec![Op::end_offsets_ok(9, 100, &[(P, 40, 42), ("events/1", 7, 7)])]);
        assert_eq!(keys(&check(&h)), vec![(KEY, None, Some(40))]);
    }

    #[test]
    fn an_open_transaction_that_later_completed_is_not_hanging() {
        let h = history(vec![Op::end_offsets_ok(9, 100, &[(P, 40, 42)]), Op::end_offsets_ok(9, 200, &[(P, 43, 43)])]);
        assert!(check(&h).is_empty());
    }
}
