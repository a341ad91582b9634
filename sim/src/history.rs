//! Operations and their JSONL form (DESIGN.md, "History contract").
//!
//! # Format
//!
//! One JSON object per operation completion:
//!
//! ```text
//! {"process":3,"f":"send","type":"ok","t_ms":1200,"value":[["send","events/1",42,17]]}
//! {"process":5,"f":"poll","type":"ok","t_ms":1250,"value":[["poll","events/1",[[17,42],[18,43]]]]}
//! {"process":5,"f":"assign","type":"ok","t_ms":1000,"value":["events/0","events/1"]}
//! ```
//!
//! `send` and `poll` values (and `txn` values, which mix both) are lists of
//! micro-operations: `["send", partition, value, offset|null]` and
//! `["poll", partition, [[offset, value], …]]`. The typed views
//! [`History::sends`] and [`History::polls`] read them for the checkers.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How an operation completed (Jepsen's completion types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown: it may or may not have happened.
    Info,
}

/// One operation completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// The client process (a crashed client comes back as a new one).
    pub process: u64,
    /// The function: send, poll, assign, subscribe, txn, crash, rebalance, …
    pub f: String,
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// Completion time, simulated ms since the main phase began.
    pub t_ms: u64,
    pub value: Value,
    /// Why a `fail` or `info` completion failed (the client's error), so a
    /// reader of the history can tell NOT_ENOUGH_REPLICAS from a timeout.
    /// An extension of the DESIGN.md contract: absent on `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the operation was invoked (simulated ms since the main phase
    /// began), so checkers can order a process's concurrent operations by
    /// invocation and reports can show latency. An extension of the
    /// DESIGN.md contract: absent in histories that do not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_t_ms: Option<u64>,
}

/// One send micro-operation, as the checkers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendView<'a> {
    pub process: u64,
    pub t_ms: u64,
    pub op_type: OpType,
    pub partition: &'a str,
    pub value: i64,
    /// Acknowledged offset; `None` when unknown (acks=0, fail, info).
    pub offset: Option<i64>,
}

/// What one ok poll read from one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollView<'a> {
    pub process: u64,
    pub t_ms: u64,
    pub partition: &'a str,
    /// (offset, value) pairs in the order the poll returned them.
    pub reads: Vec<(i64, i64)>,
}

impl Op {
    /// A send completion; `offset` only means something for `ok`.
    pub fn send(process: u64, t_ms: u64, op_type: OpType, partition: &str, value: i64, offset: Option<i64>) -> Op {
        Op { process, f: "send".into(), op_type, t_ms, value: json!([["send", partition, value, offset]]), error: None, invoke_t_ms: None }
    }

    /// The same completion with its invocation time attached.
    pub fn invoked_at(mut self, invoke_t_ms: u64) -> Op {
        self.invoke_t_ms = Some(invoke_t_ms);
        self
    }

    /// The same completion with the client's error attached.
    pub fn with_error(mut self, error: impl Into<String>) -> Op {
        self.error = Some(error.into());
        self
    }

    pub fn send_ok(process: u64, t_ms: u64, partition: &str, value: i64, offset: Option<i64>) -> Op {
        Op::send(process, t_ms, OpType::Ok, partition, value, offset)
    }

    pub fn send_fail(process: u64, t_ms: u64, partition: &str, value: i64) -> Op {
        Op::send(process, t_ms, OpType::Fail, partition, value, None)
    }

    pub fn send_info(process: u64, t_ms: u64, partition: &str, value: i64) -> Op {
        Op::send(process, t_ms, OpType::Info, partition, value, None)
    }

    /// An ok poll: per partition, the (offset, value) pairs it returned.
    pub fn poll_ok(process: u64, t_ms: u64, reads: Vec<(String, Vec<(i64, i64)>)>) -> Op {
        let value: Vec<Value> = reads
            .into_iter()
            .map(|(p, pairs)| {
                let pairs: Vec<Value> = pairs.into_iter().map(|(o, v)| json!([o, v])).collect();
                json!(["poll", p, pairs])
            })
            .collect();
        Op { process, f: "poll".into(), op_type: OpType::Ok, t_ms, value: Value::Array(value), error: None, invoke_t_ms: None }
    }

    /// An ok assign of these partitions.
    pub fn assign_ok(process: u64, t_ms: u64, partitions: Vec<String>) -> Op {
        Op { process, f: "assign".into(), op_type: OpType::Ok, t_ms, value: json!(partitions), error: None, invoke_t_ms: None }
    }

    /// The micro-operations of a send, poll or txn op (empty for others).
    /// What this op read, per partition, if it is an ok poll (or txn).
    pub fn poll_views(&self) -> Vec<PollView<'_>> {
        if self.op_type != OpType::Ok {
            return Vec::new();
        }
        self.micro_ops()
            .iter()
            .filter_map(|m| match decode_micro(m) {
                Ok(Micro::Poll { partition, reads }) => {
                    Some(PollView { process: self.process, t_ms: self.t_ms, partition, reads })
                }
                _ => None,
            })
            .collect()
    }

    /// The sends of this op (a send or txn), with its completion type.
    pub fn send_views(&self) -> Vec<SendView<'_>> {
        self.micro_ops()
            .iter()
            .filter_map(|m| match decode_micro(m) {
                Ok(Micro::Send { partition, value, offset }) => Some(SendView {
                    process: self.process,
                    t_ms: self.t_ms,
                    op_type: self.op_type,
                    partition,
                    value,
                    offset,
                }),
                _ => None,
            })
            .collect()
    }

    fn micro_ops(&self) -> &[Value] {
        match (self.f.as_str(), &self.value) {
            ("send" | "poll" | "txn", Value::Array(items)) => items,
            _ => &[],
        }
    }
}

/// One micro-operation, decoded.
enum Micro<'a> {
    Send { partition: &'a str, value: i64, offset: Option<i64> },
    Poll { partition: &'a str, reads: Vec<(i64, i64)> },
}

/// Decodes `["send", p, v, o|null]` or `["poll", p, [[o, v], …]]`.
fn decode_micro(m: &Value) -> Result<Micro<'_>, String> {
    let items = m.as_array().ok_or("a micro-operation is not an array")?;
    let tag = items.first().and_then(Value::as_str).ok_or("a micro-operation lacks its name")?;
    let partition = items.get(1).and_then(Value::as_str).ok_or("a micro-operation lacks its partition")?;
    match (tag, items.len()) {
        ("send", 4) => {
            let value = items[2].as_i64().ok_or("send value is not an integer")?;
            let offset = match &items[3] {
                Value::Null => None,
                o => Some(o.as_i64().ok_or("send offset is neither an integer nor null")?),
            };
            Ok(Micro::Send { partition, value, offset })
        }
        ("poll", 3) => {
            let pairs = items[2].as_array().ok_or("poll reads are not an array")?;
            let reads = pairs
                .iter()
                .map(|p| match p.as_array().map(Vec::as_slice) {
                    Some([o, v]) => Some((o.as_i64()?, v.as_i64()?)),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or("poll reads are not [offset, value] integer pairs")?;
            Ok(Micro::Poll { partition, reads })
        }
        _ => Err(format!("unknown micro-operation `{tag}` with {} elements", items.len())),
    }
}

/// A recorded history: operation completions in completion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// One JSON object per line, each line ending in `\n`.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            out.push_str(&serde_json::to_string(op).expect("an op serialises"));
            out.push('\n');
        }
        out
    }

    /// Parses JSONL (blank lines skipped). Send, poll and txn values are
    /// checked against the format so the checkers can trust them; errors
    /// name the 1-based line.
    pub fn from_jsonl(text: &str) -> Result<History, String> {
        let mut h = History::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let op: Op = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            if matches!(op.f.as_str(), "send" | "poll" | "txn") {
                if !op.value.is_array() {
                    return Err(format!("line {}: a {} value must be a list of micro-operations", i + 1, op.f));
                }
                for m in op.micro_ops() {
                    decode_micro(m).map_err(|e| format!("line {}: {e}", i + 1))?;
                }
            }
            h.push(op);
        }
        Ok(h)
    }

    /// Every send micro-operation, with its op's completion type.
    pub fn sends(&self) -> impl Iterator<Item = SendView<'_>> {
        self.ops.iter().flat_map(Op::send_views)
    }

    /// What every ok poll read, per partition. Polls of fail/info ops are
    /// left out: nothing they returned is known to have been read.
    pub fn polls(&self) -> impl Iterator<Item = PollView<'_>> {
        self.ops.iter().filter(|op| op.op_type == OpType::Ok).flat_map(|op| {
            op.micro_ops().iter().filter_map(move |m| match decode_micro(m) {
                Ok(Micro::Poll { partition, reads }) => Some(PollView { process: op.process, t_ms: op.t_ms, partition, reads }),
                _ => None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_serialise_as_the_design_contract_says() {
        let send = Op::send(3, 1200, OpType::Ok, "events/1", 42, Some(17));
        assert_eq!(
            serde_json::to_string(&send).unwrap(),
            r#"{"process":3,"f":"send","type":"ok","t_ms":1200,"value":[["send","events/1",42,17]]}"#
        );
        let info = Op::send_info(3, 1300, "events/1", 43);
        assert!(serde_json::to_string(&info).unwrap().ends_with(r#""type":"info","t_ms":1300,"value":[["send","events/1",43,null]]}"#));
        let poll = Op::poll_ok(5, 1250, vec![("events/1".into(), vec![(17, 42), (18, 43)])]);
        assert_eq!(
            serde_json::to_string(&poll).unwrap(),
            r#"{"process":5,"f":"poll","type":"ok","t_ms":1250,"value":[["poll","events/1",[[17,42],[18,43]]]]}"#
        );
    }

    #[test]
    fn jsonl_round_trips_and_views_decode() {
        let mut h = History::default();
        h.push(Op::assign_ok(5, 0, vec!["events/0".into()]));
        h.push(Op::send_ok(3, 10, "events/0", 1, Some(0)));
        h.push(Op::send_fail(3, 11, "events/0", 2));
        h.push(Op::poll_ok(5, 20, vec![("events/0".into(), vec![(0, 1)])]));
        let back = History::from_jsonl(&h.to_jsonl()).unwrap();
        assert_eq!(back, h);
        let sends: Vec<_> = back.sends().map(|s| (s.op_type, s.value, s.offset)).collect();
        assert_eq!(sends, vec![(OpType::Ok, 1, Some(0)), (OpType::Fail, 2, None)]);
        let polls: Vec<_> = back.polls().map(|p| (p.partition.to_string(), p.reads)).collect();
        assert_eq!(polls, vec![("events/0".to_string(), vec![(0, 1)])]);
    }

    #[test]
    fn malformed_lines_are_named() {
        let text = "{\"process\":1,\"f\":\"send\",\"type\":\"ok\",\"t_ms\":1,\"value\":[[\"send\",\"t/0\",1,0]]}\n\
                    {\"process\":1,\"f\":\"send\",\"type\":\"ok\",\"t_ms\":2,\"value\":[[\"send\",\"t/0\",\"x\",1]]}\n";
        let e = History::from_jsonl(text).unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = History::from_jsonl("\nnot json\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }
}
