//! Verdicts: one seed's result judged against the scenario's `[expect]`,
//! and a sweep's summary (DESIGN.md, "CLI contract" JSON objects).
//!
//! Rules:
//! - forbidden anomalies are every key not in `expect.allow`;
//! - a seed's verdict is `violation` iff some forbidden key has a count;
//! - a seed is *met* when expected `pass` and it passed, or expected
//!   `violation` and every anomaly it shows is in `anomalies ∪ allow`
//!   (a passing seed meets `violation`: unsafe settings lose data on some
//!   schedules, not all);
//! - a sweep is met when every seed is met and, for `violation`, at least
//!   one seed shows one of the expected `anomalies`.

use crate::checker::{self, Anomaly, CheckResult};
use crate::faults::{FaultEvent, FaultLogEntry};
use crate::history::History;
use crate::observations::Observed;
use crate::scenario::{FaultKind, Scenario};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Characters of the trace hash shown in text output.
pub const TRACE_HASH_SHOWN_CHARS: usize = 12;

/// Anomalies per key a seed's JSON object lists under `examples`.
pub const EXAMPLES_PER_KEY_MAX: usize = 3;

/// A seed's (or an expectation's) verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No forbidden anomaly.
    Pass,
    /// Some forbidden anomaly.
    Violation,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Violation => "violation",
        })
    }
}

/// One seed, judged. Serialises to the DESIGN.md per-seed object (plus `met`).
#[derive(Debug, Clone, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub verdict: Verdict,
    pub expected: Verdict,
    /// Digest of the history and fault log: equal on every replay.
    pub trace_hash: String,
    pub sim_ms: u64,
    pub wall_ms: u64,
    /// Operations in the history.
    pub ops: u64,
    /// Fault actions applied.
    pub faults: u64,
    /// Count per anomaly key (every implemented key present).
    pub anomalies: BTreeMap<String, u64>,
    /// Whether this seed met the scenario's expectation.
    pub met: bool,
    /// Per anomaly key with a count, the first [`EXAMPLES_PER_KEY_MAX`]
    /// anomalies (partition, value, offset, detail), so a reader of the
    /// JSON can find the offending operations. An extension of the
    /// DESIGN.md object: absent when nothing was found.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub examples: BTreeMap<String, Vec<Anomaly>>,
    /// Every anomaly found (for replay and `--out`).
    #[serde(skip)]
    pub details: Vec<Anomaly>,
    #[serde(skip)]
    pub history: History,
    /// Why the seed is unmet, one line each.
    #[serde(skip)]
    pub notes: Vec<String>,
    /// What the run produced besides its history, for the seed's `--out`
    /// directory; `None` for results built by hand, and dropped by a sweep
    /// for seeds it will not write (see `report_files::Keep`).
    #[serde(skip)]
    pub artifacts: Option<Arc<SeedArtifacts>>,
    /// With `[faults] random.swarm = true`: the fault kinds this seed's
    /// random faults drew from (an extension of the DESIGN.md object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm: Option<Vec<FaultKind>>,
}

/// A run's broker observations and fault record, kept with its result.
#[derive(Debug, Clone, Default)]
pub struct SeedArtifacts {
    /// Broker-side observations on the history's clock.
    pub observations: Vec<Observed>,
    /// Observations over the bound, not kept.
    pub observations_dropped: u64,
    /// What the fault injector did, in order.
    pub fault_log: Vec<FaultLogEntry>,
    /// The fault schedule it ran (unresolved targets).
    pub fault_schedule: Vec<FaultEvent>,
    /// The final reader reached the end of every partition.
    pub final_reads_complete: bool,
}

impl SeedResult {
    /// Judges one seed's checked history against `scenario.expect`.
    #[allow(clippy::too_many_arguments)]
    pub fn judge(
        scenario: &Scenario,
        seed: u64,
        history: History,
        check: CheckResult,
        trace_hash: String,
        sim_ms: u64,
        wall_ms: u64,
        faults: u64,
    ) -> SeedResult {
        let expect = &scenario.expect;
        let found: Vec<&str> = check.counts.iter().filter(|(_, &n)| n > 0).map(|(k, _)| k.as_str()).collect();
        let forbidden: Vec<&str> = found.iter().copied().filter(|k| !expect.allow.iter().any(|a| a == k)).collect();
        let verdict = if forbidden.is_empty() { Verdict::Pass } else { Verdict::Violation };
        let mut notes = Vec::new();
        match expect.verdict {
            Verdict::Pass => {
                for k in &forbidden {
                    notes.push(format!("forbidden anomaly {k}={}", check.counts[*k]));
                }
            }
            Verdict::Violation => {
                for k in &found {
                    let listed = expect.anomalies.iter().chain(&expect.allow).any(|a| a == k);
                    if !listed {
                        notes.push(format!("anomaly {k}={} is neither expected nor allowed", check.counts[*k]));
                    }
                }
            }
        }
        let mut examples: BTreeMap<String, Vec<Anomaly>> = BTreeMap::new();
        for a in &check.anomalies {
            let of_key = examples.entry(a.key.to_string()).or_default();
            if of_key.len() < EXAMPLES_PER_KEY_MAX {
                of_key.push(a.clone());
            }
        }
        SeedResult {
            seed,
            verdict,
            expected: expect.verdict,
            trace_hash,
            sim_ms,
            wall_ms,
            ops: history.ops.len() as u64,
            faults,
            anomalies: check.counts,
            met: notes.is_empty(),
            examples,
            details: check.anomalies,
            history,
            notes,
            artifacts: None,
            swarm: None,
        }
    }

    /// The same result without its history and artifacts (what a sweep
    /// keeps of a seed it will not write out).
    pub fn without_artifacts(mut self) -> SeedResult {
        self.history = History::default();
        self.artifacts = None;
        self
    }

    /// Whether this seed shows any anomaly, allowed or not.
    pub fn shows_anomalies(&self) -> bool {
        self.anomalies.values().any(|&n| n > 0)
    }

    /// Whether this seed shows one of the anomalies `scenario.expect` lists.
    pub fn shows_expected(&self, scenario: &Scenario) -> bool {
        scenario.expect.anomalies.iter().any(|k| self.anomalies.get(k).is_some_and(|&n| n > 0))
    }

    /// The anomalies with a count, `lost-write=3 unseen=3`; empty when none.
    pub fn anomalies_found(&self) -> String {
        let found: Vec<String> =
            self.anomalies.iter().filter(|(_, &n)| n > 0).map(|(k, n)| format!("{k}={n}")).collect();
        found.join(" ")
    }

    /// Duplicates whose value more than one producer session sent (a
    /// restarted producer resent it: idempotence is per session).
    pub fn duplicates_across_sessions(&self) -> usize {
        self.details.iter().filter(|a| checker::duplicate::across_sessions(a)).count()
    }

    /// Lines explaining what was found, for humans: `duplicate across
    /// producer sessions (idempotence is per session): 2 of 3`.
    pub fn explanations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let across = self.duplicates_across_sessions();
        if across > 0 {
            let all = self.anomalies.get(checker::duplicate::KEY).copied().unwrap_or(0);
            out.push(format!("{}: {across} of {all}", checker::duplicate::ACROSS_SESSIONS));
        }
        out
    }

    /// The DESIGN.md per-seed JSON object on one line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a seed result serialises")
    }

    /// One line for humans:
    /// `seed 7: violation (expected violation) lost-write=3 unseen=3 trace 9f3a… sim 60.0s wall 0.41s`,
    /// then the [`SeedResult::explanations`] (`; duplicate across …`).
    pub fn to_text_line(&self) -> String {
        let found = self.anomalies_found();
        let found = if found.is_empty() { "no anomalies".to_string() } else { found };
        let hash: String = self.trace_hash.chars().take(TRACE_HASH_SHOWN_CHARS).collect();
        let mut line = format!(
            "seed {}: {} (expected {}) {found} trace {hash}… sim {:.1}s wall {:.2}s",
            self.seed,
            self.verdict,
            self.expected,
            self.sim_ms as f64 / 1000.0,
            self.wall_ms as f64 / 1000.0,
        );
        if let Some(kinds) = &self.swarm {
            let names: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
            line.push_str(&format!(" swarm {}", names.join(",")));
        }
        for e in self.explanations() {
            line.push_str(&format!("; {e}"));
        }
        if !self.met {
            line.push_str(&format!(" UNMET: {}", self.notes.join("; ")));
        }
        line
    }
}

/// A sweep's outcome. Serialises to the DESIGN.md summary object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    pub summary: bool,
    pub scenario: String,
    /// Seeds run, errored ones included.
    pub seeds: u64,
    pub met: u64,
    /// Seeds not met, errored ones included.
    pub unmet: u64,
    /// Seeds whose run returned an error.
    pub errors: u64,
    /// The sweep met the expectation (the exit code is 0 iff true).
    pub ok: bool,
    /// Why the sweep is unmet when every seed is met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `K/N` when the sweep ran one shard of the seed range (`--shard`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// `passed` or `failed` when sampled seeds were rerun and their trace
    /// hashes compared (`--check-determinism`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub determinism: Option<String>,
    /// Seeds with a duplicate across producer sessions (text only).
    #[serde(skip)]
    pub duplicates_across_sessions_seeds: u64,
}

impl SweepSummary {
    /// Summarises `results` plus `errors` seeds that did not produce one.
    pub fn summarise(scenario: &Scenario, results: &[SeedResult], errors: usize) -> SweepSummary {
        let met = results.iter().filter(|r| r.met).count() as u64;
        let seeds = results.len() as u64 + errors as u64;
        let unmet = seeds - met;
        let expected_seen = results.iter().any(|r| r.shows_expected(scenario));
        let message = (scenario.expect.verdict == Verdict::Violation && !expected_seen).then(|| {
            format!("no seed showed the expected anomaly ({})", scenario.expect.anomalies.join(", "))
        });
        SweepSummary {
            summary: true,
            scenario: scenario.name.clone(),
            seeds,
            met,
            unmet,
            errors: errors as u64,
            ok: unmet == 0 && message.is_none(),
            message,
            shard: None,
            determinism: None,
            duplicates_across_sessions_seeds: results.iter().filter(|r| r.duplicates_across_sessions() > 0).count() as u64,
        }
    }

    /// Records a determinism check; a failed one makes the sweep unmet.
    pub fn record_determinism(&mut self, passed: bool) {
        self.determinism = Some(if passed { "passed" } else { "failed" }.to_string());
        self.ok &= passed;
    }

    pub fn met(&self) -> bool {
        self.ok
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a summary serialises")
    }

    /// `leader-crash: 20 seeds, 20 met, 0 unmet: expectation met`, with
    /// ` (shard 2/4)` after the name and `, determinism passed` after the
    /// counts when those apply, and `; duplicate across producer sessions
    /// (idempotence is per session) on N of M seeds` when some seed showed one.
    pub fn to_text_line(&self) -> String {
        let mut line = self.scenario.clone();
        if let Some(shard) = &self.shard {
            line.push_str(&format!(" (shard {shard})"));
        }
        line.push_str(&format!(": {} seeds, {} met, {} unmet", self.seeds, self.met, self.unmet));
        if self.errors > 0 {
            line.push_str(&format!(" ({} errors)", self.errors));
        }
        if let Some(d) = &self.determinism {
            line.push_str(&format!(", determinism {d}"));
        }
        match (&self.message, self.ok) {
            (Some(m), _) => line.push_str(&format!(": {m}")),
            (None, true) => line.push_str(": expectation met"),
            (None, false) => line.push_str(": expectation NOT met"),
        }
        if self.duplicates_across_sessions_seeds > 0 {
            line.push_str(&format!(
                "; {} on {} of {} seeds",
                checker::duplicate::ACROSS_SESSIONS,
                self.duplicates_across_sessions_seeds,
                self.seeds
            ));
        }
        line
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::checker::CheckResult;

    const BASE: &str = r#"
name = "t"
[cluster]
brokers = 3
[[topics]]
name = "events"
partitions = 1
replication_factor = 3
[run]
duration_ms = 1000
heal_ms = 500
"#;

    /// A minimal scenario with the given `[expect]` body (also used by
    /// `report_files`' tests).
    pub(crate) fn scenario(expect: &str) -> Scenario {
        Scenario::from_str(&format!("{BASE}[expect]\n{expect}\n"), "t.toml").unwrap()
    }

    fn result(sc: &Scenario, found: &[(&str, u64)]) -> SeedResult {
        let mut check = CheckResult::from_anomalies(Vec::new());
        for (k, n) in found {
            check.counts.insert(k.to_string(), *n);
        }
        SeedResult::judge(sc, 1, History::default(), check, "ab".repeat(16), 1000, 5, 0)
    }

    #[test]
    fn expected_pass_is_met_only_without_forbidden_anomalies() {
        let sc = scenario("verdict = \"pass\"\nallow = [\"duplicate\"]");
        let clean = result(&sc, &[]);
        assert_eq!((clean.verdict, clean.met), (Verdict::Pass, true));
        let allowed = result(&sc, &[("duplicate", 4)]);
        assert_eq!((allowed.verdict, allowed.met), (Verdict::Pass, true));
        let lost = result(&sc, &[("lost-write", 1)]);
        assert_eq!((lost.verdict, lost.met), (Verdict::Violation, false));
        assert!(lost.notes[0].contains("lost-write=1"));
    }

    #[test]
    fn expected_violation_is_met_by_listed_or_no_anomalies_but_not_others() {
        let sc = scenario("verdict = \"violation\"\nanomalies = [\"lost-write\"]\nallow = [\"unseen\"]");
        assert!(result(&sc, &[("lost-write", 2), ("unseen", 2)]).met);
        assert!(result(&sc, &[]).met);
        let other = result(&sc, &[("lost-write", 2), ("duplicate", 1)]);
        assert!(!other.met);
        assert_eq!(other.verdict, Verdict::Violation);
    }

    #[test]
    fn violation_sweep_needs_one_seed_showing_the_expected_anomaly() {
        let sc = scenario("verdict = \"violation\"\nanomalies = [\"lost-write\"]\nallow = [\"unseen\"]");
        let quiet = vec![result(&sc, &[]), result(&sc, &[("unseen", 1)])];
        let s = SweepSummary::summarise(&sc, &quiet, 0);
        assert_eq!((s.met, s.unmet, s.met()), (2, 0, false));
        assert!(s.message.as_deref().unwrap().starts_with("no seed showed the expected anomaly"));
        let loud = vec![result(&sc, &[]), result(&sc, &[("lost-write", 1)])];
        assert!(SweepSummary::summarise(&sc, &loud, 0).met());
        let with_error = SweepSummary::summarise(&sc, &loud, 1);
        assert_eq!((with_error.seeds, with_error.unmet, with_error.met()), (3, 1, false));
    }

    #[test]
    fn seed_json_has_the_design_keys_in_order() {
        let sc = scenario("verdict = \"pass\"");
        let line = result(&sc, &[]).to_json_line();
        let keys = ["seed", "verdict", "expected", "trace_hash", "sim_ms", "wall_ms", "ops", "faults", "anomalies", "met"];
        let mut at = 0;
        for k in keys {
            let i = line[at..].find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} missing or out of order in {line}"));
            at += i;
        }
        assert!(line.contains(r#""anomalies":{"aborted-read":0,"assignment-incomplete":0,"committed-ahead":0,"duplicate":0,"eos-violation":0,"epoch-regression":0,"g0":0,"g1c":0,"hanging-txn":0,"hw-regression":0,"inconsistent-offsets":0,"int-nonmonotonic-poll":0,"int-nonmonotonic-send":0,"int-poll-skip":0,"key-order":0,"leader-per-epoch":0,"liveness":0,"lost-write":0,"nonmonotonic-poll":0,"nonmonotonic-send":0,"ownership":0,"poll-skip":0,"precommitted-read":0,"replica-divergence":0,"unseen":0}"#), "{line}");
        let summary = SweepSummary::summarise(&sc, &[], 0).to_json_line();
        assert!(summary.starts_with(r#"{"summary":true,"scenario":"t","seeds":0,"met":0,"unmet":0"#), "{summary}");
        assert!(!summary.contains("shard") && !summary.contains("determinism"), "{summary}");
    }

    fn with_duplicate(sc: &Scenario, detail: &str) -> SeedResult {
        let a = Anomaly::new(checker::duplicate::KEY, "events/0", Some(1), Some(2), detail.into());
        SeedResult::judge(sc, 1, History::default(), CheckResult::from_anomalies(vec![a]), "ab".repeat(16), 1000, 5, 0)
    }

    #[test]
    fn duplicates_across_producer_sessions_are_explained_in_text_only() {
        let sc = scenario("verdict = \"violation\"\nanomalies = [\"duplicate\"]");
        let across = with_duplicate(&sc, "value 1 read at 2 offsets: 0, 2; sent by 2 producer sessions (processes [0, 3]): …");
        let same = with_duplicate(&sc, "value 1 read at 2 offsets: 0, 2; sent by one producer session (processes [0])");
        let line = across.to_text_line();
        assert!(line.contains("; duplicate across producer sessions (idempotence is per session): 1 of 1"), "{line}");
        assert!(!same.to_text_line().contains("across"), "{}", same.to_text_line());
        let summary = SweepSummary::summarise(&sc, &[across.clone(), same], 0);
        assert!(summary.to_text_line().ends_with("; duplicate across producer sessions (idempotence is per session) on 1 of 2 seeds"), "{}", summary.to_text_line());
        assert!(!summary.to_json_line().contains("across"), "the JSON summary keeps its contract");
        assert!(across.to_json_line().contains(r#""across-producer-sessions":true"#), "{}", across.to_json_line());
    }

    #[test]
    fn shard_and_failed_determinism_reach_the_summary() {
        let sc = scenario("verdict = \"pass\"");
        let mut s = SweepSummary::summarise(&sc, &[result(&sc, &[])], 0);
        s.shard = Some("2/4".into());
        s.record_determinism(false);
        assert!(!s.met());
        assert!(s.to_json_line().ends_with(r#""shard":"2/4","determinism":"failed"}"#), "{}", s.to_json_line());
        assert_eq!(s.to_text_line(), "t (shard 2/4): 1 seeds, 1 met, 0 unmet, determinism failed: expectation NOT met");
    }
}
