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
//!
//! Partitions are interned: every partition a send or poll names gets a
//! small number ([`Part`]), its place in the sorted [`Index::names`], so
//! per-partition data lives in vectors and per-value maps hash two
//! integers instead of comparing names (which dominated million-op
//! checks). Numbers sort as names do, so outputs keep name order.

use crate::history::{History, MicroView, OpType, PollView, SendView};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Deref;
use std::sync::OnceLock;

/// A hash map with a fixed, fast hasher ([`FxHasher`]): used for lookups
/// only, with no per-process random seed, so nothing about it can differ
/// between runs.
pub type DetMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The multiply-rotate hash rustc uses (FxHash): not DoS-resistant, which
/// a checker does not need, and several times faster than SipHash on the
/// small keys here (a partition name and a value).
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

/// FxHash's multiplier.
const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.add(u64::from_le_bytes(tail));
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A partition as the index numbers it: its place in [`Index::names`].
pub type Part = u32;

/// A send micro-operation and its partition's number (it derefs to the
/// [`SendView`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent<'a> {
    pub view: SendView<'a>,
    pub part: Part,
}

impl<'a> Deref for Sent<'a> {
    type Target = SendView<'a>;
    fn deref(&self) -> &SendView<'a> {
        &self.view
    }
}

/// A poll micro-operation and its partition's number (it derefs to the
/// [`PollView`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled<'a> {
    pub view: PollView<'a>,
    pub part: Part,
    /// The process polled this partition before and kept it since: no ok
    /// `assign` of the process and no ok `rebalance` that revoked the
    /// partition or left it out of the process's assignment came in
    /// between. Only then does this poll continue from the previous
    /// one's position (otherwise the consumer re-seeked: a committed
    /// offset, auto.offset.reset, its own seek).
    pub continues: bool,
}

impl<'a> Deref for Polled<'a> {
    type Target = PollView<'a>;
    fn deref(&self) -> &PollView<'a> {
        &self.view
    }
}

/// What the index knows of one value of one partition.
#[derive(Debug, Clone, Copy, Default)]
struct Known {
    /// The first offset it was acknowledged at, else read at.
    offset: Option<i64>,
    /// The op (index in the history) that sent it.
    writer: Option<usize>,
}

#[derive(Debug, Default)]
pub struct Index<'a> {
    /// Every send micro-operation, in history order.
    pub sends: Vec<Sent<'a>>,
    /// Every poll micro-operation of every op (whatever its type), in
    /// history order.
    pub polls: Vec<Polled<'a>>,
    /// Per op, where its sends start in `sends` (one more entry at the end).
    send_at: Vec<usize>,
    /// Per op, where its polls start in `polls` (one more entry at the end).
    poll_at: Vec<usize>,
    /// Every partition any send or poll names, sorted; a [`Part`] is a
    /// place in it.
    pub names: Vec<&'a str>,
    /// Name → number.
    parts: DetMap<&'a str, Part>,
    /// Per partition (by [`Part`]), the version order: (offset, value) by
    /// offset (empty when nothing claims an offset there).
    pub orders: Vec<Vec<(i64, i64)>>,
    /// Offset and writer of each (partition, value).
    known: DetMap<(Part, i64), Known>,
    /// [`super::values_read`], once computed.
    pub(crate) values_read: OnceLock<Vec<Vec<i64>>>,
    /// [`super::acknowledged`], once computed.
    pub(crate) acknowledged: OnceLock<Vec<Vec<super::Acked>>>,
}

impl<'a> Index<'a> {
    pub fn build(h: &'a History) -> Index<'a> {
        let mut ix = Index::default();
        // Decode every op once, numbering partitions as first seen.
        for (i, op) in h.ops.iter().enumerate() {
            ix.send_at.push(ix.sends.len());
            ix.poll_at.push(ix.polls.len());
            for m in op.micro_views(i) {
                match m {
                    MicroView::Send(view) => {
                        let part = ix.intern(view.partition);
                        ix.sends.push(Sent { view, part });
                    }
                    MicroView::Poll(view) => {
                        let part = ix.intern(view.partition);
                        ix.polls.push(Polled { view, part, continues: false });
                    }
                }
            }
        }
        ix.send_at.push(ix.sends.len());
        ix.poll_at.push(ix.polls.len());
        // Renumber in name order.
        let mut by_name: Vec<Part> = (0..ix.names.len() as Part).collect();
        by_name.sort_unstable_by_key(|&p| ix.names[p as usize]);
        let mut rank = vec![0 as Part; by_name.len()];
        for (r, &p) in by_name.iter().enumerate() {
            rank[p as usize] = r as Part;
        }
        ix.names = by_name.iter().map(|&p| ix.names[p as usize]).collect();
        for p in ix.parts.values_mut() {
            *p = rank[*p as usize];
        }
        ix.sends.iter_mut().for_each(|s| s.part = rank[s.part as usize]);
        ix.polls.iter_mut().for_each(|p| p.part = rank[p.part as usize]);
        ix.mark_continuing_polls(h);
        // Writers, offsets and every claim to an offset: (offset, claim
        // number, value); acknowledgements first, then reads.
        let mut claims: Vec<Vec<(i64, usize, i64)>> = vec![Vec::new(); ix.names.len()];
        let mut seq = 0usize;
        ix.known.reserve(ix.sends.len());
        for s in &ix.sends {
            let k = ix.known.entry((s.part, s.value)).or_default();
            match k.writer {
                Some(w) if h.ops[w].op_type == OpType::Fail && s.op_type != OpType::Fail => k.writer = Some(s.op_index),
                Some(_) => {}
                None => k.writer = Some(s.op_index),
            }
            if let (Some(o), true) = (s.offset, s.op_type != OpType::Fail) {
                claims[s.part as usize].push((o, seq, s.value));
                seq += 1;
                k.offset.get_or_insert(o);
            }
        }
        for p in &ix.polls {
            let c = &mut claims[p.part as usize];
            for &(o, v) in &p.reads {
                c.push((o, seq, v));
                seq += 1;
                ix.known.entry((p.part, v)).or_default().offset.get_or_insert(o);
            }
        }
        ix.orders = claims
            .into_iter()
            .map(|mut c| {
                c.sort_unstable();
                c.dedup_by_key(|x| x.0);
                let mut placed: DetMap<i64, ()> = DetMap::default();
                c.retain(|&(_, _, v)| placed.insert(v, ()).is_none());
                c.into_iter().map(|(o, _, v)| (o, v)).collect()
            })
            .collect();
        ix
    }

    /// Sets [`Polled::continues`]: walks the ops in order, keeping the
    /// (process, partition) pairs polled since the process's last
    /// assignment change that touched the partition.
    fn mark_continuing_polls(&mut self, h: &History) {
        let mut held: DetMap<(u64, Part), ()> = DetMap::default();
        for (i, op) in h.ops.iter().enumerate() {
            if op.op_type == OpType::Ok && op.f == "assign" {
                held.retain(|(process, _), _| *process != op.process);
            }
            if let Some(rb) = op.rebalance().filter(|_| op.op_type == OpType::Ok) {
                let kept: Vec<Part> = rb
                    .assigned
                    .iter()
                    .filter(|p| !rb.revoked.contains(p))
                    .filter_map(|p| self.part(p))
                    .collect();
                held.retain(|(process, part), _| *process != op.process || kept.contains(part));
            }
            for p in &mut self.polls[self.poll_at[i]..self.poll_at[i + 1]] {
                p.continues = held.insert((p.process, p.part), ()).is_some();
            }
        }
    }

    /// The number of `name`, numbering it if new (numbers in first-seen
    /// order until [`Index::build`] renumbers them).
    fn intern(&mut self, name: &'a str) -> Part {
        let next = self.names.len() as Part;
        let p = *self.parts.entry(name).or_insert(next);
        if p == next {
            self.names.push(name);
        }
        p
    }

    /// The number of partition `name`, if any send or poll names it.
    pub fn part(&self, name: &str) -> Option<Part> {
        self.parts.get(name).copied()
    }

    /// The name of partition `p`.
    pub fn name(&self, p: Part) -> &'a str {
        self.names[p as usize]
    }

    /// The sends of op `i`.
    pub fn op_sends(&self, i: usize) -> &[Sent<'a>] {
        &self.sends[self.send_at[i]..self.send_at[i + 1]]
    }

    /// The polls of op `i` (whatever its type).
    pub fn op_polls(&self, i: usize) -> &[Polled<'a>] {
        &self.polls[self.poll_at[i]..self.poll_at[i + 1]]
    }

    /// What ok ops read (what is known to have been read).
    pub fn ok_polls(&self) -> impl Iterator<Item = &Polled<'a>> {
        self.polls.iter().filter(|p| p.op_type == OpType::Ok)
    }

    /// Sends of ok ops (acknowledged).
    pub fn ok_sends(&self) -> impl Iterator<Item = &Sent<'a>> {
        self.sends.iter().filter(|s| s.op_type == OpType::Ok)
    }

    /// The offset of `value` in partition `p`, if any send or read knows it.
    pub fn offset(&self, p: Part, value: i64) -> Option<i64> {
        self.known.get(&(p, value)).and_then(|k| k.offset)
    }

    /// The op that sent `value` to partition `p`, if the history holds it.
    pub fn writer(&self, p: Part, value: i64) -> Option<usize> {
        self.known.get(&(p, value)).and_then(|k| k.writer)
    }

    /// One empty vector per partition (per-partition working data).
    pub fn per_part<T>(&self) -> Vec<Vec<T>> {
        (0..self.names.len()).map(|_| Vec::new()).collect()
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
        let p = ix.part(P).unwrap();
        // Value 1 again at offset 3 (a duplicate) keeps only offset 0.
        assert_eq!(ix.orders[p as usize], vec![(0, 1), (1, 2), (2, 3), (4, 5)]);
        assert_eq!(ix.offset(p, 2), Some(1));
        assert_eq!(ix.writer(p, 3), Some(1));
        assert_eq!(ix.writer(p, 7), Some(3));
        assert_eq!(ix.offset(p, 7), None);
        assert_eq!(ix.names, vec![P]);
    }

    #[test]
    fn partitions_are_numbered_in_name_order_whatever_order_they_appear_in() {
        let h = history(vec![
            Op::send_ok(1, 0, "b/0", 1, Some(0)),
            Op::poll_ok(2, 0, vec![("a/1".into(), vec![(0, 5)]), ("b/0".into(), vec![(0, 1)])]),
            Op::send_ok(1, 0, "a/0", 2, Some(0)),
        ]);
        let ix = Index::build(&h);
        assert_eq!(ix.names, vec!["a/0", "a/1", "b/0"]);
        assert_eq!((ix.part("a/0"), ix.part("a/1"), ix.part("b/0"), ix.part("c/0")), (Some(0), Some(1), Some(2), None));
        let sent: Vec<(Part, &str)> = ix.sends.iter().map(|s| (s.part, s.partition)).collect();
        assert_eq!(sent, vec![(2, "b/0"), (0, "a/0")]);
        let polled: Vec<(Part, &str)> = ix.polls.iter().map(|p| (p.part, p.partition)).collect();
        assert_eq!(polled, vec![(1, "a/1"), (2, "b/0")]);
        assert_eq!(ix.orders, vec![vec![(0, 2)], vec![(0, 5)], vec![(0, 1)]]);
        assert_eq!((ix.writer(2, 1), ix.writer(0, 2), ix.writer(1, 5)), (Some(0), Some(2), None));
    }

    #[test]
    fn fx_hash_is_fixed_and_spreads_small_keys() {
        use std::hash::BuildHasher;
        let hash = |k: (&str, i64)| BuildHasherDefault::<FxHasher>::default().hash_one(k);
        assert_eq!(hash(("events/0", 7)), hash(("events/0", 7)));
        assert_ne!(hash(("events/0", 7)), hash(("events/0", 8)));
        assert_ne!(hash(("events/0", 7)), hash(("events/1", 7)));
    }
}
