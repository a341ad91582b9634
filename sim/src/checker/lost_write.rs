//! `lost-write`: an acknowledged value is gone from its partition (Jepsen's
//! Kafka `lost-write`). Two ways to know:
//!
//! 1. it was never read, though polls of its partition read past its
//!    acknowledged offset; or
//! 2. a reader that started after the acknowledgement passed over its
//!    offset and found another value there, or nothing: the value was read
//!    once, then the log lost it (a leader lost unsynced data, or an unclean
//!    election truncated it away) and the offset was reused or skipped.
//!
//! "Passed over" means one poll read offsets on both sides of it (or at
//! it), or a process's next poll of the partition resumed beyond it right
//! after reading below it. Only sends acknowledged with an offset are
//! judged: with acks=0 there is no position (`unseen` still reports them).

use super::{acknowledged, values_read, Anomaly};
use crate::history::History;
use std::collections::BTreeMap;

pub const KEY: &str = "lost-write";

/// One stretch of a partition a process read in order: (poll completion
/// time, lowest offset covered, highest offset covered, what it read).
struct Pass<'a> {
    t_ms: u64,
    from: i64,
    to: i64,
    reads: &'a [(i64, i64)],
}

/// Per partition, every stretch each poll covered (its own range, extended
/// back over the gap from the same process's previous poll of it).
fn passes<'a>(polls: &'a [crate::history::PollView<'a>]) -> BTreeMap<&'a str, Vec<Pass<'a>>> {
    let mut last_max: BTreeMap<(u64, &str), i64> = BTreeMap::new();
    let mut out: BTreeMap<&str, Vec<Pass<'a>>> = BTreeMap::new();
    for p in polls {
        let (Some(lo), Some(hi)) = (p.reads.iter().map(|r| r.0).min(), p.reads.iter().map(|r| r.0).max()) else { continue };
        let prev = last_max.insert((p.process, p.partition), hi);
        let from = match prev {
            Some(m) if m < lo => m + 1,
            _ => lo,
        };
        out.entry(p.partition).or_default().push(Pass { t_ms: p.t_ms, from, to: hi, reads: &p.reads });
    }
    out
}

pub fn check(h: &History) -> Vec<Anomaly> {
    let read = values_read(h);
    let polls: Vec<_> = h.polls().collect();
    let passes = passes(&polls);
    let max_read: BTreeMap<&str, i64> =
        passes.iter().filter_map(|(p, ps)| Some((*p, ps.iter().map(|x| x.to).max()?))).collect();
    let ack_time: BTreeMap<(&str, i64), u64> = h
        .sends()
        .filter(|s| s.op_type == crate::history::OpType::Ok)
        .map(|s| ((s.partition, s.value), s.t_ms))
        .collect();
    let mut out = Vec::new();
    for (partition, acked) in acknowledged(h) {
        let Some(&max) = max_read.get(partition) else { continue };
        let seen = read.get(partition);
        for (value, offset) in acked {
            let Some(offset) = offset else { continue };
            let never_read = !seen.is_some_and(|s| s.contains(&value));
            let detail = if never_read && offset < max {
                format!("value {value} acknowledged at offset {offset} was never read, though polls read up to offset {max}")
            } else {
                let acked_ms = ack_time.get(&(partition, value)).copied().unwrap_or(0);
                let gone = passes.get(partition).into_iter().flatten().find(|x| {
                    x.t_ms >= acked_ms
                        && x.from <= offset
                        && offset <= x.to
                        && !x.reads.iter().any(|&(_, v)| v == value)
                });
                let Some(x) = gone else { continue };
                let there = x.reads.iter().find(|r| r.0 == offset).map(|r| format!("value {}", r.1));
                format!(
                    "value {value} acknowledged at offset {offset} (at {acked_ms} ms) was gone when a poll at {} ms read offsets {}..={}: {} there",
                    x.t_ms,
                    x.from,
                    x.to,
                    there.unwrap_or_else(|| "nothing".into())
                )
            };
            out.push(Anomaly { key: KEY, partition: partition.to_string(), value: Some(value), offset: Some(offset), detail });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::history::{Op, OpType};

    #[test]
    fn acknowledged_value_skipped_by_readers_is_lost() {
        let h = history(vec![ok(1, 0), ok(2, 1), ok(3, 2), poll(&[(0, 1), (2, 3)])]);
        assert_eq!(keys(&check(&h)), vec![(KEY, Some(2), Some(1))]);
    }

    #[test]
    fn reads_stopping_below_the_acknowledged_offset_are_not_a_lost_write() {
        let h = history(vec![ok(1, 0), ok(2, 1), ok(3, 2), poll(&[(0, 1), (1, 2)])]);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn another_value_at_exactly_the_acknowledged_offset_means_it_is_gone() {
        // Reading up to the offset is enough when something else is there.
        let h = history(vec![ok(1, 0), ok(2, 1), poll(&[(0, 1), (1, 9)])]);
        assert_eq!(keys(&check(&h)), vec![(KEY, Some(2), Some(1))]);
    }

    #[test]
    fn no_polls_of_the_partition_means_nothing_is_judged() {
        let h = history(vec![ok(1, 0), ok(2, 1)]);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn values_read_at_another_offset_are_not_lost() {
        let h = history(vec![ok(1, 0), ok(2, 1), poll(&[(0, 1), (5, 2), (6, 7)])]);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn failed_info_and_offsetless_sends_are_not_judged() {
        let h = history(vec![
            Op::send_fail(1, 0, P, 1),
            Op::send_info(1, 0, P, 2),
            Op::send(1, 0, OpType::Ok, P, 3, None),
            poll(&[(0, 4), (9, 5)]),
        ]);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn polls_of_another_partition_do_not_count() {
        let h = history(vec![ok(1, 0), Op::poll_ok(2, 0, vec![("events/1".into(), vec![(5, 9)])])]);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn value_read_then_replaced_at_its_offset_is_lost() {
        // Read once at offset 1, later a reader found value 9 there.
        let h = history(vec![
            ok(1, 0),
            ok(2, 1),
            poll(&[(0, 1), (1, 2)]),
            Op::poll_ok(3, 50, vec![(P.to_string(), vec![(0, 1), (1, 9), (2, 10)])]),
        ]);
        assert_eq!(keys(&check(&h)), vec![(KEY, Some(2), Some(1))]);
    }

    #[test]
    fn value_read_then_skipped_by_a_later_reader_is_lost() {
        // The later reader's polls go 0 then 2: offset 1 is no longer there.
        let h = history(vec![
            ok(1, 0),
            ok(2, 1),
            poll(&[(0, 1), (1, 2)]),
            Op::poll_ok(3, 50, vec![(P.to_string(), vec![(0, 1)])]),
            Op::poll_ok(3, 60, vec![(P.to_string(), vec![(2, 10)])]),
        ]);
        assert_eq!(keys(&check(&h)), vec![(KEY, Some(2), Some(1))]);
    }

    #[test]
    fn reads_completed_before_the_acknowledgement_do_not_judge_it() {
        // A reader saw another value at offset 1 before value 2 was acknowledged
        // there (the other value was the one truncated away).
        let h = history(vec![
            Op::poll_ok(3, 5, vec![(P.to_string(), vec![(0, 1), (1, 7)])]),
            Op::send(1, 10, OpType::Ok, P, 2, Some(1)),
            Op::poll_ok(3, 20, vec![(P.to_string(), vec![(1, 2), (2, 3)])]),
        ]);
        assert!(check(&h).is_empty());
    }
}
