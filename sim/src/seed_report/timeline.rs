//! `timeline.html`: one seed on one page, self-contained (inline SVG, CSS
//! and a few lines of JS; nothing loaded from the network).
//!
//! # Layout
//!
//! Simulated time runs left to right. From the top:
//!
//! - one lane per partition: who leads it (a segment per leader, coloured
//!   by broker, labelled with the epoch it was elected in), a tick where
//!   its ISR changed, a mark where a broker-side anomaly shows;
//! - one lane per server node a fault hit: its fault windows;
//! - one lane per client process: its operations, drawn as a strip of
//!   small bars (one per few pixels of time: green for acknowledged sends,
//!   orange for unknown, red for failed, blue for polls; hover for counts),
//!   rebalances and assignments as diamonds, and every anomalous operation
//!   on its own in red (a send as a line from invocation to completion).
//!
//! Every fault window is also shaded across all lanes. Hovering anything
//! shows its details; clicking an anomalous mark shows its anomalies and
//! the operations involved in the panel at the top (and jumps to the list
//! below the chart, which also works without JS).

use super::log_txt::{describe_op, stamp};
use super::windows::secs;
use super::SeedReport;
use crate::report_files::xml_escape as esc;
use crate::history::OpType;
use ksim_broker::observe::ObsEvent;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Width of the label column, px.
const LABEL_W: f64 = 190.0;
/// Width of the time axis, px.
const PLOT_W: f64 = 1200.0;
/// Height of a lane, px.
const LANE_H: f64 = 24.0;
/// Height of the axis above the lanes, px.
const AXIS_H: f64 = 30.0;
/// Width of one bar of a process' operation strip, px.
const BAR_W: f64 = 3.0;
/// Anomalies drawn and listed at most (the rest are counted).
pub const TIMELINE_ANOMALIES_MAX: usize = 500;
/// Broker colours for leader segments, by broker id modulo length.
const BROKER_COLOURS: &[&str] = &["#4e79a7", "#59a14f", "#edc948", "#b07aa1", "#76b7b2", "#ff9da7", "#9c755f", "#bab0ac"];

/// Maps simulated ms to x pixels.
struct Scale {
    end_ms: u64,
}

impl Scale {
    fn x(&self, t_ms: u64) -> f64 {
        LABEL_W + PLOT_W * (t_ms.min(self.end_ms) as f64) / (self.end_ms.max(1) as f64)
    }
}

/// A tick step (s) giving at most about 15 ticks.
fn tick_step_s(end_ms: u64) -> u64 {
    let span_s = end_ms.div_ceil(1000).max(1);
    [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600].into_iter().find(|s| span_s / s <= 15).unwrap_or(3600)
}

/// One lane: its label and its SVG body (drawn at `y`).
struct Lane {
    label: String,
    class: &'static str,
    body: String,
}

/// A leader segment of a partition.
struct Segment {
    from_ms: u64,
    leader: i32,
    epoch: Option<i32>,
    isr: Vec<i32>,
}

/// A partition's lane: leader segments and ISR changes `(t_ms, isr)`.
type PartitionLane = (Vec<Segment>, Vec<(u64, Vec<i32>)>);

/// Per partition, leader segments and ISR-change times (with the ISR).
fn partition_history(r: &SeedReport<'_>) -> BTreeMap<String, PartitionLane> {
    let mut out: BTreeMap<String, PartitionLane> = BTreeMap::new();
    for o in r.observations {
        let p = format!("{}/{}", o.obs.topic, o.obs.partition);
        match &o.obs.event {
            ObsEvent::BecameLeader { epoch } => {
                let (segs, _) = out.entry(p).or_default();
                match segs.last_mut() {
                    Some(s) if s.leader == o.obs.broker => s.epoch = Some(*epoch),
                    _ => segs.push(Segment { from_ms: o.t_ms, leader: o.obs.broker, epoch: Some(*epoch), isr: Vec::new() }),
                }
            }
            ObsEvent::PartitionState { leader, isr } => {
                let (segs, isrs) = out.entry(p.clone()).or_default();
                match segs.last_mut() {
                    Some(s) if s.leader == *leader => {
                        if s.isr != *isr {
                            if !s.isr.is_empty() {
                                isrs.push((o.t_ms, isr.clone()));
                            }
                            s.isr = isr.clone();
                        }
                    }
                    // The epoch shows once the new leader says it took over.
                    _ => segs.push(Segment { from_ms: o.t_ms, leader: *leader, epoch: None, isr: isr.clone() }),
                }
            }
            _ => {}
        }
    }
    out
}

/// The page.
pub fn render(r: &SeedReport<'_>) -> String {
    let res = r.res;
    let sc = Scale { end_ms: r.end_ms };
    let shown: Vec<usize> = (0..r.findings.len().min(TIMELINE_ANOMALIES_MAX)).collect();
    let mut lanes: Vec<Lane> = Vec::new();

    // Partitions: leaders, ISR changes, broker-side anomalies.
    let mut broker_marks: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &a in &shown {
        let f = &r.findings[a];
        if f.ops.is_empty() && f.t_ms.is_some() {
            broker_marks.entry(res.details[f.anomaly].partition.as_str()).or_default().push(a);
        }
    }
    let parts = partition_history(r);
    let mut part_names: BTreeSet<&str> = parts.keys().map(String::as_str).collect();
    part_names.extend(broker_marks.keys().filter(|p| !p.is_empty()).copied());
    for p in part_names {
        let mut body = String::new();
        if let Some((segs, isrs)) = parts.get(p) {
            for (i, s) in segs.iter().enumerate() {
                let to = segs.get(i + 1).map_or(r.end_ms, |n| n.from_ms);
                let (x0, x1) = (sc.x(s.from_ms), sc.x(to));
                let colour = if s.leader < 0 { "#cccccc" } else { BROKER_COLOURS[s.leader as usize % BROKER_COLOURS.len()] };
                let who = if s.leader < 0 { "no leader".to_string() } else { format!("broker {}", s.leader) };
                let epoch = s.epoch.map_or_else(String::new, |e| format!(", epoch {e}"));
                let isr = if s.isr.is_empty() { String::new() } else { format!(", ISR {:?}", s.isr) };
                let _ = write!(
                    body,
                    "<rect class=\"leader\" data-leader=\"{}\" x=\"{x0:.1}\" y=\"3\" width=\"{:.1}\" height=\"{}\" fill=\"{colour}\"><title>{}: {who}{epoch}{isr}, {}–{} s</title></rect>",
                    s.leader,
                    (x1 - x0).max(1.0),
                    LANE_H - 6.0,
                    esc(p),
                    secs(s.from_ms),
                    secs(to)
                );
                if x1 - x0 > 40.0 {
                    let label = if s.leader < 0 { "none".to_string() } else { format!("b{}{}", s.leader, s.epoch.map_or_else(String::new, |e| format!(" e{e}"))) };
                    let _ = write!(body, "<text x=\"{:.1}\" y=\"{}\" class=\"seg\">{}</text>", x0 + 3.0, LANE_H - 8.0, esc(&label));
                }
            }
            for (t, isr) in isrs {
                let x = sc.x(*t);
                let _ = write!(
                    body,
                    "<path class=\"isr\" d=\"M{x:.1} {} l-4 -6 h8 z\"><title>{}: ISR now {isr:?} at {} s</title></path>",
                    LANE_H - 1.0,
                    esc(p),
                    secs(*t)
                );
            }
        }
        for &a in broker_marks.get(p).into_iter().flatten() {
            let f = &r.findings[a];
            let an = &res.details[f.anomaly];
            let x = sc.x(f.t_ms.unwrap_or(0));
            let _ = write!(
                body,
                "<a href=\"#a-{a}\"><circle class=\"anomalous\" data-a=\"{a}\" cx=\"{x:.1}\" cy=\"{}\" r=\"5\"><title>{}: {}</title></circle></a>",
                LANE_H / 2.0,
                an.key,
                esc(&an.detail)
            );
        }
        lanes.push(Lane { label: p.to_string(), class: "partition", body });
    }

    // Server nodes a fault hit.
    let mut nodes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, w) in r.windows.iter().enumerate() {
        for n in &w.nodes {
            nodes.entry(n.as_str()).or_default().push(i);
        }
    }
    for (node, ws) in &nodes {
        let mut body = String::new();
        for &i in ws {
            let w = &r.windows[i];
            let (x0, x1) = (sc.x(w.start_ms), sc.x(w.end_ms));
            let _ = write!(
                body,
                "<rect class=\"fault-on-node\" data-kind=\"{}\" x=\"{x0:.1}\" y=\"3\" width=\"{:.1}\" height=\"{}\"><title>{}</title></rect><text x=\"{:.1}\" y=\"{}\" class=\"seg\">{}</text>",
                esc(&w.kind),
                (x1 - x0).max(2.0),
                LANE_H - 6.0,
                esc(&w.describe()),
                x0 + 3.0,
                LANE_H - 8.0,
                esc(&w.kind)
            );
        }
        lanes.push(Lane { label: node.to_string(), class: "node", body });
    }

    // Client processes.
    let mut by_process: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, op) in r.history.ops.iter().enumerate() {
        by_process.entry(op.process).or_default().push(i);
    }
    let bar_ms = ((r.end_ms.max(1) as f64) * BAR_W / PLOT_W).ceil().max(1.0) as u64;
    for (process, ops) in &by_process {
        lanes.push(process_lane(r, &sc, *process, ops, bar_ms));
    }

    // The SVG.
    let height = AXIS_H + LANE_H * lanes.len() as f64 + 10.0;
    let width = LABEL_W + PLOT_W + 20.0;
    let mut svg = format!(
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\n"
    );
    // Axis.
    let step = tick_step_s(r.end_ms);
    svg.push_str("<g class=\"axis\">");
    let mut t = 0;
    while t * 1000 <= r.end_ms {
        let x = sc.x(t * 1000);
        let _ = write!(svg, "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{height:.0}\"/><text x=\"{x:.1}\" y=\"{}\">{t}s</text>", AXIS_H - 8.0, AXIS_H - 12.0);
        t += step;
    }
    svg.push_str("</g>\n");
    for (i, lane) in lanes.iter().enumerate() {
        let y = AXIS_H + LANE_H * i as f64;
        let _ = writeln!(
            svg,
            "<g class=\"lane {}\" transform=\"translate(0 {y:.0})\"><rect class=\"lane-bg\" x=\"{LABEL_W}\" y=\"0\" width=\"{PLOT_W}\" height=\"{LANE_H}\"/><text class=\"label\" x=\"4\" y=\"{}\">{}</text>{}</g>",
            lane.class,
            LANE_H - 8.0,
            esc(&lane.label),
            lane.body
        );
    }
    // Fault windows across every lane, over them (they ignore the pointer).
    svg.push_str("<g class=\"faults\">");
    for w in r.windows.iter().filter(|w| !w.nodes.is_empty()) {
        let (x0, x1) = (sc.x(w.start_ms), sc.x(w.end_ms));
        let _ = write!(
            svg,
            "<rect class=\"fault\" data-kind=\"{}\" x=\"{x0:.1}\" y=\"{AXIS_H}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
            esc(&w.kind),
            (x1 - x0).max(2.0),
            height - AXIS_H,
            esc(&w.describe())
        );
    }
    svg.push_str("</g>\n");
    svg.push_str("</svg>\n");
    page(r, &svg, &shown)
}

/// A client process' lane: its operation strip, other ops, anomalous ops.
fn process_lane(r: &SeedReport<'_>, sc: &Scale, process: u64, ops: &[usize], bar_ms: u64) -> Lane {
    #[derive(Default)]
    struct Bar {
        ok: u64,
        fail: u64,
        info: u64,
        polls: u64,
        records: u64,
    }
    let mut bars: BTreeMap<u64, Bar> = BTreeMap::new();
    let mut body = String::new();
    let (mut sends, mut polls) = (false, false);
    let first_ms = ops.first().map_or(0, |&i| r.history.ops[i].t_ms);
    for &i in ops {
        let op = &r.history.ops[i];
        let b = bars.entry(op.t_ms / bar_ms).or_default();
        let sv: Vec<_> = op.send_views(i).collect();
        for s in &sv {
            sends = true;
            match s.op_type {
                OpType::Ok => b.ok += 1,
                OpType::Fail => b.fail += 1,
                OpType::Info => b.info += 1,
            }
        }
        let pv = op.poll_views();
        if !pv.is_empty() {
            polls = true;
            b.polls += 1;
            b.records += pv.iter().map(|p| p.reads.len() as u64).sum::<u64>();
        }
        if sv.is_empty() && pv.is_empty() && op.f != "poll" {
            let x = sc.x(op.t_ms);
            let _ = write!(
                body,
                "<path class=\"event {}\" d=\"M{x:.1} 4 l5 8 l-5 8 l-5 -8 z\"><title>{} {}</title></path>",
                esc(&op.f),
                stamp(op.t_ms),
                esc(&describe_op(op))
            );
        }
    }
    for (k, b) in &bars {
        let from = k * bar_ms;
        let class = if b.info > 0 {
            "info"
        } else if b.fail > 0 {
            "fail"
        } else if b.ok > 0 {
            "ok"
        } else {
            "poll"
        };
        let mut what = Vec::new();
        if b.ok + b.fail + b.info > 0 {
            what.push(format!("sends {} ok, {} fail, {} info", b.ok, b.fail, b.info));
        }
        if b.polls > 0 {
            what.push(format!("{} polls read {} records", b.polls, b.records));
        }
        let _ = write!(
            body,
            "<rect class=\"ops {class}\" x=\"{:.1}\" y=\"7\" width=\"{BAR_W}\" height=\"{}\"><title>{}–{} s: {}</title></rect>",
            sc.x(from),
            LANE_H - 14.0,
            secs(from),
            secs(from + bar_ms),
            what.join("; ")
        );
    }
    for &i in ops {
        let Some(anoms) = r.anomalous_ops.get(&i) else { continue };
        let shown: Vec<usize> = anoms.iter().copied().filter(|&a| a < TIMELINE_ANOMALIES_MAX).collect();
        let Some(&first) = shown.first() else { continue };
        let op = &r.history.ops[i];
        let keys: BTreeSet<&str> = anoms.iter().map(|&a| r.res.details[r.findings[a].anomaly].key).collect();
        let ids: Vec<String> = shown.iter().map(usize::to_string).collect();
        let title = format!("{} {} — {}", stamp(op.t_ms), describe_op(op), keys.into_iter().collect::<Vec<_>>().join(", "));
        let x = sc.x(op.t_ms);
        let _ = write!(body, "<a href=\"#a-{first}\"><g class=\"anomalous\" data-a=\"{}\">", ids.join(" "));
        if let Some(inv) = op.invoke_t_ms {
            let _ = write!(body, "<line x1=\"{:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\"/>", sc.x(inv), LANE_H / 2.0, LANE_H / 2.0);
        }
        let _ = write!(body, "<circle cx=\"{x:.1}\" cy=\"{}\" r=\"4\"/><title>{}</title></g></a>", LANE_H / 2.0, esc(&title));
    }
    let role = match (sends, polls) {
        (true, true) => "sends, polls",
        (true, false) => "producer",
        (false, true) if first_ms >= r.duration_ms => "final reader",
        (false, true) => "consumer",
        (false, false) => "client",
    };
    Lane { label: format!("process {process} ({role})"), class: "process", body }
}

const STYLE: &str = "body{font-family:sans-serif;margin:16px;color:#222}\
h1{font-size:20px}code{background:#f3f3f3;padding:1px 4px}\
#detail{position:sticky;top:0;background:#fffbe6;border:1px solid #e0c000;padding:6px 10px;min-height:1.5em;z-index:2;white-space:pre-wrap;font-family:monospace;font-size:12px}\
.chart{overflow-x:auto}svg text{font-size:11px}\
.axis line{stroke:#ddd}.axis text{fill:#666;text-anchor:middle}\
.lane-bg{fill:#fafafa;stroke:#eee}.label{fill:#222}.seg{fill:#fff;font-size:10px;pointer-events:none}\
.fault{fill:#d62728;fill-opacity:.10;pointer-events:none}.fault-on-node{fill:#d62728;fill-opacity:.55}\
.ops.ok{fill:#2ca02c}.ops.info{fill:#ff7f0e}.ops.fail{fill:#a00}.ops.poll{fill:#1f77b4}\
.isr{fill:#333}.event{fill:#7b3fa0}\
.anomalous circle{fill:#e00;stroke:#600;stroke-width:1.5;cursor:pointer}.anomalous line{stroke:#e00;stroke-width:2}\
circle.anomalous{fill:#e00;stroke:#600;stroke-width:1.5;cursor:pointer}\
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px}\
li:target{background:#fffbe6}li pre{margin:2px 0 8px 0;font-size:12px}";

/// Shows a clicked mark's anomalies and their ops in `#detail`.
const SCRIPT: &str = "const A=JSON.parse(document.getElementById('anomalies-data').textContent);\
document.querySelectorAll('[data-a]').forEach(function(el){el.addEventListener('click',function(){\
var d=document.getElementById('detail');d.textContent='';\
el.getAttribute('data-a').split(' ').forEach(function(i){var a=A[+i];if(!a)return;\
d.textContent+=a.key+(a.partition?' '+a.partition:'')+': '+a.detail+'\\n'+a.ops.map(function(o){return '    '+o;}).join('\\n')+'\\n';});});});";

/// The page around the chart: header, legend, anomaly list, data, script.
fn page(r: &SeedReport<'_>, svg: &str, shown: &[usize]) -> String {
    let res = r.res;
    let mut h = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(h, "<title>ksim {} seed {}</title>", esc(r.scenario_name), res.seed);
    let _ = writeln!(h, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(h, "<h1>{} — seed {}</h1>", esc(r.scenario_name), res.seed);
    let found = res.anomalies_found();
    let _ = writeln!(
        h,
        "<p>Verdict <b>{}</b> (expected {}), {}. Anomalies: {}. Replay: <code>{}</code></p>",
        res.verdict,
        res.expected,
        if res.met { "met" } else { "<b>NOT met</b>" },
        if found.is_empty() { "none".to_string() } else { esc(&found) },
        esc(&r.replay)
    );
    h.push_str("<p class=\"legend\"><span><i class=\"sw\" style=\"background:#2ca02c\"></i>acked sends</span><span><i class=\"sw\" style=\"background:#ff7f0e\"></i>unknown (info)</span><span><i class=\"sw\" style=\"background:#a00\"></i>failed</span><span><i class=\"sw\" style=\"background:#1f77b4\"></i>polls</span><span><i class=\"sw\" style=\"background:#d62728;opacity:.3\"></i>fault window</span><span><i class=\"sw\" style=\"background:#e00;border-radius:6px\"></i>anomalous (click)</span><span>▼ ISR change, ◆ other client op; leader segments coloured by broker (b1 e3 = broker 1, epoch 3)</span></p>\n");
    h.push_str("<div id=\"detail\">Click a red mark to see its anomalies and the operations involved; hover anything for details.</div>\n");
    let _ = writeln!(h, "<div class=\"chart\">\n{svg}</div>");
    let _ = writeln!(h, "<h2>Anomalies ({})</h2>", res.details.len());
    h.push_str("<ol start=\"0\" id=\"anomalies\">\n");
    let mut data = Vec::new();
    for &a in shown {
        let f = &r.findings[a];
        let an = &res.details[f.anomaly];
        let ops: Vec<String> = f.ops.iter().map(|&i| format!("{} {}", stamp(r.history.ops[i].t_ms), describe_op(&r.history.ops[i]))).collect();
        let when = f.t_ms.map_or_else(String::new, |t| format!(" at {} s", secs(t)));
        let _ = writeln!(
            h,
            "<li id=\"a-{a}\"><b>{}</b> {}{when}: {}<pre>{}</pre></li>",
            an.key,
            esc(&an.partition),
            esc(&an.detail),
            esc(&ops.join("\n"))
        );
        data.push(serde_json::json!({"key": an.key, "partition": an.partition, "detail": an.detail, "ops": ops}));
    }
    h.push_str("</ol>\n");
    if r.findings.len() > shown.len() {
        let _ = writeln!(h, "<p>… {} more anomalies (all in results.json).</p>", r.findings.len() - shown.len());
    }
    // `</` inside the JSON must not close the script element.
    let json = serde_json::Value::Array(data).to_string().replace("</", "<\\/");
    let _ = writeln!(h, "<script type=\"application/json\" id=\"anomalies-data\">{json}</script>");
    let _ = writeln!(h, "<script>{SCRIPT}</script>\n</body>\n</html>");
    h
}
