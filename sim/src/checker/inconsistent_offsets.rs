//! `inconsistent-offsets`: two different values at one offset of a
//! partition, as seen by polls and by acknowledgements (an ok send with an
//! offset says its value is at that offset). A log that truncates and
//! reuses offsets after an unclean failover shows this.

use super::index::Index;
use super::{conflicts, examples, Anomaly};

pub const KEY: &str = "inconsistent-offsets";

pub fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut values_at_offset = ix.per_part();
    for s in ix.ok_sends() {
        if let Some(offset) = s.offset {
            values_at_offset[s.part as usize].push((offset, s.value));
        }
    }
    for p in ix.ok_polls() {
        values_at_offset[p.part as usize].extend_from_slice(&p.reads);
    }
    conflicts(ix, values_at_offset)
        .into_iter()
        .map(|(partition, offset, values)| Anomaly {
            key: KEY,
            partition: partition.to_string(),
            value: None,
            offset: Some(offset),
            detail: format!("offset {offset} holds {} values: {}", values.len(), examples(&values)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::history::{Op, OpType};

    #[test]
    fn two_values_read_at_one_offset_are_inconsistent() {
        let h = history(vec![poll(&[(0, 1)]), poll(&[(0, 2)])]);
        assert_eq!(keys(&check(&ix(&h))), vec![(KEY, None, Some(0))]);
    }

    #[test]
    fn acknowledgement_and_read_disagreeing_on_an_offset_are_inconsistent() {
        let h = history(vec![ok(1, 0), poll(&[(0, 7)])]);
        assert_eq!(keys(&check(&ix(&h))), vec![(KEY, None, Some(0))]);
    }

    #[test]
    fn two_acknowledgements_of_one_offset_are_inconsistent() {
        let h = history(vec![ok(1, 4), ok(2, 4)]);
        assert_eq!(check(&ix(&h)).len(), 1);
    }

    #[test]
    fn agreeing_acknowledgement_and_reads_are_consistent() {
        let h = history(vec![ok(1, 0), ok(2, 1), poll(&[(0, 1), (1, 2)]), poll(&[(1, 2)])]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn failed_and_info_sends_claim_no_offset() {
        let fail = Op::send(1, 0, OpType::Fail, P, 9, Some(0));
        let h = history(vec![fail, Op::send(1, 0, OpType::Info, P, 8, Some(0)), poll(&[(0, 1)])]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn same_offset_in_two_partitions_is_consistent() {
        let h = history(vec![ok(1, 0), Op::poll_ok(2, 0, vec![("events/1".into(), vec![(0, 2)])])]);
        assert!(check(&ix(&h)).is_empty());
    }
}
