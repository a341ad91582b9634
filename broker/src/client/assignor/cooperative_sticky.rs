//! Kafka's CooperativeStickyAssignor ("cooperative-sticky", KIP-429):
//! the sticky assignment (see `balance`), then every partition that would
//! go to a member while another member still owns it is left unassigned
//! for this rebalance. The owner sees it missing from its assignment,
//! revokes it and rejoins; the follow-up rebalance assigns it, now
//! unowned, to its new member. So no partition is ever owned by two
//! members at once.
//!
//! Previous ownership is the subscription's owned partitions (v1+) with
//! its generation (v2+); for v0/v1 subscriptions the generation comes from
//! this assignor's user data, `generation: int32` (Kafka's
//! CooperativeStickyAssignorUserData v0), else -1.
//!
//! A partition is withheld from member X when any other member lists it as
//! owned, even a member whose claim lost on generation: that member may
//! still be consuming it, and withholding costs only one more rebalance.
//! (Kafka withholds only partitions revoked from a member that owned them
//! and added to another.)
//!
//! Supports both protocols; under the eager one members own nothing when
//! they rejoin, so nothing is withheld.

use super::balance::{assign_with, MemberData};
use super::{Assignment, PartitionAssignor, RebalanceProtocol, Subscription, TopicPartition};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI32, Ordering};

/// The protocol name.
pub const NAME: &str = "cooperative-sticky";

/// Kafka's CooperativeStickyAssignor.
#[derive(Debug)]
pub struct CooperativeStickyAssignor {
    /// The generation of the member's last assignment (-1 none), sent as
    /// user data for subscriptions older than v2.
    generation_id: AtomicI32,
}

impl Default for CooperativeStickyAssignor {
    fn default() -> Self {
        CooperativeStickyAssignor { generation_id: AtomicI32::new(-1) }
    }
}

/// Kafka's `CooperativeStickyAssignor.memberData`.
fn member_data(subscription: &Subscription) -> MemberData {
    let generation_id = if subscription.generation_id >= 0 {
        subscription.generation_id
    } else {
        match subscription.user_data.as_deref() {
            Some([a, b, c, d, ..]) => i32::from_be_bytes([*a, *b, *c, *d]),
            _ => -1,
        }
    };
    MemberData { partitions: subscription.owned_partitions.clone(), generation_id }
}

/// KIP-429: drop from each member's new assignment the partitions some
/// other member still owns.
fn withhold_owned_elsewhere(
    assignments: &mut BTreeMap<String, Assignment>,
    subscriptions: &BTreeMap<String, Subscription>,
) {
    let mut owners: BTreeMap<&TopicPartition, BTreeSet<&String>> = BTreeMap::new();
    for (member, subscription) in subscriptions {
        for tp in &subscription.owned_partitions {
            owners.entry(tp).or_default().insert(member);
        }
    }
    for (member, assignment) in assignments.iter_mut() {
        assignment.partitions.retain(|tp| owners.get(tp).is_none_or(|o| o.iter().all(|owner| *owner == member)));
    }
}

impl PartitionAssignor for CooperativeStickyAssignor {
    fn name(&self) -> &str {
        NAME
    }

    fn supported_protocols(&self) -> Vec<RebalanceProtocol> {
        vec![RebalanceProtocol::Cooperative, RebalanceProtocol::Eager]
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Assignment> {
        let mut assignments = assign_with(partitions_per_topic, subscriptions, member_data);
        withhold_owned_elsewhere(&mut assignments, subscriptions);
        assignments
    }

    fn subscription_user_data(&self, _topics: &BTreeSet<String>) -> Option<Bytes> {
        let generation_id = self.generation_id.load(Ordering::Relaxed);
        Some(Bytes::copy_from_slice(&generation_id.to_be_bytes()))
    }

    fn on_assignment(&self, _assignment: &Assignment, generation_id: i32) {
        self.generation_id.store(generation_id, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::assignor::tests::tp;

    fn member(owned: &[TopicPartition], generation_id: i32) -> Subscription {
        Subscription { topics: vec!["t".into()], owned_partitions: owned.to_vec(), generation_id, ..Default::default() }
    }

    #[test]
    fn kip_429_new_member_gets_partitions_only_after_owners_revoke() {
        let partitions = BTreeMap::from([("t".to_string(), 6)]);
        let a_owned: Vec<_> = (0..3).map(|p| tp("t", p)).collect();
        let b_owned: Vec<_> = (3..6).map(|p| tp("t", p)).collect();
        let mut subscriptions = BTreeMap::from([
            ("a".to_string(), member(&a_owned, 1)),
            ("b".to_string(), member(&b_owned, 1)),
            ("c".to_string(), member(&[], -1)),
        ]);
        let assignor = CooperativeStickyAssignor::default();
        let first = assignor.assign(&partitions, &subscriptions);
        // a and b each give up one partition; c gets nothing yet.
        assert_eq!(first["a"].partitions.len(), 2);
        assert_eq!(first["b"].partitions.len(), 2);
        assert!(first["c"].partitions.is_empty(), "c must wait for the revocations");
        assert!(first["a"].partitions.iter().all(|p| a_owned.contains(p)));
        assert!(first["b"].partitions.iter().all(|p| b_owned.contains(p)));

        // Follow-up rebalance: a and b revoked what they lost.
        for (m, sub) in subscriptions.iter_mut() {
            sub.owned_partitions = first[m].partitions.clone();
            sub.generation_id = 2;
        }
        let second = assignor.assign(&partitions, &subscriptions);
        for m in ["a", "b", "c"] {
            assert_eq!(second[m].partitions.len(), 2, "{m} balanced after the follow-up rebalance");
        }
        assert_eq!(second["a"].partitions, first["a"].partitions, "a keeps what it kept");
        assert_eq!(second["b"].partitions, first["b"].partitions, "b keeps what it kept");
    }

    #[test]
    fn cooperative_sticky_supports_cooperative_and_eager() {
        let protocols = CooperativeStickyAssignor::default().supported_protocols();
        assert!(protocols.contains(&RebalanceProtocol::Cooperative));
        assert!(protocols.contains(&RebalanceProtocol::Eager));
    }

    #[test]
    fn generation_from_user_data_for_old_subscriptions() {
        let assignor = CooperativeStickyAssignor::default();
        assert_eq!(assignor.subscription_user_data(&BTreeSet::new()).as_deref(), Some(&[0xff, 0xff, 0xff, 0xff][..]));
        assignor.on_assignment(&Assignment::default(), 7);
        let user_data = assignor.subscription_user_data(&BTreeSet::new());
        let sub = Subscription { user_data, generation_id: -1, ..Default::default() };
        assert_eq!(member_data(&sub).generation_id, 7);
        let v2 = Subscription { generation_id: 9, ..sub };
        assert_eq!(member_data(&v2).generation_id, 9, "the v2 field wins over user data");
    }

    #[test]
    fn stale_claim_is_withheld_until_revoked() {
        // b's claim on t-0 is from an older generation: a keeps t-0 by
        // generation, but b may still hold it, so nobody gets it now.
        let partitions = BTreeMap::from([("t".to_string(), 2)]);
        let subscriptions = BTreeMap::from([
            ("a".to_string(), member(&[tp("t", 0)], 5)),
            ("b".to_string(), member(&[tp("t", 0), tp("t", 1)], 3)),
        ]);
        let result = CooperativeStickyAssignor::default().assign(&partitions, &subscriptions);
        assert!(!result["a"].partitions.contains(&tp("t", 0)));
        assert!(!result["b"].partitions.contains(&tp("t", 0)));
        assert_eq!(result["b"].partitions, vec![tp("t", 1)]);
    }
}
