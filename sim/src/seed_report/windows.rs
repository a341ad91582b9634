//! Fault windows: the injector's log ([`FaultLogEntry`], one line per
//! action on one node) paired into intervals — `crash broker-1` at 8 s with
//! `restart broker-1` at 14 s — and matched to the scheduled fault that
//! caused them, so a report can say "crash of `leader:events/0`, which was
//! broker-1, from 8.0 s to 14.0 s".
//!
//! # Format
//!
//! `faults.jsonl` holds one [`FaultWindow`] per line, in start order:
//!
//! ```text
//! {"kind":"crash","target":"leader:events/0","nodes":["broker-1"],"start_ms":8000,"end_ms":14000,
//!  "actions":[{"t_ms":8000,"action":"crash","node":"broker-1"},{"t_ms":14000,"action":"restart","node":"broker-1"}]}
//! ```
//!
//! A scheduled fault that hit no node (its target resolved to nothing, or
//! the node was already down) has `nodes: []` and `end_ms == start_ms`; an
//! action that matches no scheduled fault (a restart at heal of a node that
//! halted) has `target: null`.

use crate::faults::{FaultEvent, FaultLogEntry};
use crate::scenario::Target;
use serde::Serialize;

/// One fault as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultWindow {
    /// The fault kind as scenarios name it (`crash`, `partition`, …).
    pub kind: String,
    /// The target as the schedule wrote it (`leader:events/0`, `random`);
    /// `None` for an action no scheduled fault explains.
    pub target: Option<String>,
    /// The nodes it hit (`broker-1`, `controller-0`), in the log's order.
    pub nodes: Vec<String>,
    /// Simulated ms since the main phase began, as the history.
    pub start_ms: u64,
    /// When its last node recovered (heal at the latest); `start_ms` for a
    /// fault that took no time or hit nothing.
    pub end_ms: u64,
    /// The injector's actions that make up the window, in order.
    pub actions: Vec<FaultLogEntry>,
}

impl FaultWindow {
    /// `crash leader:events/0 on broker-1, 8.000–14.000 s`.
    pub fn describe(&self) -> String {
        let target = self.target.as_deref().unwrap_or("(unscheduled)");
        let on = if self.nodes.is_empty() { "no node".to_string() } else { self.nodes.join(", ") };
        format!("{} {target} on {on}, {}–{} s", self.kind, secs(self.start_ms), secs(self.end_ms))
    }
}

/// `12.345`: ms as seconds with three decimals.
pub fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Start actions (first word of the log's `action`), the fault kind each
/// belongs to and the action that ends it. A kind the injector learns
/// later whose action is not listed here shows as an instant window.
const PAIRS: &[(&str, &str, &str)] = &[
    ("crash", "crash", "restart"),
    ("shutdown", "shutdown", "restart"),
    ("power-loss", "power-loss", "restart"),
    ("stop-for-restart", "restart", "restart"),
    ("pause", "pause", "resume"),
    ("isolate", "partition", "heal"),
    ("disk-eio", "disk-eio", "repair-disk"),
    ("disk-full", "disk-full", "repair-disk"),
    ("disk-dir-fail", "disk-dir-fail", "repair-disk"),
    ("partition", "partition", "heal-partition"),
    ("latency", "latency", "restore-network"),
    ("loss", "loss", "restore-network"),
    ("slow-consumer", "slow-consumer", "unstall"),
    // The jump back is logged as another `clock-jump` (of -delta).
    ("clock-jump", "clock-jump", "clock-jump"),
];

/// One node's share of a fault, while pairing.
struct Interval {
    kind: String,
    /// The action that closes it; `None` once closed (or never open).
    ends_with: Option<&'static str>,
    node: String,
    start_ms: u64,
    end_ms: u64,
    actions: Vec<FaultLogEntry>,
    /// Claimed by a scheduled fault.
    taken: bool,
}

fn first_word(action: &str) -> &str {
    action.split_whitespace().next().unwrap_or("")
}

/// Pairs the log into per-node intervals. Still open at the end: closed at
/// `end_ms` (the run's end).
fn intervals(log: &[FaultLogEntry], end_ms: u64) -> Vec<Interval> {
    let mut out: Vec<Interval> = Vec::new();
    for e in log {
        let word = first_word(&e.action);
        let start = PAIRS.iter().find(|p| p.0 == word);
        // What ends an open interval: on its node; for an action that never
        // starts one, on any node (a shaped partition heals under the name
        // of its first link, network faults under `network`).
        let open = out.iter().position(|i| i.node == e.node && i.ends_with == Some(word)).or_else(|| {
            if start.is_some() {
                None
            } else {
                out.iter().position(|i| i.ends_with == Some(word))
            }
        });
        if let Some(at) = open {
            let i = &mut out[at];
            i.ends_with = None;
            i.end_ms = e.t_ms;
            i.actions.push(e.clone());
            continue;
        }
        if let Some(&(_, kind, ends_with)) = start {
            out.push(Interval {
                kind: kind.to_string(),
                ends_with: Some(ends_with),
                node: e.node.clone(),
                start_ms: e.t_ms,
                end_ms: e.t_ms,
                actions: vec![e.clone()],
                taken: false,
            });
            continue;
        }
        out.push(Interval {
            kind: word.to_string(),
            ends_with: None,
            node: e.node.clone(),
            start_ms: e.t_ms,
            end_ms: e.t_ms,
            actions: vec![e.clone()],
            taken: false,
        });
    }
    for i in &mut out {
        if i.ends_with.take().is_some() {
            i.end_ms = end_ms.max(i.start_ms);
        }
    }
    out
}

/// The scenario's name of a fault kind (`disk-eio`).
fn kind_name(ev: &FaultEvent) -> String {
    ev.kind.to_string()
}

/// The one node a target names outright, if it does.
fn named_node(target: &Target) -> Option<String> {
    match target {
        Target::Broker(n) => Some(format!("broker-{n}")),
        Target::Controller(n) => Some(format!("controller-{n}")),
        _ => None,
    }
}

/// The windows of one run: every scheduled fault (in schedule order, those
/// naming a node matched first) with the intervals it caused, then any
/// interval no fault explains; sorted by start. `end_ms` closes intervals
/// still open when the log ends.
pub fn windows(schedule: &[FaultEvent], log: &[FaultLogEntry], end_ms: u64) -> Vec<FaultWindow> {
    let mut ivs = intervals(log, end_ms);
    let mut by_event: Vec<Vec<usize>> = vec![Vec::new(); schedule.len()];
    // Specific targets first, so a `leader:` fault at the same instant
    // cannot claim the node a `broker:N` fault named.
    let order: Vec<usize> = (0..schedule.len())
        .filter(|&i| named_node(&schedule[i].target).is_some())
        .chain((0..schedule.len()).filter(|&i| named_node(&schedule[i].target).is_none()))
        .collect();
    for e in order {
        let ev = &schedule[e];
        let kind = kind_name(ev);
        let named = named_node(&ev.target);
        let all = ev.target == Target::AllBrokers;
        for (i, iv) in ivs.iter_mut().enumerate() {
            let fits = !iv.taken
                && iv.start_ms == ev.at_ms
                && iv.kind == kind
                && named.as_ref().is_none_or(|n| *n == iv.node)
                && (!all || iv.node.starts_with("broker-"));
            if fits {
                iv.taken = true;
                by_event[e].push(i);
                if !all {
                    break;
                }
            }
        }
    }
    let mut out: Vec<FaultWindow> = schedule
        .iter()
        .zip(&by_event)
        .map(|(ev, hits)| {
            let hit: Vec<&Interval> = hits.iter().map(|&i| &ivs[i]).collect();
            FaultWindow {
                kind: kind_name(ev),
                target: Some(ev.target.to_string()),
                nodes: hit.iter().map(|i| i.node.clone()).collect(),
                start_ms: ev.at_ms,
                end_ms: hit.iter().map(|i| i.end_ms).max().unwrap_or(ev.at_ms),
                actions: hit.iter().flat_map(|i| i.actions.iter().cloned()).collect(),
            }
        })
        .collect();
    out.extend(ivs.iter().filter(|i| !i.taken).map(|i| FaultWindow {
        kind: i.kind.clone(),
        target: None,
        nodes: vec![i.node.clone()],
        start_ms: i.start_ms,
        end_ms: i.end_ms,
        actions: i.actions.clone(),
    }));
    out.sort_by_key(|w| w.start_ms);
    out
}

/// One JSON object per window per line.
pub fn to_jsonl(windows: &[FaultWindow]) -> String {
    super::jsonl(windows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::FaultKind;

    fn ev(at_ms: u64, kind: FaultKind, target: &str, duration_ms: Option<u64>) -> FaultEvent {
        FaultEvent { at_ms, kind, target: target.parse().unwrap(), duration_ms, options: Default::default() }
    }

    fn act(t_ms: u64, action: &str, node: &str) -> FaultLogEntry {
        FaultLogEntry { t_ms, action: action.into(), node: node.into() }
    }

    #[test]
    fn graceful_shutdown_and_restart_pair_into_one_window() {
        let schedule = vec![ev(4000, FaultKind::Shutdown, "broker:2", Some(4000))];
        let log = vec![act(4000, "shutdown", "broker-2"), act(8000, "restart", "broker-2")];
        let w = windows(&schedule, &log, 40_000);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].kind.as_str(), w[0].start_ms, w[0].end_ms), ("shutdown", 4000, 8000));
    }

    #[test]
    fn crash_and_restart_pair_into_one_window_naming_the_resolved_leader() {
        let schedule = vec![ev(8000, FaultKind::Crash, "leader:events/0", Some(6000))];
        let log = vec![act(8000, "crash", "broker-1"), act(14000, "restart", "broker-1")];
        let w = windows(&schedule, &log, 40_000);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].kind.as_str(), w[0].target.as_deref()), ("crash", Some("leader:events/0")));
        assert_eq!((w[0].nodes.clone(), w[0].start_ms, w[0].end_ms), (vec!["broker-1".to_string()], 8000, 14000));
        assert_eq!(w[0].describe(), "crash leader:events/0 on broker-1, 8.000–14.000 s");
    }

    #[test]
    fn simultaneous_faults_on_named_brokers_keep_their_own_nodes() {
        // unclean-election-on: brokers 1 and 2 crash at 3 s, a leader fault at the same instant.
        let schedule = vec![
            ev(3000, FaultKind::Crash, "leader:events/0", None),
            ev(3000, FaultKind::Crash, "broker:2", Some(14000)),
            ev(3000, FaultKind::Crash, "broker:1", Some(14000)),
        ];
        let log = vec![
            act(3000, "crash", "broker-0"),
            act(3000, "crash", "broker-2"),
            act(3000, "crash", "broker-1"),
            act(17000, "restart", "broker-2"),
            act(17000, "restart", "broker-1"),
            act(30000, "restart", "broker-0"),
        ];
        let w = windows(&schedule, &log, 40_000);
        let seen: Vec<(Option<&str>, Vec<String>, u64)> = w.iter().map(|w| (w.target.as_deref(), w.nodes.clone(), w.end_ms)).collect();
        assert_eq!(
            seen,
            vec![
                (Some("leader:events/0"), vec!["broker-0".into()], 30000),
                (Some("broker:2"), vec!["broker-2".into()], 17000),
                (Some("broker:1"), vec!["broker-1".into()], 17000),
            ]
        );
    }

    #[test]
    fn all_brokers_partition_spans_every_node_and_unexplained_actions_stand_alone() {
        let schedule = vec![ev(1000, FaultKind::Partition, "all-brokers", Some(2000)), ev(5000, FaultKind::Crash, "leader:x/0", None)];
        let log = vec![
            act(1000, "isolate", "broker-0"),
            act(1000, "isolate", "broker-1"),
            act(3000, "heal", "broker-0"),
            act(3500, "heal", "broker-1"),
            act(9000, "restart", "broker-2"),
        ];
        let w = windows(&schedule, &log, 10_000);
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].nodes.len(), w[0].end_ms), (2, 3500));
        // The leader crash hit nothing (no leader known): an empty window.
        assert_eq!((w[1].target.as_deref(), w[1].nodes.len(), w[1].end_ms), (Some("leader:x/0"), 0, 5000));
        assert_eq!((w[2].kind.as_str(), w[2].target.as_deref()), ("restart", None));
    }

    #[test]
    fn network_faults_shaped_partitions_and_clock_jumps_pair_with_their_undo() {
        let schedule = vec![
            ev(1000, FaultKind::Latency, "random", Some(1000)),
            ev(1500, FaultKind::Partition, "broker:0", Some(1000)),
            ev(1500, FaultKind::ClockJump, "producer:0", Some(500)),
        ];
        let log = vec![
            act(1000, "latency 50..200ms", "network"),
            act(1500, "partition majority [broker-0] [broker-1,broker-2]", "broker-0"),
            act(1500, "clock-jump 60000", "producer-0"),
            act(2000, "restore-network", "network"),
            act(2000, "clock-jump -60000", "producer-0"),
            act(2500, "heal-partition", "broker-1"),
        ];
        let w = windows(&schedule, &log, 9000);
        let seen: Vec<(&str, u64, u64, usize)> = w.iter().map(|w| (w.kind.as_str(), w.start_ms, w.end_ms, w.actions.len())).collect();
        assert_eq!(seen, vec![("latency", 1000, 2000, 2), ("partition", 1500, 2500, 2), ("clock-jump", 1500, 2000, 2)]);
    }

    #[test]
    fn a_fault_never_undone_lasts_to_the_end_of_the_log() {
        let schedule = vec![ev(1000, FaultKind::DiskDirFail, "broker:0", None)];
        let log = vec![act(1000, "disk-dir-fail /data1", "broker-0")];
        let w = windows(&schedule, &log, 7000);
        assert_eq!((w[0].kind.as_str(), w[0].end_ms), ("disk-dir-fail", 7000));
    }
}
