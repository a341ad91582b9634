//! `ksim`: run scenarios over seeds, replay one seed, check a stored
//! history (DESIGN.md, "CLI contract").
//!
//! Exit codes: 0 every seed met the scenario's expectation (for `check`: no
//! anomaly); 1 at least one did not (its seed and a replay command are
//! printed); 2 bad usage, a bad scenario file or an unreadable history.
//!
//! Environment: `RUST_LOG` is read by the simulation's tracing filter.
//!
//! Progress: when stderr is a terminal, `run` draws a progress bar there
//! (seeds done, unmet, ETA); otherwise (CI) the per-seed lines on stdout are
//! the only progress.

mod bench_cmd;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ksim_sim::checker::{self, Anomaly};
use ksim_sim::history::History;
use ksim_sim::report::{SeedResult, SweepSummary};
use ksim_sim::observations::{self, Observed};
use ksim_sim::report_files::{self, error_json_line, replay_command, Keep, SweepInfo};
use ksim_sim::scenario::Scenario;
use ksim_sim::shrink::{self, ShrinkOptions};
use ksim_sim::sweep::Shard;
use ksim_sim::{run, seed_report, sweep};
use std::io::IsTerminal;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

/// Anomaly details printed per key in text mode; JSON and `--out` keep all.
const DETAILS_SHOWN_PER_KEY_MAX: usize = 20;
/// Seeds swept when `--seeds` is not given.
const DEFAULT_SEEDS: &str = "0..20";

#[derive(Parser)]
#[command(name = "ksim", version, about = "Kafka-compatible cluster in a deterministic simulation, with fault injection and history checkers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Sweep a scenario over seeds.
    Run {
        scenario: PathBuf,
        /// Half-open seed range `A..B` (or one seed `N`).
        #[arg(long, default_value = DEFAULT_SEEDS, value_parser = parse_seeds)]
        seeds: Range<u64>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write `results.jsonl`, `summary.md`, `junit.xml` and a report
        /// directory `seed-N/` per kept seed (see `--keep`) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Which seeds get a `seed-N/` directory under `--out`: `unmet`,
        /// `anomalous` (unmet ones and any showing an anomaly), `all` or
        /// `none`.
        #[arg(long, default_value = "anomalous", value_parser = Keep::from_str)]
        keep: Keep,
        /// OS threads (one simulation each); default: the machine's cores.
        #[arg(long)]
        threads: Option<usize>,
        /// Run only shard K of N (1-based): the seeds whose position in the
        /// range is K-1 modulo N, so a CI matrix can split one sweep.
        #[arg(long, value_name = "K/N")]
        shard: Option<Shard>,
        /// Rerun a sample of seeds (the first 3 and unmet ones, at most 5)
        /// and fail if any trace hash differs.
        #[arg(long)]
        check_determinism: bool,
    },
    /// Rerun one seed, with anomaly details.
    Replay {
        scenario: PathBuf,
        #[arg(long)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write the seed's report directory (`seed-N/`, as `run --out`
        /// writes) here, whatever its verdict.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Minimal failing schedule of one seed, written as a scenario file.
    ///
    /// Runs the seed and picks the anomaly that makes it fail (one the
    /// scenario forbids, or for a `violation` scenario one it expects). The
    /// seed's schedule is made explicit (a `random` section becomes the
    /// `[[faults.at]]` entries it drew), then faults are dropped, shortened
    /// and moved earlier and the workload reduced, keeping each change only
    /// while the same anomaly shows on the same seed. Progress goes to
    /// stderr. Exit 0 when the file is written, 1 when the seed does not
    /// fail, 2 on bad usage or files.
    Shrink {
        scenario: PathBuf,
        #[arg(long)]
        seed: u64,
        /// Where to write the minimal scenario
        /// [default: scenarios/regressions/<name>-seed-<N>.toml].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Bound on simulation runs (the original and the explicit one included).
        #[arg(long, default_value_t = shrink::DEFAULT_MAX_RUNS)]
        max_runs: usize,
        /// Keep this anomaly key instead of the one picked from the run.
        #[arg(long)]
        anomaly: Option<String>,
    },
    /// Run the checkers on a stored history; exit 1 on anomalies. The
    /// broker-side checkers run too when observations are at hand: an
    /// `observations.jsonl` beside the history, or `--observations FILE`.
    Check {
        history: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Broker observations (`observations.jsonl` of a seed directory);
        /// default: the one beside the history, if any.
        #[arg(long)]
        observations: Option<PathBuf>,
    },
    /// Measure simulation speed and checker throughput.
    Bench {
        /// The scenario to time.
        #[arg(long, default_value = bench_cmd::DEFAULT_SCENARIO)]
        scenario: PathBuf,
        /// Seeds to sweep, `A..B`.
        #[arg(long, default_value = bench_cmd::DEFAULT_SEEDS, value_parser = parse_seeds)]
        seeds: Range<u64>,
        /// OS threads for the sweep; default: the machine's cores.
        #[arg(long)]
        threads: Option<usize>,
        /// Operations in the generated history the checkers judge.
        #[arg(long, default_value_t = bench_cmd::DEFAULT_OPS)]
        ops: usize,
        /// Seed of the generated history.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Real-mode broker on TCP (not implemented yet).
    Serve {
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

/// `A..B` (half-open, non-empty) or `N` (just seed N).
fn parse_seeds(s: &str) -> Result<Range<u64>, String> {
    let bad = || format!("`{s}` is not a seed range: expected A..B with A < B, or N");
    let range = match s.split_once("..") {
        Some((a, b)) => a.trim().parse().map_err(|_| bad())?..b.trim().parse().map_err(|_| bad())?,
        None => {
            let n: u64 = s.trim().parse().map_err(|_| bad())?;
            n..n.checked_add(1).ok_or_else(bad)?
        }
    };
    if range.is_empty() {
        return Err(bad());
    }
    Ok(range)
}

/// Logs go to stderr, filtered by `RUST_LOG` (off by default). Inside a
/// simulation `SystemTime` is the simulated clock, so timestamps are
/// simulated time.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Run { scenario, seeds, format, out, keep, threads, shard, check_determinism } => {
            let Some(sc) = load(&scenario) else { return ExitCode::from(2) };
            let threads = threads.unwrap_or_else(sweep::default_threads).max(1);
            let seed_list = match shard {
                Some(shard) => shard.seeds(seeds.clone()),
                None => seeds.clone().collect(),
            };
            let progress = Progress::new(seed_list.len());
            let on_done = |seed: u64, r: &anyhow::Result<SeedResult>| {
                let line = (format == Format::Text).then(|| seed_text_line(seed, r));
                progress.seed_done(line, r.as_ref().is_ok_and(|res| res.met));
            };
            // Without --out nothing is written: keep no seed's artifacts.
            let keep = if out.is_some() { keep } else { Keep::None };
            let results = sweep::run_seed_list_keeping(&sc, &seed_list, threads, &on_done, keep);
            progress.finish();
            let mut summary = summarise(&sc, &results);
            summary.shard = shard.map(|s| s.to_string());
            if check_determinism {
                let passed = check_determinism_of(&sc, &results, threads, format);
                summary.record_determinism(passed);
            }
            if let Some(dir) = out {
                let path = scenario.display().to_string();
                let info = SweepInfo { scenario: &sc, scenario_path: &path, seeds, shard, summary: &summary, keep };
                if let Err(e) = report_files::write_all(&dir, &info, &results) {
                    eprintln!("ksim: writing {}: {e}", dir.display());
                    return ExitCode::from(2);
                }
            }
            finish(&scenario, &results, &summary, format, false)
        }
        Command::Replay { scenario, seed, format, out } => {
            let Some(sc) = load(&scenario) else { return ExitCode::from(2) };
            let r = run::run_seed(&sc, seed);
            if let (Some(dir), Ok(res)) = (&out, &r) {
                let dir = dir.join(report_files::seed_dir(seed));
                let path = scenario.display().to_string();
                if let Err(e) = seed_report::write_seed_dir(&dir, &sc, &path, res) {
                    eprintln!("ksim: writing {}: {e}", dir.display());
                    return ExitCode::from(2);
                }
            }
            if format == Format::Text {
                println!("{}", seed_text_line(seed, &r));
            }
            let results = [(seed, r)];
            let summary = summarise(&sc, &results);
            finish(&scenario, &results, &summary, format, true)
        }
        Command::Check { history, format, observations } => check(&history, observations.as_deref(), format),
        Command::Bench { scenario, seeds, threads, ops, seed, format } => bench_cmd::run(bench_cmd::BenchArgs {
            scenario: &scenario,
            seeds,
            threads: threads.unwrap_or_else(sweep::default_threads).max(1),
            ops,
            seed,
            json: format == Format::Json,
        }),
        Command::Shrink { scenario, seed, out, max_runs, anomaly } => {
            let Some(sc) = load(&scenario) else { return ExitCode::from(2) };
            shrink_seed(&scenario, &sc, seed, out, ShrinkOptions { max_runs, anomaly })
        }
        Command::Serve { .. } => not_implemented("serve"),
    }
}

fn not_implemented(what: &str) -> ExitCode {
    eprintln!("ksim {what}: not implemented yet");
    ExitCode::from(2)
}

/// Loads a scenario or prints its error (file:line: field: message).
fn load(path: &Path) -> Option<Scenario> {
    match Scenario::load(path) {
        Ok(sc) => Some(sc),
        Err(e) => {
            eprintln!("ksim: bad scenario: {e}");
            None
        }
    }
}

fn seed_text_line(seed: u64, r: &anyhow::Result<SeedResult>) -> String {
    match r {
        Ok(res) => res.to_text_line(),
        Err(e) => format!("seed {seed}: error: {e:#}"),
    }
}

/// Sweep progress. On a terminal: an indicatif bar on stderr (seeds done
/// of total, unmet so far, ETA), with the per-seed lines printed above it.
/// Elsewhere: just the per-seed lines, as they come.
struct Progress {
    /// Present only when stderr is a terminal.
    bar: Option<ProgressBar>,
    /// Seeds finished that did not meet the expectation (or errored).
    unmet: std::sync::atomic::AtomicU64,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            let style = ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} seeds, {msg}, ETA {eta}")
                .expect("a valid progress template")
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message("0 unmet");
            bar
        });
        Progress { bar, unmet: std::sync::atomic::AtomicU64::new(0) }
    }

    /// Called from the sweep's worker threads as each seed finishes.
    fn seed_done(&self, line: Option<String>, met: bool) {
        use std::sync::atomic::Ordering;
        let unmet = if met { self.unmet.load(Ordering::SeqCst) } else { self.unmet.fetch_add(1, Ordering::SeqCst) + 1 };
        match &self.bar {
            Some(bar) => {
                if let Some(line) = line {
                    bar.suspend(|| println!("{line}"));
                }
                bar.set_message(format!("{unmet} unmet"));
                bar.inc(1);
            }
            None => {
                if let Some(line) = line {
                    println!("{line}");
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `--check-determinism`: reruns [`sweep::determinism_sample`] and compares
/// trace hashes (or errors) with the sweep's. Reports mismatches (stdout in
/// text mode, stderr in JSON mode, which keeps stdout JSON) and returns
/// whether all matched.
fn check_determinism_of(
    sc: &Scenario,
    results: &[(u64, anyhow::Result<SeedResult>)],
    threads: usize,
    format: Format,
) -> bool {
    let swept: Vec<(u64, bool)> = results.iter().map(|(s, r)| (*s, r.as_ref().is_ok_and(|res| res.met))).collect();
    let sample = sweep::determinism_sample(&swept);
    let report = |line: String| match format {
        Format::Text => println!("{line}"),
        Format::Json => eprintln!("{line}"),
    };
    let listed: Vec<String> = sample.iter().map(u64::to_string).collect();
    report(format!("determinism: rerunning seeds {}", listed.join(", ")));
    let reruns = sweep::run_seed_list(sc, &sample, threads, &|_, _| {});
    let mut passed = true;
    for (seed, again) in &reruns {
        let first = results.iter().find(|(s, _)| s == seed).map(|(_, r)| sweep::replay_fingerprint(r));
        let second = sweep::replay_fingerprint(again);
        if first.as_deref() != Some(second.as_str()) {
            passed = false;
            report(format!(
                "determinism FAILED: seed {seed}: first run {}, rerun {second}",
                first.unwrap_or_default()
            ));
        }
    }
    report(format!("determinism: {}", if passed { "passed" } else { "FAILED" }));
    passed
}

/// The summary of a sweep's results, errored seeds counted.
fn summarise(sc: &Scenario, results: &[(u64, anyhow::Result<SeedResult>)]) -> SweepSummary {
    let ok: Vec<SeedResult> = results.iter().filter_map(|(_, r)| r.as_ref().ok().cloned()).collect();
    let errors = results.len() - ok.len();
    SweepSummary::summarise(sc, &ok, errors)
}

/// Prints what follows the per-seed lines and picks the exit code.
fn finish(
    path: &Path,
    results: &[(u64, anyhow::Result<SeedResult>)],
    summary: &SweepSummary,
    format: Format,
    details: bool,
) -> ExitCode {
    let ok: Vec<&SeedResult> = results.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    match format {
        Format::Json => {
            for (seed, r) in results {
                match r {
                    Ok(res) => println!("{}", res.to_json_line()),
                    Err(e) => println!("{}", error_json_line(*seed, e)),
                }
            }
            println!("{}", summary.to_json_line());
        }
        Format::Text => {
            if details {
                for res in &ok {
                    print_details(&res.details);
                }
            }
            for (seed, r) in results {
                if !r.as_ref().is_ok_and(|res| res.met) {
                    println!("{}", replay_command(&path.display().to_string(), *seed));
                }
            }
            println!("{}", summary.to_text_line());
        }
    }
    if summary.met() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Anomaly details, at most [`DETAILS_SHOWN_PER_KEY_MAX`] per key.
fn print_details(anomalies: &[Anomaly]) {
    for key in checker::IMPLEMENTED {
        let of_key: Vec<&Anomaly> = anomalies.iter().filter(|a| a.key == *key).collect();
        for a in of_key.iter().take(DETAILS_SHOWN_PER_KEY_MAX) {
            println!("  {} {}: {}", a.key, a.partition, a.detail);
        }
        if of_key.len() > DETAILS_SHOWN_PER_KEY_MAX {
            println!("  … {} more {key}", of_key.len() - DETAILS_SHOWN_PER_KEY_MAX);
        }
    }
}

/// `ksim shrink`: progress lines on stderr, the outcome on stdout.
fn shrink_seed(path: &Path, sc: &Scenario, seed: u64, out: Option<PathBuf>, options: ShrinkOptions) -> ExitCode {
    if let Some(k) = &options.anomaly {
        if !checker::CATALOGUE.contains(&k.as_str()) {
            eprintln!("ksim shrink: unknown anomaly `{k}`, expected one of: {}", checker::CATALOGUE.join(", "));
            return ExitCode::from(2);
        }
    }
    if options.max_runs < shrink::MAX_RUNS_MIN {
        eprintln!("ksim shrink: --max-runs must be at least {} (the original run and the explicit one)", shrink::MAX_RUNS_MIN);
        return ExitCode::from(2);
    }
    let mut progress = |p: &shrink::Progress| eprintln!("shrink: {}", p.to_text_line());
    let shrunk = match shrink::shrink(sc, seed, &options, &mut progress) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ksim shrink: {e:#}");
            return ExitCode::from(1);
        }
    };
    let out = out.unwrap_or_else(|| shrink::default_out_path(sc, seed));
    let out_str = out.display().to_string();
    let written = shrunk.file_text(&path.display().to_string(), &out_str).and_then(|text| {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&out, text)?;
        Ok(())
    });
    if let Err(e) = written {
        eprintln!("ksim shrink: writing {out_str}: {e:#}");
        return ExitCode::from(2);
    }
    println!(
        "{}: seed {seed}: {} kept with {} of {} faults, duration_ms {} -> {}, in {} runs{}",
        sc.name,
        shrunk.anomaly,
        shrunk.scenario.faults.at.len(),
        shrunk.explicit_faults,
        sc.run.duration_ms,
        shrunk.scenario.run.duration_ms,
        shrunk.runs,
        if shrunk.budget_exhausted { " (run budget spent)" } else { "" }
    );
    if !shrunk.explicit_same_trace {
        println!("note: the explicit schedule ran with a different trace hash than the original (the anomaly still showed)");
    }
    println!("{}", shrunk.result.to_text_line());
    println!("wrote {out_str}");
    println!("{}", replay_command(&out_str, seed));
    ExitCode::SUCCESS
}

/// The observations file `ksim check` reads: `--observations`, else an
/// `observations.jsonl` beside the history (what `--out` writes), else none.
fn observations_path(history: &Path, given: Option<&Path>) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(|| {
        let beside = history.with_file_name(OBSERVATIONS_FILE);
        beside.is_file().then_some(beside)
    })
}

/// The name of a seed directory's observations file.
const OBSERVATIONS_FILE: &str = "observations.jsonl";

/// Reads a file and parses it, or prints `ksim: PATH: error`.
fn read_parsed<T>(path: &Path, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
    match std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| parse(&t)) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("ksim: {}: {e}", path.display());
            None
        }
    }
}

/// `ksim check HISTORY.jsonl [--observations FILE]`.
fn check(path: &Path, observations: Option<&Path>, format: Format) -> ExitCode {
    let Some(history) = read_parsed(path, History::from_jsonl) else { return ExitCode::from(2) };
    let obs_path = observations_path(path, observations);
    let obs: Vec<Observed> = match &obs_path {
        Some(p) => match read_parsed(p, observations::from_jsonl) {
            Some(o) => o,
            None => return ExitCode::from(2),
        },
        None => Vec::new(),
    };
    let result = checker::check_run(&history, &obs);
    let obs_name = obs_path.as_ref().map(|p| p.display().to_string());
    match format {
        Format::Json => {
            let obj = serde_json::json!({
                "history": path.display().to_string(),
                "ops": history.ops.len(),
                "observations": obs_name,
                "anomalies": result.counts,
                "details": result.anomalies,
            });
            println!("{obj}");
        }
        Format::Text => {
            let counts: Vec<String> = result.counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
            println!("{}: {} ops: {}", path.display(), history.ops.len(), counts.join(" "));
            match &obs_name {
                Some(name) => println!("broker-side checkers ran on {} observations from {name}", obs.len()),
                None => println!("no observations.jsonl beside the history: broker-side checkers counted 0"),
            }
            print_details(&result.anomalies);
        }
    }
    if result.total() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::parse_seeds;

    #[test]
    fn seed_ranges_are_half_open_and_non_empty() {
        assert_eq!(parse_seeds("0..20"), Ok(0..20));
        assert_eq!(parse_seeds("7"), Ok(7..8));
        for bad in ["5..5", "9..3", "a..b", "1..", "..4", "-1..2", ""] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
    }
}
