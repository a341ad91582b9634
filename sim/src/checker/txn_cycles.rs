//! `g0` and `g1c` (Adya's write cycles, as Jepsen's Kafka checker finds
//! them): a dependency graph between ops that send, with
//!
//! - ww: T1 → T2 when T1 sent the value right before T2's in some
//!   partition's version order (offset order, gaps ignored);
//! - wr: T1 → T2 when T2 read a value T1 sent.
//!
//! `g0` is a cycle of ww edges only (write cycle); `g1c` a cycle with at
//! least one wr edge (circular information flow). Strongly connected
//! components are found with Tarjan's algorithm: every edge inside a
//! component lies on a cycle, so a component with an inner wr edge holds a
//! g1c cycle, and a component of the ww-only graph a g0 one. One anomaly
//! per component, its detail naming one cycle.
//!
//! Ops that only read cannot be on a cycle (nothing leaves them), so the
//! graph holds only ops that send. Jepsen treats G0 as normal for Kafka
//! (writes are not isolated between producers), and G1c as expected when
//! ww edges are inferred: scenarios decide with `[expect] allow`.

use super::index::{describe, DetMap, Index, Part};
use super::Anomaly;
use crate::history::History;
use std::collections::VecDeque;

pub const G0: &str = "g0";
pub const G1C: &str = "g1c";
/// Ops of a cycle a detail line names at most.
pub const CYCLE_SHOWN_MAX: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dep {
    WW,
    WR,
}

/// An edge to node `to`, with its kind and the partition and value that
/// made it (for details). Partition numbers sort as names do, so the
/// edge kept among equal ones is the same as by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    to: u32,
    dep: Dep,
    part: Part,
    value: i64,
}

struct Graph {
    /// Node → op index in the history.
    ops: Vec<usize>,
    adj: Vec<Vec<Edge>>,
}

/// [`Graph`]'s node of an op that sends nothing.
const NO_NODE: u32 = u32::MAX;

fn build(h: &History, ix: &Index<'_>) -> Graph {
    let mut node_of: Vec<u32> = vec![NO_NODE; h.ops.len()];
    let mut ops = Vec::new();
    for (i, node) in node_of.iter_mut().enumerate() {
        if !ix.op_sends(i).is_empty() {
            *node = ops.len() as u32;
            ops.push(i);
        }
    }
    let node = |part: Part, value: i64| ix.writer(part, value).map(|w| node_of[w]).filter(|&n| n != NO_NODE);
    let mut adj: Vec<Vec<Edge>> = vec![Vec::new(); ops.len()];
    for (part, order) in ix.orders.iter().enumerate() {
        let part = part as Part;
        let mut prev: Option<u32> = None;
        for &(_, value) in order {
            let w = node(part, value);
            if let (Some(a), Some(b)) = (prev, w) {
                if a != b {
                    adj[a as usize].push(Edge { to: b, dep: Dep::WW, part, value });
                }
            }
            prev = w;
        }
    }
    for (n, &r) in ops.iter().enumerate() {
        for p in ix.op_polls(r) {
            for &(_, value) in &p.reads {
                let Some(w) = node(p.part, value) else {
                    continue;
                };
                if w as usize != n {
                    adj[w as usize].push(Edge { to: n as u32, dep: Dep::WR, part: p.part, value });
                }
            }
        }
    }
    for a in &mut adj {
        a.sort_unstable();
        a.dedup_by_key(|e| (e.to, e.dep));
    }
    Graph { ops, adj }
}

/// Tarjan's strongly connected components (iterative), over the edges
/// `keep` accepts; components of two or more nodes, each sorted.
fn components(adj: &[Vec<Edge>], keep: impl Fn(&Edge) -> bool) -> Vec<Vec<u32>> {
    const UNSEEN: u32 = u32::MAX;
    let n = adj.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut out = Vec::new();
    let mut next = 0u32;
    // (node, position in its edge list)
    let mut call: Vec<(u32, usize)> = Vec::new();
    for root in 0..n as u32 {
        if index[root as usize] != UNSEEN {
            continue;
        }
        call.push((root, 0));
        index[root as usize] = next;
        low[root as usize] = next;
        next += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        while let Some(&(v, at)) = call.last() {
            let edges = &adj[v as usize];
            let mut i = at;
            while i < edges.len() && !keep(&edges[i]) {
                i += 1;
            }
            if let Some(e) = edges.get(i) {
                call.last_mut().expect("non-empty").1 = i + 1;
                let w = e.to as usize;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(e.to);
                    on_stack[w] = true;
                    call.push((e.to, 0));
                } else if on_stack[w] {
                    low[v as usize] = low[v as usize].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent as usize] = low[parent as usize].min(low[v as usize]);
            }
            if low[v as usize] == index[v as usize] {
                let mut comp = Vec::new();
                loop {
                    let w = stack.pop().expect("v is on the stack");
                    on_stack[w as usize] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort_unstable();
                    out.push(comp);
                }
            }
        }
    }
    out.sort();
    out
}

/// A shortest path of kept edges from `from` to `to` inside `comp`.
fn path(adj: &[Vec<Edge>], comp: &[u32], from: u32, to: u32, keep: &impl Fn(&Edge) -> bool) -> Vec<(u32, Edge)> {
    let mut back: DetMap<u32, (u32, Edge)> = DetMap::default();
    let mut queue = VecDeque::from([from]);
    while let Some(v) = queue.pop_front() {
        if v == to {
            break;
        }
        for e in adj[v as usize].iter().filter(|e| keep(e) && comp.binary_search(&e.to).is_ok()) {
            if e.to != from && !back.contains_key(&e.to) {
                back.insert(e.to, (v, *e));
                queue.push_back(e.to);
            }
        }
    }
    let mut steps = Vec::new();
    let mut at = to;
    while at != from {
        let Some(&(prev, e)) = back.get(&at) else {
            break;
        };
        steps.push((prev, e));
        at = prev;
    }
    steps.reverse();
    steps
}

/// "process 1 (txn ok #0) -ww events/0 value 3-> process 2 (…) -wr …->".
fn describe_cycle(h: &History, ix: &Index<'_>, g: &Graph, steps: &[(u32, Edge)]) -> String {
    let mut s = String::new();
    for (from, e) in steps.iter().take(CYCLE_SHOWN_MAX) {
        let dep = if e.dep == Dep::WW { "ww" } else { "wr" };
        s.push_str(&format!("{} -{dep} {} value {}-> ", describe(h, g.ops[*from as usize]), ix.name(e.part), e.value));
    }
    if steps.len() > CYCLE_SHOWN_MAX {
        s.push_str(&format!("… ({} ops) ", steps.len()));
    }
    s.push_str(&describe(h, g.ops[steps[0].0 as usize]));
    s
}

pub fn check(h: &History, ix: &Index<'_>) -> Vec<Anomaly> {
    let g = build(h, ix);
    let mut out = Vec::new();
    let ww_only = |e: &Edge| e.dep == Dep::WW;
    let any = |_: &Edge| true;
    for comp in components(&g.adj, ww_only) {
        let (v, e) = comp
            .iter()
            .flat_map(|&v| g.adj[v as usize].iter().map(move |e| (v, e)))
            .find(|(_, e)| ww_only(e) && comp.binary_search(&e.to).is_ok())
            .expect("a component of two or more nodes has an inner edge");
        let mut steps = vec![(v, *e)];
        steps.extend(path(&g.adj, &comp, e.to, v, &ww_only));
        let detail = format!("write cycle over {} ops: {}", comp.len(), describe_cycle(h, ix, &g, &steps));
        out.push(Anomaly { key: G0, partition: ix.name(e.part).into(), value: Some(e.value), offset: None, detail });
    }
    for comp in components(&g.adj, any) {
        let inner_wr = comp
            .iter()
            .flat_map(|&v| g.adj[v as usize].iter().map(move |e| (v, e)))
            .find(|(_, e)| e.dep == Dep::WR && comp.binary_search(&e.to).is_ok());
        let Some((v, e)) = inner_wr else { continue };
        let mut steps = vec![(v, *e)];
        steps.extend(path(&g.adj, &comp, e.to, v, &any));
        let detail = format!("write-read cycle over {} ops: {}", comp.len(), describe_cycle(h, ix, &g, &steps));
        out.push(Anomaly { key: G1C, partition: ix.name(e.part).into(), value: Some(e.value), offset: None, detail });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::history::{MicroOp, Op, OpType};

    const Q: &str = "events/1";

    fn txn(process: u64, micro: &[MicroOp]) -> Op {
        Op::txn(process, 0, OpType::Ok, micro)
    }

    fn run(h: &History) -> Vec<&'static str> {
        check(h, &Index::build(h)).iter().map(|a| a.key).collect()
    }

    #[test]
    fn transactions_whose_writes_interleave_in_opposite_orders_form_a_g0_cycle() {
        // T1 before T2 on P, T2 before T1 on Q.
        let h = history(vec![
            txn(1, &[MicroOp::send(P, 1, Some(0)), MicroOp::send(Q, 4, Some(1))]),
            txn(2, &[MicroOp::send(P, 2, Some(1)), MicroOp::send(Q, 3, Some(0))]),
        ]);
        assert_eq!(run(&h), vec![G0]);
        let a = &check(&h, &Index::build(&h))[0];
        assert!(
            a.detail.contains("-ww events/0 value 2->") && a.detail.contains("-ww events/1 value 4->"),
            "{}",
            a.detail
        );
    }

    #[test]
    fn transactions_in_one_order_everywhere_have_no_cycle() {
        let h = history(vec![
            txn(1, &[MicroOp::send(P, 1, Some(0)), MicroOp::send(Q, 3, Some(0))]),
            txn(2, &[MicroOp::send(P, 2, Some(1)), MicroOp::send(Q, 4, Some(1))]),
            txn(3, &[MicroOp::poll(P, &[(0, 1), (1, 2)]), MicroOp::send(Q, 5, Some(2))]),
        ]);
        assert!(run(&h).is_empty());
    }

    #[test]
    fn each_transaction_reading_the_others_write_is_a_g1c_cycle() {
        // T1 reads T2's value on Q, T2 reads T1's value on P.
        let h = history(vec![
            txn(1, &[MicroOp::send(P, 1, Some(0)), MicroOp::poll(Q, &[(0, 3)])]),
            txn(2, &[MicroOp::send(Q, 3, Some(0)), MicroOp::poll(P, &[(0, 1)])]),
        ]);
        assert_eq!(run(&h), vec![G1C]);
    }

    #[test]
    fn a_ww_edge_closed_by_a_wr_edge_is_g1c_not_g0() {
        // T1 wrote before T2 on P; T1 read T2's write on Q.
        let h = history(vec![
            txn(1, &[MicroOp::send(P, 1, Some(0)), MicroOp::poll(Q, &[(0, 3)])]),
            txn(2, &[MicroOp::send(P, 2, Some(1)), MicroOp::send(Q, 3, Some(0))]),
        ]);
        assert_eq!(run(&h), vec![G1C]);
    }

    #[test]
    fn a_retried_send_written_twice_is_not_a_write_cycle() {
        // Value 1 at offsets 0 and 2 around value 2: a duplicate, no cycle.
        let h = history(vec![ok(1, 0), ok(2, 1), poll(&[(0, 1), (1, 2), (2, 1)])]);
        assert!(run(&h).is_empty());
    }

    #[test]
    fn plain_sends_and_polls_never_form_cycles() {
        let h = history(vec![ok(1, 0), ok(2, 1), Op::send_ok(1, 0, Q, 3, Some(0)), poll(&[(0, 1), (1, 2)])]);
        assert!(run(&h).is_empty());
    }

    #[test]
    fn tarjan_finds_every_component_of_a_long_chain_with_a_back_edge() {
        // 0 → 1 → … → 9 → 0 and a separate 10 ↔ 11.
        let e = |to: u32| Edge { to, dep: Dep::WW, part: 0, value: 0 };
        let mut adj: Vec<Vec<Edge>> = (0..12).map(|i| vec![e((i + 1) % 10)]).collect();
        adj[10] = vec![e(11)];
        adj[11] = vec![e(10)];
        let comps = components(&adj, |_| true);
        assert_eq!(comps, vec![(0..10).collect::<Vec<u32>>(), vec![10, 11]]);
    }
}
