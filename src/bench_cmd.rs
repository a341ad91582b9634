//! `ksim bench`: (a) a scenario's simulated-to-wall time ratio and seeds per
//! minute over a seed range on every core, (b) the full checker
//! catalogue's throughput on a seeded generated history.

use ksim_sim::bench::{self, CheckerBench, ScenarioBench};
use ksim_sim::scenario::Scenario;
use std::ops::Range;
use std::path::Path;
use std::process::ExitCode;

/// The standard scenario `ksim bench` times.
pub const DEFAULT_SCENARIO: &str = "scenarios/fast/acks-all-leader-crash.toml";
/// Seeds swept when `--seeds` is not given.
pub const DEFAULT_SEEDS: &str = "0..8";
/// Operations in the generated history when `--ops` is not given.
pub const DEFAULT_OPS: usize = 1_000_000;

/// What to measure (the `bench` subcommand's flags).
pub struct BenchArgs<'a> {
    pub scenario: &'a Path,
    pub seeds: Range<u64>,
    pub threads: usize,
    pub ops: usize,
    pub seed: u64,
    pub json: bool,
}

fn scenario_line(s: &ScenarioBench) -> String {
    format!(
        "scenario {}: {} seeds on {} threads in {:.1} s: {:.1} simulated s per wall s per seed, {:.1} seeds/min{}",
        s.scenario,
        s.seeds,
        s.threads,
        s.elapsed_ms as f64 / 1000.0,
        s.sim_to_wall,
        s.seeds_per_min,
        if s.errors > 0 { format!(" ({} seeds errored)", s.errors) } else { String::new() },
    )
}

fn checker_line(c: &CheckerBench) -> String {
    let mut parts: Vec<(&String, &u64)> = c.parts_ms.iter().collect();
    parts.sort_by_key(|(name, ms)| (std::cmp::Reverse(**ms), name.as_str()));
    let slowest: Vec<String> = parts.iter().map(|(n, ms)| format!("{n} {ms} ms")).collect();
    format!(
        "checkers: {} ops checked by the full catalogue in {:.2} s: {:.0} ops/s ({} anomalies; generated in {:.2} s; {:.1} MB of JSONL parsed in {:.2} s)\n  each part, slowest first: {}",
        c.ops,
        c.check_ms as f64 / 1000.0,
        c.check_ops_per_s,
        c.anomalies,
        c.generate_ms as f64 / 1000.0,
        c.jsonl_bytes as f64 / 1e6,
        c.parse_ms as f64 / 1000.0,
        slowest.join(", "),
    )
}

pub fn run(args: BenchArgs<'_>) -> ExitCode {
    let sc = match Scenario::load(args.scenario) {
        Ok(sc) => sc,
        Err(e) => {
            eprintln!("ksim: bad scenario: {e}");
            return ExitCode::from(2);
        }
    };
    let s = bench::bench_scenario(&sc, args.seeds, args.threads);
    if !args.json {
        println!("{}", scenario_line(&s));
    }
    let c = bench::bench_checkers(args.ops, args.seed);
    if args.json {
        println!("{}", serde_json::json!({"scenario": s, "checkers": c}));
    } else {
        println!("{}", checker_line(&c));
    }
    if s.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
