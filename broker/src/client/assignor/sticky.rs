//! Kafka's StickyAssignor ("sticky", eager protocol only): balanced
//! first, then as much of every member's previous assignment as possible
//! (the algorithm is in `balance`).
//!
//! With the eager protocol members revoke everything before rejoining, so
//! their subscriptions carry no owned partitions; the previous assignment
//! travels in the assignor's own user data instead.
//!
//! # Format
//!
//! StickyAssignorUserData (no version prefix):
//!
//! - v0: `previous_assignment: [topic: string, partitions: [int32]]`
//! - v1: v0 followed by `generation: int32`
//!
//! Kafka reads v1 first and falls back to v0 (generation unknown, -1);
//! unreadable user data counts as no previous assignment. When the user
//! data is absent we fall back to the subscription's owned partitions and
//! generation (v1+/v2+ subscriptions), which Kafka's StickyAssignor ignores.

use super::balance::{assign_with, MemberData};
use super::protocol::{put_topic_partitions, ProtocolError, Reader};
use super::{Assignment, PartitionAssignor, Subscription, TopicPartition};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// The protocol name.
pub const NAME: &str = "sticky";

/// Kafka's StickyAssignor. It remembers the assignment it last received
/// (`on_assignment`) to send it as user data in the next subscription.
#[derive(Debug, Default)]
pub struct StickyAssignor {
    /// The member's last assignment and its generation.
    previous: Mutex<Option<(Vec<TopicPartition>, i32)>>,
}

/// Encodes StickyAssignorUserData v1.
pub fn encode_sticky_user_data(partitions: &[TopicPartition], generation_id: i32) -> Result<Bytes, ProtocolError> {
    let mut buf = BytesMut::new();
    put_topic_partitions(&mut buf, partitions)?;
    buf.extend_from_slice(&generation_id.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes StickyAssignorUserData v1, or v0 (generation -1); None when
/// neither reads.
pub fn decode_sticky_user_data(bytes: &[u8]) -> Option<(Vec<TopicPartition>, i32)> {
    let mut reader = Reader::new(bytes);
    let partitions = reader.topic_partitions().ok()?;
    let generation_id = reader.int32().unwrap_or(-1);
    Some((partitions, generation_id))
}

/// The previous ownership the sticky assignor uses for one member.
fn member_data(subscription: &Subscription) -> MemberData {
    let from_user_data = subscription.user_data.as_deref().filter(|b| !b.is_empty()).and_then(decode_sticky_user_data);
    match from_user_data {
        Some((partitions, generation_id)) => MemberData { partitions, generation_id },
        None => {
            MemberData { partitions: subscription.owned_partitions.clone(), generation_id: subscription.generation_id }
        }
    }
}

impl PartitionAssignor for StickyAssignor {
    fn name(&self) -> &str {
        NAME
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Assignment> {
        assign_with(partitions_per_topic, subscriptions, member_data)
    }

    fn subscription_user_data(&self, _topics: &BTreeSet<String>) -> Option<Bytes> {
        let previous = self.previous.lock().expect("sticky assignor state lock");
        let (partitions, generation_id) = previous.as_ref()?;
        // A topic name too long to encode only loses stickiness.
        encode_sticky_user_data(partitions, *generation_id).ok()
    }

    fn on_assignment(&self, assignment: &Assignment, generation_id: i32) {
        *self.previous.lock().expect("sticky assignor state lock") =
            Some((assignment.partitions.clone(), generation_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::assignor::tests::{subscribe, tp};

    #[test]
    fn sticky_user_data_v1_round_trips() {
        let partitions = vec![tp("a", 1), tp("a", 0), tp("b", 4)];
        let bytes = encode_sticky_user_data(&partitions, 42).unwrap();
        assert_eq!(decode_sticky_user_data(&bytes), Some((partitions, 42)));
    }

    #[test]
    fn sticky_user_data_v1_bytes_match_kafka_layout() {
        let bytes = encode_sticky_user_data(&[tp("t", 3)], 2).unwrap();
        assert_eq!(&bytes[..], &[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 2]);
    }

    #[test]
    fn sticky_user_data_v0_reads_with_unknown_generation() {
        let bytes = [0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 3];
        assert_eq!(decode_sticky_user_data(&bytes), Some((vec![tp("t", 3)], -1)));
    }

    #[test]
    fn sticky_user_data_garbage_is_no_previous_assignment() {
        assert_eq!(decode_sticky_user_data(&[0x7f, 0xff, 0xff, 0xff, 1]), None);
        assert_eq!(decode_sticky_user_data(&[0, 0]), None);
        let full = encode_sticky_user_data(&[tp("topic", 1), tp("other", 2)], 9).unwrap();
        for len in 0..full.len() - 4 {
            assert_eq!(decode_sticky_user_data(&full[..len]), None, "prefix of {len} bytes");
        }
    }

    #[test]
    fn sticky_assignor_carries_its_assignment_in_user_data() {
        let assignor = StickyAssignor::default();
        assert_eq!(assignor.subscription_user_data(&BTreeSet::new()), None, "nothing before the first assignment");
        let assignment = Assignment { partitions: vec![tp("t", 0), tp("t", 2)], user_data: None };
        assignor.on_assignment(&assignment, 5);
        let user_data = assignor.subscription_user_data(&BTreeSet::new()).unwrap();
        assert_eq!(decode_sticky_user_data(&user_data), Some((assignment.partitions, 5)));
    }

    #[test]
    fn sticky_assignor_keeps_previous_assignment_from_user_data() {
        // Eager: owned_partitions is empty, the user data says who had what.
        let partitions = BTreeMap::from([("t".to_string(), 4)]);
        let sub = |owned: &[TopicPartition]| Subscription {
            topics: vec!["t".into()],
            user_data: Some(encode_sticky_user_data(owned, 1).unwrap()),
            generation_id: -1,
            ..Default::default()
        };
        let subscriptions = BTreeMap::from([
            ("a".to_string(), sub(&[tp("t", 1), tp("t", 3)])),
            ("b".to_string(), sub(&[tp("t", 0), tp("t", 2)])),
        ]);
        let result = StickyAssignor::default().assign(&partitions, &subscriptions);
        assert_eq!(result["a"].partitions, vec![tp("t", 1), tp("t", 3)]);
        assert_eq!(result["b"].partitions, vec![tp("t", 0), tp("t", 2)]);
    }

    /// Runs the assignor, then (eager rebalance) gives every member not
    /// in `leaving` its assignment back as StickyAssignorUserData and runs
    /// it again without the leavers.
    fn assign_then_remove(
        partitions: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
        leaving: &str,
    ) -> (BTreeMap<String, Assignment>, BTreeMap<String, Assignment>) {
        let first = StickyAssignor::default().assign(partitions, subscriptions);
        let mut rest = subscriptions.clone();
        rest.remove(leaving);
        for (m, sub) in rest.iter_mut() {
            sub.user_data = Some(encode_sticky_user_data(&first[m].partitions, 1).unwrap());
        }
        (first, StickyAssignor::default().assign(partitions, &rest))
    }

    fn sorted(mut partitions: Vec<TopicPartition>) -> Vec<TopicPartition> {
        partitions.sort();
        partitions
    }

    #[test]
    fn sticky_assignor_javadoc_example_equal_subscriptions() {
        // StickyAssignor javadoc: C0, C1, C2 subscribe to t0..t3 (2
        // partitions each); C1 leaves and the others keep all they had.
        let partitions: BTreeMap<String, i32> = (0..4).map(|t| (format!("t{t}"), 2)).collect();
        let all: &[&str] = &["t0", "t1", "t2", "t3"];
        let subscriptions = subscribe(&[("C0", all), ("C1", all), ("C2", all)]);
        let (first, second) = assign_then_remove(&partitions, &subscriptions, "C1");
        assert_eq!(first["C0"].partitions, vec![tp("t0", 0), tp("t1", 1), tp("t3", 0)]);
        assert_eq!(first["C1"].partitions, vec![tp("t0", 1), tp("t2", 0), tp("t3", 1)]);
        assert_eq!(first["C2"].partitions, vec![tp("t1", 0), tp("t2", 1)]);
        assert_eq!(sorted(second["C0"].partitions.clone()), vec![tp("t0", 0), tp("t1", 1), tp("t2", 0), tp("t3", 0)]);
        assert_eq!(sorted(second["C2"].partitions.clone()), vec![tp("t0", 1), tp("t1", 0), tp("t2", 1), tp("t3", 1)]);
    }

    #[test]
    fn sticky_assignor_javadoc_example_different_subscriptions() {
        // StickyAssignor javadoc: t0, t1, t2 with 1, 2, 3 partitions; C0
        // subscribes t0, C1 t0 and t1, C2 all three. Sticky (unlike round
        // robin) gives C1 both t1 partitions; when C0 leaves, C1 takes t0-0
        // and nothing else moves.
        let partitions = BTreeMap::from([("t0".to_string(), 1), ("t1".to_string(), 2), ("t2".to_string(), 3)]);
        let subscriptions = subscribe(&[("C0", &["t0"]), ("C1", &["t0", "t1"]), ("C2", &["t0", "t1", "t2"])]);
        let (first, second) = assign_then_remove(&partitions, &subscriptions, "C0");
        assert_eq!(first["C0"].partitions, vec![tp("t0", 0)]);
        assert_eq!(first["C1"].partitions, vec![tp("t1", 0), tp("t1", 1)]);
        assert_eq!(first["C2"].partitions, vec![tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
        assert_eq!(second["C1"].partitions, vec![tp("t0", 0), tp("t1", 0), tp("t1", 1)]);
        assert_eq!(second["C2"].partitions, vec![tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
    }
}
