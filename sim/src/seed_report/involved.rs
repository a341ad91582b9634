//! Which operations an anomaly is about, so reports can highlight them.
//!
//! A checker reports an [`Anomaly`] as (key, partition, value, offset,
//! detail). The operations behind it are found from those fields:
//!
//! - with a value: the sends of that value to the partition and the polls
//!   that read it (a lost write's ack, a duplicate's two reads), plus the
//!   polls that read its offset (what a lost write's reader found there);
//! - with an offset only: the polls that read that offset and the sends
//!   acknowledged at it (two values at one offset, a skip's landing
//!   point), narrowed to `process N` when the detail names one.
//!
//! Broker-side anomalies name no client operation; their time comes from
//! the detail, whose checkers start it with `at N ms`.

use crate::checker::Anomaly;
use crate::history::History;
use std::collections::BTreeMap;

/// Operations listed per anomaly at most (the first, by history order).
pub const INVOLVED_OPS_MAX: usize = 12;

/// Keys judged from observations, not client operations.
pub const BROKER_SIDE: &[&str] = &["replica-divergence", "hw-regression", "epoch-regression", "leader-per-epoch"];

/// An anomaly with the operations it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Index into the seed's anomaly list.
    pub anomaly: usize,
    /// Indices into the history's ops, ascending, at most [`INVOLVED_OPS_MAX`].
    pub ops: Vec<usize>,
    /// When it shows: the `at N ms` of its detail, else its first op's time.
    pub t_ms: Option<u64>,
}

/// Per partition, which ops mention a value, which read an offset and
/// which were acknowledged at one.
#[derive(Default)]
struct Index<'a> {
    by_value: BTreeMap<(&'a str, i64), Vec<usize>>,
    read_at: BTreeMap<(&'a str, i64), Vec<usize>>,
    acked_at: BTreeMap<(&'a str, i64), Vec<usize>>,
}

impl<'a> Index<'a> {
    fn build(h: &'a History) -> Index<'a> {
        let mut ix = Index::default();
        let add = |map: &mut BTreeMap<(&'a str, i64), Vec<usize>>, key, i: usize| {
            let ops = map.entry(key).or_default();
            if ops.last() != Some(&i) {
                ops.push(i);
            }
        };
        for (i, op) in h.ops.iter().enumerate() {
            for s in op.send_views(i) {
                add(&mut ix.by_value, (s.partition, s.value), i);
                if let Some(o) = s.offset {
                    add(&mut ix.acked_at, (s.partition, o), i);
                }
            }
            for p in op.poll_views() {
                for &(o, v) in &p.reads {
                    add(&mut ix.by_value, (p.partition, v), i);
                    add(&mut ix.read_at, (p.partition, o), i);
                }
            }
        }
        ix
    }
}

/// `N` from the first `marker N` in `text` (`at 812 ms` → 812 with marker `at`).
fn number_after(text: &str, marker: &str, unit: &str) -> Option<u64> {
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let after = &rest[at + marker.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with(unit) {
            return digits.parse().ok();
        }
        rest = &rest[at + marker.len()..];
    }
    None
}

/// Every anomaly's involved ops and time, in the anomalies' order.
pub fn findings(h: &History, anomalies: &[Anomaly]) -> Vec<Finding> {
    let ix = Index::build(h);
    anomalies
        .iter()
        .enumerate()
        .map(|(n, a)| {
            let mut ops: Vec<usize> = Vec::new();
            if !BROKER_SIDE.contains(&a.key) {
                let p = a.partition.as_str();
                if let Some(v) = a.value {
                    ops.extend(ix.by_value.get(&(p, v)).into_iter().flatten());
                }
                if let Some(o) = a.offset {
                    // With a value, its offset adds what was read there (the
                    // evidence); without, every op at the offset is suspect.
                    let mut at: Vec<usize> = ix.read_at.get(&(p, o)).cloned().unwrap_or_default();
                    if a.value.is_none() {
                        at.extend(ix.acked_at.get(&(p, o)).into_iter().flatten());
                        at.sort_unstable();
                    }
                    let process = number_after(&a.detail, "process ", "");
                    let narrowed: Vec<usize> =
                        at.iter().copied().filter(|&i| process.is_none_or(|pr| h.ops[i].process == pr)).collect();
                    ops.extend(if narrowed.is_empty() { at } else { narrowed });
                }
                ops.sort_unstable();
                ops.dedup();
                ops.truncate(INVOLVED_OPS_MAX);
            }
            let t_ms = number_after(&a.detail, "at ", " ms").or_else(|| ops.first().map(|&i| h.ops[i].t_ms));
            Finding { anomaly: n, ops, t_ms }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    fn anomaly(key: &'static str, value: Option<i64>, offset: Option<i64>, detail: &str) -> Anomaly {
        Anomaly { key, partition: "events/0".into(), value, offset, detail: detail.into() }
    }

    fn history() -> History {
        History {
            ops: vec![
                Op::send_ok(0, 10, "events/0", 1, Some(0)),
                Op::send_ok(0, 11, "events/0", 2, Some(1)),
                Op::send_ok(0, 12, "events/0", 3, Some(1)),
                Op::poll_ok(2, 20, vec![("events/0".into(), vec![(0, 1), (1, 3)])]),
                Op::poll_ok(3, 21, vec![("events/0".into(), vec![(1, 3)])]),
            ],
        }
    }

    #[test]
    fn a_lost_write_involves_its_ack_and_whatever_was_read_at_its_offset() {
        let a = anomaly("lost-write", Some(2), Some(1), "value 2 acknowledged at offset 1 (at 11 ms) was gone");
        let f = findings(&history(), &[a]);
        assert_eq!(f[0].ops, vec![1, 3, 4]);
        assert_eq!(f[0].t_ms, Some(11));
    }

    #[test]
    fn two_values_at_one_offset_involve_both_acks_and_the_reads() {
        let a = anomaly("inconsistent-offsets", None, Some(1), "offset 1 holds values 2 and 3");
        assert_eq!(findings(&history(), &[a])[0].ops, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_poll_order_anomaly_is_narrowed_to_the_process_its_detail_names() {
        let a = anomaly("nonmonotonic-poll", None, Some(1), "process 3: offset 1 read after offset 1");
        assert_eq!(findings(&history(), &[a])[0].ops, vec![4]);
    }

    #[test]
    fn broker_side_anomalies_name_no_op_but_keep_their_time() {
        let a = anomaly("hw-regression", Some(3), Some(5), "at 812 ms broker 1's HW went from 5 back to 3");
        let f = findings(&history(), &[a]);
        assert!(f[0].ops.is_empty());
        assert_eq!(f[0].t_ms, Some(812));
    }
}
