//! Consumer read order (Jepsen's Kafka checker): a consumer's reads of a
//! partition must go forward without skipping anything that is in the log,
//! unless an assignment change in between resets its position (an ok
//! `assign`, or a `rebalance` that revoked the partition or left it out:
//! [`super::index::Polled::continues`]).
//!
//! - `nonmonotonic-poll`: a process's next poll of a partition starts at or
//!   below where its previous poll of it ended.
//! - `poll-skip`: it starts beyond the next offset known to hold a value (an
//!   offset some reader saw) after the previous poll's last one.
//! - `int-nonmonotonic-poll` / `int-poll-skip`: the same between adjacent
//!   records inside one poll.
//!
//! Offsets nobody ever read (compacted away, control batches, aborted
//! transactions) are not skips: only offsets known to hold a value count.

use super::index::{DetMap, Index, Part};
use super::Anomaly;
use crate::history::{History, OpType};

pub const NONMONOTONIC: &str = "nonmonotonic-poll";
pub const SKIP: &str = "poll-skip";
pub const INT_NONMONOTONIC: &str = "int-nonmonotonic-poll";
pub const INT_SKIP: &str = "int-poll-skip";

/// The anomaly, if any, of reading `to` right after `from`.
/// `known` is sorted and deduplicated.
fn judge(known: &[i64], from: i64, to: i64) -> Option<(bool, String)> {
    if to <= from {
        return Some((false, format!("offset {to} read after offset {from}")));
    }
    if to == from + 1 {
        return None; // nothing in between (the common case: no search)
    }
    let at = known.partition_point(|&o| o <= from);
    let skipped: Vec<i64> = known[at..].iter().copied().take_while(|&o| o < to).take(4).collect();
    (!skipped.is_empty()).then(|| (true, format!("jumped from offset {from} to {to}, skipping {skipped:?}")))
}

pub fn check(h: &History, ix: &Index<'_>) -> Vec<Anomaly> {
    let mut known: Vec<Vec<i64>> = ix.per_part();
    for p in ix.ok_polls() {
        known[p.part as usize].extend(p.reads.iter().map(|r| r.0));
    }
    for offsets in &mut known {
        offsets.sort_unstable();
        offsets.dedup();
    }
    let mut last: DetMap<(u64, Part), i64> = DetMap::default();
    let mut out = Vec::new();
    let mut push = |key: &'static str, partition: &str, offset: i64, detail: String| {
        out.push(Anomaly { key, partition: partition.to_string(), value: None, offset: Some(offset), detail });
    };
    for i in 0..h.ops.len() {
        for view in ix.op_polls(i).iter().filter(|p| p.op_type == OpType::Ok) {
            let k = &known[view.part as usize];
            let Some(&(first, _)) = view.reads.first() else {
                continue;
            };
            if let Some(&prev) = last.get(&(view.process, view.part)).filter(|_| view.continues) {
                if let Some((skip, detail)) = judge(k, prev, first) {
                    push(
                        if skip { SKIP } else { NONMONOTONIC },
                        view.partition,
                        first,
                        format!("process {}: {detail}", view.process),
                    );
                }
            }
            for w in view.reads.windows(2) {
                if let Some((skip, detail)) = judge(k, w[0].0, w[1].0) {
                    let key = if skip { INT_SKIP } else { INT_NONMONOTONIC };
                    push(key, view.partition, w[1].0, format!("process {} within one poll: {detail}", view.process));
                }
            }
            let end = view.reads.last().expect("non-empty").0;
            last.insert((view.process, view.part), end);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::history::Op;

    fn poll_by(process: u64, reads: &[(i64, i64)]) -> Op {
        Op::poll_ok(process, 0, vec![(P.to_string(), reads.to_vec())])
    }

    fn keys_of(h: &History) -> Vec<&'static str> {
        check(h, &ix(h)).iter().map(|a| a.key).collect()
    }

    #[test]
    fn successive_contiguous_polls_are_in_order() {
        let h = history(vec![poll_by(1, &[(0, 10), (1, 11)]), poll_by(1, &[(2, 12), (3, 13)])]);
        assert!(keys_of(&h).is_empty());
    }

    #[test]
    fn a_poll_that_starts_past_a_known_offset_skips_it() {
        // Another reader saw offset 2; process 1 went from 1 to 3.
        let h = history(vec![
            poll_by(2, &[(0, 10), (1, 11), (2, 12), (3, 13)]),
            poll_by(1, &[(0, 10), (1, 11)]),
            poll_by(1, &[(3, 13)]),
        ]);
        assert_eq!(keys_of(&h), vec![SKIP]);
    }

    #[test]
    fn gaps_nobody_read_are_not_skips() {
        // Offset 2 was compacted away or was a control record.
        let h = history(vec![poll_by(1, &[(0, 10), (1, 11)]), poll_by(1, &[(3, 13)])]);
        assert!(keys_of(&h).is_empty());
    }

    #[test]
    fn a_poll_that_goes_back_is_nonmonotonic() {
        let h = history(vec![poll_by(1, &[(0, 10), (1, 11)]), poll_by(1, &[(1, 11), (2, 12)])]);
        assert_eq!(keys_of(&h), vec![NONMONOTONIC]);
    }

    #[test]
    fn an_assignment_change_resets_the_position() {
        let h = history(vec![
            poll_by(1, &[(0, 10), (1, 11)]),
            Op::assign_ok(1, 0, vec![P.to_string()]),
            poll_by(1, &[(0, 10)]),
        ]);
        assert!(keys_of(&h).is_empty());
    }

    /// A group member that loses a partition in a rebalance and gets it
    /// back later resumes at the group's committed offset, past what
    /// another member read meanwhile: not a skip. A partition the member
    /// kept through a (cooperative) rebalance must still continue.
    #[test]
    fn a_rebalance_that_revokes_a_partition_resets_its_position() {
        let rebalance = |generation, assigned: &[&str], revoked: &[&str]| Op::rebalance_ok(1, 0, "g", generation, assigned, revoked);
        let h = history(vec![
            poll_by(2, &[(0, 10), (1, 11), (2, 12), (3, 13), (4, 14)]),
            poll_by(1, &[(0, 10), (1, 11)]),
            rebalance(2, &[], &[P]),
            rebalance(3, &[P], &[]),
            poll_by(1, &[(4, 14)]),
        ]);
        assert!(keys_of(&h).is_empty(), "{:?}", check(&h, &ix(&h)));
        let kept = history(vec![
            poll_by(2, &[(0, 10), (1, 11), (2, 12), (3, 13), (4, 14)]),
            poll_by(1, &[(0, 10), (1, 11)]),
            rebalance(2, &[P, "events/1"], &["events/2"]),
            poll_by(1, &[(4, 14)]),
        ]);
        assert_eq!(keys_of(&kept), vec![SKIP]);
        // Left out of the new assignment without being listed as revoked
        // (a member that lost its partitions) resets too.
        let lost = history(vec![
            poll_by(2, &[(0, 10), (1, 11), (2, 12), (3, 13), (4, 14)]),
            poll_by(1, &[(0, 10), (1, 11)]),
            rebalance(-1, &[], &[]),
            poll_by(1, &[(4, 14)]),
        ]);
        assert!(keys_of(&lost).is_empty());
    }

    #[test]
    fn inside_one_poll_order_and_skips_are_judged_too() {
        let h = history(vec![poll_by(2, &[(0, 10), (1, 11), (2, 12)]), poll_by(1, &[(0, 10), (2, 12), (1, 11)])]);
        assert_eq!(keys_of(&h), vec![INT_SKIP, INT_NONMONOTONIC]);
    }

    #[test]
    fn different_processes_and_partitions_are_judged_apart() {
        let h = history(vec![
            poll_by(1, &[(0, 10), (1, 11)]),
            poll_by(2, &[(0, 10)]),
            Op::poll_ok(1, 0, vec![("events/1".into(), vec![(0, 20)])]),
        ]);
        assert!(keys_of(&h).is_empty());
    }
}
