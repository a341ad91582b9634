//! The sticky assignors' shared core (Kafka's AbstractStickyAssignor goals,
//! our own algorithm):
//!
//! 1. Resolve previous ownership: each member's claimed partitions with the
//!    generation they belong to. A claim counts only if the partition
//!    exists and the member still subscribes to its topic; when several
//!    members claim a partition the highest generation wins, and a tie at
//!    the highest generation invalidates the partition (Kafka logs "Found
//!    multiple consumers ... claiming the same TopicPartition ... in the
//!    same generation" and treats it as unowned).
//! 2. Every member keeps its resolved partitions; unowned partitions go,
//!    those with the fewest eligible members first, to the eligible member
//!    with the fewest partitions.
//! 3. Balance: while a member has at least two more partitions than a
//!    member it can reach through a chain of hops (each hop passes a
//!    partition to a member subscribed to its topic), move one partition
//!    along the shortest such chain, taking from the most loaded member
//!    and passing on partitions not owned before first. Each move lowers
//!    the sum of squared counts, so this ends; at the end counts differ by
//!    at most one when all subscriptions are equal, and in the general case
//!    no chain of moves improves balance.
//!
//! Balance comes first, stickiness second: a member keeps everything it
//! owned unless balance needs some of it elsewhere.

use super::{Assignment, Subscription, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// A member's previous ownership: its partitions and their generation
/// (-1 unknown), Kafka's `MemberData`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemberData {
    pub partitions: Vec<TopicPartition>,
    pub generation_id: i32,
}

/// Every existing partition of a topic some member subscribes to, with
/// the members (by id) subscribed to it.
fn eligible_members<'a>(
    partitions_per_topic: &BTreeMap<String, i32>,
    subscriptions: &'a BTreeMap<String, Subscription>,
) -> BTreeMap<TopicPartition, Vec<&'a String>> {
    let mut eligible = BTreeMap::new();
    for (topic, &count) in partitions_per_topic {
        let members: Vec<&String> =
            subscriptions.iter().filter(|(_, s)| s.topics.contains(topic)).map(|(m, _)| m).collect();
        if members.is_empty() {
            continue;
        }
        for partition in 0..count.max(0) {
            eligible.insert((topic.clone(), partition), members.clone());
        }
    }
    eligible
}

/// Step 1: partition → its valid previous owner.
fn resolve_owners<'a>(
    eligible: &BTreeMap<TopicPartition, Vec<&'a String>>,
    previous: &BTreeMap<String, MemberData>,
) -> BTreeMap<TopicPartition, &'a String> {
    // partition → (highest generation, its claimants)
    let mut claims: BTreeMap<&TopicPartition, (i32, Vec<&'a String>)> = BTreeMap::new();
    for (member, data) in previous {
        let claimed: BTreeSet<&TopicPartition> = data.partitions.iter().collect();
        for tp in claimed {
            let Some(members) = eligible.get(tp) else { continue };
            let Some(&member) = members.iter().find(|m| **m == member) else { continue };
            let entry = claims.entry(tp).or_insert((data.generation_id, Vec::new()));
            if data.generation_id > entry.0 {
                *entry = (data.generation_id, vec![member]);
            } else if data.generation_id == entry.0 {
                entry.1.push(member);
            }
        }
    }
    claims
        .into_iter()
        .filter_map(|(tp, (_, claimants))| match claimants.as_slice() {
            [only] => Some((tp.clone(), *only)),
            _ => None,
        })
        .collect()
}

/// [`sticky_assign`] with each member's previous ownership read from its
/// subscription by `member_data` (the two sticky assignors differ there).
pub(crate) fn assign_with(
    partitions_per_topic: &BTreeMap<String, i32>,
    subscriptions: &BTreeMap<String, Subscription>,
    member_data: impl Fn(&Subscription) -> MemberData,
) -> BTreeMap<String, Assignment> {
    let previous = subscriptions.iter().map(|(m, s)| (m.clone(), member_data(s))).collect();
    sticky_assign(partitions_per_topic, subscriptions, &previous)
        .into_iter()
        .map(|(m, partitions)| (m, Assignment { partitions, user_data: None }))
        .collect()
}

/// The sticky assignment of every subscribed partition. Members without
/// partitions are present with an empty list; each list is sorted.
pub(crate) fn sticky_assign(
    partitions_per_topic: &BTreeMap<String, i32>,
    subscriptions: &BTreeMap<String, Subscription>,
    previous: &BTreeMap<String, MemberData>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let eligible = eligible_members(partitions_per_topic, subscriptions);
    let owners = resolve_owners(&eligible, previous);

    let mut current: BTreeMap<&String, BTreeSet<TopicPartition>> =
        subscriptions.keys().map(|m| (m, BTreeSet::new())).collect();
    for (tp, owner) in &owners {
        current.get_mut(owner).expect("owners are members").insert(tp.clone());
    }

    // Step 2: unowned partitions, most constrained first.
    let mut unowned: Vec<(&TopicPartition, &Vec<&String>)> =
        eligible.iter().filter(|(tp, _)| !owners.contains_key(*tp)).collect();
    unowned.sort_by_key(|(tp, members)| (members.len(), *tp));
    for (tp, members) in unowned {
        let target =
            members.iter().min_by_key(|m| (current[**m].len(), **m)).expect("eligible partitions have a subscriber");
        current.get_mut(*target).expect("eligible members are members").insert(tp.clone());
    }

    // Step 3: single-partition moves towards balance.
    let partition_count = eligible.len();
    let moves_max = partition_count * partition_count + 1;
    let mut moves = 0;
    while let Some(hops) = best_move(&current, &eligible, &owners) {
        moves += 1;
        assert!(moves <= moves_max, "balancing ends: each move lowers the sum of squared counts");
        let (donor, receiver) = (hops[0].0, hops[hops.len() - 1].2);
        assert!(current[donor].len() >= current[receiver].len() + 2, "a move only goes to a member two or more below");
        for (from, tp, to) in hops {
            assert!(eligible[&tp].contains(&to), "a hop goes to a subscriber of the topic");
            let removed = current.get_mut(from).expect("member").remove(&tp);
            assert!(removed, "a hop moves a partition its sender holds");
            current.get_mut(to).expect("member").insert(tp);
        }
    }

    let result: BTreeMap<String, Vec<TopicPartition>> =
        current.into_iter().map(|(m, tps)| (m.clone(), tps.into_iter().collect())).collect();
    let assigned: usize = result.values().map(Vec::len).sum();
    assert_eq!(assigned, partition_count, "every subscribed partition is assigned exactly once");
    result
}

/// One hop of a balancing move: `partition` goes from `from` to `to`.
type Hop<'a> = (&'a String, TopicPartition, &'a String);

/// The next balancing move, or None when balanced. A move is a chain of
/// hops from a donor to a receiver with at least two fewer partitions,
/// through members whose counts do not change (each passes one partition
/// on and gets one): with different subscriptions the receiver may not be
/// eligible for any of the donor's partitions directly.
///
/// Donors are tried most loaded first; shorter chains win (a direct hop
/// first); a member passes on partitions it did not own before first, and
/// the least loaded receiver wins among equals.
fn best_move<'a>(
    current: &BTreeMap<&'a String, BTreeSet<TopicPartition>>,
    eligible: &BTreeMap<TopicPartition, Vec<&'a String>>,
    owners: &BTreeMap<TopicPartition, &'a String>,
) -> Option<Vec<Hop<'a>>> {
    let mut donors: Vec<(&&'a String, &BTreeSet<TopicPartition>)> = current.iter().collect();
    donors.sort_by_key(|(m, tps)| (std::cmp::Reverse(tps.len()), **m));
    for (&donor, tps) in donors {
        let donor_count = tps.len();
        if donor_count < 2 {
            break;
        }
        // Breadth-first over members; `reached` holds the hop that got there.
        let mut reached: BTreeMap<&'a String, Option<Hop<'a>>> = BTreeMap::from([(donor, None)]);
        let mut frontier = vec![donor];
        while !frontier.is_empty() {
            let mut found: Option<&'a String> = None;
            let mut next_frontier = Vec::new();
            for &member in &frontier {
                let held = &current[member];
                let not_owned_first = held
                    .iter()
                    .filter(|tp| owners.get(*tp) != Some(&member))
                    .chain(held.iter().filter(|tp| owners.get(*tp) == Some(&member)));
                for tp in not_owned_first {
                    for &to in &eligible[tp] {
                        if reached.contains_key(to) {
                            continue;
                        }
                        reached.insert(to, Some((member, tp.clone(), to)));
                        next_frontier.push(to);
                        let to_count = current[to].len();
                        let better = found.is_none_or(|f| (to_count, to) < (current[f].len(), f));
                        if to_count + 2 <= donor_count && better {
                            found = Some(to);
                        }
                    }
                }
            }
            if let Some(receiver) = found {
                let mut hops = Vec::new();
                let mut at = receiver;
                while let Some(Some(hop)) = reached.get(at) {
                    at = hop.0;
                    hops.push(hop.clone());
                }
                assert_eq!(at, donor, "a chain leads back to its donor");
                hops.reverse();
                return Some(hops);
            }
            frontier = next_frontier;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::assignor::tests::{subscribe, tp};

    #[test]
    fn higher_generation_claim_wins() {
        let partitions = BTreeMap::from([("t".to_string(), 2)]);
        let subscriptions = subscribe(&[("a", &["t"]), ("b", &["t"])]);
        let previous = BTreeMap::from([
            ("a".to_string(), MemberData { partitions: vec![tp("t", 0), tp("t", 1)], generation_id: 3 }),
            ("b".to_string(), MemberData { partitions: vec![tp("t", 0)], generation_id: 4 }),
        ]);
        let result = sticky_assign(&partitions, &subscriptions, &previous);
        assert_eq!(result["a"], vec![tp("t", 1)]);
        assert_eq!(result["b"], vec![tp("t", 0)]);
    }

    #[test]
    fn same_generation_double_claim_is_treated_as_unowned() {
        let partitions = BTreeMap::from([("t".to_string(), 3)]);
        let subscriptions = subscribe(&[("a", &["t"]), ("b", &["t"])]);
        let previous = BTreeMap::from([
            ("a".to_string(), MemberData { partitions: vec![tp("t", 0), tp("t", 1)], generation_id: 5 }),
            ("b".to_string(), MemberData { partitions: vec![tp("t", 1), tp("t", 2)], generation_id: 5 }),
        ]);
        let owners = resolve_owners(&eligible_members(&partitions, &subscriptions), &previous);
        assert_eq!(owners.len(), 2);
        assert!(!owners.contains_key(&tp("t", 1)), "t-1 is claimed twice in generation 5");
        let result = sticky_assign(&partitions, &subscriptions, &previous);
        assert!(result["a"].contains(&tp("t", 0)) && result["b"].contains(&tp("t", 2)));
    }

    #[test]
    fn claims_on_unsubscribed_or_missing_partitions_are_ignored() {
        let partitions = BTreeMap::from([("t".to_string(), 2), ("u".to_string(), 2)]);
        let subscriptions = subscribe(&[("a", &["t"]), ("b", &["t", "u"])]);
        let previous = BTreeMap::from([(
            "a".to_string(),
            MemberData { partitions: vec![tp("u", 0), tp("t", 9), tp("t", 0)], generation_id: 1 },
        )]);
        let owners = resolve_owners(&eligible_members(&partitions, &subscriptions), &previous);
        assert_eq!(owners, BTreeMap::from([(tp("t", 0), &"a".to_string())]));
    }

    #[test]
    fn general_case_balances_members_with_different_subscriptions() {
        // a subscribes to t only, b to t and u: b should take u and leave t to a.
        let partitions = BTreeMap::from([("t".to_string(), 4), ("u".to_string(), 4)]);
        let subscriptions = subscribe(&[("a", &["t"]), ("b", &["t", "u"])]);
        let previous = BTreeMap::from([(
            "b".to_string(),
            MemberData {
                partitions: (0..4).map(|p| tp("t", p)).chain((0..4).map(|p| tp("u", p))).collect(),
                generation_id: 1,
            },
        )]);
        let result = sticky_assign(&partitions, &subscriptions, &previous);
        assert_eq!(result["a"].len(), 4);
        assert_eq!(result["b"].len(), 4);
        assert!(result["a"].iter().all(|(t, _)| t == "t"));
    }

    #[test]
    fn general_case_balances_through_a_chain_of_moves() {
        // m1 holds both t1 partitions, m0 (t0 only) holds nothing and m2
        // holds t0-0: only the chain m1 -t1-> m2 -t0-> m0 balances it.
        let partitions = BTreeMap::from([("t0".to_string(), 1), ("t1".to_string(), 2)]);
        let subscriptions = subscribe(&[("m0", &["t0"]), ("m1", &["t1"]), ("m2", &["t0", "t1"])]);
        let previous = BTreeMap::from([
            ("m1".to_string(), MemberData { partitions: vec![tp("t1", 0), tp("t1", 1)], generation_id: 1 }),
            ("m2".to_string(), MemberData { partitions: vec![tp("t0", 0)], generation_id: 1 }),
        ]);
        let result = sticky_assign(&partitions, &subscriptions, &previous);
        assert_eq!(result["m0"], vec![tp("t0", 0)]);
        assert_eq!(result["m1"].len(), 1);
        assert_eq!(result["m2"].len(), 1);
    }

    #[test]
    fn one_member_owning_everything_is_rebalanced_to_all() {
        // 40 members, 800 partitions all owned by one: each ends with 20.
        let partitions: BTreeMap<String, i32> = (0..8).map(|t| (format!("t{t}"), 100)).collect();
        let topics: Vec<String> = partitions.keys().cloned().collect();
        let subscriptions: BTreeMap<String, Subscription> = (0..40)
            .map(|m| (format!("m{m:02}"), Subscription { topics: topics.clone(), ..Default::default() }))
            .collect();
        let everything = topics.iter().flat_map(|t| (0..100).map(move |p| tp(t, p))).collect();
        let previous = BTreeMap::from([("m07".to_string(), MemberData { partitions: everything, generation_id: 1 })]);
        let result = sticky_assign(&partitions, &subscriptions, &previous);
        assert!(result.values().all(|tps| tps.len() == 20));
    }
}
