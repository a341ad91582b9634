//! `duplicate`: one value read at more than one offset of a partition
//! (a retried produce written twice). Forbidden when idempotence is on;
//! scenarios without it list `duplicate` in `expect.allow`.

use super::index::Index;
use super::{conflicts, examples, Anomaly};

pub const KEY: &str = "duplicate";

pub fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut offsets_of_value = ix.per_part();
    for p in ix.ok_polls() {
        offsets_of_value[p.part as usize].extend(p.reads.iter().map(|&(offset, value)| (value, offset)));
    }
    conflicts(ix, offsets_of_value)
        .into_iter()
        .map(|(partition, value, at)| Anomaly {
            key: KEY,
            partition: partition.to_string(),
            value: Some(value),
            offset: Some(at[1]),
            detail: format!("value {value} read at {} offsets: {}", at.len(), examples(&at)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;

    #[test]
    fn value_read_at_two_offsets_is_a_duplicate() {
        let h = history(vec![ok(1, 0), poll(&[(0, 1), (1, 2), (2, 1)])]);
        assert_eq!(keys(&check(&ix(&h))), vec![(KEY, Some(1), Some(2))]);
    }

    #[test]
    fn same_value_at_same_offset_read_twice_is_not_a_duplicate() {
        let h = history(vec![poll(&[(0, 1), (1, 2)]), poll(&[(0, 1), (1, 2)])]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn acknowledged_offset_differing_from_read_offset_is_not_a_duplicate() {
        // Only reads count: the ack says 0, the read says 3.
        let h = history(vec![ok(1, 0), poll(&[(3, 1)])]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn same_value_in_two_partitions_is_not_a_duplicate() {
        let h = history(vec![crate::history::Op::poll_ok(
            2,
            0,
            vec![("events/0".into(), vec![(0, 1)]), ("events/1".into(), vec![(4, 1)])],
        )]);
        assert!(check(&ix(&h)).is_empty());
    }
}
