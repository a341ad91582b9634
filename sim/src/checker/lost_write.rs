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
//! after reading below it with no assignment change in between
//! ([`super::index::Polled::continues`]). Only sends acknowledged with an offset are
//! judged: with acks=0 there is no position (`unseen` still reports them).

use super::index::{DetMap, Index, Part, Polled};
use super::{acknowledged, values_read, Anomaly};

pub const KEY: &str = "lost-write";

/// One stretch of a partition a process read in order: (poll completion
/// time, lowest offset covered, highest offset covered, what it read).
struct Pass<'a> {
    t_ms: u64,
    from: i64,
    to: i64,
    reads: &'a [(i64, i64)],
}

/// Per partition (by [`Part`]), every stretch each poll covered (its own
/// range, extended back over the gap from the same process's previous
/// poll of it).
fn passes<'a>(ix: &Index<'_>, polls: impl Iterator<Item = &'a Polled<'a>>) -> Vec<Vec<Pass<'a>>> {
    let mut last_max: DetMap<(u64, Part), i64> = DetMap::default();
    let mut out = ix.per_part();
    for p in polls {
        let (Some(lo), Some(hi)) = (p.reads.iter().map(|r| r.0).min(), p.reads.iter().map(|r| r.0).max()) else {
            continue;
        };
        let prev = last_max.insert((p.process, p.part), hi).filter(|_| p.continues);
        let from = match prev {
            Some(m) if m < lo => m + 1,
            _ => lo,
        };
        out[p.part as usize].push(Pass { t_ms: p.t_ms, from, to: hi, reads: &p.reads });
    }
    out
}

/// For every value in `candidates` ((offset, value, acknowledged at),
/// sorted), the first pass (index into `passes`) completed at or after its
/// acknowledgement that covered its offset without reading it. Each pass
/// only visits the candidates inside its own range, so the cost is the
/// reads plus the candidates they cover, not values × passes.
fn first_missing_pass(passes: &[Pass<'_>], candidates: &[(i64, i64, u64)]) -> DetMap<i64, usize> {
    let mut found: DetMap<i64, usize> = DetMap::default();
    let mut in_pass: Vec<i64> = Vec::new();
    for (i, x) in passes.iter().enumerate() {
        let start = candidates.partition_point(|c| c.0 < x.from);
        let covered = candidates[start..].iter().take_while(|c| c.0 <= x.to);
        let mut sorted = false;
        for &(_, value, acked_ms) in covered {
            if x.t_ms < acked_ms || found.contains_key(&value) {
                continue;
            }
            if !sorted {
                in_pass.clear();
                in_pass.extend(x.reads.iter().map(|r| r.1));
                in_pass.sort_unstable();
                sorted = true;
            }
            if in_pass.binary_search(&value).is_err() {
                found.insert(value, i);
            }
        }
    }
    found
}

pub fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let read = values_read(ix);
    let passes = passes(ix, ix.ok_polls());
    let mut out = Vec::new();
    for (part, acked) in acknowledged(ix).iter().enumerate() {
        let ps = &passes[part];
        let Some(max) = ps.iter().map(|x| x.to).max() else {
            continue;
        };
        let partition = ix.name(part as Part);
        let never_read = |value: i64| read[part].binary_search(&value).is_err();
        let mut candidates: Vec<(i64, i64, u64)> = acked
            .iter()
            .filter_map(|a| Some((a.offset?, a.value, a.t_ms)))
            .filter(|&(o, value, _)| !(never_read(value) && o < max))
            .collect();
        candidates.sort_unstable();
        let gone = first_missing_pass(ps, &candidates);
        for a in acked {
            let (value, acked_ms) = (a.value, a.t_ms);
            let Some(offset) = a.offset else { continue };
            let detail = if never_read(value) && offset < max {
                format!("value {value} acknowledged at offset {offset} was never read, though polls read up to offset {max}")
            } else {
                let Some(&i) = gone.get(&value) else { continue };
                let x = &ps[i];
                let there = x.reads.iter().find(|r| r.0 == offset).map(|r| format!("value {}", r.1));
                format!(
                    "value {value} acknowledged at offset {offset} (at {acked_ms} ms) was gone when a poll at {} ms read offsets {}..={}: {} there",
                    x.t_ms,
                    x.from,
                    x.to,
                    there.unwrap_or_else(|| "nothing".into())
                )
            };
            out.push(Anomaly {
                key: KEY,
                partition: partition.to_string(),
                value: Some(value),
                offset: Some(offset),
                detail,
            });
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
        assert_eq!(keys(&check(&ix(&h))), vec![(KEY, Some(2), Some(1))]);
    }

    #[test]
    fn reads_stopping_below_the_acknowledged_offset_are_not_a_lost_write() {
        let h = history(vec![ok(1, 0), ok(2, 1), ok(3, 2), poll(&[(0, 1), (1, 2)])]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn another_value_at_exactly_the_acknowledged_offset_means_it_is_gone() {
        // Reading up to the offset is enough when something else is there.
        let h = history(vec![ok(1, 0), ok(2, 1), poll(&[(0, 1), (1, 9)])]);
        assert_eq!(keys(&check(&ix(&h))), vec![(KEY, Some(2), Some(1))]);
    }

    #[test]
    fn no_polls_of_the_partition_means_nothing_is_judged() {
        let h = history(vec![ok(1, 0), ok(2, 1)]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn values_read_at_another_offset_are_not_lost() {
        let h = history(vec![ok(1, 0), ok(2, 1), poll(&[(0, 1), (5, 2), (6, 7)])]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn failed_info_and_offsetless_sends_are_not_judged() {
        let h = history(vec![
            Op::send_fail(1, 0, P, 1),
            Op::send_info(1, 0, P, 2),
            Op::send(1, 0, OpType::Ok, P, 3, None),
            poll(&[(0, 4), (9, 5)]),
        ]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn polls_of_another_partition_do_not_count() {
        let h = history(vec![ok(1, 0), Op::poll_ok(2, 0, vec![("events/1".into(), vec![(5, 9)])])]);
        assert!(check(&ix(&h)).is_empty());
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
        assert_eq!(keys(&check(&ix(&h))), vec![(KEY, Some(2), Some(1))]);
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
        assert_eq!(keys(&check(&ix(&h))), vec![(KEY, Some(2), Some(1))]);
    }

    /// A group member whose partition moved away and came back resumes at
    /// the committed offset: the offsets another member read meanwhile
    /// were not passed over by it.
    #[test]
    fn a_member_resuming_after_a_rebalance_did_not_pass_over_the_gap() {
        let h = history(vec![
            ok(1, 0),
            ok(2, 1),
            poll(&[(0, 1), (1, 2)]),
            Op::poll_ok(3, 50, vec![(P.to_string(), vec![(0, 1)])]),
            Op::rebalance_ok(3, 55, "g", 2, &[], &[P]),
            Op::rebalance_ok(3, 58, "g", 3, &[P], &[]),
            Op::poll_ok(3, 60, vec![(P.to_string(), vec![(2, 10)])]),
        ]);
        assert!(check(&ix(&h)).is_empty());
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
        assert!(check(&ix(&h)).is_empty());
    }
}
