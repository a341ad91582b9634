//! `log.txt`: one seed told in simulated time, for a reader who has not
//! seen ksim before.
//!
//! # Format
//!
//! A header (scenario, verdict, anomaly counts and `note:` lines that
//! explain them, replay command), then one
//! line per event, `[  12.345s] WHAT details`, in time order:
//!
//! - `FAULT` a fault window opens (kind, target, nodes, until when) and
//!   `ACTION` each thing the injector did;
//! - `LEADER` / `ISR` the controller's record of a partition changed (as the
//!   first live replica applied it), `ELECTED` a broker became leader in an
//!   epoch, `TRUNCATE` a replica cut its log, `OPEN` a replica was
//!   recovered by a (re)started broker, `OFFLINE` its log dir failed;
//! - `OPS` once per second of the workload (and after, when something
//!   happened): sends by outcome (and the commonest errors), polls and
//!   records read, each partition's HW as its leader reports it;
//! - `ANOMALOUS` an operation some checker flagged, with the keys;
//! - `ASSIGN`, `REBALANCE`, `CLIENT` other client operations.
//!
//! Then an `ANOMALIES` section: each anomaly's detail and the operations
//! it involves.

use super::windows::secs;
use super::SeedReport;
use crate::history::{Op, OpType};
use ksim_broker::observe::ObsEvent;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Event lines at most; the rest are counted.
pub const LOG_LINES_MAX: usize = 50_000;
/// Anomalies listed in the closing section at most.
pub const LOG_ANOMALIES_MAX: usize = 200;
/// Errors named per `OPS` line at most.
const OPS_ERRORS_SHOWN: usize = 3;

/// `[  12.345s]`.
pub fn stamp(t_ms: u64) -> String {
    format!("[{:>9}s]", secs(t_ms))
}

/// One op in a line: `process 0 send ok events/0 value 42 -> offset 17 (invoked 9.001s)`.
pub fn describe_op(op: &Op) -> String {
    let ty = match op.op_type {
        OpType::Ok => "ok",
        OpType::Fail => "fail",
        OpType::Info => "info",
    };
    let mut parts: Vec<String> = Vec::new();
    for s in op.send_views(0) {
        let to = s.offset.map_or_else(String::new, |o| format!(" -> offset {o}"));
        parts.push(format!("{} value {}{to}", s.partition, s.value));
    }
    for p in op.poll_views() {
        let (Some(first), Some(last)) = (p.reads.first(), p.reads.last()) else { continue };
        let pairs: Vec<String> = p.reads.iter().take(6).map(|(o, v)| format!("{o}={v}")).collect();
        let more = if p.reads.len() > 6 { format!(" +{} more", p.reads.len() - 6) } else { String::new() };
        parts.push(format!("{} offsets {}..={} [{}{more}]", p.partition, first.0, last.0, pairs.join(" ")));
    }
    if parts.is_empty() && !op.value.is_null() {
        let v = op.value.to_string();
        parts.push(if v.chars().count() > 120 { format!("{}…", v.chars().take(120).collect::<String>()) } else { v });
    }
    let mut line = format!("process {} {} {ty} {}", op.process, op.f, parts.join(", "));
    if let Some(inv) = op.invoke_t_ms {
        let _ = write!(line, " (invoked {}s)", secs(inv));
    }
    if let Some(e) = &op.error {
        let _ = write!(line, " error {e}");
    }
    line
}

/// Sends and polls of one second, for its `OPS` line.
#[derive(Default)]
struct Second {
    ok: u64,
    fail: u64,
    info: u64,
    errors: BTreeMap<String, u64>,
    polls: u64,
    records: u64,
}

impl Second {
    fn is_empty(&self) -> bool {
        self.ok + self.fail + self.info + self.polls == 0
    }
}

/// The whole `log.txt`.
pub fn render(r: &SeedReport<'_>) -> String {
    let res = r.res;
    let mut out = format!("ksim seed {} of {} ({})\n", res.seed, r.scenario_name, r.scenario_path);
    let _ = writeln!(out, "verdict {} (expected {}), {}", res.verdict, res.expected, if res.met { "met" } else { "NOT met" });
    for n in &res.notes {
        let _ = writeln!(out, "why: {n}");
    }
    let found = res.anomalies_found();
    let _ = writeln!(out, "anomalies: {}", if found.is_empty() { "none" } else { &found });
    for e in res.explanations() {
        let _ = writeln!(out, "note: {e}");
    }
    let _ = writeln!(out, "trace hash: {}", res.trace_hash);
    let _ = writeln!(out, "replay: {}", r.replay);
    let _ = writeln!(out, "ops {}, fault windows {}, broker observations {}", res.ops, r.windows.len(), r.observations.len());
    out.push_str("times: simulated seconds since the workload started (setup at 0.000)\n\n");

    // (time, line), pushed category by category; a stable sort by time
    // keeps faults before observations before ops at one instant.
    let mut lines: Vec<(u64, String)> = Vec::new();
    for w in &r.windows {
        lines.push((w.start_ms, format!("FAULT {}", w.describe())));
        for a in &w.actions {
            lines.push((a.t_ms, format!("ACTION {} {}", a.action, a.node)));
        }
    }
    observation_lines(r, &mut lines);
    op_lines(r, &mut lines);
    lines.sort_by_key(|l| l.0);
    let shown = lines.len().min(LOG_LINES_MAX);
    for (t, l) in &lines[..shown] {
        let _ = writeln!(out, "{} {l}", stamp(*t));
    }
    if lines.len() > shown {
        let _ = writeln!(out, "… {} more lines", lines.len() - shown);
    }

    let _ = writeln!(out, "\nANOMALIES ({})", res.details.len());
    if res.details.is_empty() {
        out.push_str("none\n");
    }
    for f in r.findings.iter().take(LOG_ANOMALIES_MAX) {
        let a = &res.details[f.anomaly];
        let when = f.t_ms.map_or_else(String::new, |t| format!(" {}", stamp(t)));
        let part = if a.partition.is_empty() { String::new() } else { format!(" {}", a.partition) };
        let _ = writeln!(out, "{}{part}{when}: {}", a.key, a.detail);
        for &i in &f.ops {
            let op = &r.history.ops[i];
            let _ = writeln!(out, "    {} {}", stamp(op.t_ms), describe_op(op));
        }
    }
    if r.findings.len() > LOG_ANOMALIES_MAX {
        let _ = writeln!(out, "… {} more anomalies (all in results.json)", r.findings.len() - LOG_ANOMALIES_MAX);
    }
    out
}

/// Leader, ISR, election, truncation, recovery and dir failure lines; HWs
/// go to the `OPS` lines instead (they move on every fetch).
fn observation_lines(r: &SeedReport<'_>, lines: &mut Vec<(u64, String)>) {
    let mut record: BTreeMap<String, (i32, Vec<i32>)> = BTreeMap::new();
    for o in r.observations {
        let p = format!("{}/{}", o.obs.topic, o.obs.partition);
        let b = o.obs.broker;
        let line = match &o.obs.event {
            ObsEvent::PartitionState { leader, isr } => {
                let prev = record.insert(p.clone(), (*leader, isr.clone()));
                match prev {
                    Some((l, i)) if l == *leader && i == *isr => None,
                    Some((l, _)) if l == *leader => Some(format!("ISR {p}: {isr:?} (leader broker {leader})")),
                    _ => Some(format!("LEADER {p}: broker {leader}, ISR {isr:?}")),
                }
            }
            ObsEvent::BecameLeader { epoch } => Some(format!("ELECTED broker {b} leads {p} in epoch {epoch}")),
            ObsEvent::Truncate { to } => Some(format!("TRUNCATE broker {b} {p} to offset {to}")),
            ObsEvent::Opened { log_start, log_end, hw, .. } => {
                Some(format!("OPEN broker {b} {p}: recovered log [{log_start}, {log_end}), HW {hw}"))
            }
            ObsEvent::Offline { dir } => Some(format!("OFFLINE broker {b} {p}: log dir {dir} failed")),
            _ => None,
        };
        if let Some(l) = line {
            lines.push((o.t_ms, l));
        }
    }
}

/// `OPS` lines per second, `ANOMALOUS` ops and other client operations.
fn op_lines(r: &SeedReport<'_>, lines: &mut Vec<(u64, String)>) {
    let mut seconds: BTreeMap<u64, Second> = BTreeMap::new();
    for (i, op) in r.history.ops.iter().enumerate() {
        let s = seconds.entry(op.t_ms / 1000).or_default();
        for send in op.send_views(i) {
            match send.op_type {
                OpType::Ok => s.ok += 1,
                OpType::Fail => s.fail += 1,
                OpType::Info => s.info += 1,
            }
            if let Some(e) = &op.error {
                *s.errors.entry(e.clone()).or_default() += 1;
            }
        }
        let polls = op.poll_views();
        if !polls.is_empty() {
            s.polls += 1;
            s.records += polls.iter().map(|p| p.reads.len() as u64).sum::<u64>();
        }
        if let Some(keys) = r.anomalous_ops.get(&i) {
            let names: Vec<&str> = keys.iter().map(|&a| r.res.details[a].key).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            lines.push((op.t_ms, format!("ANOMALOUS ({}) {}", names.join(", "), describe_op(op))));
        } else if !matches!(op.f.as_str(), "send" | "poll") {
            let what = match op.f.as_str() {
                "assign" | "subscribe" => "ASSIGN",
                "rebalance" => "REBALANCE",
                _ => "CLIENT",
            };
            lines.push((op.t_ms, format!("{what} {}", describe_op(op))));
        }
    }
    // HW per partition, as its leader (by the latest record) reports it.
    let mut hws: Vec<(u64, String, i32, i64)> = Vec::new();
    let mut leader_at: Vec<(u64, String, i32)> = Vec::new();
    for o in r.observations {
        let p = format!("{}/{}", o.obs.topic, o.obs.partition);
        match &o.obs.event {
            ObsEvent::Hw { value } => hws.push((o.t_ms, p, o.obs.broker, *value)),
            ObsEvent::Opened { hw, .. } => hws.push((o.t_ms, p, o.obs.broker, *hw)),
            ObsEvent::PartitionState { leader, .. } => leader_at.push((o.t_ms, p, *leader)),
            _ => {}
        }
    }
    let mut leader: BTreeMap<String, i32> = BTreeMap::new();
    let mut hw: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let (mut h, mut l) = (0, 0);
    let last_second = seconds.keys().next_back().copied().unwrap_or(0).max(r.end_ms / 1000);
    let mut shown_hw: BTreeMap<String, i64> = BTreeMap::new();
    for sec in 0..=last_second {
        let end = (sec + 1) * 1000;
        while l < leader_at.len() && leader_at[l].0 < end {
            leader.insert(leader_at[l].1.clone(), leader_at[l].2);
            l += 1;
        }
        while h < hws.len() && hws[h].0 < end {
            hw.insert((hws[h].1.clone(), hws[h].2), hws[h].3);
            h += 1;
        }
        let now: BTreeMap<String, i64> =
            leader.iter().filter_map(|(p, &b)| hw.get(&(p.clone(), b)).map(|&v| (p.clone(), v))).collect();
        let empty = Second::default();
        let s = seconds.get(&sec).unwrap_or(&empty);
        // Quiet seconds show while the workload runs (a stall is news).
        if s.is_empty() && now == shown_hw && end > r.duration_ms {
            continue;
        }
        let mut line = format!("OPS {}–{}s: sends {} ok, {} fail, {} info", sec, sec + 1, s.ok, s.fail, s.info);
        if !s.errors.is_empty() {
            let mut errs: Vec<(&String, &u64)> = s.errors.iter().collect();
            errs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let named: Vec<String> = errs.iter().take(OPS_ERRORS_SHOWN).map(|(e, n)| format!("{e}×{n}")).collect();
            let _ = write!(line, " ({})", named.join(", "));
        }
        let _ = write!(line, "; polls {} read {} records", s.polls, s.records);
        if !now.is_empty() {
            let named: Vec<String> = now.iter().map(|(p, v)| format!("{p}={v}")).collect();
            let _ = write!(line, "; HW {}", named.join(" "));
        }
        lines.push((end, line));
        shown_hw = now;
    }
}
