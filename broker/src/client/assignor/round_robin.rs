//! Kafka's RoundRobinAssignor ("roundrobin"): every subscribed partition,
//! sorted by topic then partition, is dealt in turn to the members in
//! `MemberInfo` order (static members by group.instance.id, then dynamic
//! members by member id), skipping members not subscribed to the
//! partition's topic. Topics without metadata are skipped.

use super::{empty_assignments, sorted_members, Assignment, PartitionAssignor, Subscription};
use std::collections::{BTreeMap, BTreeSet};

/// The protocol name.
pub const NAME: &str = "roundrobin";

/// Kafka's RoundRobinAssignor.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl PartitionAssignor for RoundRobinAssignor {
    fn name(&self) -> &str {
        NAME
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Assignment> {
        let mut assignments = empty_assignments(subscriptions);
        let members = sorted_members(subscriptions.iter());
        let topics: BTreeSet<&String> = subscriptions.values().flat_map(|s| s.topics.iter()).collect();
        // Kafka's CircularIterator: `next` is the member the next partition
        // is offered to; it advances past every member it skips or serves.
        let mut next = 0usize;
        for topic in topics {
            let Some(&partition_count) = partitions_per_topic.get(topic) else { continue };
            for partition in 0..partition_count.max(0) {
                // Some member subscribes to `topic`, so this ends within one lap.
                let mut skipped = 0;
                while !subscriptions[members[next]].topics.contains(topic) {
                    next = (next + 1) % members.len();
                    skipped += 1;
                    assert!(skipped < members.len(), "a subscriber of {topic} exists");
                }
                let member = members[next];
                next = (next + 1) % members.len();
                let assignment = assignments.get_mut(member).expect("every member has an entry");
                assignment.partitions.push((topic.clone(), partition));
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
    fn round_robin_assignor_javadoc_example_identical_subscriptions() {
        // RoundRobinAssignor javadoc: t0, t1 with 3 partitions, C0 and C1.
        let partitions = BTreeMap::from([("t0".to_string(), 3), ("t1".to_string(), 3)]);
        let subs = subscribe(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
        let result = RoundRobinAssignor.assign(&partitions, &subs);
        assert_eq!(result["C0"].partitions, vec![tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
        assert_eq!(result["C1"].partitions, vec![tp("t0", 1), tp("t1", 0), tp("t1", 2)]);
    }

    #[test]
    fn round_robin_assignor_javadoc_example_different_subscriptions() {
        // RoundRobinAssignor javadoc: t0 (1 partition), t1 (2), t2 (3);
        // C0 subscribes t0; C1 t0, t1; C2 t0, t1, t2.
        let partitions = BTreeMap::from([("t0".to_string(), 1), ("t1".to_string(), 2), ("t2".to_string(), 3)]);
        let subs = subscribe(&[("C0", &["t0"]), ("C1", &["t0", "t1"]), ("C2", &["t0", "t1", "t2"])]);
        let result = RoundRobinAssignor.assign(&partitions, &subs);
        assert_eq!(result["C0"].partitions, vec![tp("t0", 0)]);
        assert_eq!(result["C1"].partitions, vec![tp("t1", 0)]);
        assert_eq!(result["C2"].partitions, vec![tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
    }
}
