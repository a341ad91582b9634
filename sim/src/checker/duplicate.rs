//! `duplicate`: one value read at more than one offset of a partition
//! (a retried produce written twice). Forbidden when idempotence is on;
//! scenarios without it list `duplicate` in `expect.allow`.
//!
//! Each duplicate names the producer sessions (history processes) whose
//! sends of the value may have written a copy: every process that sent it
//! without a definite failure. Idempotence deduplicates retries within one
//! producer session (one producer id and epoch), so a value sent again by
//! a new session — an application resending after its producer crashed and
//! restarted — can land twice even with `enable.idempotence=true`. The
//! detail then says so ([`ACROSS_SESSIONS`]), and the anomaly's JSON
//! carries `"processes"` and `"across-producer-sessions"` ([`sessions`]).

use super::index::Index;
use super::{conflicts, examples, Anomaly};
use crate::history::OpType;
use std::collections::{BTreeMap, BTreeSet};

pub const KEY: &str = "duplicate";

/// What reports say about a duplicate whose value more than one producer
/// session sent.
pub const ACROSS_SESSIONS: &str = "duplicate across producer sessions (idempotence is per session)";

/// Where a detail lists the sending processes: `(processes [0, 3])`.
const PROCESSES_MARK: &str = "(processes [";

pub fn check(ix: &Index<'_>) -> Vec<Anomaly> {
    let mut offsets_of_value = ix.per_part();
    for p in ix.ok_polls() {
        offsets_of_value[p.part as usize].extend(p.reads.iter().map(|&(offset, value)| (value, offset)));
    }
    let found = conflicts(ix, offsets_of_value);
    if found.is_empty() {
        return Vec::new();
    }
    // Who sent each duplicated value (only those: there are few).
    let mut senders: BTreeMap<(&str, i64), BTreeSet<u64>> = found.iter().map(|&(p, v, _)| ((p, v), BTreeSet::new())).collect();
    for s in ix.sends.iter().filter(|s| s.op_type != OpType::Fail) {
        if let Some(procs) = senders.get_mut(&(s.partition, s.value)) {
            procs.insert(s.process);
        }
    }
    found
        .into_iter()
        .map(|(partition, value, at)| Anomaly {
            key: KEY,
            partition: partition.to_string(),
            value: Some(value),
            offset: Some(at[1]),
            detail: format!(
                "value {value} read at {} offsets: {}{}",
                at.len(),
                examples(&at),
                senders_note(&senders[&(partition, value)])
            ),
        })
        .collect()
}

/// `; sent by 2 producer sessions (processes [0, 3]): duplicate across …`,
/// empty when no send of the value is in the history.
fn senders_note(procs: &BTreeSet<u64>) -> String {
    let list: Vec<String> = procs.iter().map(|p| p.to_string()).collect();
    let list = list.join(", ");
    match procs.len() {
        0 => String::new(),
        1 => format!("; sent by one producer session {PROCESSES_MARK}{list}])"),
        n => format!("; sent by {n} producer sessions {PROCESSES_MARK}{list}]): {ACROSS_SESSIONS}"),
    }
}

/// The processes a `duplicate` anomaly's detail names as senders of its
/// value (empty when the history holds no send of it); `None` for other
/// anomalies.
pub fn sessions(a: &Anomaly) -> Option<Vec<u64>> {
    if a.key != KEY {
        return None;
    }
    let Some(at) = a.detail.find(PROCESSES_MARK) else { return Some(Vec::new()) };
    let rest = &a.detail[at + PROCESSES_MARK.len()..];
    let list = &rest[..rest.find(']').unwrap_or(0)];
    Some(list.split(", ").filter_map(|p| p.parse().ok()).collect())
}

/// A `duplicate` whose value more than one producer session sent.
pub fn across_sessions(a: &Anomaly) -> bool {
    sessions(a).is_some_and(|s| s.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use crate::history::Op;

    #[test]
    fn value_read_at_two_offsets_is_a_duplicate() {
        let h = history(vec![ok(1, 0), poll(&[(0, 1), (1, 2), (2, 1)])]);
        assert_eq!(keys(&check(&ix(&h))), vec![(KEY, Some(1), Some(2))]);
    }

    /// Value 1 sent by process 1 (crashed: info), again by process 4 (ok
    /// at 2), and read at 0 and 2.
    fn resent_by_a_new_session() -> crate::history::History {
        history(vec![
            Op::send(1, 10, OpType::Info, P, 1, None),
            Op::send(4, 20, OpType::Ok, P, 1, Some(2)),
            poll(&[(0, 1), (1, 2), (2, 1)]),
        ])
    }

    // KIP-98: idempotence deduplicates per producer id and epoch. A value
    // sent once by a crashed session (outcome unknown) and again by its
    // successor can land twice: the duplicate says it crossed sessions.
    #[test]
    fn value_resent_by_a_new_producer_session_is_a_duplicate_across_sessions() {
        let h = resent_by_a_new_session();
        let found = check(&ix(&h));
        assert_eq!(keys(&found), vec![(KEY, Some(1), Some(2))]);
        assert_eq!(sessions(&found[0]), Some(vec![1, 4]));
        assert!(across_sessions(&found[0]));
        assert!(found[0].detail.ends_with(ACROSS_SESSIONS), "{}", found[0].detail);
    }

    #[test]
    fn retry_written_twice_by_one_session_is_not_across_sessions() {
        // One process sent the value (idempotence off, a retry landed twice).
        let h = history(vec![ok(1, 0), poll(&[(0, 1), (1, 2), (2, 1)])]);
        let found = check(&ix(&h));
        assert_eq!(sessions(&found[0]), Some(vec![1]));
        assert!(!across_sessions(&found[0]));
        assert!(!found[0].detail.contains(ACROSS_SESSIONS), "{}", found[0].detail);
    }

    #[test]
    fn a_session_whose_send_definitely_failed_wrote_no_copy() {
        let h = history(vec![
            Op::send_fail(3, 10, P, 1),
            Op::send(4, 20, OpType::Ok, P, 1, Some(0)),
            poll(&[(0, 1), (1, 1)]),
        ]);
        let found = check(&ix(&h));
        assert_eq!(sessions(&found[0]), Some(vec![4]));
        assert!(!across_sessions(&found[0]));
    }

    #[test]
    fn duplicate_of_a_value_no_send_mentions_names_no_session() {
        let h = history(vec![poll(&[(0, 7), (1, 7)])]);
        let found = check(&ix(&h));
        assert_eq!(sessions(&found[0]), Some(vec![]));
        assert!(!found[0].detail.contains("sent by"), "{}", found[0].detail);
    }

    #[test]
    fn duplicate_json_lists_its_sessions_and_whether_they_differ() {
        let cross = resent_by_a_new_session();
        let j = serde_json::to_value(&check(&ix(&cross))[0]).unwrap();
        assert_eq!(j["processes"], serde_json::json!([1, 4]));
        assert_eq!(j["across-producer-sessions"], serde_json::json!(true));
        assert_eq!(j["key"], serde_json::json!(KEY));
        let same = history(vec![ok(1, 0), poll(&[(0, 1), (1, 1)])]);
        let j = serde_json::to_value(&check(&ix(&same))[0]).unwrap();
        assert_eq!(j["processes"], serde_json::json!([1]));
        assert_eq!(j["across-producer-sessions"], serde_json::json!(false));
        let other = serde_json::to_value(Anomaly::new("lost-write", P, Some(1), None, String::new())).unwrap();
        let mut fields: Vec<&String> = other.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["detail", "key", "offset", "partition", "value"]);
    }

    #[test]
    fn sessions_are_read_only_from_duplicates() {
        let a = Anomaly::new("lost-write", P, Some(1), Some(0), "sent by 2 producer sessions (processes [1, 2])".into());
        assert_eq!(sessions(&a), None);
        assert!(!across_sessions(&a));
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
