//! `unseen`: acknowledged values that no ok poll read by the end of the
//! final polls. Values whose send failed or is unknown (`info`) may
//! legitimately be absent and are not reported.

use super::index::{Index, Part};
use super::{acknowledged, values_read, Acked, Anomaly};

pub const KEY: &str = "unseen";

pub fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let read = values_read(ix);
    let mut out = Vec::new();
    for (part, acked) in acknowledged(ix).iter().enumerate() {
        let partition = ix.name(part as Part);
        for &Acked { value, offset, .. } in acked {
            if read[part].binary_search(&value).is_ok() {
                continue;
            }
            let at = offset.map_or_else(|| "without an offset".to_string(), |o| format!("at offset {o}"));
            out.push(Anomaly {
                key: KEY,
                partition: partition.to_string(),
                value: Some(value),
                offset,
                detail: format!("value {value} acknowledged {at} was never read"),
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
    fn acknowledged_value_never_read_is_unseen() {
        let h = history(vec![ok(1, 0), ok(2, 1), poll(&[(0, 1)])]);
        assert_eq!(keys(&check(&ix(&h))), vec![(KEY, Some(2), Some(1))]);
    }

    #[test]
    fn acknowledged_without_offset_and_never_read_is_unseen() {
        let h = history(vec![Op::send(1, 0, OpType::Ok, P, 5, None)]);
        assert_eq!(keys(&check(&ix(&h))), vec![(KEY, Some(5), None)]);
    }

    #[test]
    fn info_sends_never_read_are_not_unseen() {
        let h = history(vec![Op::send_info(1, 0, P, 1)]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn failed_sends_never_read_are_fine() {
        let h = history(vec![Op::send_fail(1, 0, P, 1)]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn values_read_anywhere_in_their_partition_are_seen() {
        let h = history(vec![ok(1, 0), ok(2, 1), poll(&[(1, 2)]), poll(&[(0, 1)])]);
        assert!(check(&ix(&h)).is_empty());
    }

    #[test]
    fn reading_the_value_in_another_partition_does_not_count() {
        let h = history(vec![ok(1, 0), Op::poll_ok(2, 0, vec![("events/1".into(), vec![(0, 1)])])]);
        assert_eq!(check(&ix(&h)).len(), 1);
    }
}
