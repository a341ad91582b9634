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
//! micro-operations: `["send", partition, value, offset|null]` (optionally
//! with a fifth element, the record key: `["send", "events/1", 42, 17, "k3"]`)
//! and `["poll", partition, [[offset, value], …]]`. The typed views
//! [`History::sends`] and [`History::polls`] read them for the checkers.
//!
//! Consumer-group and transaction ops (docs/INTERFACES.md, "History ops"):
//!
//! ```text
//! {"process":5,"f":"subscribe","type":"ok","t_ms":0,"group":"g1","value":["events"]}
//! {"process":5,"f":"rebalance","type":"ok","t_ms":900,"group":"g1","value":{"generation":4,"assigned":["events/0"],"revoked":["events/1"]}}
//! {"process":5,"f":"commit","type":"ok","t_ms":950,"group":"g1","value":{"events/0":18}}
//! {"process":7,"f":"txn","type":"ok","t_ms":990,"group":"g1","offsets":{"in/0":4},"value":[["poll","in/0",[[3,17]]],["send","out/0",17,5]]}
//! {"process":9,"f":"end-offsets","type":"ok","t_ms":61000,"value":{"events/0":{"last_stable":40,"log_end":42}}}
//! ```
//!
//! A txn op's type is its outcome: `ok` committed, `fail` aborted, `info`
//! unknown. Rebalance `assigned` is the member's whole assignment in that
//! generation. Committed offsets are the next offset to consume (Kafka's
//! convention). `end-offsets` is what a reader learnt from ListOffsets.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

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
    /// The consumer group a subscribe, rebalance, commit or txn op acted
    /// for, so group checkers can tell groups apart. Extension; absent on
    /// other ops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Offsets a txn op committed with its transaction
    /// (sendOffsetsToTransaction): partition → next offset to consume.
    /// Extension; absent on other ops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<BTreeMap<String, i64>>,
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
    /// The record key, when the history recorded it (per-key order).
    pub key: Option<&'a str>,
    /// The op's invocation time, when recorded (send order).
    pub invoke_t_ms: Option<u64>,
    /// Position of the op in the history (ties and op identity).
    pub op_index: usize,
    /// Position of the micro-operation within its op.
    pub micro_index: usize,
}

/// What one ok poll read from one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollView<'a> {
    pub process: u64,
    pub t_ms: u64,
    /// The op's completion type (a txn's polls happened whatever it was).
    pub op_type: OpType,
    pub partition: &'a str,
    /// (offset, value) pairs in the order the poll returned them.
    pub reads: Vec<(i64, i64)>,
}

/// One decoded micro-operation of an op ([`Op::micro_views`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MicroView<'a> {
    Send(SendView<'a>),
    Poll(PollView<'a>),
}

/// One micro-operation of a send, poll or txn op, for building histories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MicroOp {
    /// `["send", partition, value, offset|null]`, plus the key when known.
    Send { partition: String, value: i64, offset: Option<i64>, key: Option<String> },
    /// `["poll", partition, [[offset, value], …]]`.
    Poll { partition: String, reads: Vec<(i64, i64)> },
}

impl MicroOp {
    pub fn send(partition: &str, value: i64, offset: Option<i64>) -> MicroOp {
        MicroOp::Send { partition: partition.into(), value, offset, key: None }
    }

    pub fn poll(partition: &str, reads: &[(i64, i64)]) -> MicroOp {
        MicroOp::Poll { partition: partition.into(), reads: reads.to_vec() }
    }

    /// The JSON form (the key, when present, is the fifth element).
    pub fn to_json(&self) -> Value {
        match self {
            MicroOp::Send { partition, value, offset, key: None } => json!(["send", partition, value, offset]),
            MicroOp::Send { partition, value, offset, key: Some(k) } => json!(["send", partition, value, offset, k]),
            MicroOp::Poll { partition, reads } => {
                let pairs: Vec<Value> = reads.iter().map(|(o, v)| json!([o, v])).collect();
                json!(["poll", partition, pairs])
            }
        }
    }
}

/// A member's view of one rebalance (a `rebalance` op's value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebalance {
    /// The group generation the member joined.
    pub generation: i64,
    /// Every partition the member owns in this generation.
    pub assigned: Vec<String>,
    /// Partitions it gave up.
    #[serde(default)]
    pub revoked: Vec<String>,
}

/// One partition's end offsets as a reader learnt them (ListOffsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndOffsets {
    /// The last stable offset (read_committed end).
    pub last_stable: i64,
    /// The log end offset (high watermark for consumers).
    pub log_end: i64,
}

impl Op {
    /// A send completion; `offset` only means something for `ok`.
    pub fn send(process: u64, t_ms: u64, op_type: OpType, partition: &str, value: i64, offset: Option<i64>) -> Op {
        Op::new(process, "send", op_type, t_ms, json!([["send", partition, value, offset]]))
    }

    /// An op with no extension fields set.
    pub fn new(process: u64, f: &str, op_type: OpType, t_ms: u64, value: Value) -> Op {
        Op { process, f: f.into(), op_type, t_ms, value, error: None, invoke_t_ms: None, group: None, offsets: None }
    }

    /// A send, poll or txn op of several micro-operations (the `f` names
    /// which: a transaction is `txn`).
    pub fn micro(process: u64, f: &str, t_ms: u64, op_type: OpType, micro: &[MicroOp]) -> Op {
        Op::new(process, f, op_type, t_ms, Value::Array(micro.iter().map(MicroOp::to_json).collect()))
    }

    /// A transaction: `ok` committed, `fail` aborted, `info` unknown.
    pub fn txn(process: u64, t_ms: u64, op_type: OpType, micro: &[MicroOp]) -> Op {
        Op::micro(process, "txn", t_ms, op_type, micro)
    }

    /// An ok subscribe of `group` to these topics.
    pub fn subscribe_ok(process: u64, t_ms: u64, group: &str, topics: &[&str]) -> Op {
        Op::new(process, "subscribe", OpType::Ok, t_ms, json!(topics)).in_group(group)
    }

    /// A member's ok rebalance: its whole assignment in `generation`.
    pub fn rebalance_ok(
        process: u64,
        t_ms: u64,
        group: &str,
        generation: i64,
        assigned: &[&str],
        revoked: &[&str],
    ) -> Op {
        let value = json!({"generation": generation, "assigned": assigned, "revoked": revoked});
        Op::new(process, "rebalance", OpType::Ok, t_ms, value).in_group(group)
    }

    /// An ok offset commit of `group`: partition → next offset to consume.
    pub fn commit_ok(process: u64, t_ms: u64, group: &str, offsets: &[(&str, i64)]) -> Op {
        let map: BTreeMap<&str, i64> = offsets.iter().copied().collect();
        Op::new(process, "commit", OpType::Ok, t_ms, json!(map)).in_group(group)
    }

    /// What a reader learnt from ListOffsets: partition → (last stable, log end).
    pub fn end_offsets_ok(process: u64, t_ms: u64, ends: &[(&str, i64, i64)]) -> Op {
        let map: BTreeMap<&str, EndOffsets> =
            ends.iter().map(|&(p, last_stable, log_end)| (p, EndOffsets { last_stable, log_end })).collect();
        Op::new(process, "end-offsets", OpType::Ok, t_ms, json!(map))
    }

    /// The same op acting for `group`.
    pub fn in_group(mut self, group: &str) -> Op {
        self.group = Some(group.into());
        self
    }

    /// The same (txn) op committing these consumer offsets with its transaction.
    pub fn with_offsets(mut self, offsets: &[(&str, i64)]) -> Op {
        self.offsets = Some(offsets.iter().map(|&(p, o)| (p.to_string(), o)).collect());
        self
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
        Op::new(process, "poll", OpType::Ok, t_ms, Value::Array(value))
    }

    /// An ok assign of these partitions.
    pub fn assign_ok(process: u64, t_ms: u64, partitions: Vec<String>) -> Op {
        Op::new(process, "assign", OpType::Ok, t_ms, json!(partitions))
    }

    /// The process crashed (`{"f":"crash","type":"info"}`); it never acts
    /// again (a restarted client is a new process).
    pub fn crash_info(process: u64, t_ms: u64) -> Op {
        Op::new(process, "crash", OpType::Info, t_ms, Value::Null)
    }

    /// What this op read, per partition, if it is an ok poll (or txn).
    pub fn poll_views(&self) -> Vec<PollView<'_>> {
        if self.op_type != OpType::Ok {
            return Vec::new();
        }
        self.all_poll_views().collect()
    }

    /// What this op read, per partition, whatever its completion type
    /// (a failed transaction's polls still returned records).
    pub fn all_poll_views(&self) -> impl Iterator<Item = PollView<'_>> {
        self.micro_views(0).filter_map(|m| match m {
            MicroView::Poll(p) => Some(p),
            MicroView::Send(_) => None,
        })
    }

    /// This op's send micro-operations (`op_index` is its place in the history).
    pub fn send_views(&self, op_index: usize) -> impl Iterator<Item = SendView<'_>> {
        self.micro_views(op_index).filter_map(|m| match m {
            MicroView::Send(s) => Some(s),
            MicroView::Poll(_) => None,
        })
    }

    /// This op's send and poll micro-operations in one pass, in order
    /// (polls whatever the op's type; `op_index` is its place in the
    /// history), each decoded once.
    pub fn micro_views(&self, op_index: usize) -> impl Iterator<Item = MicroView<'_>> {
        self.micro_ops().iter().enumerate().filter_map(move |(micro_index, m)| match decode_micro(m) {
            Ok(Micro::Send { partition, value, offset, key }) => Some(MicroView::Send(SendView {
                process: self.process,
                t_ms: self.t_ms,
                op_type: self.op_type,
                partition,
                value,
                offset,
                key,
                invoke_t_ms: self.invoke_t_ms,
                op_index,
                micro_index,
            })),
            Ok(Micro::Poll { partition, reads }) => Some(MicroView::Poll(PollView {
                process: self.process,
                t_ms: self.t_ms,
                op_type: self.op_type,
                partition,
                reads,
            })),
            Err(_) => None,
        })
    }

    /// The micro-operations of a send, poll or txn op (empty for others).
    fn micro_ops(&self) -> &[Value] {
        match (self.f.as_str(), &self.value) {
            ("send" | "poll" | "txn", Value::Array(items)) => items,
            _ => &[],
        }
    }

    /// A `rebalance` op's value; `None` for other ops (and malformed ones,
    /// which [`History::from_jsonl`] refuses).
    pub fn rebalance(&self) -> Option<Rebalance> {
        (self.f == "rebalance").then(|| serde_json::from_value(self.value.clone()).ok()).flatten()
    }

    /// A `commit` op's offsets, or a txn op's `offsets`: partition → next
    /// offset to consume.
    pub fn committed_offsets(&self) -> Option<BTreeMap<String, i64>> {
        match self.f.as_str() {
            "commit" => serde_json::from_value(self.value.clone()).ok(),
            "txn" => self.offsets.clone(),
            _ => None,
        }
    }

    /// A `subscribe` op's topics.
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        (self.f == "subscribe").then(|| serde_json::from_value(self.value.clone()).ok()).flatten()
    }

    /// An `end-offsets` op's value.
    pub fn end_offsets(&self) -> Option<BTreeMap<String, EndOffsets>> {
        (self.f == "end-offsets").then(|| serde_json::from_value(self.value.clone()).ok()).flatten()
    }

    /// Checks the value against its `f`'s format (unknown `f`s pass).
    fn validate(&self) -> Result<(), String> {
        let shape = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("a {} value must be {what}", self.f))
            }
        };
        match self.f.as_str() {
            "send" | "poll" | "txn" => {
                shape(self.value.is_array(), "a list of micro-operations")?;
                self.micro_ops().iter().try_for_each(|m| decode_micro(m).map(|_| ()))
            }
            "rebalance" => shape(self.rebalance().is_some(), r#"{"generation":N,"assigned":[…],"revoked":[…]}"#),
            "commit" => shape(self.committed_offsets().is_some(), r#"{"topic/partition": offset, …}"#),
            "subscribe" => shape(self.subscribed_topics().is_some(), "a list of topic names"),
            "end-offsets" => {
                shape(self.end_offsets().is_some(), r#"{"topic/partition":{"last_stable":N,"log_end":M}, …}"#)
            }
            _ => Ok(()),
        }
    }
}

/// One micro-operation, decoded.
enum Micro<'a> {
    Send { partition: &'a str, value: i64, offset: Option<i64>, key: Option<&'a str> },
    Poll { partition: &'a str, reads: Vec<(i64, i64)> },
}

/// Decodes `["send", p, v, o|null]` (with an optional fifth element, the
/// key: a string or null) or `["poll", p, [[o, v], …]]`.
fn decode_micro(m: &Value) -> Result<Micro<'_>, String> {
    let items = m.as_array().ok_or("a micro-operation is not an array")?;
    let tag = items.first().and_then(Value::as_str).ok_or("a micro-operation lacks its name")?;
    let partition = items.get(1).and_then(Value::as_str).ok_or("a micro-operation lacks its partition")?;
    match (tag, items.len()) {
        ("send", 4 | 5) => {
            let value = items[2].as_i64().ok_or("send value is not an integer")?;
            let offset = match &items[3] {
                Value::Null => None,
                o => Some(o.as_i64().ok_or("send offset is neither an integer nor null")?),
            };
            let key = match items.get(4) {
                None | Some(Value::Null) => None,
                Some(k) => Some(k.as_str().ok_or("send key is neither a string nor null")?),
            };
            Ok(Micro::Send { partition, value, offset, key })
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

    /// Parses JSONL (blank lines skipped). Values of the ops the checkers
    /// read (send, poll, txn, rebalance, commit, subscribe, end-offsets)
    /// are checked against their format so the checkers can trust them;
    /// errors name the 1-based line.
    pub fn from_jsonl(text: &str) -> Result<History, String> {
        let mut h = History::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let op: Op = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            op.validate().map_err(|e| format!("line {}: {e}", i + 1))?;
            h.push(op);
        }
        Ok(h)
    }

    /// Every send micro-operation, with its op's completion type.
    pub fn sends(&self) -> impl Iterator<Item = SendView<'_>> {
        self.ops.iter().enumerate().flat_map(|(i, op)| op.send_views(i))
    }

    /// What every ok poll read, per partition. Polls of fail/info ops are
    /// left out: nothing they returned is known to have been read.
    pub fn polls(&self) -> impl Iterator<Item = PollView<'_>> {
        self.ops.iter().filter(|op| op.op_type == OpType::Ok).flat_map(|op| op.all_poll_views())
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
        assert!(serde_json::to_string(&info)
            .unwrap()
            .ends_with(r#""type":"info","t_ms":1300,"value":[["send","events/1",43,null]]}"#));
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

    #[test]
    fn send_keys_are_an_optional_fifth_element() {
        let keyed = MicroOp::Send { partition: "events/1".into(), value: 42, offset: Some(17), key: Some("k3".into()) };
        let op = Op::micro(3, "send", 1200, OpType::Ok, &[keyed]);
        assert_eq!(serde_json::to_string(&op.value).unwrap(), r#"[["send","events/1",42,17,"k3"]]"#);
        let text = format!(
            "{}\n{}\n",
            serde_json::to_string(&op).unwrap(),
            r#"{"process":1,"f":"send","type":"ok","t_ms":1,"value":[["send","t/0",1,0,null]]}"#
        );
        let h = History::from_jsonl(&text).unwrap();
        let keys: Vec<Option<&str>> = h.sends().map(|s| s.key).collect();
        assert_eq!(keys, vec![Some("k3"), None]);
        let bad = r#"{"process":1,"f":"send","type":"ok","t_ms":1,"value":[["send","t/0",1,0,7]]}"#;
        assert!(History::from_jsonl(bad).unwrap_err().contains("key"));
    }

    #[test]
    fn group_and_txn_ops_round_trip_and_decode() {
        let mut h = History::default();
        h.push(Op::subscribe_ok(5, 0, "g1", &["events"]));
        h.push(Op::rebalance_ok(5, 900, "g1", 4, &["events/0"], &["events/1"]));
        h.push(Op::commit_ok(5, 950, "g1", &[("events/0", 18)]));
        let micro = [MicroOp::poll("in/0", &[(3, 17)]), MicroOp::send("out/0", 17, Some(5))];
        h.push(Op::txn(7, 990, OpType::Ok, &micro).in_group("g1").with_offsets(&[("in/0", 4)]));
        h.push(Op::end_offsets_ok(9, 61000, &[("events/0", 40, 42)]));
        let text = h.to_jsonl();
        assert!(text.contains(r#"{"process":5,"f":"rebalance","type":"ok","t_ms":900,"value":{"assigned":["events/0"],"generation":4,"revoked":["events/1"]},"group":"g1"}"#), "{text}");
        assert!(
            text.contains(
                r#""value":[["poll","in/0",[[3,17]]],["send","out/0",17,5]],"group":"g1","offsets":{"in/0":4}}"#
            ),
            "{text}"
        );
        assert!(text.contains(r#""value":{"events/0":{"last_stable":40,"log_end":42}}"#), "{text}");
        let back = History::from_jsonl(&text).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.ops[0].subscribed_topics(), Some(vec!["events".to_string()]));
        assert_eq!(back.ops[1].rebalance().unwrap().generation, 4);
        assert_eq!(back.ops[2].committed_offsets().unwrap()["events/0"], 18);
        assert_eq!(back.ops[3].committed_offsets().unwrap()["in/0"], 4);
        assert_eq!(back.ops[4].end_offsets().unwrap()["events/0"].log_end, 42);
    }

    #[test]
    fn malformed_group_op_values_are_named() {
        for (line, what) in [
            (r#"{"process":1,"f":"rebalance","type":"ok","t_ms":1,"value":{"assigned":[]}}"#, "generation"),
            (r#"{"process":1,"f":"commit","type":"ok","t_ms":1,"value":{"t/0":"x"}}"#, "commit"),
            (r#"{"process":1,"f":"subscribe","type":"ok","t_ms":1,"value":"t"}"#, "subscribe"),
            (r#"{"process":1,"f":"end-offsets","type":"ok","t_ms":1,"value":{"t/0":3}}"#, "last_stable"),
        ] {
            let e = History::from_jsonl(line).unwrap_err();
            assert!(e.starts_with("line 1:") && e.contains(what), "{e}");
        }
    }
}
