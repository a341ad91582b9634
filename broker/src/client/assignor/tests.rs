//! Properties every assignor must have, checked on random inputs: every
//! subscribed partition (of a topic with metadata) is assigned exactly
//! once, only to a member subscribed to its topic, every member gets an
//! entry, and the same inputs give the same assignment.

use super::*;
use proptest::prelude::*;

/// `(topic, partition)` for test literals.
pub(crate) fn tp(topic: &str, partition: i32) -> TopicPartition {
    (topic.to_string(), partition)
}

/// Members (id, subscribed topics) with nothing owned.
pub(crate) fn subscribe(members: &[(&str, &[&str])]) -> BTreeMap<String, Subscription> {
    members
        .iter()
        .map(|(m, topics)| {
            let sub = Subscription { topics: topics.iter().map(|t| t.to_string()).collect(), ..Default::default() };
            (m.to_string(), sub)
        })
        .collect()
}

/// Random group: up to 8 topics with 0..12 partitions, 1..9 members each
/// subscribing to a non-empty subset (sometimes including a topic with no
/// metadata).
fn group() -> impl Strategy<Value = (BTreeMap<String, i32>, BTreeMap<String, Subscription>)> {
    (1usize..8, 1usize..9).prop_flat_map(|(topic_count, member_count)| {
        let counts = proptest::collection::vec(0i32..12, topic_count);
        let subs = proptest::collection::vec(
            (proptest::collection::vec(any::<bool>(), topic_count + 1), any::<bool>()),
            member_count,
        );
        (counts, subs).prop_map(move |(counts, subs)| {
            let partitions: BTreeMap<String, i32> =
                counts.iter().enumerate().map(|(i, c)| (format!("t{i}"), *c)).collect();
            let subscriptions = subs
                .into_iter()
                .enumerate()
                .map(|(m, (picks, is_static))| {
                    // topic index `topic_count` has no metadata.
                    let mut topics: Vec<String> =
                        picks.iter().enumerate().filter(|(_, p)| **p).map(|(i, _)| format!("t{i}")).collect();
                    if topics.is_empty() {
                        topics.push("t0".into());
                    }
                    let sub = Subscription {
                        topics,
                        generation_id: -1,
                        group_instance_id: is_static.then(|| format!("instance-{}", 100 - m)),
                        ..Default::default()
                    };
                    (format!("member-{m}"), sub)
                })
                .collect();
            (partitions, subscriptions)
        })
    })
}

/// Asserts the assignment properties common to all assignors.
pub(crate) fn check_valid(
    partitions: &BTreeMap<String, i32>,
    subscriptions: &BTreeMap<String, Subscription>,
    result: &BTreeMap<String, Assignment>,
) {
    let members: Vec<&String> = result.keys().collect();
    let expected: Vec<&String> = subscriptions.keys().collect();
    assert_eq!(members, expected, "one entry per member, no others");
    let mut owner: BTreeMap<&TopicPartition, &String> = BTreeMap::new();
    for (member, assignment) in result {
        for tp in &assignment.partitions {
            assert!(
                subscriptions[member].topics.contains(&tp.0),
                "{member} got {tp:?} without subscribing to {}",
                tp.0
            );
            assert!(partitions.get(&tp.0).is_some_and(|n| (0..*n).contains(&tp.1)), "{tp:?} does not exist");
            if let Some(other) = owner.insert(tp, member) {
                panic!("{tp:?} assigned to both {other} and {member}");
            }
        }
    }
    for (topic, count) in partitions {
        if !subscriptions.values().any(|s| s.topics.contains(topic)) {
            continue;
        }
        for p in 0..*count {
            assert!(owner.contains_key(&(topic.clone(), p)), "{topic}-{p} is subscribed but unassigned");
        }
    }
}

fn check_assignor(
    name: &str,
    partitions: &BTreeMap<String, i32>,
    subscriptions: &BTreeMap<String, Subscription>,
) -> BTreeMap<String, Assignment> {
    let assignor = by_name(name).expect("built-in assignor");
    let first = assignor.assign(partitions, subscriptions);
    check_valid(partitions, subscriptions, &first);
    let again = by_name(name).unwrap().assign(partitions, subscriptions);
    assert_eq!(first, again, "{name} is deterministic");
    first
}

/// Random group where every member subscribes to the same topics, plus
/// a member index to remove later.
fn equal_group() -> impl Strategy<Value = (BTreeMap<String, i32>, BTreeMap<String, Subscription>, usize)> {
    (proptest::collection::vec(0i32..20, 1..5), 1usize..9).prop_flat_map(|(counts, member_count)| {
        let partitions: BTreeMap<String, i32> = counts.iter().enumerate().map(|(i, c)| (format!("t{i}"), *c)).collect();
        let topics: Vec<String> = partitions.keys().cloned().collect();
        let subscriptions: BTreeMap<String, Subscription> = (0..member_count)
            .map(|m| {
                (
                    format!("member-{m}"),
                    Subscription { topics: topics.clone(), generation_id: -1, ..Default::default() },
                )
            })
            .collect();
        (Just(partitions), Just(subscriptions), 0..member_count)
    })
}

fn counts_spread(result: &BTreeMap<String, Assignment>) -> usize {
    let counts: Vec<usize> = result.values().map(|a| a.partitions.len()).collect();
    counts.iter().max().unwrap() - counts.iter().min().unwrap()
}

/// Random previous ownership for `subscriptions`: each member claims a
/// random subset of all partitions (claims may overlap) at a random
/// generation.
fn with_random_ownership(
    partitions: &BTreeMap<String, i32>,
    subscriptions: &BTreeMap<String, Subscription>,
    seed: u64,
) -> BTreeMap<String, Subscription> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let member_count = subscriptions.len() as u64;
    subscriptions
        .iter()
        .map(|(m, s)| {
            let mut s = s.clone();
            s.generation_id = (next() % 3) as i32;
            for (topic, count) in partitions {
                for p in 0..*count {
                    if next() % (member_count + 1) == 0 {
                        s.owned_partitions.push((topic.clone(), p));
                    }
                }
            }
            (m.clone(), s)
        })
        .collect()
}

proptest! {
    // A failure prints its minimal input and seed; no regression files
    // are written into the source tree.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn range_assigns_every_subscribed_partition_once((partitions, subs) in group()) {
        check_assignor("range", &partitions, &subs);
    }

    #[test]
    fn round_robin_assigns_every_subscribed_partition_once((partitions, subs) in group()) {
        let result = check_assignor("roundrobin", &partitions, &subs);
        // With identical subscriptions round robin is balanced within one.
        let first_topics = subs.values().next().map(|s| s.topics.clone());
        if subs.values().all(|s| Some(&s.topics) == first_topics.as_ref()) {
            let counts: Vec<usize> = result.values().map(|a| a.partitions.len()).collect();
            prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn sticky_assigns_every_subscribed_partition_once((partitions, subs) in group(), seed in any::<u64>()) {
        check_assignor("sticky", &partitions, &subs);
        check_assignor("sticky", &partitions, &with_random_ownership(&partitions, &subs, seed));
    }

    /// StickyAssignor goals: balanced within one for equal subscriptions,
    /// and when one of N members leaves the survivors keep everything they
    /// had (carried in StickyAssignorUserData through on_assignment and
    /// subscription_user_data, as the eager protocol requires).
    #[test]
    fn sticky_balanced_and_survivors_keep_partitions((partitions, subs, leaver) in equal_group()) {
        let first = check_assignor("sticky", &partitions, &subs);
        prop_assert!(counts_spread(&first) <= 1, "balanced: {first:?}");
        let leaver = subs.keys().nth(leaver).unwrap().clone();
        let mut survivors = BTreeMap::new();
        for (m, sub) in &subs {
            if *m == leaver {
                continue;
            }
            let member_assignor = sticky::StickyAssignor::default();
            member_assignor.on_assignment(&first[m], 1);
            let mut sub = sub.clone();
            sub.user_data = member_assignor.subscription_user_data(&BTreeSet::new());
            survivors.insert(m.clone(), sub);
        }
        if survivors.is_empty() {
            return Ok(());
        }
        let second = check_assignor("sticky", &partitions, &survivors);
        prop_assert!(counts_spread(&second) <= 1, "balanced after a member left: {second:?}");
        for (m, assignment) in &second {
            for tp in &first[m].partitions {
                prop_assert!(assignment.partitions.contains(tp), "{m} lost {tp:?}");
            }
        }
    }

    #[test]
    fn sticky_balanced_for_equal_subscriptions_from_any_ownership((partitions, subs, _l) in equal_group(), seed in any::<u64>()) {
        let owned = with_random_ownership(&partitions, &subs, seed);
        let result = check_assignor("sticky", &partitions, &owned);
        prop_assert!(counts_spread(&result) <= 1, "balanced: {result:?}");
    }

    /// KIP-429: no partition goes straight from one owner to another in
    /// any rebalance; with equal subscriptions the follow-up rebalance
    /// (owners revoked what they lost) assigns everything, balanced, and
    /// moves nothing else; with different subscriptions the rebalances
    /// still settle on a complete assignment within a few rounds.
    #[test]
    fn cooperative_sticky_never_transfers_directly_and_converges(
        (partitions, subs) in prop_oneof![group(), equal_group().prop_map(|(p, s, _)| (p, s))],
        seed in any::<u64>(),
    ) {
        let assignor = by_name("cooperative-sticky").unwrap();
        let equal = subs.values().all(|s| s.topics == subs.values().next().unwrap().topics);
        let mut owned = with_random_ownership(&partitions, &subs, seed);
        let mut previous: Option<BTreeMap<String, Assignment>> = None;
        for round in 1..=COOPERATIVE_ROUNDS_MAX {
            let result = assignor.assign(&partitions, &owned);
            prop_assert_eq!(&result, &by_name("cooperative-sticky").unwrap().assign(&partitions, &owned), "deterministic");
            let mut assigned: BTreeSet<&TopicPartition> = BTreeSet::new();
            for (m, assignment) in &result {
                for tp in &assignment.partitions {
                    prop_assert!(owned[m].topics.contains(&tp.0));
                    prop_assert!(assigned.insert(tp), "{tp:?} assigned twice");
                    for (other, sub) in &owned {
                        prop_assert!(other == m || !sub.owned_partitions.contains(tp), "{tp:?} moves from {other} to {m} directly");
                    }
                }
            }
            if round == 2 && equal {
                check_valid(&partitions, &owned, &result);
                prop_assert!(counts_spread(&result) <= 1, "balanced after the follow-up: {result:?}");
                for (m, assignment) in &result {
                    for tp in &previous.as_ref().unwrap()[m].partitions {
                        prop_assert!(assignment.partitions.contains(tp), "{m} lost {tp:?} in the follow-up");
                    }
                }
            }
            let complete = result.values().map(|a| a.partitions.len()).sum::<usize>()
                == subscribed_partition_count(&partitions, &subs);
            if round >= 2 && complete {
                check_valid(&partitions, &owned, &result);
                return Ok(());
            }
            // Every member revokes what it lost and rejoins.
            for (m, sub) in owned.iter_mut() {
                sub.owned_partitions = result[m].partitions.clone();
                sub.generation_id = 10 + round as i32;
            }
            previous = Some(result);
        }
        prop_assert!(false, "no complete assignment after {COOPERATIVE_ROUNDS_MAX} rebalances");
    }
}

/// Rebalances a cooperative group may need to settle in the property test.
const COOPERATIVE_ROUNDS_MAX: usize = 4;

fn subscribed_partition_count(
    partitions: &BTreeMap<String, i32>,
    subscriptions: &BTreeMap<String, Subscription>,
) -> usize {
    partitions
        .iter()
        .filter(|(t, _)| subscriptions.values().any(|s| s.topics.contains(*t)))
        .map(|(_, n)| *n as usize)
        .sum()
}

#[test]
fn by_name_accepts_protocol_and_kafka_class_names() {
    for (name, protocol) in [
        ("range", "range"),
        ("org.apache.kafka.clients.consumer.RangeAssignor", "range"),
        ("roundrobin", "roundrobin"),
        ("org.apache.kafka.clients.consumer.RoundRobinAssignor", "roundrobin"),
        ("sticky", "sticky"),
        ("org.apache.kafka.clients.consumer.StickyAssignor", "sticky"),
        ("cooperative-sticky", "cooperative-sticky"),
        ("org.apache.kafka.clients.consumer.CooperativeStickyAssignor", "cooperative-sticky"),
    ] {
        assert_eq!(by_name(name).map(|a| a.name().to_string()), Some(protocol.to_string()), "{name}");
    }
    assert!(by_name("no-such-assignor").is_none());
}
