//! Benchmarks behind `ksim bench`: how fast a scenario simulates (simulated
//! time per wall time, seeds per minute over a sweep) and how fast the full
//! checker catalogue judges a large generated history.
//!
//! The generated history is seeded (ChaCha8) and realistic enough to make
//! every checker work: keyed sends with invocation times (some unknown or
//! failed), consumers polling every partition in order, transactions over
//! several partitions (some aborted), and a consume-transform-produce
//! member of a group that commits its offsets with its transactions. The
//! history is clean: every checker should find nothing.

use crate::checker;
use crate::history::{History, MicroOp, Op, OpType};
use crate::scenario::Scenario;
use crate::sweep;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Instant;

/// Partitions of the generated topic `bench`.
pub const GEN_PARTITIONS: usize = 8;
/// Producer processes of the generated history.
pub const GEN_PRODUCERS: u64 = 16;
/// Assign-mode consumer processes (each polls every partition).
pub const GEN_CONSUMERS: u64 = 4;
/// Keys the producers draw from.
pub const GEN_KEYS: u64 = 64;
/// Records a generated poll returns at most per partition.
pub const GEN_POLL_MAX: usize = 16;
/// Input topic / output topic / group of the transform process.
const CTP_IN: &str = "bench-in/0";
const CTP_OUT: &str = "bench-out/0";
const CTP_GROUP: &str = "bench-ctp";

/// One partition of the generated log: (value, visible to read_committed).
#[derive(Default)]
struct GenLog {
    name: String,
    records: Vec<(i64, bool)>,
}

impl GenLog {
    fn append(&mut self, value: i64, visible: bool) -> i64 {
        self.records.push((value, visible));
        self.records.len() as i64 - 1
    }

    /// Up to `max` visible records from `from`; the next position.
    fn read(&self, from: usize, max: usize) -> (Vec<(i64, i64)>, usize) {
        let mut reads = Vec::new();
        let mut at = from;
        while at < self.records.len() && reads.len() < max {
            if self.records[at].1 {
                reads.push((at as i64, self.records[at].0));
            }
            at += 1;
        }
        (reads, at)
    }
}

/// A seeded history of about `ops` operations (see the module doc).
pub fn generate_history(ops: usize, seed: u64) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut logs: Vec<GenLog> =
        (0..GEN_PARTITIONS).map(|p| GenLog { name: format!("bench/{p}"), records: Vec::new() }).collect();
    let mut ctp_in = GenLog { name: CTP_IN.into(), records: Vec::new() };
    let mut ctp_out = GenLog { name: CTP_OUT.into(), records: Vec::new() };
    let mut h = History::default();
    let mut next_value = 0i64;
    let mut value = || {
        next_value += 1;
        next_value
    };
    let consumer0 = GEN_PRODUCERS;
    let txn_process = consumer0 + GEN_CONSUMERS;
    let ctp_process = txn_process + 1;
    let mut positions = vec![vec![0usize; GEN_PARTITIONS]; GEN_CONSUMERS as usize];
    let mut ctp_position = 0usize;
    let mut last_invoke = vec![0u64; GEN_PRODUCERS as usize];
    for c in 0..GEN_CONSUMERS {
        h.push(Op::assign_ok(consumer0 + c, 0, logs.iter().map(|l| l.name.clone()).collect()));
    }
    h.push(Op::subscribe_ok(ctp_process, 0, CTP_GROUP, &["bench-in"]));
    h.push(Op::rebalance_ok(ctp_process, 0, CTP_GROUP, 1, &[CTP_IN], &[]));
    let mut t_ms = 1u64;
    while h.ops.len() < ops {
        t_ms += rng.random_range(0..2);
        let roll = rng.random_range(0..100);
        if roll < 70 {
            // A keyed send by a producer; invocation times never go back
            // within a producer, so its offsets follow invocation order.
            let p = rng.random_range(0..GEN_PRODUCERS);
            let key = rng.random_range(0..GEN_KEYS);
            let part = (key as usize * 7 + 3) % GEN_PARTITIONS;
            let invoke = t_ms.saturating_sub(rng.random_range(0..3)).max(last_invoke[p as usize]);
            last_invoke[p as usize] = invoke;
            let v = value();
            let (op_type, offset) = match rng.random_range(0..100) {
                0 => (OpType::Fail, None),
                1 => {
                    let written = rng.random_bool(0.5);
                    written.then(|| logs[part].append(v, true));
                    (OpType::Info, None)
                }
                _ => (OpType::Ok, Some(logs[part].append(v, true))),
            };
            let m =
                MicroOp::Send { partition: logs[part].name.clone(), value: v, offset, key: Some(format!("k{key}")) };
            h.push(Op::micro(p, "send", t_ms, op_type, &[m]).invoked_at(invoke));
        } else if roll < 75 {
            // Input for the transform.
            let v = value();
            let o = ctp_in.append(v, true);
            h.push(Op::send_ok(GEN_PRODUCERS - 1, t_ms, CTP_IN, v, Some(o)).invoked_at(t_ms));
        } else if roll < 95 {
            let c = rng.random_range(0..GEN_CONSUMERS) as usize;
            let mut reads = Vec::new();
            for (p, log) in logs.iter().enumerate() {
                let (r, next) = log.read(positions[c][p], rng.random_range(1..=GEN_POLL_MAX));
                positions[c][p] = next;
                if !r.is_empty() {
                    reads.push((log.name.clone(), r));
                }
            }
            h.push(Op::poll_ok(consumer0 + c as u64, t_ms, reads));
        } else if roll < 98 {
            // A transaction over two or three partitions; some abort (their
            // records take offsets but stay invisible), some are unknown.
            let (op_type, visible) = match rng.random_range(0..20) {
                0 => (OpType::Fail, false),
                1 => (OpType::Info, true),
                _ => (OpType::Ok, true),
            };
            let n = rng.random_range(2..=3);
            let first = rng.random_range(0..GEN_PARTITIONS);
            let micro: Vec<MicroOp> = (0..n)
                .map(|k| {
                    let part = (first + k) % GEN_PARTITIONS;
                    let v = value();
                    let o = logs[part].append(v, visible);
                    MicroOp::send(&logs[part].name, v, (op_type == OpType::Ok).then_some(o))
                })
                .collect();
            h.push(Op::txn(txn_process, t_ms, op_type, &micro).invoked_at(t_ms.saturating_sub(1)));
        } else {
            // Consume-transform-produce: forward the next inputs, commit
            // the offsets with the transaction.
            let (reads, next) = ctp_in.read(ctp_position, 4);
            if reads.is_empty() {
                continue;
            }
            ctp_position = next;
            let mut micro = vec![MicroOp::poll(CTP_IN, &reads)];
            for &(_, v) in &reads {
                let o = ctp_out.append(v, true);
                micro.push(MicroOp::send(CTP_OUT, v, Some(o)));
            }
            let op = Op::txn(ctp_process, t_ms, OpType::Ok, &micro)
                .in_group(CTP_GROUP)
                .with_offsets(&[(CTP_IN, next as i64)]);
            h.push(op.invoked_at(t_ms.saturating_sub(1)));
        }
    }
    // Final reads: one fresh reader to the end of every partition.
    let final_reader = ctp_process + 1;
    let all: Vec<&GenLog> = logs.iter().chain([&ctp_in, &ctp_out]).collect();
    h.push(Op::assign_ok(final_reader, t_ms, all.iter().map(|l| l.name.clone()).collect()));
    for log in all {
        let mut at = 0;
        while at < log.records.len() {
            let (reads, next) = log.read(at, GEN_POLL_MAX * 64);
            at = next;
            if !reads.is_empty() {
                h.push(Op::poll_ok(final_reader, t_ms, vec![(log.name.clone(), reads)]));
            }
        }
    }
    h
}

/// The full catalogue's speed on a generated history.
#[derive(Debug, Clone, Serialize)]
pub struct CheckerBench {
    pub ops: u64,
    pub generate_ms: u64,
    /// Serialising to JSONL and parsing it back (what `ksim check` reads).
    pub jsonl_bytes: u64,
    pub parse_ms: u64,
    pub check_ms: u64,
    /// Operations checked per wall second (the whole catalogue).
    pub check_ops_per_s: f64,
    /// Anomalies found (0 on the clean generated history).
    pub anomalies: u64,
    /// Wall ms of each part, timed on its own: `index` (the shared
    /// version order) and every history checker by module name.
    pub parts_ms: BTreeMap<String, u64>,
}

/// Generates `ops` operations from `seed` and times the catalogue on them.
pub fn bench_checkers(ops: usize, seed: u64) -> CheckerBench {
    let t = Instant::now();
    let h = generate_history(ops, seed);
    let generate_ms = t.elapsed().as_millis() as u64;
    let text = h.to_jsonl();
    let t = Instant::now();
    let parsed = History::from_jsonl(&text).expect("the generated history parses");
    let parse_ms = t.elapsed().as_millis() as u64;
    assert_eq!(parsed.ops.len(), h.ops.len());
    drop(parsed);
    let t = Instant::now();
    let result = checker::check_all(&h);
    let check_s = t.elapsed().as_secs_f64();
    let mut parts_ms = BTreeMap::new();
    let t = Instant::now();
    let ix = checker::index::Index::build(&h);
    parts_ms.insert("index".to_string(), t.elapsed().as_millis() as u64);
    for (name, check) in checker::HISTORY_CHECKERS {
        let t = Instant::now();
        check(&h, &ix);
        parts_ms.insert(name.to_string(), t.elapsed().as_millis() as u64);
    }
    CheckerBench {
        ops: h.ops.len() as u64,
        generate_ms,
        jsonl_bytes: text.len() as u64,
        parse_ms,
        check_ms: (check_s * 1000.0) as u64,
        check_ops_per_s: h.ops.len() as f64 / check_s.max(1e-9),
        anomalies: result.total(),
        parts_ms,
    }
}

/// A scenario sweep's speed.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioBench {
    pub scenario: String,
    pub seeds: u64,
    pub threads: usize,
    pub errors: u64,
    /// Simulated ms, summed over seeds.
    pub sim_ms: u64,
    /// Each seed's own wall ms (simulation and checking), summed.
    pub seed_wall_ms: u64,
    /// Wall ms of the whole sweep.
    pub elapsed_ms: u64,
    /// Simulated time per wall time of one seed (sum over sum).
    pub sim_to_wall: f64,
    /// Seeds finished per wall minute with `threads` threads.
    pub seeds_per_min: f64,
}

/// Sweeps `seeds` of `scenario` on `threads` threads and times it.
pub fn bench_scenario(scenario: &Scenario, seeds: Range<u64>, threads: usize) -> ScenarioBench {
    let t = Instant::now();
    let results = sweep::run_seeds(scenario, seeds, threads, &|_, _| {});
    let elapsed_s = t.elapsed().as_secs_f64();
    let ok: Vec<_> = results.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    let sim_ms: u64 = ok.iter().map(|r| r.sim_ms).sum();
    let seed_wall_ms: u64 = ok.iter().map(|r| r.wall_ms).sum();
    ScenarioBench {
        scenario: scenario.name.clone(),
        seeds: results.len() as u64,
        threads,
        errors: (results.len() - ok.len()) as u64,
        sim_ms,
        seed_wall_ms,
        elapsed_ms: (elapsed_s * 1000.0) as u64,
        sim_to_wall: sim_ms as f64 / (seed_wall_ms as f64).max(1.0),
        seeds_per_min: results.len() as f64 * 60.0 / elapsed_s.max(1e-9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_history_is_seeded_sized_and_clean() {
        let a = generate_history(5_000, 7);
        assert_eq!(a, generate_history(5_000, 7));
        assert_ne!(a, generate_history(5_000, 8));
        assert!(a.ops.len() >= 5_000);
        for f in ["send", "poll", "txn", "assign", "subscribe", "rebalance"] {
            assert!(a.ops.iter().any(|op| op.f == f), "no {f} op");
        }
        assert!(a.ops.iter().any(|op| op.f == "txn" && op.op_type == OpType::Fail));
        let r = checker::check_all(&a);
        assert_eq!(r.total(), 0, "{:?}", r.anomalies.iter().take(5).collect::<Vec<_>>());
    }

    #[test]
    fn checker_bench_reports_the_ops_it_checked() {
        let b = bench_checkers(2_000, 1);
        assert!(b.ops >= 2_000 && b.check_ops_per_s > 0.0 && b.jsonl_bytes > 0);
        assert_eq!(b.anomalies, 0);
    }
}
