//! `ksim shrink`: the smallest schedule and workload on which one seed still
//! shows the same anomaly, written back as a scenario file.
//!
//! # What "failing" means
//!
//! A seed fails when it shows an anomaly that makes it miss the scenario's
//! `[expect]` (a forbidden one under `pass`, an unlisted one under
//! `violation`), or, for a known-unsafe `violation` scenario, one of its
//! expected anomalies. One anomaly key is chosen at the start
//! ([`failing_anomaly`], or `--anomaly`) and every candidate must show that
//! same key on the same seed.
//!
//! # Method
//!
//! 1. The schedule is made explicit ([`make_explicit`]): a `[faults] random`
//!    section becomes the `[[faults.at]]` entries that seed drew (through
//!    [`faults::schedule`], so nothing is drawn twice), with their targets
//!    named. The run of the explicit scenario is the original run (the
//!    schedule has its own rng stream, see [`faults`]); its trace hash is
//!    compared and reported.
//! 2. Greedy passes, repeated until a round changes nothing or the run
//!    budget is spent, each candidate kept only when the anomaly still
//!    shows (our own passes, not proptest's `ValueTree`: a value tree
//!    shrinks a value it generated itself, while here the starting point is
//!    a given schedule, and the passes below encode which simplifications
//!    are worth a whole simulation run):
//!    - drop faults by delta debugging (Zeller's ddmin over the list: the
//!      whole list, then halves, quarters, … down to single faults);
//!    - cut the run: `heal_ms` down to where the last fault ends, and the
//!      time after heal;
//!    - shorten each fault's `duration_ms` and move each fault earlier
//!      (halving steps, [`shrink_number`]), then cut the run again;
//!    - reduce the workload: drop consumer groups, then producers beyond
//!      one, fewer processes per entry, a lower `rate_per_s`.
//!
//! The budget (`--max-runs`) counts every simulation run, the original and
//! the explicit one included. Candidates that do not validate as scenarios
//! are skipped without a run.

use crate::faults::{self, FaultEvent};
use crate::report::{SeedResult, Verdict};
use crate::report_files::replay_command;
use crate::run;
use crate::scenario::Scenario;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Default bound on simulation runs (`--max-runs`).
pub const DEFAULT_MAX_RUNS: usize = 120;
/// The smallest `--max-runs`: the original run and the explicit one.
pub const MAX_RUNS_MIN: usize = 2;
/// Where the minimal case goes without `--out`, relative to the working directory.
pub const REGRESSIONS_DIR: &str = "scenarios/regressions";
/// Fault durations are not shortened below this.
pub const FAULT_DURATION_MS_MIN: u64 = 100;
/// Time steps (moving faults, cutting the run) stop at this granularity.
pub const TIME_STEP_MS_MIN: u64 = 250;
/// The run keeps at least this long after heal (producers stop at
/// `duration_ms`; acknowledgements of the last sends need some time).
pub const AFTER_HEAL_MS_MIN: u64 = 1_000;
/// `rate_per_s` is not lowered below this.
pub const RATE_PER_S_MIN: f64 = 1.0;

/// What `shrink` is asked for.
#[derive(Debug, Clone)]
pub struct ShrinkOptions {
    /// Bound on simulation runs, the first two included.
    pub max_runs: usize,
    /// The anomaly to keep; `None`: [`failing_anomaly`] of the seed's run.
    pub anomaly: Option<String>,
}

impl Default for ShrinkOptions {
    fn default() -> Self {
        ShrinkOptions { max_runs: DEFAULT_MAX_RUNS, anomaly: None }
    }
}

/// One step of the search, for progress output.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Simulation runs so far.
    pub runs: usize,
    pub max_runs: usize,
    /// Faults in the current (smallest failing) scenario.
    pub faults: usize,
    /// What the last run tried (`drop 2 of 7 faults`, …).
    pub step: String,
    /// Whether the last run still showed the anomaly (its candidate was kept).
    pub kept: bool,
}

impl Progress {
    /// `run 12/120, faults left 3: drop fault 2 of 4: kept`.
    pub fn to_text_line(&self) -> String {
        format!(
            "run {}/{}, faults left {}: {}: {}",
            self.runs,
            self.max_runs,
            self.faults,
            self.step,
            if self.kept { "kept" } else { "anomaly gone" }
        )
    }
}

/// The outcome of [`shrink`].
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The scenario as given.
    pub origin: Scenario,
    pub seed: u64,
    /// The anomaly key every kept candidate showed.
    pub anomaly: String,
    /// Its count in the original run.
    pub origin_count: u64,
    /// Faults in the explicit schedule, before shrinking.
    pub explicit_faults: usize,
    /// Whether the explicit scenario's run had the original trace hash.
    pub explicit_same_trace: bool,
    /// The minimal scenario (explicit schedule, no `random` section).
    pub scenario: Scenario,
    /// The minimal scenario's run.
    pub result: SeedResult,
    /// Simulation runs used.
    pub runs: usize,
    /// Whether the budget ran out before the passes settled.
    pub budget_exhausted: bool,
}

/// The anomaly that makes `result` a failure of `scenario`: the first key
/// (in the checker's order) that makes the seed miss `[expect]`, else, for a
/// `violation` scenario, the first of its expected anomalies that shows.
pub fn failing_anomaly(scenario: &Scenario, result: &SeedResult) -> Option<String> {
    let expect = &scenario.expect;
    let shows = |k: &str| result.anomalies.get(k).is_some_and(|&n| n > 0);
    let listed = |k: &str| expect.anomalies.iter().chain(&expect.allow).any(|a| a == k);
    let unmet = result.anomalies.keys().find(|k| {
        shows(k)
            && match expect.verdict {
                Verdict::Pass => !expect.allow.contains(k),
                Verdict::Violation => !listed(k),
            }
    });
    let expected = || match expect.verdict {
        Verdict::Violation => expect.anomalies.iter().find(|k| shows(k)),
        Verdict::Pass => None,
    };
    unmet.or_else(expected).cloned()
}

/// `scenario` with the schedule `seed` draws written out: no `random`
/// section, every fault a fixed `[[faults.at]]` entry in time order.
/// Replays the same run as `scenario` on `seed`.
pub fn make_explicit(scenario: &Scenario, seed: u64) -> Scenario {
    let events = faults::schedule(scenario, &mut faults::schedule_rng(seed));
    let mut explicit = scenario.clone();
    explicit.faults.random = None;
    explicit.faults.at = events.iter().map(FaultEvent::to_fault_at).collect();
    explicit
}

/// Shrinks `seed` of `scenario`. `progress` is called after every run.
pub fn shrink(
    scenario: &Scenario,
    seed: u64,
    options: &ShrinkOptions,
    progress: &mut dyn FnMut(&Progress),
) -> anyhow::Result<Shrunk> {
    anyhow::ensure!(
        options.max_runs >= MAX_RUNS_MIN,
        "--max-runs must be at least {MAX_RUNS_MIN} (the original run and the explicit one)"
    );
    let explicit = make_explicit(scenario, seed);
    let explicit_faults = explicit.faults.at.len();
    let original = run::run_seed(scenario, seed)?;
    let anomaly = match &options.anomaly {
        Some(k) => {
            anyhow::ensure!(
                original.anomalies.get(k).is_some_and(|&n| n > 0),
                "seed {seed} does not show `{k}` (it shows: {})",
                shown(&original)
            );
            k.clone()
        }
        None => failing_anomaly(scenario, &original).ok_or_else(|| {
            anyhow::anyhow!(
                "seed {seed} does not fail `{}` (expected {}; it shows: {}): nothing to shrink",
                scenario.name,
                scenario.expect.verdict,
                shown(&original)
            )
        })?,
    };
    let origin_count = original.anomalies[&anomaly];
    progress(&Progress {
        runs: 1,
        max_runs: options.max_runs,
        faults: explicit_faults,
        step: format!("original run shows {anomaly}={origin_count}"),
        kept: true,
    });

    let explicit_result = run::run_seed(&explicit, seed)?;
    let explicit_same_trace = explicit_result.trace_hash == original.trace_hash;
    let still = explicit_result.anomalies.get(&anomaly).is_some_and(|&n| n > 0);
    progress(&Progress {
        runs: 2,
        max_runs: options.max_runs,
        faults: explicit_faults,
        step: format!(
            "explicit schedule ({explicit_faults} faults), trace {}",
            if explicit_same_trace { "identical" } else { "DIFFERENT" }
        ),
        kept: still,
    });
    anyhow::ensure!(
        still,
        "the explicit schedule of seed {seed} does not show {anomaly} (trace {}): a fault drawn at run time is not \
         captured by the schedule",
        if explicit_same_trace { "identical" } else { "different" }
    );

    let mut search = Search {
        current: explicit,
        best: explicit_result,
        runs: 2,
        max_runs: options.max_runs,
        fails: |sc: &Scenario| {
            run::run_seed(sc, seed).ok().filter(|r| r.anomalies.get(&anomaly).is_some_and(|&n| n > 0))
        },
        progress,
        tried: BTreeSet::new(),
    };
    search.minimise();
    // The run sorts faults by time, ties in list order: so does the file.
    search.current.faults.at.sort_by_key(|f| f.at_ms);
    let budget_exhausted = search.runs >= search.max_runs;
    Ok(Shrunk {
        origin: scenario.clone(),
        seed,
        origin_count,
        explicit_faults,
        explicit_same_trace,
        scenario: search.current,
        result: search.best,
        runs: search.runs,
        budget_exhausted,
        anomaly,
    })
}

/// `lost-write=3 unseen=1`, or `no anomalies`.
fn shown(r: &SeedResult) -> String {
    let found = r.anomalies_found();
    if found.is_empty() {
        "no anomalies".into()
    } else {
        found
    }
}

impl Shrunk {
    /// The minimal scenario as it is written: renamed after its origin and
    /// seed, described, with the header comment (origin, seed, anomaly,
    /// how much was shrunk, replay command for `out_path`).
    pub fn file_text(&self, origin_path: &str, out_path: &str) -> anyhow::Result<String> {
        let mut sc = self.scenario.clone();
        sc.name = format!("{}-seed-{}", self.origin.name, self.seed);
        sc.description = format!(
            "Minimal case of `{}` seed {} showing {} ({} of {} faults kept), found by `ksim shrink`.",
            self.origin.name,
            self.seed,
            self.anomaly,
            sc.faults.at.len(),
            self.explicit_faults
        );
        let body = sc.to_toml()?;
        let count = self.result.anomalies.get(&self.anomaly).copied().unwrap_or(0);
        let header = [
            "# Minimal failing case written by `ksim shrink`.".to_string(),
            format!("# origin:  {origin_path} (scenario `{}`), seed {}", self.origin.name, self.seed),
            format!("# anomaly: {} ({} in the original run, {count} here)", self.anomaly, self.origin_count),
            format!(
                "# shrunk:  {} faults -> {}, duration_ms {} -> {}, in {} runs{}",
                self.explicit_faults,
                sc.faults.at.len(),
                self.origin.run.duration_ms,
                sc.run.duration_ms,
                self.runs,
                if self.budget_exhausted { " (run budget spent: may shrink further)" } else { "" }
            ),
            format!("# replay:  {}", replay_command(out_path, self.seed)),
        ];
        Ok(format!("{}\n\n{body}", header.join("\n")))
    }
}

/// `scenarios/regressions/<scenario-name>-seed-<N>.toml`.
pub fn default_out_path(scenario: &Scenario, seed: u64) -> PathBuf {
    PathBuf::from(REGRESSIONS_DIR).join(format!("{}-seed-{seed}.toml", scenario.name))
}

/// The greedy search. `fails` runs a candidate and returns its result when
/// the anomaly still shows; it is a parameter so the passes can be tested
/// without simulations.
pub struct Search<'p, F, R> {
    /// The smallest failing scenario so far.
    pub current: Scenario,
    /// Its result.
    pub best: R,
    pub runs: usize,
    pub max_runs: usize,
    pub fails: F,
    pub progress: &'p mut dyn FnMut(&Progress),
    /// Every candidate tried (as TOML), kept or not.
    pub tried: BTreeSet<String>,
}

impl<F: FnMut(&Scenario) -> Option<R>, R> Search<'_, F, R> {
    /// Runs the passes until a round keeps nothing or the budget is spent.
    pub fn minimise(&mut self) {
        loop {
            let before = self.runs;
            let mut changed = false;
            changed |= self.drop_faults();
            changed |= self.cut_run();
            changed |= self.shorten_faults();
            changed |= self.move_faults_earlier();
            if changed {
                self.cut_run();
            }
            changed |= self.reduce_workload();
            if !changed || self.runs >= self.max_runs || self.runs == before {
                return;
            }
        }
    }

    /// Runs `candidate` (if the budget allows and it is a valid scenario);
    /// keeps it when the anomaly still shows.
    fn try_candidate(&mut self, candidate: Scenario, step: String) -> bool {
        if self.runs >= self.max_runs || candidate == self.current {
            return false;
        }
        // Runs are deterministic: a candidate tried once needs no second run.
        let Ok(text) = candidate.to_toml() else { return false };
        if !self.tried.insert(text.clone()) || Scenario::from_str(&text, "candidate").is_err() {
            return false;
        }
        self.runs += 1;
        let result = (self.fails)(&candidate);
        let kept = result.is_some();
        if let Some(r) = result {
            self.current = candidate;
            self.best = r;
        }
        (self.progress)(&Progress {
            runs: self.runs,
            max_runs: self.max_runs,
            faults: self.current.faults.at.len(),
            step,
            kept,
        });
        kept
    }

    /// Delta debugging over the fault list: try without all faults, then
    /// without each of n chunks (n = 2, 4, … up to one fault per chunk);
    /// after a removal, continue with n - 1 chunks of what is left.
    fn drop_faults(&mut self) -> bool {
        let mut changed = false;
        let total = self.current.faults.at.len();
        if total == 0 {
            return false;
        }
        let mut none = self.current.clone();
        none.faults.at.clear();
        if self.try_candidate(none, format!("drop all {total} faults")) {
            return true;
        }
        let mut chunks = 2usize;
        while self.current.faults.at.len() >= 2 && self.runs < self.max_runs {
            let len = self.current.faults.at.len();
            chunks = chunks.min(len);
            let size = len.div_ceil(chunks);
            let mut removed = false;
            for start in (0..len).step_by(size) {
                let end = (start + size).min(len);
                let mut c = self.current.clone();
                c.faults.at.drain(start..end);
                let step = if end - start == 1 {
                    format!("drop fault {} of {len}", start + 1)
                } else {
                    format!("drop faults {}..{} of {len}", start + 1, end)
                };
                if self.try_candidate(c, step) {
                    removed = true;
                    changed = true;
                    chunks = (chunks - 1).max(2);
                    break;
                }
            }
            if !removed {
                if chunks >= len {
                    break;
                }
                chunks = (chunks * 2).min(len);
            }
        }
        changed
    }

    /// Cuts the run: `heal_ms` down to the end of the last fault (faults
    /// without a duration last until heal, so they only need to start
    /// before it), then the time between heal and the end of the workload.
    fn cut_run(&mut self) -> bool {
        let mut changed = false;
        let faults_end = self
            .current
            .faults
            .at
            .iter()
            .map(|f| f.at_ms + f.duration_ms.unwrap_or(0) + 1)
            .max()
            .unwrap_or(0)
            .max(1);
        let heal = self.current.run.heal_ms;
        changed |= shrink_number(heal, faults_end, TIME_STEP_MS_MIN, |v| {
            let mut c = self.current.clone();
            let tail = c.run.duration_ms - c.run.heal_ms;
            c.run.heal_ms = v;
            c.run.duration_ms = v + tail;
            self.try_candidate(c, format!("heal_ms {} -> {v}", self.current.run.heal_ms))
        });
        let tail = self.current.run.duration_ms - self.current.run.heal_ms;
        changed |= shrink_number(tail, AFTER_HEAL_MS_MIN.min(tail), TIME_STEP_MS_MIN, |v| {
            let mut c = self.current.clone();
            c.run.duration_ms = c.run.heal_ms + v;
            let step = format!("duration_ms {} -> {}", self.current.run.duration_ms, c.run.duration_ms);
            self.try_candidate(c, step)
        });
        changed
    }

    /// Shorter `duration_ms` for each fault (an open-ended one first gets
    /// the duration it has, until heal).
    fn shorten_faults(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.current.faults.at.len() {
            let f = &self.current.faults.at[i];
            let d = f.duration_ms.unwrap_or(self.current.run.heal_ms.saturating_sub(f.at_ms));
            changed |= shrink_number(d, FAULT_DURATION_MS_MIN.min(d), TIME_STEP_MS_MIN, |v| {
                let mut c = self.current.clone();
                c.faults.at[i].duration_ms = Some(v);
                self.try_candidate(c, format!("fault {} duration_ms {d} -> {v}", i + 1))
            });
        }
        changed
    }

    /// Each fault earlier. The list is not re-sorted during the search
    /// (the run sorts it, stably), so index `i` keeps naming one fault.
    fn move_faults_earlier(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.current.faults.at.len() {
            let at = self.current.faults.at[i].at_ms;
            changed |= shrink_number(at, 0, TIME_STEP_MS_MIN, |v| {
                let mut c = self.current.clone();
                c.faults.at[i].at_ms = v;
                self.try_candidate(c, format!("fault {} at_ms {at} -> {v}", i + 1))
            });
        }
        changed
    }

    /// Fewer clients and a lower rate.
    fn reduce_workload(&mut self) -> bool {
        let mut changed = false;
        if !self.current.consumers.is_empty() {
            let mut c = self.current.clone();
            c.consumers.clear();
            changed |= self.try_candidate(c, "drop consumers".into());
        }
        let mut i = 0;
        while i < self.current.consumers.len() {
            let count = self.current.consumers[i].count;
            changed |= shrink_number(count as u64, 1, 1, |v| {
                let mut c = self.current.clone();
                c.consumers[i].count = v as u32;
                self.try_candidate(c, format!("consumers[{i}] count {count} -> {v}"))
            });
            i += 1;
        }
        let mut i = 0;
        while self.current.producers.len() > 1 && i < self.current.producers.len() {
            let mut c = self.current.clone();
            c.producers.remove(i);
            if !self.try_candidate(c, format!("drop producers[{i}]")) {
                i += 1;
            } else {
                changed = true;
            }
        }
        for i in 0..self.current.producers.len() {
            let count = self.current.producers[i].count;
            changed |= shrink_number(count as u64, 1, 1, |v| {
                let mut c = self.current.clone();
                c.producers[i].count = v as u32;
                self.try_candidate(c, format!("producers[{i}] count {count} -> {v}"))
            });
            // Rates in tenths of a send per second, refined to a quarter of
            // the rate (each kept step reruns the other passes).
            let rate = self.current.producers[i].rate_per_s;
            let tenths = (rate * 10.0).round() as u64;
            let floor = ((RATE_PER_S_MIN * 10.0) as u64).min(tenths);
            changed |= shrink_number(tenths, floor, (tenths / 4).max(10), |v| {
                let mut c = self.current.clone();
                c.producers[i].rate_per_s = v as f64 / 10.0;
                self.try_candidate(c, format!("producers[{i}] rate_per_s {rate} -> {}", v as f64 / 10.0))
            });
        }
        changed
    }
}

/// Lowers a number towards `floor` while `keep(candidate)` says the anomaly
/// still shows: tries `floor` first, then halves the step (`value - step`
/// with step = (value - floor) / 2, / 4, …) down to `granularity`. Returns
/// whether it lowered it. About log2((value - floor) / granularity) tries.
pub fn shrink_number(value: u64, floor: u64, granularity: u64, mut keep: impl FnMut(u64) -> bool) -> bool {
    if value <= floor {
        return false;
    }
    if keep(floor) {
        return true;
    }
    let mut value = value;
    let mut lowered = false;
    let mut step = (value - floor) / 2;
    while step >= granularity.max(1) && value > floor {
        // After a lowering, `step` can exceed what is left above `floor`.
        let candidate = value.saturating_sub(step).max(floor);
        if candidate > floor && keep(candidate) {
            value = candidate;
            lowered = true;
        } else {
            step /= 2;
        }
    }
    lowered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{FaultAt, FaultKind, Target};

    fn base() -> Scenario {
        crate::schedule_gen::tests::fixture()
    }

    /// Runs a search with a fake oracle instead of simulations.
    fn search_with(
        sc: Scenario,
        max_runs: usize,
        fails: impl FnMut(&Scenario) -> bool,
    ) -> (Scenario, usize) {
        let mut fails = fails;
        let mut progress = |_: &Progress| {};
        let mut s = Search {
            current: sc,
            best: (),
            runs: 0,
            max_runs,
            fails: |c: &Scenario| fails(c).then_some(()),
            progress: &mut progress,
            tried: BTreeSet::new(),
        };
        s.minimise();
        (s.current, s.runs)
    }

    #[test]
    fn explicit_schedule_has_no_random_section_and_names_every_target() {
        let sc = base();
        let explicit = make_explicit(&sc, 7);
        assert!(explicit.faults.random.is_none());
        assert!(explicit.faults.at.len() >= 10, "{:?}", explicit.faults.at);
        let named = |f: &FaultAt| match f.kind {
            FaultKind::SlowConsumer => matches!(f.target, Target::AssignConsumer(c) if c < 2),
            _ => matches!(f.target, Target::Broker(b) if b < 3),
        };
        assert!(explicit.faults.at.iter().all(named), "{:?}", explicit.faults.at);
        assert!(explicit.faults.at.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        // The explicit scenario's schedule is the original's, for the same seed.
        let again = faults::schedule(&explicit, &mut faults::schedule_rng(7));
        assert_eq!(again, faults::schedule(&sc, &mut faults::schedule_rng(7)));
        // And it survives the file round trip.
        let text = explicit.to_toml().unwrap();
        assert_eq!(Scenario::from_str(&text, "x").unwrap(), explicit);
    }

    #[test]
    fn failing_anomaly_prefers_what_misses_the_expectation() {
        let mut sc = base();
        sc.expect.allow = vec!["unseen".into()];
        let result = |found: &[(&str, u64)]| {
            let mut check = crate::checker::CheckResult::from_anomalies(Vec::new());
            check.counts.extend(found.iter().map(|(k, n)| (k.to_string(), *n)));
            SeedResult::judge(&base(), 1, Default::default(), check, String::new(), 0, 0, 0)
        };
        // violation: an unlisted anomaly first, else an expected one; allowed ones never.
        assert_eq!(failing_anomaly(&sc, &result(&[("lost-write", 2), ("duplicate", 1)])).as_deref(), Some("duplicate"));
        assert_eq!(failing_anomaly(&sc, &result(&[("lost-write", 2), ("unseen", 1)])).as_deref(), Some("lost-write"));
        assert_eq!(failing_anomaly(&sc, &result(&[("unseen", 1)])), None);
        // pass: any forbidden anomaly.
        sc.expect.verdict = Verdict::Pass;
        assert_eq!(failing_anomaly(&sc, &result(&[("unseen", 1), ("hw-regression", 1)])).as_deref(), Some("hw-regression"));
        assert_eq!(failing_anomaly(&sc, &result(&[])), None);
    }

    /// The anomaly needs a crash of broker 1 that lasts at least 3 s and
    /// starts after 5 s: the search keeps just that fault, moves it to 5 s,
    /// cuts its duration to about 3 s and the run to just after it.
    #[test]
    fn search_keeps_only_the_fault_the_anomaly_needs() {
        let mut sc = make_explicit(&base(), 3);
        sc.faults.at.push(FaultAt::new(12_000, FaultKind::Crash, Target::Broker(1), Some(6_000)));
        let needs = |c: &Scenario| {
            c.faults.at.iter().any(|f| {
                f.kind == FaultKind::Crash
                    && f.target == Target::Broker(1)
                    && f.at_ms >= 5_000
                    && f.duration_ms.is_some_and(|d| d >= 3_000)
                    && f.at_ms + 3_000 <= c.run.heal_ms
            })
        };
        assert!(needs(&sc));
        let (min, runs) = search_with(sc, 500, needs);
        assert!(needs(&min));
        assert_eq!(min.faults.at.len(), 1, "{:?}", min.faults.at);
        let f = &min.faults.at[0];
        assert!((5_000..5_000 + TIME_STEP_MS_MIN * 2).contains(&f.at_ms), "{f:?}");
        assert!((3_000..3_000 + TIME_STEP_MS_MIN * 2).contains(&f.duration_ms.unwrap()), "{f:?}");
        assert!(min.run.heal_ms <= f.at_ms + f.duration_ms.unwrap() + TIME_STEP_MS_MIN * 2, "{:?}", min.run);
        assert!(min.run.duration_ms - min.run.heal_ms <= AFTER_HEAL_MS_MIN, "{:?}", min.run);
        // The workload went down to one producer process at the lowest rate, no consumers.
        assert!(min.consumers.is_empty());
        assert_eq!(min.producers.len(), 1);
        assert_eq!(min.producers[0].count, 1);
        assert_eq!(min.producers[0].rate_per_s, RATE_PER_S_MIN);
        assert!(runs < 500, "settled within the budget: {runs}");
    }

    /// Two faults together are needed: ddmin keeps exactly those two.
    #[test]
    fn search_keeps_a_pair_of_faults_that_only_fail_together() {
        let sc = make_explicit(&base(), 11);
        let a = sc.faults.at[2].clone();
        let b = sc.faults.at[3..].iter().find(|f| (&f.kind, &f.target) != (&a.kind, &a.target)).unwrap().clone();
        let has = |c: &Scenario, f: &FaultAt| c.faults.at.iter().any(|g| g.kind == f.kind && g.target == f.target);
        let (min, _) = search_with(sc, 500, |c| has(c, &a) && has(c, &b));
        assert_eq!(min.faults.at.len(), 2, "{:?}", min.faults.at);
    }

    #[test]
    fn search_stops_at_the_run_budget() {
        let sc = make_explicit(&base(), 5);
        let n = sc.faults.at.len();
        let (min, runs) = search_with(sc, 4, |_| false);
        assert_eq!(runs, 4);
        assert_eq!(min.faults.at.len(), n, "nothing kept without a failing run");
    }

    #[test]
    fn shrink_number_finds_the_threshold_in_few_tries() {
        let mut tries = 0;
        let mut lowest = u64::MAX;
        let lowered = shrink_number(30_000, 0, 250, |v| {
            tries += 1;
            let ok = v >= 7_300;
            if ok {
                lowest = lowest.min(v);
            }
            ok
        });
        assert!(lowered);
        assert!((7_300..7_300 + 500).contains(&lowest), "{lowest}");
        assert!(tries <= 20, "{tries}");
        assert!(!shrink_number(5, 5, 1, |_| panic!("nothing to try")));
    }

    /// Any predicate (runs are not monotone in a parameter): every value
    /// tried stays above `floor` and below the start, never underflowing.
    #[test]
    fn shrink_number_never_tries_outside_floor_and_value() {
        for value in 0..64u64 {
            for floor in 0..=value {
                for pattern in 0..16u64 {
                    shrink_number(value, floor, 1, |v| {
                        assert!(v >= floor && v < value, "{v} outside [{floor}, {value})");
                        (v ^ pattern) % 3 != 0
                    });
                }
            }
        }
    }
}
