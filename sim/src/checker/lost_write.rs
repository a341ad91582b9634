//! `lost-write`: an acknowledged value is missing below the highest offset
//! any ok poll of its partition read. Readers went past where the value was
//! acknowledged and never saw it, so it is gone (Jepsen's Kafka `lost-write`).
//!
//! Only sends acknowledged with an offset are judged: with acks=0 there is
//! no position to have read past (`unseen` still reports them).

use super::{acknowledged, values_read, Anomaly};
use crate::history::History;
use std::collections::BTreeMap;

pub const KEY: &str = "lost-write";

pub fn check(h: &History) -> Vec<Anomaly> {
    let read = values_read(h);
    let mut max_read: BTreeMap<&str, i64> = BTreeMap::new();
    for p in h.polls() {
        if let Some(o) = p.reads.iter().map(|&(o, _)| o).max() {
            let m = max_read.entry(p.partition).or_insert(o);
            *m = (*m).max(o);
        }
    }
    let mut out = Vec::new();
    for (partition, acked) in acknowledged(h) {
        let Some(&max) = max_read.get(partition) else { continue };
        let seen = read.get(partition);
        for (value, offset) in acked {
            let Some(offset) = offset else { continue };
            if offset < max && !seen.is_some_and(|s| s.contains(&value)) {
                out.push(Anomaly {
                    key: KEY,
                    partition: partition.to_string(),
                    value: Some(value),
                    offset: Some(offset),
                    detail: format!(
                        "value {value} acknowledged at offset {offset} was never read, though polls read up to offset {max}"
                    ),
                });
            }
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
    fn reads_reaching_exactly_the_acknowledged_offset_are_not_past_it() {
        let h = history(vec![ok(1, 0), ok(2, 1), poll(&[(0, 1), (1, 9)])]);
        assert!(check(&h).is_empty());
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
}
