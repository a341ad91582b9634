//! Kafka's RangeAssignor ("range"): topic by topic, the members subscribed
//! to the topic in `MemberInfo` order (static members by
//! group.instance.id, then dynamic members by member id) each get a
//! contiguous range of its partitions; with `n` partitions and `m`
//! members every member gets `n / m` and the first `n % m` one more.
//!
//! Topics the leader has no metadata for are skipped (Kafka logs and
//! skips them). Rack-aware range assignment (KIP-881) needs partition
//! racks, which the trait does not carry, so it is not done.

use super::{empty_assignments, sorted_members, Assignment, PartitionAssignor, Subscription};
use std::collections::{BTreeMap, BTreeSet};

/// The protocol name.
pub const NAME: &str = "range";

/// Kafka's RangeAssignor.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl PartitionAssignor for RangeAssignor {
    fn name(&self) -> &str {
        NAME
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Assignment> {
        let mut assignments = empty_assignments(subscriptions);
        let topics: BTreeSet<&String> = subscriptions.values().flat_map(|s| s.topics.iter()).collect();
        for topic in topics {
            let Some(&partition_count) = partitions_per_topic.get(topic) else { continue };
            let partition_count = partition_count.max(0);
            let members = sorted_members(subscriptions.iter().filter(|(_, s)| s.topics.iter().any(|t| t == topic)));
            assert!(!members.is_empty(), "a topic in the union of subscriptions has a subscriber");
            let member_count = members.len() as i32;
            let per_member = partition_count / member_count;
            let with_extra = partition_count % member_count;
            for (i, member) in members.into_iter().enumerate() {
                let i = i as i32;
                let start = per_member * i + i.min(with_extra);
                let length = per_member + i32::from(i < with_extra);
                let assignment = assignments.get_mut(member).expect("every member has an entry");
                assignment.partitions.extend((start..start + length).map(|p| (topic.clone(), p)));
            }
        }
        assignments
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::assignor::tests::{subscribe, tp};

    #[test]
    fn range_assignor_javadoc_example() {
        // RangeAssignor javadoc: t0, t1 with 3 partitions, C0 and C1.
        let partitions = BTreeMap::from([("t0".to_string(), 3), ("t1".to_string(), 3)]);
        let subs = subscribe(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
        let result = RangeAssignor.assign(&partitions, &subs);
        assert_eq!(result["C0"].partitions, vec![tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]);
        assert_eq!(result["C1"].partitions, vec![tp("t0", 2), tp("t1", 2)]);
    }

    #[test]
    fn range_assignor_first_members_get_the_remainder() {
        let partitions = BTreeMap::from([("t".to_string(), 8)]);
        let subs = subscribe(&[("c", &["t"]), ("a", &["t"]), ("b", &["t"])]);
        let result = RangeAssignor.assign(&partitions, &subs);
        assert_eq!(result["a"].partitions, vec![tp("t", 0), tp("t", 1), tp("t", 2)]);
        assert_eq!(result["b"].partitions, vec![tp("t", 3), tp("t", 4), tp("t", 5)]);
        assert_eq!(result["c"].partitions, vec![tp("t", 6), tp("t", 7)]);
    }

    #[test]
    fn range_assignor_orders_static_members_by_group_instance_id() {
        // KIP-345: MemberInfo compares group.instance.id when both have one,
        // and static members sort before dynamic ones.
        let partitions = BTreeMap::from([("t".to_string(), 3)]);
        let mut subs = subscribe(&[("m1", &["t"]), ("m2", &["t"]), ("m3", &["t"])]);
        subs.get_mut("m1").unwrap().group_instance_id = Some("z".into());
        subs.get_mut("m2").unwrap().group_instance_id = Some("y".into());
        let result = RangeAssignor.assign(&partitions, &subs);
        assert_eq!(result["m2"].partitions, vec![tp("t", 0)]);
        assert_eq!(result["m1"].partitions, vec![tp("t", 1)]);
        assert_eq!(result["m3"].partitions, vec![tp("t", 2)]);
    }

    #[test]
    fn range_assignor_skips_topics_without_metadata_and_unsubscribed_members() {
        let partitions = BTreeMap::from([("t0".to_string(), 2)]);
        let subs = subscribe(&[("a", &["t0", "gone"]), ("b", &["other"])]);
        let result = RangeAssignor.assign(&partitions, &subs);
        assert_eq!(result["a"].partitions, vec![tp("t0", 0), tp("t0", 1)]);
        assert!(result["b"].partitions.is_empty(), "b has an entry, and it is empty");
    }
}
