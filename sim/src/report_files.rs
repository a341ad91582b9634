//! `ksim run --out DIR`: the files a sweep leaves behind for CI.
//!
//! - `seed-N/`: a directory per seed that [`Keep`] selects (by default the
//!   unmet seeds and those showing any anomaly): history, results,
//!   observations, fault windows, log, timeline and plots (see
//!   [`crate::seed_report`]). Each seed's history used to be `seed-N.jsonl`
//!   for every seed; it is now `seed-N/history.jsonl` for kept seeds (any
//!   other seed is one `ksim replay` away);
//! - `results.jsonl`: the per-seed JSON objects of `--format json`;
//! - `summary.md`: a Markdown report (header, replay commands and report
//!   links for unmet seeds, one table row per seed), for a CI job summary
//!   or a pull-request comment;
//! - `junit.xml`: one `<testsuite>` named after the scenario with one
//!   `<testcase name="seed-N">` per seed, and a `<failure>` (anomaly counts,
//!   why, replay command) for each unmet seed, for CI test reporters.
//!
//! When every seed is met but the sweep is not (an expected violation never
//! shown, or a failed determinism check), `junit.xml` has one more failing
//! testcase named `sweep`, so the report is red exactly when the exit code is 1.
//!
//! Rendering is pure (strings in, string out) so the formats are unit-tested
//! on hand-built results.

use crate::report::{SeedResult, SweepSummary, TRACE_HASH_SHOWN_CHARS};
use crate::scenario::Scenario;
use crate::sweep::Shard;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

/// What a report says about the sweep as a whole.
pub struct SweepInfo<'a> {
    pub scenario: &'a Scenario,
    /// The scenario file as given on the command line: replay commands name it.
    pub scenario_path: &'a str,
    /// The seed range given with `--seeds` (before sharding).
    pub seeds: Range<u64>,
    /// The shard run, if the range was split with `--shard`.
    pub shard: Option<Shard>,
    pub summary: &'a SweepSummary,
    /// Which seeds get a `seed-N/` directory.
    pub keep: Keep,
}

/// One seed's outcome as the sweep returns it.
pub type SeedOutcome = (u64, anyhow::Result<SeedResult>);

/// Which seeds get a directory `DIR/seed-N/` (`ksim run --keep`). Writing
/// one costs far more than judging a seed, so by default a sweep writes
/// only the seeds worth reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// No seed directories (the top-level files only).
    None,
    /// Seeds that did not meet the scenario's expectation.
    Unmet,
    /// Unmet seeds and seeds showing any anomaly, allowed or expected (in
    /// a `violation` scenario, the seeds that demonstrate it).
    #[default]
    Anomalous,
    /// Every seed.
    All,
}

impl Keep {
    /// Whether a seed with this result gets a directory.
    pub fn keeps(self, r: &SeedResult) -> bool {
        match self {
            Keep::None => false,
            Keep::Unmet => !r.met,
            Keep::Anomalous => !r.met || r.shows_anomalies(),
            Keep::All => true,
        }
    }
}

impl FromStr for Keep {
    type Err = String;

    fn from_str(s: &str) -> Result<Keep, String> {
        match s {
            "none" => Ok(Keep::None),
            "unmet" => Ok(Keep::Unmet),
            "anomalous" => Ok(Keep::Anomalous),
            "all" => Ok(Keep::All),
            _ => Err(format!("`{s}` is not a keep policy: expected none, unmet, anomalous or all")),
        }
    }
}

/// The one-line command that reruns `seed` (DESIGN.md: printed on failure).
pub fn replay_command(scenario_path: &str, seed: u64) -> String {
    format!("ksim replay {scenario_path} --seed {seed}")
}

/// `{"seed":N,"error":"…"}`: a seed whose run failed, keys in that order.
pub fn error_json_line(seed: u64, e: &anyhow::Error) -> String {
    format!("{{\"seed\":{seed},\"error\":{}}}", serde_json::Value::String(format!("{e:#}")))
}

/// Writes every `--out` file into `dir` (created if missing).
pub fn write_all(dir: &Path, info: &SweepInfo<'_>, results: &[SeedOutcome]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut lines = String::new();
    for (seed, r) in results {
        match r {
            Ok(res) => {
                if info.keep.keeps(res) {
                    crate::seed_report::write_seed_dir(&dir.join(seed_dir(*seed)), info.scenario, info.scenario_path, res)?;
                }
                lines.push_str(&res.to_json_line());
            }
            Err(e) => lines.push_str(&error_json_line(*seed, e)),
        }
        lines.push('\n');
    }
    std::fs::write(dir.join("results.jsonl"), lines)?;
    std::fs::write(dir.join("summary.md"), summary_markdown(info, results))?;
    std::fs::write(dir.join("junit.xml"), junit_xml(info, results))
}

/// `seed-N`: a kept seed's directory under `--out`.
pub fn seed_dir(seed: u64) -> String {
    format!("seed-{seed}")
}

/// Markdown links to a kept seed's timeline, log and results.
fn report_links(info: &SweepInfo<'_>, seed: u64, res: &SeedResult) -> Option<String> {
    info.keep.keeps(res).then(|| {
        let d = seed_dir(seed);
        format!("[timeline]({d}/timeline.html) · [log]({d}/log.txt) · [results]({d}/results.json)")
    })
}

fn unmet(r: &anyhow::Result<SeedResult>) -> bool {
    !r.as_ref().is_ok_and(|res| res.met)
}

fn seeds_line(info: &SweepInfo<'_>, run: usize) -> String {
    let range = format!("{}..{}", info.seeds.start, info.seeds.end);
    match info.shard {
        Some(shard) => format!("`{range}`, shard {shard} ({run} seeds)"),
        None => format!("`{range}` ({run} seeds)"),
    }
}

fn outcome_line(summary: &SweepSummary) -> String {
    let mut line = format!("{} met, {} unmet", summary.met, summary.unmet);
    if summary.errors > 0 {
        let _ = write!(line, " ({} errors)", summary.errors);
    }
    line.push_str(if summary.ok { ": expectation met" } else { ": expectation **NOT met**" });
    if let Some(m) = &summary.message {
        let _ = write!(line, " ({m})");
    }
    line
}

/// Markdown text: `<` and `>` escaped so nothing reads as an HTML tag.
fn md_text(s: &str) -> String {
    s.replace('<', "&lt;").replace('>', "&gt;")
}

/// A Markdown table cell: as [`md_text`], on one line, pipes escaped.
fn md_cell(s: &str) -> String {
    md_text(s).replace('\n', " ").replace('|', "\\|")
}

/// `summary.md`: header, replay commands for unmet seeds, a row per seed.
pub fn summary_markdown(info: &SweepInfo<'_>, results: &[SeedOutcome]) -> String {
    let sc = info.scenario;
    let mut md = format!("# ksim sweep: {}\n\n", md_cell(&sc.name));
    if !sc.description.is_empty() {
        let _ = write!(md, "{}\n\n", md_text(sc.description.trim()));
    }
    let _ = writeln!(md, "- Scenario file: `{}`", info.scenario_path);
    let _ = writeln!(md, "- Expected: {}", sc.expect.verdict);
    let _ = writeln!(md, "- Seeds: {}", seeds_line(info, results.len()));
    let _ = writeln!(md, "- Result: {}", outcome_line(info.summary));
    if let Some(d) = &info.summary.determinism {
        let _ = writeln!(md, "- Determinism check: {d}");
    }
    let replays: Vec<String> =
        results.iter().filter(|(_, r)| unmet(r)).map(|(seed, _)| replay_command(info.scenario_path, *seed)).collect();
    md.push_str("\n## Unmet seeds\n\n");
    if replays.is_empty() {
        md.push_str("None.\n");
    } else {
        let _ = write!(md, "```sh\n{}\n```\n", replays.join("\n"));
        let reports: Vec<String> = results
            .iter()
            .filter(|(_, r)| unmet(r))
            .filter_map(|(seed, r)| Some(format!("- seed {seed}: {}", report_links(info, *seed, r.as_ref().ok()?)?)))
            .collect();
        if !reports.is_empty() {
            let _ = write!(md, "\nReports (open the timeline first):\n\n{}\n", reports.join("\n"));
        }
    }
    md.push_str("\n## Seeds\n\n");
    md.push_str("| seed | verdict | expected | met | anomalies | trace hash | sim s | wall s | report |\n");
    md.push_str("|---:|---|---|---|---|---|---:|---:|---|\n");
    for (seed, r) in results {
        match r {
            Ok(res) => {
                let found = res.anomalies_found();
                let hash: String = res.trace_hash.chars().take(TRACE_HASH_SHOWN_CHARS).collect();
                let _ = writeln!(
                    md,
                    "| {seed} | {} | {} | {} | {} | `{hash}` | {:.1} | {:.2} | {} |",
                    res.verdict,
                    res.expected,
                    if res.met { "yes" } else { "**no**" },
                    if found.is_empty() { "none".to_string() } else { md_cell(&found) },
                    res.sim_ms as f64 / 1000.0,
                    res.wall_ms as f64 / 1000.0,
                    if info.keep.keeps(res) { format!("[timeline]({}/timeline.html)", seed_dir(*seed)) } else { String::new() },
                );
            }
            Err(e) => {
                let _ = writeln!(
                    md,
                    "| {seed} | error | {} | **no** | {} | | | | |",
                    sc.expect.verdict,
                    md_cell(&format!("{e:#}"))
                );
            }
        }
    }
    md
}

/// XML (or HTML) text or attribute value: the five special characters
/// escaped, and control characters XML 1.0 cannot carry dropped.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// `junit.xml`: one testsuite, one testcase per seed (see the module doc).
pub fn junit_xml(info: &SweepInfo<'_>, results: &[SeedOutcome]) -> String {
    let sc = info.scenario;
    let name = xml_escape(&sc.name);
    let seed_failures = results.iter().filter(|(_, r)| unmet(r)).count();
    let sweep_failure = (seed_failures == 0 && !info.summary.ok).then(|| {
        let mut why = Vec::new();
        if let Some(m) = &info.summary.message {
            why.push(m.clone());
        }
        if info.summary.determinism.as_deref() == Some("failed") {
            why.push("determinism check failed: a rerun seed gave another trace hash".to_string());
        }
        why.join("; ")
    });
    let tests = results.len() + usize::from(sweep_failure.is_some());
    let failures = seed_failures + usize::from(sweep_failure.is_some());
    let wall_ms: u64 = results.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.wall_ms).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuite name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\">",
        wall_ms as f64 / 1000.0
    );
    x.push_str("  <properties>\n");
    let mut props = vec![
        ("description", sc.description.trim().to_string()),
        ("scenario_file", info.scenario_path.to_string()),
        ("seeds", format!("{}..{}", info.seeds.start, info.seeds.end)),
        ("expected", sc.expect.verdict.to_string()),
    ];
    if let Some(shard) = info.shard {
        props.push(("shard", shard.to_string()));
    }
    if let Some(d) = &info.summary.determinism {
        props.push(("determinism", d.clone()));
    }
    for (k, v) in props {
        let _ = writeln!(x, "    <property name=\"{k}\" value=\"{}\"/>", xml_escape(&v));
    }
    x.push_str("  </properties>\n");
    for (seed, r) in results {
        let replay = xml_escape(&replay_command(info.scenario_path, *seed));
        match r {
            Ok(res) => {
                let head = format!("<testcase name=\"seed-{seed}\" classname=\"{name}\" time=\"{:.3}\"", res.wall_ms as f64 / 1000.0);
                if res.met {
                    let _ = writeln!(x, "  {head}/>");
                    continue;
                }
                let found = res.anomalies_found();
                let found = if found.is_empty() { "none".to_string() } else { found };
                let message = format!("{} (expected {}): {found}", res.verdict, res.expected);
                let _ = writeln!(x, "  {head}>");
                let _ = writeln!(x, "    <failure type=\"unmet\" message=\"{}\">anomalies: {}", xml_escape(&message), xml_escape(&found));
                for note in &res.notes {
                    let _ = writeln!(x, "why: {}", xml_escape(note));
                }
                let _ = writeln!(x, "trace hash: {}", xml_escape(&res.trace_hash));
                let _ = writeln!(x, "replay: {replay}</failure>");
                x.push_str("  </testcase>\n");
            }
            Err(e) => {
                let err = xml_escape(&format!("{e:#}"));
                let _ = writeln!(x, "  <testcase name=\"seed-{seed}\" classname=\"{name}\" time=\"0.000\">");
                let _ = writeln!(x, "    <failure type=\"error\" message=\"{err}\">error: {err}");
                let _ = writeln!(x, "replay: {replay}</failure>");
                x.push_str("  </testcase>\n");
            }
        }
    }
    if let Some(why) = sweep_failure {
        let why = xml_escape(&why);
        let _ = writeln!(x, "  <testcase name=\"sweep\" classname=\"{name}\" time=\"0.000\">");
        let _ = writeln!(x, "    <failure type=\"unmet\" message=\"{why}\">{why}</failure>");
        x.push_str("  </testcase>\n");
    }
    x.push_str("</testsuite>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::CheckResult;
    use crate::history::History;

    /// A `pass` scenario whose name and description need escaping.
    fn scenario() -> Scenario {
        let mut sc = crate::report::tests::scenario("verdict = \"pass\"");
        sc.name = "leader-crash <acks=all>".into();
        sc.description = "Leader crashes mid-stream; acks=all | min ISR 2 loses nothing & \"that\" is checked.".into();
        sc
    }

    fn seed(sc: &Scenario, seed: u64, found: &[(&str, u64)], hash: char) -> SeedOutcome {
        let mut check = CheckResult::from_anomalies(Vec::new());
        for (k, n) in found {
            check.counts.insert(k.to_string(), *n);
        }
        let hash = hash.to_string().repeat(64);
        (seed, Ok(SeedResult::judge(sc, seed, History::default(), check, hash, 60_000, 412 + seed, 3)))
    }

    /// Seeds 4 (met), 5 (lost writes), 6 (the run errored); shard 1/3 of 4..13.
    fn sweep() -> (Scenario, Vec<SeedOutcome>) {
        let sc = scenario();
        let results = vec![
            seed(&sc, 4, &[], 'a'),
            seed(&sc, 5, &[("lost-write", 3), ("unseen", 2)], 'b'),
            (6, Err(anyhow::anyhow!("seed 6 panicked: <boom> & \"bust\""))),
        ];
        (sc, results)
    }

    fn render(f: fn(&SweepInfo<'_>, &[SeedOutcome]) -> String) -> String {
        let (sc, results) = sweep();
        let ok: Vec<SeedResult> = results.iter().filter_map(|(_, r)| r.as_ref().ok().cloned()).collect();
        let mut summary = SweepSummary::summarise(&sc, &ok, 1);
        summary.shard = Some("1/3".into());
        summary.record_determinism(true);
        let info = SweepInfo {
            scenario: &sc,
            scenario_path: "scenarios/fast/x.toml",
            seeds: 4..13,
            shard: Some(Shard { index: 1, count: 3 }),
            summary: &summary,
            keep: Keep::Anomalous,
        };
        f(&info, &results)
    }

    #[test]
    fn summary_markdown_has_header_replays_and_a_row_per_seed() {
        let md = render(summary_markdown);
        assert!(md.contains("ksim replay scenarios/fast/x.toml --seed 5\nksim replay scenarios/fast/x.toml --seed 6\n"));
        assert!(!md.contains("--seed 4\n"));
        insta::assert_snapshot!(md);
    }

    #[test]
    fn junit_has_a_testcase_per_seed_and_failures_for_unmet_ones() {
        let xml = render(junit_xml);
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert_eq!(xml.matches("<failure ").count(), 2);
        assert!(!xml.contains("<boom>") && xml.contains("&lt;boom&gt; &amp; &quot;bust&quot;"));
        insta::assert_snapshot!(xml);
    }

    #[test]
    fn junit_fails_a_sweep_testcase_when_only_the_sweep_is_unmet() {
        let sc = scenario();
        let results = vec![seed(&sc, 0, &[], 'a')];
        let ok: Vec<SeedResult> = results.iter().filter_map(|(_, r)| r.as_ref().ok().cloned()).collect();
        let mut summary = SweepSummary::summarise(&sc, &ok, 0);
        summary.record_determinism(false);
        let info = SweepInfo { scenario: &sc, scenario_path: "x.toml", seeds: 0..1, shard: None, summary: &summary, keep: Keep::Anomalous };
        let xml = junit_xml(&info, &results);
        assert!(xml.contains("<testcase name=\"sweep\""), "{xml}");
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("determinism check failed"), "{xml}");
    }

    #[test]
    fn xml_escape_escapes_specials_and_drops_control_characters() {
        assert_eq!(xml_escape("a<b>&\"c'\u{1}\n"), "a&lt;b&gt;&amp;&quot;c&apos;\n");
    }
}
