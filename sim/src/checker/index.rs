//! A per-history index the send-order, transaction and group checkers
//! share, built once per check (Jepsen's Kafka checker computes the same
//! "version orders" and "writer-of" maps up front).
//!
//! - The version order of a partition: its (offset, value) pairs in offset
//!   order, from sends acknowledged with an offset and from every poll
//!   (a poll inside an aborted transaction still returned real records).
//!   When two values claim one offset, an acknowledgement beats a read and
//!   otherwise the first in history order is kept (`inconsistent-offsets`
//!   reports the conflict).
//! - Where each value is: its first known offset (acknowledged, else read).
//! - Who wrote each value: the op whose send carried it, preferring one
//!   that did not fail.

use crate::history::{History, OpType};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

/// A hash map with a fixed hasher: lookups only, no per-process random
/// seed, so nothing about it can differ between runs.
pub type DetMap<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// (partition, value): values are unique per partition.
pub type PV<'a> = (&'a str, i64);

#[derive(Debug, Default)]
pub struct Index<'a> {
    /// Per partition, the version order: (offset, value) by offset.
    pub orders: BTreeMap<&'a str, Vec<(i64, i64)>>,
    /// The first offset each value was acknowledged at, else read at.
    pub offset_of: DetMap<PV<'a>, i64>,
    /// The op (index in the history) that sent each value.
    pub writer: DetMap<PV<'a>, usize>,
}

impl<'a> Index<'a> {
    pub fn build(h: &'a History) -> Index<'a> {
        let mut ix = Index::default();
        let mut claims: BTreeMap<&str, Vec<(i64, usize, i64)>> = BTreeMap::new();
        let mut seq = 0usize;
        for (i, op) in h.ops.iter().enumerate() {
            for s in op.send_views(i) {
                let slot = ix.writer.entry((s.partition, s.value)).or_insert(i);
                if h.ops[*slot].op_type == OpType::Fail && s.op_type != OpType::Fail {
                    *slot = i;
                }
                if let (Some(o), true) = (s.offset, s.op_type != OpType::Fail) {
                    claims.entry(s.partition).or_default().push((o, seq, s.value));
                    seq += 1;
                    ix.offset_of.entry((s.partition, s.value)).or_insert(o);
                }
            }
        }
        for op in &h.ops {
            for p in op.all_poll_views() {
                let c = claims.entry(p.partition).or_default();
                for &(o, v) in &p.reads {
                    c.push((o, seq, v));
                    seq += 1;
                    ix.offset_of.entry((p.partition, v)).or_insert(o);
                }
            }
        }
        for (p, mut c) in claims {
            c.sort_unstable();
            c.dedup_by_key(|x| x.0);
            ix.orders.insert(p, c.into_iter().map(|(o, _, v)| (o, v)).collect());
        }
        ix
    }

    /// The offset of `value` in `partition`, if any send or read knows it.
    pub fn offset(&self, partition: &'a str, value: i64) -> Option<i64> {
        self.offset_of.get(&(partition, value)).copied()
    }

    /// The op that sent `value` to `partition`, if the history holds it.
    pub fn writer(&self, partition: &'a str, value: i64) -> Option<usize> {
        self.writer.get(&(partition, value)).copied()
    }
}

/// "process 3 (txn ok #12)": how details name an op.
pub fn describe(h: &History, op_index: usize) -> String {
    let op = &h.ops[op_index];
    let t = match op.op_type {
        OpType::Ok => "ok",
        OpType::Fail => "fail",
        OpType::Info => "info",
    };
    format!("process {} ({} {t} #{op_index})", op.process, op.f)
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::history::Op;

    #[test]
    fn version_order_merges_acks_and_reads_first_value_wins() {
        let h = history(vec![ok(1, 0), ok(3, 2), poll(&[(0, 1), (1, 2), (2, 9)]), Op::send_fail(1, 0, P, 7)]);
        let ix = Index::build(&h);
        assert_eq!(ix.orders[P], vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(ix.offset(P, 2), Some(1));
        assert_eq!(ix.writer(P, 3), Some(1));
        assert_eq!(ix.writer(P, 7), Some(3));
        assert_eq!(ix.offset(P, 7), None);
    }
}
