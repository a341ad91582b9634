//! The catalogue's findings, pinned: insta snapshots of every anomaly
//! (key, partition, value, offset and detail, which names the offending
//! ops) that the full catalogue reports on the crafted history
//! `tests/histories/anomalies.jsonl` and on generated histories corrupted
//! in seeded ways. They were recorded before the checkers were optimised
//! (interned partitions, integer-keyed maps) and keep every later rewrite
//! to the same results.

use super::{check_all, CheckResult};
use crate::bench::generate_history;
use crate::history::{History, Op, OpType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One line per anomaly, in the order the catalogue reports them.
fn lines(r: &CheckResult) -> Vec<String> {
    r.anomalies
        .iter()
        .map(|a| format!("{} [{}] value={:?} offset={:?}: {}", a.key, a.partition, a.value, a.offset, a.detail))
        .collect()
}

/// Counts of the keys that fired, then every anomaly.
fn listing(r: &CheckResult) -> String {
    let counts: Vec<String> = r.counts.iter().filter(|(_, &c)| c > 0).map(|(k, c)| format!("{k}={c}")).collect();
    format!("{}\n\n{}\n", counts.join(" "), lines(r).join("\n"))
}

/// Counts of the keys that fired and a SHA-256 of every anomaly line (for
/// histories whose listing is too long to review).
fn digest(r: &CheckResult) -> String {
    let counts: Vec<String> = r.counts.iter().filter(|(_, &c)| c > 0).map(|(k, c)| format!("{k}={c}")).collect();
    let mut sha = Sha256::new();
    for l in lines(r) {
        sha.update(l.as_bytes());
        sha.update(b"\n");
    }
    format!("{}\nanomalies={} sha256={}\n", counts.join(" "), r.anomalies.len(), hex::encode(sha.finalize()))
}

/// The micro-operations of a send, poll or txn op, mutable.
fn micro(op: &mut Op) -> &mut Vec<Value> {
    op.value.as_array_mut().expect("a list of micro-operations")
}

/// A generated history (clean) corrupted at about one op in `one_in` so
/// that every history checker has something to find: failed and
/// re-offset sends, swapped acknowledgements between transactions,
/// dropped, duplicated and reordered reads, whole polls lost, aborted and
/// replayed transforms, transactions reading their own writes, a member
/// assigned another's partition, a commit ahead of the position and a
/// hanging transaction.
fn corrupted_history(ops: usize, seed: u64, one_in: u32) -> History {
    let clean = generate_history(ops, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut h = History::default();
    let mut last_txn: Option<usize> = None;
    for mut op in clean.ops {
        if !rng.random_ratio(1, one_in) {
            if op.f == "txn" {
                last_txn = Some(h.ops.len());
            }
            h.push(op);
            continue;
        }
        let f = op.f.clone();
        match (f.as_str(), rng.random_range(0..4)) {
            ("send", 0) => {
                op.op_type = OpType::Fail;
                micro(&mut op)[0][3] = Value::Null;
            }
            ("send", 1 | 2) => {
                if let Some(o) = micro(&mut op)[0][3].as_i64() {
                    micro(&mut op)[0][3] = json!(o + rng.random_range(-2..=2));
                }
            }
            ("poll", k) if op.value.as_array().is_some_and(|m| !m.is_empty()) => {
                let polls = micro(&mut op);
                let at = rng.random_range(0..polls.len());
                let reads = polls[at][2].as_array_mut().expect("reads");
                match k {
                    0 if reads.len() > 2 => {
                        reads.remove(reads.len() / 2);
                    }
                    1 => {
                        let mut again = reads[0].clone();
                        again[0] = json!(again[0].as_i64().expect("offset") + 100_000);
                        reads.push(again);
                    }
                    2 if reads.len() > 1 => reads.swap(0, 1),
                    _ => continue, // the whole poll is lost
                }
            }
            ("txn", 0) => op.op_type = OpType::Fail,
            ("txn", 1) if op.group.is_some() => h.push(op.clone()), // replayed transform
            ("txn", 2) => {
                // Reads its own first write.
                let first = micro(&mut op)[0].clone();
                if first[0] == "send" && first[3].is_i64() {
                    micro(&mut op).push(json!(["poll", first[1], [[first[3], first[2]]]]));
                }
            }
            ("txn", 3) => {
                // Swaps its acknowledged offsets in one partition with the
                // previous transaction's (a write cycle if they share two).
                if let Some(prev) = last_txn {
                    let theirs = micro(&mut h.ops[prev]).clone();
                    for m in micro(&mut op).iter_mut() {
                        if let Some(t) = theirs.iter().find(|t| t[0] == "send" && t[1] == m[1]) {
                            let (a, b) = (m[3].clone(), t[3].clone());
                            m[3] = b;
                            for t in micro(&mut h.ops[prev]).iter_mut().filter(|t| t[0] == "send" && t[1] == m[1]) {
                                t[3] = a.clone();
                            }
                            break;
                        }
                    }
                }
            }
            _ => {}
        }
        if op.f == "txn" {
            last_txn = Some(h.ops.len());
        }
        h.push(op);
    }
    let t_ms = h.ops.last().map_or(0, |op| op.t_ms);
    h.push(Op::subscribe_ok(9_999, t_ms, "bench-ctp", &["bench-in"]));
    h.push(Op::rebalance_ok(9_999, t_ms, "bench-ctp", 1, &["bench-in/0"], &[]));
    h.push(Op::commit_ok(9_998, t_ms, "bench-ctp", &[("bench-in/0", 1)]));
    h.push(Op::poll_ok(9_998, t_ms, vec![("bench/0".into(), vec![(0, 1)])]));
    h.push(Op::commit_ok(9_998, t_ms, "bench-ctp", &[("bench/0", 7)]));
    h.push(Op::end_offsets_ok(9_997, t_ms, &[("bench/1", 3, 5)]));
    h
}

#[test]
fn catalogue_results_on_the_crafted_anomalies_history_are_unchanged() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/histories/anomalies.jsonl");
    let h = History::from_jsonl(&std::fs::read_to_string(path).expect("the crafted history")).expect("it parses");
    insta::assert_snapshot!(listing(&check_all(&h)));
}

#[test]
fn catalogue_results_on_a_corrupted_generated_history_are_unchanged() {
    let r = check_all(&corrupted_history(6_000, 3, 150));
    insta::assert_snapshot!(listing(&r));
}

#[test]
fn catalogue_results_on_a_heavily_corrupted_generated_history_are_unchanged() {
    let r = check_all(&corrupted_history(40_000, 11, 25));
    insta::assert_snapshot!(digest(&r));
}

#[test]
#[ignore = "a million ops: run with --release -- --ignored"]
fn catalogue_results_on_a_corrupted_million_op_history_are_unchanged() {
    let r = check_all(&corrupted_history(1_000_000, 0, 200));
    insta::assert_snapshot!(digest(&r));
}
