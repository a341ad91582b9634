//! `observations.jsonl`, the brokers' observations of a kept seed (written
//! by `--out`, read by `ksim check`).
//!
//! # Format
//!
//! Version 2 (written since the compact encoding): a header line, then
//! each replica (one broker process's copy of one partition) declared once
//! by a small number before its first event, then one JSON array per
//! observation, `[t_ms, replica, kind, fields…]`. Batches are
//! `[base_offset, last_offset, leader_epoch, crc]`.
//!
//! ```text
//! {"format":"ksim-observations","version":2}
//! {"replica":0,"broker":1,"incarnation":2113168415,"topic":"events","partition":0}
//! [0,0,"opened",0,0,0,[]]                   log_start, log_end, hw, batches
//! [8120,0,"append",[[17,18,3,2918822143]]]   batches
//! [8123,0,"hw",19]                          value
//! [8200,0,"truncate",17]                    to
//! [8300,0,"epoch",4]                        leader_epoch
//! [8300,0,"partition-state",2,[2,0]]        leader, isr
//! [8300,0,"became-leader",4]                epoch
//! [8400,0,"offline","/data0"]               dir
//! ```
//!
//! A seed's observations are mostly appends and HW moves, repeated on
//! every replica; naming the replica by a number and the batch fields by
//! position makes the file about five times smaller than version 1 and
//! loses nothing ([`from_jsonl`] gives back the same observations).
//!
//! Version 1 (older seed directories, still read): no header, one
//! [`Observed`] object per line (its own doc shows the form). Lines of
//! both versions may be mixed; blank lines are skipped.

use super::Observed;
use ksim_broker::observe::{BatchMark, ObsEvent, Observation};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The version [`to_jsonl`] writes.
pub const FORMAT_VERSION: u64 = 2;
/// The header's `format` value.
const FORMAT_NAME: &str = "ksim-observations";

/// Who made an observation: one broker process's replica of a partition.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Replica {
    broker: i32,
    incarnation: u64,
    topic: String,
    partition: i32,
}

impl Replica {
    fn of(o: &Observation) -> Replica {
        Replica { broker: o.broker, incarnation: o.incarnation, topic: o.topic.clone(), partition: o.partition }
    }
}

/// A replica's declaration line (fields in this order).
#[derive(Serialize)]
struct Declared<'a> {
    replica: usize,
    broker: i32,
    incarnation: u64,
    topic: &'a str,
    partition: i32,
}

fn batches_json(batches: &[BatchMark]) -> Value {
    Value::Array(batches.iter().map(|b| json!([b.base_offset, b.last_offset, b.leader_epoch, b.crc])).collect())
}

/// The fields after `[t_ms, replica, kind` of an event.
fn event_fields(e: &ObsEvent) -> (&'static str, Vec<Value>) {
    match e {
        ObsEvent::Opened { log_start, log_end, hw, batches } => {
            ("opened", vec![json!(log_start), json!(log_end), json!(hw), batches_json(batches)])
        }
        ObsEvent::Append { batches } => ("append", vec![batches_json(batches)]),
        ObsEvent::Truncate { to } => ("truncate", vec![json!(to)]),
        ObsEvent::Hw { value } => ("hw", vec![json!(value)]),
        ObsEvent::Epoch { leader_epoch } => ("epoch", vec![json!(leader_epoch)]),
        ObsEvent::PartitionState { leader, isr } => ("partition-state", vec![json!(leader), json!(isr)]),
        ObsEvent::BecameLeader { epoch } => ("became-leader", vec![json!(epoch)]),
        ObsEvent::Offline { dir } => ("offline", vec![json!(dir)]),
    }
}

/// The version 2 text of `obs` (the module doc shows it), each line
/// ending in `\n`.
pub fn to_jsonl(obs: &[Observed]) -> String {
    let mut out = format!("{}\n", json!({"format": FORMAT_NAME, "version": FORMAT_VERSION}));
    let mut ids: BTreeMap<Replica, usize> = BTreeMap::new();
    for o in obs {
        let r = Replica::of(&o.obs);
        let next = ids.len();
        let id = *ids.entry(r).or_insert_with(|| {
            let declared = Declared {
                replica: next,
                broker: o.obs.broker,
                incarnation: o.obs.incarnation,
                topic: &o.obs.topic,
                partition: o.obs.partition,
            };
            writeln!(out, "{}", serde_json::to_string(&declared).expect("a replica serialises")).expect("writing to a String");
            next
        });
        let (kind, fields) = event_fields(&o.obs.event);
        let mut line = vec![json!(o.t_ms), json!(id), json!(kind)];
        line.extend(fields);
        writeln!(out, "{}", Value::Array(line)).expect("writing to a String");
    }
    out
}

/// Reads `observations.jsonl` of either version (the module doc); errors
/// name the 1-based line.
pub fn from_jsonl(text: &str) -> Result<Vec<Observed>, String> {
    let mut replicas: BTreeMap<u64, Replica> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |e: String| format!("line {}: {e}", i + 1);
        let v: Value = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        match &v {
            Value::Array(items) => out.push(event(items, &replicas).map_err(at)?),
            Value::Object(m) if m.contains_key("format") => {
                let version = m.get("version").and_then(Value::as_u64);
                if m["format"] != FORMAT_NAME || version.is_none_or(|v| v > FORMAT_VERSION) {
                    return Err(at(format!(
                        "not an observations file this build reads (format {}, version {}; it reads {FORMAT_NAME} up to version {FORMAT_VERSION})",
                        m["format"],
                        m.get("version").unwrap_or(&Value::Null)
                    )));
                }
            }
            Value::Object(m) if m.contains_key("replica") => {
                let id = m["replica"].as_u64().ok_or_else(|| at("replica is not a number".into()))?;
                let field = |name: &str| m.get(name).ok_or_else(|| at(format!("replica {id} lacks `{name}`")));
                let int = |name: &str| {
                    field(name)?.as_i64().and_then(|x| i32::try_from(x).ok()).ok_or_else(|| at(format!("replica {id}: `{name}` is not an integer")))
                };
                let r = Replica {
                    broker: int("broker")?,
                    incarnation: field("incarnation")?
                        .as_u64()
                        .ok_or_else(|| at(format!("replica {id}: `incarnation` is not a number")))?,
                    topic: field("topic")?
                        .as_str()
                        .ok_or_else(|| at(format!("replica {id}: `topic` is not a string")))?
                        .to_string(),
                    partition: int("partition")?,
                };
                replicas.insert(id, r);
            }
            Value::Object(_) => out.push(serde_json::from_value(v).map_err(|e| at(e.to_string()))?),
            _ => return Err(at("neither an observation nor a replica".into())),
        }
    }
    Ok(out)
}

/// A version 2 event line, `[t_ms, replica, kind, fields…]`.
fn event(items: &[Value], replicas: &BTreeMap<u64, Replica>) -> Result<Observed, String> {
    let [t_ms, replica, kind, fields @ ..] = items else {
        return Err("an observation is [t_ms, replica, kind, fields…]".into());
    };
    let t_ms = t_ms.as_u64().ok_or("t_ms is not a number")?;
    let id = replica.as_u64().ok_or("the replica is not a number")?;
    let r = replicas.get(&id).ok_or_else(|| format!("replica {id} is not declared before its first observation"))?;
    let kind = kind.as_str().ok_or("the kind is not a string")?;
    let event = decode_event(kind, fields).map_err(|e| format!("{kind}: {e}"))?;
    let obs =
        Observation { broker: r.broker, incarnation: r.incarnation, topic: r.topic.clone(), partition: r.partition, event };
    Ok(Observed { t_ms, obs })
}

fn int<T: TryFrom<i64>>(v: &Value, what: &str) -> Result<T, String> {
    v.as_i64().and_then(|x| T::try_from(x).ok()).ok_or_else(|| format!("{what} is not an integer in range"))
}

fn batches(v: &Value) -> Result<Vec<BatchMark>, String> {
    let list = v.as_array().ok_or("batches are not a list")?;
    list.iter()
        .map(|b| match b.as_array().map(Vec::as_slice) {
            Some([base, last, epoch, crc]) => Ok(BatchMark {
                base_offset: int(base, "base_offset")?,
                last_offset: int(last, "last_offset")?,
                leader_epoch: int(epoch, "leader_epoch")?,
                crc: int(crc, "crc")?,
            }),
            _ => Err("a batch is [base_offset, last_offset, leader_epoch, crc]".to_string()),
        })
        .collect()
}

fn decode_event(kind: &str, f: &[Value]) -> Result<ObsEvent, String> {
    Ok(match (kind, f) {
        ("opened", [log_start, log_end, hw, b]) => ObsEvent::Opened {
            log_start: int(log_start, "log_start")?,
            log_end: int(log_end, "log_end")?,
            hw: int(hw, "hw")?,
            batches: batches(b)?,
        },
        ("append", [b]) => ObsEvent::Append { batches: batches(b)? },
        ("truncate", [to]) => ObsEvent::Truncate { to: int(to, "to")? },
        ("hw", [value]) => ObsEvent::Hw { value: int(value, "value")? },
        ("epoch", [e]) => ObsEvent::Epoch { leader_epoch: int(e, "leader_epoch")? },
        ("partition-state", [leader, isr]) => ObsEvent::PartitionState {
            leader: int(leader, "leader")?,
            isr: isr.as_array().ok_or("isr is not a list")?.iter().map(|b| int(b, "an isr broker")).collect::<Result<_, _>>()?,
        },
        ("became-leader", [e]) => ObsEvent::BecameLeader { epoch: int(e, "epoch")? },
        ("offline", [dir]) => ObsEvent::Offline { dir: dir.as_str().ok_or("dir is not a string")?.to_string() },
        _ => return Err(format!("unknown kind, or not its {} fields", f.len())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(t_ms: u64, broker: i32, incarnation: u64, partition: i32, event: ObsEvent) -> Observed {
        Observed { t_ms, obs: Observation { broker, incarnation, topic: "events".into(), partition, event } }
    }

    fn mark(base_offset: i64, last_offset: i64, leader_epoch: i32, crc: u32) -> BatchMark {
        BatchMark { base_offset, last_offset, leader_epoch, crc }
    }

    /// Every kind of event, from two processes of broker 1 and broker 2.
    fn every_kind() -> Vec<Observed> {
        let big = 9_136_120_204_379_184_874;
        vec![
            obs(0, 1, big, 0, ObsEvent::Opened { log_start: 0, log_end: 2, hw: 1, batches: vec![mark(0, 1, 0, 7)] }),
            obs(0, 2, 5, 0, ObsEvent::BecameLeader { epoch: 0 }),
            obs(10, 2, 5, 0, ObsEvent::Append { batches: vec![mark(2, 4, 1, u32::MAX), mark(5, 5, 1, 0)] }),
            obs(11, 1, big, 0, ObsEvent::Append { batches: vec![mark(2, 4, 1, u32::MAX)] }),
            obs(12, 1, big, 0, ObsEvent::Hw { value: 5 }),
            obs(20, 1, big, 0, ObsEvent::Truncate { to: 3 }),
            obs(21, 1, big, 1, ObsEvent::Epoch { leader_epoch: 2 }),
            obs(21, 1, big, 1, ObsEvent::PartitionState { leader: 1, isr: vec![1, 2] }),
            obs(30, 2, 6, 0, ObsEvent::Offline { dir: "/data0".into() }),
        ]
    }

    #[test]
    fn version_2_round_trips_every_kind_of_observation() {
        let all = every_kind();
        let text = to_jsonl(&all);
        assert_eq!(from_jsonl(&text).unwrap(), all);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"format":"ksim-observations","version":2}"#);
        assert_eq!(lines[1], r#"{"replica":0,"broker":1,"incarnation":9136120204379184874,"topic":"events","partition":0}"#);
        assert_eq!(lines[2], r#"[0,0,"opened",0,2,1,[[0,1,0,7]]]"#);
        assert_eq!(lines[5], r#"[10,1,"append",[[2,4,1,4294967295],[5,5,1,0]]]"#);
        // Each replica (broker process and partition) is declared once: 4 of them.
        assert_eq!(text.matches(r#"{"replica""#).count(), 4);
        assert_eq!(lines.len(), 1 + 4 + all.len());
    }

    #[test]
    fn version_1_files_and_mixed_lines_still_read() {
        let all = every_kind();
        let v1: String = all.iter().map(|o| serde_json::to_string(o).unwrap() + "\n").collect();
        assert_eq!(from_jsonl(&v1).unwrap(), all);
        let mixed = format!("{}\n{}", to_jsonl(&all[..4]), v1.lines().skip(4).collect::<Vec<_>>().join("\n\n"));
        assert_eq!(from_jsonl(&mixed).unwrap(), all);
    }

    #[test]
    fn version_2_is_several_times_smaller_than_version_1_on_appends_and_hw_moves() {
        let mut all = Vec::new();
        for i in 0..300i64 {
            for b in 0..3 {
                all.push(obs(i as u64 * 7, b, 9_136_120_204_379_184_874 + b as u64, (i % 3) as i32, ObsEvent::Append {
                    batches: vec![mark(i * 5, i * 5 + 4, 3, 3_000_000_000 + i as u32)],
                }));
                all.push(obs(i as u64 * 7 + 1, b, 9_136_120_204_379_184_874 + b as u64, (i % 3) as i32, ObsEvent::Hw {
                    value: i * 5 + 5,
                }));
            }
        }
        let v1 = all.iter().map(|o| serde_json::to_string(o).unwrap().len() + 1).sum::<usize>();
        let v2 = to_jsonl(&all).len();
        assert!(v2 * 4 < v1, "version 2 {v2} bytes, version 1 {v1}");
    }

    #[test]
    fn bad_lines_are_named() {
        let good = to_jsonl(&every_kind());
        let n = good.lines().count() + 1;
        for (bad, what) in [
            ("[5,9,\"hw\",3]", "replica 9 is not declared"),
            ("[5,0,\"hw\"]", "hw: unknown kind, or not its 0 fields"),
            ("[5,0,\"append\",[[1,2,3]]]", "append: a batch is"),
            ("{\"replica\":0,\"broker\":1}", "replica 0 lacks `incarnation`"),
            ("{\"format\":\"ksim-observations\",\"version\":3}", "not an observations file"),
            ("7", "neither an observation nor a replica"),
        ] {
            let e = from_jsonl(&format!("{good}{bad}\n")).unwrap_err();
            let what = format!("line {n}: {what}");
            assert!(e.starts_with(&what), "{e} (expected {what})");
        }
    }
}
