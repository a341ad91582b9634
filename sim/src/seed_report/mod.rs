//! One seed's directory, `DIR/seed-N/`, written by `ksim run --out DIR`
//! for the seeds `--keep` selects: everything needed to understand the
//! seed without rerunning it, and to re-judge it with `ksim check`.
//!
//! # Layout
//!
//! - `history.jsonl`: the history (DESIGN.md, "History contract");
//! - `results.json`: the seed's JSON object (as in `results.jsonl`) plus
//!   the scenario, replay command, notes, every anomaly (`details`, with the
//!   operations each involves) and run facts (`final_reads_complete`);
//! - `observations.jsonl`: the brokers' observations
//!   ([`crate::observations`]), which `ksim check` reads beside a history;
//! - `faults.jsonl`: fault windows ([`windows`]);
//! - `log.txt`: the run told in simulated time ([`log_txt`]);
//! - `timeline.html`: lanes over time, anomalies clickable ([`timeline`]);
//! - `throughput.svg`, `latency.svg`, `lag.svg`, `unseen.svg`: plots over
//!   time with fault windows shaded ([`series`], [`plots`]).
//!
//! Every time in these files is simulated ms since the main phase began
//! (the history's clock). Rendering is pure, from a [`SeedReport`] built
//! once per seed, so each format is unit-tested on a hand-built seed.

pub mod involved;
pub mod log_txt;
pub mod plots;
pub mod series;
pub mod timeline;
pub mod windows;

use crate::history::History;
use crate::observations::Observed;
use crate::report::SeedResult;
use crate::scenario::Scenario;
use involved::Finding;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use windows::FaultWindow;

/// Anomalies `results.json` lists under `details` at most.
pub const RESULTS_DETAILS_MAX: usize = 10_000;

/// The files a seed directory holds, in the order they are written.
pub const SEED_FILES: &[&str] = &[
    "history.jsonl",
    "results.json",
    "observations.jsonl",
    "faults.jsonl",
    "log.txt",
    "timeline.html",
    "throughput.svg",
    "latency.svg",
    "lag.svg",
    "unseen.svg",
];

/// One JSON object per item per line.
pub(crate) fn jsonl<T: Serialize>(items: &[T]) -> String {
    let mut out = String::new();
    for i in items {
        out.push_str(&serde_json::to_string(i).expect("a report line serialises"));
        out.push('\n');
    }
    out
}

/// Everything a seed's files are drawn from, computed once.
pub struct SeedReport<'a> {
    pub scenario_name: &'a str,
    /// The scenario file as given on the command line.
    pub scenario_path: &'a str,
    /// The scenario's workload length: processes first seen after it are
    /// the final reader.
    pub duration_ms: u64,
    pub res: &'a SeedResult,
    pub history: &'a History,
    pub observations: &'a [Observed],
    pub windows: Vec<FaultWindow>,
    /// One per anomaly of `res.details`, same order.
    pub findings: Vec<Finding>,
    /// History op index → indices of the anomalies involving it.
    pub anomalous_ops: BTreeMap<usize, Vec<usize>>,
    /// The x axis' end: the run's simulated length.
    pub end_ms: u64,
    /// The one-line command that reruns the seed.
    pub replay: String,
}

impl<'a> SeedReport<'a> {
    /// Builds the report of `res` (its artifacts, if any, give the
    /// observations and faults).
    pub fn new(scenario: &'a Scenario, scenario_path: &'a str, res: &'a SeedResult) -> SeedReport<'a> {
        let (observations, windows) = match &res.artifacts {
            Some(a) => (a.observations.as_slice(), windows::windows(&a.fault_schedule, &a.fault_log, res.sim_ms)),
            None => (&[][..], Vec::new()),
        };
        let findings = involved::findings(&res.history, &res.details);
        let mut anomalous_ops: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (a, f) in findings.iter().enumerate() {
            for &i in &f.ops {
                anomalous_ops.entry(i).or_default().push(a);
            }
        }
        let end_ms = res.sim_ms.max(res.history.ops.iter().map(|o| o.t_ms).max().unwrap_or(0));
        SeedReport {
            scenario_name: &scenario.name,
            scenario_path,
            duration_ms: scenario.run.duration_ms,
            res,
            history: &res.history,
            observations,
            windows,
            findings,
            anomalous_ops,
            end_ms,
            replay: crate::report_files::replay_command(scenario_path, res.seed),
        }
    }

    /// `results.json`: the seed's JSON object plus what a reader needs to
    /// act on it (see the module doc).
    pub fn results_json(&self) -> String {
        let res = self.res;
        let mut v = serde_json::to_value(res).expect("a seed result serialises");
        let obj = v.as_object_mut().expect("a seed result is an object");
        obj.insert("scenario".into(), self.scenario_name.into());
        obj.insert("scenario_file".into(), self.scenario_path.into());
        obj.insert("replay".into(), self.replay.clone().into());
        obj.insert("notes".into(), res.notes.clone().into());
        if let Some(a) = &res.artifacts {
            obj.insert("final_reads_complete".into(), a.final_reads_complete.into());
            obj.insert("observations".into(), (a.observations.len() as u64).into());
            obj.insert("observations_dropped".into(), a.observations_dropped.into());
        }
        obj.insert("fault_windows".into(), (self.windows.len() as u64).into());
        let details: Vec<serde_json::Value> = self
            .findings
            .iter()
            .take(RESULTS_DETAILS_MAX)
            .map(|f| {
                let mut d = serde_json::to_value(&res.details[f.anomaly]).expect("an anomaly serialises");
                let o = d.as_object_mut().expect("an anomaly is an object");
                if let Some(t) = f.t_ms {
                    o.insert("t_ms".into(), t.into());
                }
                let ops: Vec<serde_json::Value> =
                    f.ops.iter().map(|&i| serde_json::to_value(&self.history.ops[i]).expect("an op serialises")).collect();
                o.insert("ops".into(), ops.into());
                d
            })
            .collect();
        obj.insert("details".into(), details.into());
        if self.findings.len() > RESULTS_DETAILS_MAX {
            obj.insert("details_omitted".into(), ((self.findings.len() - RESULTS_DETAILS_MAX) as u64).into());
        }
        let mut s = serde_json::to_string_pretty(&v).expect("results serialise");
        s.push('\n');
        s
    }

    /// The four plots, by file name.
    pub fn plots(&self) -> Result<Vec<(&'static str, String)>, String> {
        let s = series::compute(self.history, self.end_ms);
        let w = &self.windows;
        let title = |what: &str| format!("{what} — {} seed {}", self.scenario_name, self.res.seed);
        Ok(vec![
            ("throughput.svg", plots::svg(&title("throughput"), "sends/s", &s.throughput, w, s.end_ms)?),
            ("latency.svg", plots::svg(&title("send latency (invoke to completion)"), "ms", &s.latency, w, s.end_ms)?),
            ("lag.svg", plots::svg(&title("consumer lag"), "offsets behind acks", &s.lag, w, s.end_ms)?),
            ("unseen.svg", plots::svg(&title("acked but not yet read"), "values", &s.unseen, w, s.end_ms)?),
        ])
    }
}

/// Writes `res`'s directory at `dir` (created if missing): the files of
/// [`SEED_FILES`].
pub fn write_seed_dir(dir: &Path, scenario: &Scenario, scenario_path: &str, res: &SeedResult) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let r = SeedReport::new(scenario, scenario_path, res);
    std::fs::write(dir.join("history.jsonl"), r.history.to_jsonl())?;
    std::fs::write(dir.join("results.json"), r.results_json())?;
    std::fs::write(dir.join("observations.jsonl"), crate::observations::to_jsonl(r.observations))?;
    std::fs::write(dir.join("faults.jsonl"), windows::to_jsonl(&r.windows))?;
    std::fs::write(dir.join("log.txt"), log_txt::render(&r))?;
    std::fs::write(dir.join("timeline.html"), timeline::render(&r))?;
    for (name, svg) in r.plots().map_err(io::Error::other)? {
        std::fs::write(dir.join(name), svg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{Anomaly, CheckResult};
    use crate::faults::{FaultEvent, FaultLogEntry};
    use crate::history::Op;
    use crate::report::SeedArtifacts;
    use crate::scenario::FaultKind;
    use ksim_broker::observe::{ObsEvent, Observation};
    use std::sync::Arc;

    const P: &str = "events/0";

    fn obs(t_ms: u64, broker: i32, incarnation: u64, event: ObsEvent) -> Observed {
        Observed { t_ms, obs: Observation { broker, incarnation, topic: "events".into(), partition: 0, event } }
    }

    fn anomaly(key: &'static str, value: Option<i64>, offset: Option<i64>, detail: &str) -> Anomaly {
        Anomaly { key, partition: P.into(), value, offset, detail: detail.into() }
    }

    /// A small acks=1 failover: value 2 acknowledged at offset 1 by leader
    /// broker 0, which crashes; broker 1 leads, value 4 lands at offset 1;
    /// both readers see 4 there. Broker 1's HW goes back once.
    fn fixture() -> (Scenario, SeedResult) {
        let sc = crate::report::tests::scenario("verdict = \"pass\"");
        let history = History {
            ops: vec![
                Op::assign_ok(2, 0, vec![P.into()]),
                Op::send_ok(0, 100, P, 1, Some(0)).invoked_at(50),
                Op::send_ok(0, 300, P, 2, Some(1)).invoked_at(200),
                Op::send_info(0, 1200, P, 3).invoked_at(700).with_error("REQUEST_TIMED_OUT"),
                Op::send_ok(0, 1500, P, 4, Some(1)).invoked_at(1400),
                Op::poll_ok(2, 1800, vec![(P.into(), vec![(0, 1), (1, 4)])]),
                Op::poll_ok(3, 2500, vec![(P.into(), vec![(0, 1), (1, 4)])]),
            ],
        };
        let observations = vec![
            obs(0, 0, 1, ObsEvent::PartitionState { leader: 0, isr: vec![0, 1] }),
            obs(0, 0, 1, ObsEvent::BecameLeader { epoch: 1 }),
            obs(0, 1, 1, ObsEvent::PartitionState { leader: 0, isr: vec![0, 1] }),
            obs(350, 0, 1, ObsEvent::Hw { value: 2 }),
            obs(500, 1, 1, ObsEvent::PartitionState { leader: 1, isr: vec![1] }),
            obs(500, 1, 1, ObsEvent::BecameLeader { epoch: 2 }),
            obs(520, 1, 1, ObsEvent::Hw { value: 3 }),
            obs(1000, 0, 2, ObsEvent::Opened { log_start: 0, log_end: 2, hw: 2, batches: vec![] }),
            obs(1010, 0, 2, ObsEvent::Truncate { to: 1 }),
            obs(1100, 0, 2, ObsEvent::PartitionState { leader: 1, isr: vec![0, 1] }),
            obs(1600, 1, 1, ObsEvent::Hw { value: 2 }),
        ];
        let ev = |at_ms, kind, target: &str, duration_ms| FaultEvent { at_ms, kind, target: target.parse().unwrap(), duration_ms, options: Default::default() };
        let act = |t_ms, action: &str, node: &str| FaultLogEntry { t_ms, action: action.into(), node: node.into() };
        let fault_schedule = vec![ev(400, FaultKind::Crash, "leader:events/0", Some(600)), ev(2000, FaultKind::Partition, "broker:1", None)];
        let fault_log = vec![act(400, "crash", "broker-0"), act(1000, "restart", "broker-0"), act(2000, "isolate", "broker-1"), act(2600, "heal", "broker-1")];
        let check = CheckResult::from_anomalies(vec![
            anomaly("lost-write", Some(2), Some(1), "value 2 acknowledged at offset 1 (at 300 ms) was gone when a poll at 1800 ms read offsets 0..=1: value 4 there"),
            anomaly("unseen", Some(2), Some(1), "value 2 acknowledged at offset 1 was never read"),
            anomaly("hw-regression", Some(2), Some(3), "at 1600 ms broker 1's HW went from 3 back to 2 in one process lifetime"),
        ]);
        let mut res = SeedResult::judge(&sc, 7, history, check, "c0ffee".repeat(10), 3000, 5, fault_log.len() as u64);
        res.artifacts = Some(Arc::new(SeedArtifacts {
            observations,
            observations_dropped: 0,
            fault_log,
            fault_schedule,
            final_reads_complete: true,
        }));
        (sc, res)
    }

    /// `results.json` with zero counts dropped, so checkers added to the
    /// catalogue later do not change the snapshot.
    fn results_without_zero_counts(json: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["anomalies"].as_object_mut().unwrap().retain(|_, n| n.as_u64() != Some(0));
        serde_json::to_string_pretty(&v).unwrap()
    }

    /// The timeline's shape: lanes, counts of classed elements, the fault
    /// and anomaly titles; no coordinates.
    fn timeline_structure(html: &str) -> String {
        let mut out = String::new();
        for lane in html.split("<g class=\"lane ").skip(1) {
            let class = lane.split('"').next().unwrap();
            let label = lane.split("class=\"label\"").nth(1).and_then(|r| r.split('>').nth(1)).and_then(|r| r.split('<').next()).unwrap();
            let count = |needle: &str| lane.split("</g>\n").next().unwrap().matches(needle).count();
            out.push_str(&format!(
                "lane {class}: {label} (leader segments {}, isr ticks {}, op bars {}, events {}, anomalous {})\n",
                count("class=\"leader\""),
                count("class=\"isr\""),
                count("class=\"ops "),
                count("class=\"event "),
                count("class=\"anomalous\""),
            ));
        }
        for piece in html.split("<rect class=\"fault\"").skip(1) {
            let title = piece.split("<title>").nth(1).unwrap().split("</title>").next().unwrap();
            out.push_str(&format!("fault window: {title}\n"));
        }
        for piece in html.split("<li id=\"").skip(1) {
            out.push_str(&format!("listed: {}\n", piece.split("<pre>").next().unwrap()));
        }
        out
    }

    #[test]
    fn results_json_adds_details_with_their_ops_to_the_seed_object() {
        let (sc, res) = fixture();
        let r = SeedReport::new(&sc, "scenarios/t.toml", &res);
        let json = r.results_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["details"][0]["ops"].as_array().unwrap().len(), 3, "{json}");
        assert_eq!(v["details"][2]["t_ms"], 1600);
        assert_eq!(v["examples"]["lost-write"][0]["value"], 2);
        insta::assert_snapshot!(results_without_zero_counts(&json));
    }

    #[test]
    fn faults_jsonl_has_one_window_per_scheduled_fault() {
        let (sc, res) = fixture();
        let r = SeedReport::new(&sc, "scenarios/t.toml", &res);
        insta::assert_snapshot!(windows::to_jsonl(&r.windows));
    }

    #[test]
    fn log_txt_tells_faults_leaders_ops_and_anomalies_in_time_order() {
        let (sc, res) = fixture();
        let log = log_txt::render(&SeedReport::new(&sc, "scenarios/t.toml", &res));
        let at = |s: &str| log.find(s).unwrap_or_else(|| panic!("{s} missing from\n{log}"));
        assert!(at("FAULT crash leader:events/0 on broker-0") < at("LEADER events/0: broker 1"));
        assert!(at("ANOMALOUS (lost-write, unseen) process 0 send ok events/0 value 2 -> offset 1") < at("ANOMALIES (3)"));
        insta::assert_snapshot!(log);
    }

    #[test]
    fn timeline_html_is_self_contained_with_lanes_windows_and_clickable_anomalies() {
        let (sc, res) = fixture();
        let html = timeline::render(&SeedReport::new(&sc, "scenarios/t.toml", &res));
        assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
        // Nothing fetched: no external scripts, styles, images or links.
        for bad in ["src=", "<link", "href=\"http", "url("] {
            assert!(!html.contains(bad), "{bad} in timeline");
        }
        assert!(html.contains("data-a=\"0 1\""), "the lost and unseen value's ack is one mark for both anomalies");
        insta::assert_snapshot!(timeline_structure(&html));
    }

    #[test]
    fn plots_shade_fault_windows_and_draw_each_series() {
        let (sc, res) = fixture();
        let plots = SeedReport::new(&sc, "scenarios/t.toml", &res).plots().unwrap();
        let names: Vec<&str> = plots.iter().map(|p| p.0).collect();
        assert_eq!(names, vec!["throughput.svg", "latency.svg", "lag.svg", "unseen.svg"]);
        let shapes: String =
            plots.iter().map(|(name, svg)| format!("== {name}\n{}", plots::tests::structure(svg))).collect();
        // Two fault windows shaded in every plot.
        assert_eq!(shapes.matches("2 × rect fill=#D62728 opacity=0.12").count(), 4, "{shapes}");
        insta::assert_snapshot!(shapes);
    }

    #[test]
    fn write_seed_dir_writes_every_file() {
        let (sc, res) = fixture();
        let dir = std::env::temp_dir().join(format!("ksim-seed-dir-test-{}", std::process::id()));
        write_seed_dir(&dir, &sc, "scenarios/t.toml", &res).unwrap();
        for f in SEED_FILES {
            assert!(dir.join(f).is_file(), "{f}");
        }
        let back = crate::observations::from_jsonl(&std::fs::read_to_string(dir.join("observations.jsonl")).unwrap()).unwrap();
        assert_eq!(back, res.artifacts.as_ref().unwrap().observations);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
