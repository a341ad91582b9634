//! A per-history index every history checker shares, built once per check
//! (Jepsen's Kafka checker computes the same "version orders" and
//! "writer-of" maps up front).
//!
//! - Every send and poll micro-operation, decoded once from the ops' JSON
//!   values, in history order, with each op's slice of them.
//! - The version order of a partition: its (offset, value) pairs in offset
//!   order, from sends acknowledged with an offset and from every poll
//!   (a poll inside an aborted transaction still returned real records).
//!   When two values claim one offset, an acknowledgement beats a read and
//!   otherwise the first in history order is kept (`inconsistent-offsets`
//!   reports the conflict). A value found at several offsets keeps only its
//!   lowest (`duplicate` reports the others): a retried send written twice
//!   would otherwise sit on both sides of its neighbours and fake a write
//!   cycle.
//! - Where each value is: its first known offset (acknowledged, else read).
//! - Who wrote each value: the op whose send carried it, preferring one
//!   that did not fail.

use crate::history::{History, OpType, PollView, SendView};
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
    /// Every send micro-operation, in history order.
    pub sends: Vec<SendView<'a>>,
    /// Every poll micro-operation of every op (whatever its type), in
    /// history order.
    pub polls: Vec<PollView<'a>>,
    /// Per op, where its sends start in `sends` (one more entry at the end).
    send_at: Vec<usize>,
    /// Per op, where its polls start in `polls` (one more entry at the end).
    poll_at: Vec<usize>,
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
        for (i, op) in h.ops.iter().enumerate() {
            ix.send_at.push(ix.sends.len());
            ix.poll_at.push(ix.polls.len());
            ix.sends.extend(op.send_views(i));
            ix.polls.extend(op.all_poll_views());
        }
        ix.send_at.push(ix.sends.len());
        ix.poll_at.push(ix.polls.len());
        let mut claims: BTreeMap<&str, Vec<(i64, usize, i64)>> = BTreeMap::new();
        let mut seq = 0usize;
        for s in &ix.sends {
            let slot = ix.writer.entry((s.partition, s.value)).or_insert(s.op_index);
            if h.ops[*slot].op_type == OpType::Fail && s.op_type != OpType::Fail {
                *slot = s.op_index;
            }
            if let (Some(o), true) = (s.offset, s.op_type != OpType::Fail) {
                claims.entry(s.partition).or_default().push((o, seq, s.value));
                seq += 1;
                ix.offset_of.entry((s.partition, s.value)).or_insert(o);
            }
        }
        for p in &ix.polls {
            let c = claims.entry(p.partition).or_default();
            for &(o, v) in &p.reads {
                c.push((o, seq, v));
                seq += 1;
                ix.offset_of.entry((p.partition, v)).or_insert(o);
            }
        }
        for (p, mut c) in claims {
            c.sort_unstable();
            c.dedup_by_key(|x| x.0);
            let mut placed: DetMap<i64, ()> = DetMap::default();
            c.retain(|&(_, _, v)| placed.insert(v, ()).is_none());
            ix.orders.insert(p, c.into_iter().map(|(o, _, v)| (o, v)).collect());
        }
        ix
    }

    /// The sends of op `i`.
    pub fn op_sends(&self, i: usize) -> &[SendView<'a>] {
        &self.sends[self.send_at[i]..self.send_at[i + 1]]
    }

    /// The polls of op `i` (whatever its type).
    pub fn op_polls(&self, i: usize) -> &[PollView<'a>] {
        &self.polls[self.poll_at[i]..self.poll_at[i + 1]]
    }

    /// What ok ops read (what is known to have been read).
    pub fn ok_polls(&self) -> impl Iterator<Item = &PollView<'a>> {
        self.polls.iter().filter(|p| p.op_type == OpType::Ok)
    }

    /// Sends of ok ops (acknowledged).
    pub fn ok_sends(&self) -> impl Iterator<Item = &SendView<'a>> {
        self.sends.iter().filter(|s| s.op_type == OpType::Ok)
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
        let h = history(vec![
            ok(1, 0),
            ok(3, 2),
            poll(&[(0, 1), (1, 2), (2, 9), (3, 1), (4, 5)]),
            Op::send_fail(1, 0, P, 7),
        ]);
        let ix = Index::build(&h);
        // Value 1 again at offset 3 (a duplicate) keeps only offset 0.
        assert_eq!(ix.orders[P], vec![(0, 1), (1, 2), (2, 3), (4, 5)]);
        assert_eq!(ix.offset(P, 2), Some(1));
        assert_eq!(ix.writer(P, 3), Some(1));
        assert_eq!(ix.writer(P, 7), Some(3));
        assert_eq!(ix.offset(P, 7), None);
    }
}
