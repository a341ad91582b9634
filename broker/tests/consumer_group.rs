//! Consumer groups end to end (1 controller, 3 brokers, the group
//! coordinator): consumers that `subscribe` split the partitions, rebalance
//! when members come and go, commit and resume from committed offsets, as
//! Kafka's KafkaConsumer with its ConsumerCoordinator does.
#![cfg(madsim)]

mod common;

use bytes::Bytes;
use ksim_broker::client::{
    Admin, AdminConfig, ClientError, Consumer, ConsumerConfig, ConsumerRebalanceListener,
    OffsetAndMetadata, Producer, ProducerConfig, RebalanceEvent,
};
use ksim_broker::config::Settings;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

type Tp = (String, i32);

const GROUP: &str = "g1";

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `test` on a client node of a cluster of a controller and three
/// brokers with a 5-partition offsets topic, given the bootstrap list.
async fn in_cluster<F, Fut>(test: F)
where
    F: FnOnce(Vec<SocketAddr>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let settings = Settings::from_pairs([("offsets.topic.num.partitions", "5")]);
    let cluster = common::start_cluster(1, 3, Settings::new(), settings);
    cluster
        .client
        .spawn(test(cluster.bootstrap.clone()))
        .await
        .unwrap();
}

/// Settings of a member of `group` that reads from the earliest offset
/// when nothing is committed, plus `extra`.
fn member_config(group: &str, extra: &[(&str, &str)]) -> ConsumerConfig {
    let mut pairs = vec![("group.id", group), ("auto.offset.reset", "earliest")];
    pairs.extend_from_slice(extra);
    ConsumerConfig::from_map(&map(&pairs)).unwrap()
}

/// Creates `topic` and waits until two members with `pairs` split it.
async fn two_members(
    bootstrap: &[SocketAddr],
    topic: &str,
    partition_count: i32,
    pairs: &[(&str, &str)],
) -> (Member, Member, BTreeSet<Tp>) {
    create_topic(bootstrap, topic, partition_count).await;
    let all = partitions(topic, partition_count);
    let a = Member::spawn(bootstrap, pairs, &[topic]);
    let b = Member::spawn(bootstrap, pairs, &[topic]);
    wait_for("two members assigned", 30_000, || settled(&[&a, &b], &all)).await;
    (a, b, all)
}

/// Creates `topic` with `partitions` partitions (RF 3) and waits for leaders.
async fn create_topic(bootstrap: &[SocketAddr], topic: &str, partitions: i32) {
    let admin = Admin::new(bootstrap.to_vec(), AdminConfig::default());
    let mut tries = 0;
    while let Err(e) = admin
        .create_topic(topic, partitions, 3, BTreeMap::new())
        .await
    {
        tries += 1;
        assert!(tries < 60, "create_topic kept failing: {e}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    admin
        .wait_for_leaders(topic, partitions, Duration::from_secs(30))
        .await
        .expect("leaders");
    let mut probe = Consumer::new(bootstrap.to_vec(), ConsumerConfig::default());
    let parts: Vec<Tp> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    probe
        .end_offsets(&parts)
        .await
        .expect("leaders answer ListOffsets");
}

/// Sends `count` records round-robin over the partitions; values "{topic}-{i}".
async fn produce(bootstrap: &[SocketAddr], topic: &str, partitions: i32, count: usize) {
    let producer = Producer::new(bootstrap.to_vec(), ProducerConfig::default());
    for i in 0..count {
        let value = format!("{topic}-{i}");
        producer
            .send(
                topic,
                Some(i as i32 % partitions),
                None,
                Some(Bytes::from(value)),
            )
            .await
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
    }
    producer.close().await;
}

/// What a member task saw.
#[derive(Default)]
struct Seen {
    /// (topic, partition, offset) of every record poll returned.
    records: Vec<(String, i32, i64)>,
    events: Vec<RebalanceEvent>,
    assignment: Vec<Tp>,
    generation_id: i32,
    errors: Vec<ClientError>,
}

const RUN: u8 = 0;
const CLOSE: u8 = 1;
const CRASH: u8 = 2;

/// A consumer polling in its own task until told to close or crash.
struct Member {
    control: Arc<AtomicU8>,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    fn spawn(bootstrap: &[SocketAddr], pairs: &[(&str, &str)], topics: &[&str]) -> Member {
        let mut all = vec![
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
        ];
        all.extend_from_slice(pairs);
        let mut consumer = Consumer::new(bootstrap.to_vec(), member_config(GROUP, &all));
        consumer.subscribe(topics.iter().map(|t| t.to_string()).collect());
        Member::run(consumer)
    }

    fn run(mut consumer: Consumer) -> Member {
        let control = Arc::new(AtomicU8::new(RUN));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (c, s) = (control.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                match c.load(Ordering::SeqCst) {
                    CLOSE => {
                        consumer.close().await.expect("close");
                        return;
                    }
                    CRASH => return, // dropped without LeaveGroup
                    _ => {}
                }
                let polled = consumer.poll(Duration::from_millis(200)).await;
                let owned: BTreeSet<Tp> = consumer.assignment().into_iter().collect();
                let mut s = s.lock().unwrap();
                match polled {
                    Ok(records) => {
                        for r in records {
                            // Records of a partition no longer owned are never returned.
                            assert!(
                                owned.contains(&(r.topic.clone(), r.partition)),
                                "record of unowned {}-{}",
                                r.topic,
                                r.partition
                            );
                            s.records.push((r.topic, r.partition, r.offset));
                        }
                    }
                    Err(e) => s.errors.push(e),
                }
                s.events.extend(consumer.take_rebalance_events());
                s.assignment = owned.into_iter().collect();
                s.generation_id = consumer
                    .group_metadata()
                    .map(|m| m.generation_id)
                    .unwrap_or(-1);
            }
        });
        Member {
            control,
            seen,
            task,
        }
    }

    fn assignment(&self) -> Vec<Tp> {
        self.seen.lock().unwrap().assignment.clone()
    }

    fn generation(&self) -> i32 {
        self.seen.lock().unwrap().generation_id
    }

    fn events(&self) -> Vec<RebalanceEvent> {
        self.seen.lock().unwrap().events.clone()
    }

    fn records(&self) -> Vec<(String, i32, i64)> {
        self.seen.lock().unwrap().records.clone()
    }

    async fn stop(self, how: u8) -> Arc<Mutex<Seen>> {
        self.control.store(how, Ordering::SeqCst);
        self.task.await.unwrap();
        self.seen
    }
}

/// Two members split a 4-partition topic, then the second stops (`how`:
/// CLOSE or CRASH). Returns how long until the first owned everything.
async fn survivor_takes_over(bootstrap: &[SocketAddr], how: u8) -> Duration {
    let (a, b, _) = two_members(bootstrap, "t", 4, &[]).await;
    let stopped_at = Instant::now();
    b.stop(how).await;
    wait_for("the survivor owns everything", 40_000, || {
        a.assignment().len() == 4
    })
    .await;
    let took = stopped_at.elapsed();
    a.stop(CLOSE).await;
    took
}

/// Waits (simulated time) until `cond` holds, panicking with `what` after `max_ms`.
async fn wait_for(what: &str, max_ms: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_millis(max_ms);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Members stable in one generation whose assignments split all `partitions`.
fn settled(members: &[&Member], all: &BTreeSet<Tp>) -> bool {
    let gens: BTreeSet<i32> = members.iter().map(|m| m.generation()).collect();
    let owned: Vec<Tp> = members.iter().flat_map(|m| m.assignment()).collect();
    gens.len() == 1
        && !gens.contains(&-1)
        && owned.len() == all.len()
        && owned.into_iter().collect::<BTreeSet<_>>() == *all
}

fn partitions(topic: &str, n: i32) -> BTreeSet<Tp> {
    (0..n).map(|p| (topic.to_string(), p)).collect()
}

/// No partition is owned by two members in one generation (each member's
/// last event in a generation gives what it owned then).
fn assert_never_owned_twice(members: &[Vec<RebalanceEvent>]) {
    let mut by_generation: BTreeMap<i32, BTreeMap<usize, Vec<Tp>>> = BTreeMap::new();
    for (i, events) in members.iter().enumerate() {
        for e in events {
            by_generation
                .entry(e.generation_id)
                .or_default()
                .insert(i, e.owned.clone());
        }
    }
    for (g, owners) in by_generation {
        let mut seen = BTreeSet::new();
        for (member, owned) in owners {
            for tp in owned {
                assert!(
                    seen.insert(tp.clone()),
                    "generation {g}: {}-{} owned twice (second: member {member})",
                    tp.0,
                    tp.1
                );
            }
        }
    }
}

// KafkaConsumer.subscribe: the group's members split the partitions and
// together read every record exactly once.
#[madsim::test]
async fn two_consumers_in_a_group_split_the_partitions_and_read_every_record_once() {
    in_cluster(|bootstrap| async move {
        let (a, b, _) = two_members(&bootstrap, "t", 4, &[]).await;
        assert_eq!(a.assignment().len(), 2, "range splits 4 partitions 2/2");
        produce(&bootstrap, "t", 4, 200).await;
        wait_for("every record read", 30_000, || {
            a.records().len() + b.records().len() >= 200
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut read: Vec<(String, i32, i64)> = a.records();
        read.extend(b.records());
        let distinct: BTreeSet<_> = read.iter().cloned().collect();
        assert_eq!(read.len(), 200, "no record read twice");
        assert_eq!(distinct.len(), 200);
        for (topic, p, _) in &a.records() {
            assert!(
                a.assignment().contains(&(topic.clone(), *p)),
                "a read a partition it does not own"
            );
        }
        a.stop(CLOSE).await;
        b.stop(CLOSE).await;
    })
    .await;
}

// A member joining triggers a rebalance: the generation grows, partitions
// move, and no partition is owned by two members in one generation.
#[madsim::test]
async fn a_third_member_joining_rebalances_with_a_higher_generation() {
    in_cluster(|bootstrap| async move {
        let (a, b, all) = two_members(&bootstrap, "t", 6, &[]).await;
        let g1 = a.generation();
        let a_before = a.assignment();
        let c = Member::spawn(&bootstrap, &[], &["t"]);
        wait_for("three members assigned", 60_000, || {
            settled(&[&a, &b, &c], &all)
        })
        .await;
        assert!(
            a.generation() > g1,
            "generation grew: {g1} -> {}",
            a.generation()
        );
        assert_eq!(c.assignment().len(), 2);
        assert_ne!(a.assignment(), a_before, "partitions moved");
        let events = vec![a.events(), b.events(), c.events()];
        assert_never_owned_twice(&events);
        for m in [a, b, c] {
            m.stop(CLOSE).await;
        }
    })
    .await;
}

// session.timeout.ms: a member that stops heartbeating (crashed: dropped
// without LeaveGroup) is removed, and its partitions move to the others.
#[madsim::test]
async fn a_dropped_consumer_is_removed_after_session_timeout_and_its_partitions_move() {
    in_cluster(|bootstrap| async move {
        let took = survivor_takes_over(&bootstrap, CRASH).await;
        // It waited for session.timeout.ms (10 s), not a LeaveGroup.
        assert!(
            took >= Duration::from_millis(7_000),
            "moved after {took:?}, before the session could expire"
        );
    })
    .await;
}

// KafkaConsumer.commitSync + OffsetFetch: a new member starts at the
// group's committed offset, not at auto.offset.reset.
#[madsim::test]
async fn commit_sync_then_a_new_consumer_in_the_group_starts_at_the_committed_offset() {
    in_cluster(|bootstrap| async move {
        create_topic(&bootstrap, "t", 2).await;
        produce(&bootstrap, "t", 2, 100).await;
        let config = member_config(
            GROUP,
            &[("enable.auto.commit", "false"), ("max.poll.records", "10")],
        );
        let mut first = Consumer::new(bootstrap.clone(), config.clone());
        first.subscribe(vec!["t".into()]);
        let mut read = 0;
        for _ in 0..200 {
            read += first.poll(Duration::from_millis(200)).await.unwrap().len();
            if read >= 30 {
                break;
            }
        }
        assert!(read >= 30, "read {read}");
        let positions: BTreeMap<Tp, i64> = (0..2)
            .map(|p| (("t".to_string(), p), first.position("t", p).unwrap()))
            .collect();
        first.commit_sync().await.expect("commit");
        let committed = first
            .committed(&[("t".into(), 0), ("t".into(), 1)])
            .await
            .unwrap();
        for (tp, pos) in &positions {
            assert_eq!(
                committed[tp].as_ref().map(|c| c.offset),
                Some(*pos),
                "{tp:?}"
            );
        }
        first.close().await.unwrap();
        drop(first);
        let mut second = Consumer::new(bootstrap.clone(), config);
        second.subscribe(vec!["t".into()]);
        let mut first_offsets: BTreeMap<i32, i64> = BTreeMap::new();
        for _ in 0..200 {
            for r in second.poll(Duration::from_millis(200)).await.unwrap() {
                first_offsets.entry(r.partition).or_insert(r.offset);
            }
            if first_offsets.len() == 2 {
                break;
            }
        }
        for (tp, pos) in &positions {
            if *pos < 50 {
                assert_eq!(
                    first_offsets.get(&tp.1),
                    Some(pos),
                    "partition {} resumes at the committed offset",
                    tp.1
                );
            }
        }
        second.close().await.unwrap();
    })
    .await;
}

// max.poll.interval.ms: a member that does not poll in time is kicked out
// (its heartbeat task leaves the group); its commit then fails with
// CommitFailedException, and the next poll rejoins.
#[madsim::test]
async fn commit_after_being_kicked_out_for_not_polling_fails_with_commit_failed() {
    in_cluster(|bootstrap| async move {
        create_topic(&bootstrap, "t", 2).await;
        produce(&bootstrap, "t", 2, 20).await;
        let config = member_config(
            GROUP,
            &[
                ("enable.auto.commit", "false"),
                ("max.poll.interval.ms", "6000"),
                ("session.timeout.ms", "10000"),
                ("heartbeat.interval.ms", "1000"),
            ],
        );
        let mut consumer = Consumer::new(bootstrap.clone(), config);
        consumer.subscribe(vec!["t".into()]);
        for _ in 0..200 {
            consumer.poll(Duration::from_millis(200)).await.unwrap();
            if consumer.assignment().len() == 2 && consumer.position("t", 0).is_some() {
                break;
            }
        }
        assert_eq!(consumer.assignment().len(), 2);
        consumer
            .commit_sync()
            .await
            .expect("a member in the group commits");
        // Slow processing: no poll for longer than max.poll.interval.ms.
        tokio::time::sleep(Duration::from_millis(9_000)).await;
        let e = consumer.commit_sync().await.unwrap_err();
        assert!(matches!(e, ClientError::CommitFailed(_)), "{e:?}");
        // The next poll rejoins; the partitions were lost, then reassigned.
        for _ in 0..200 {
            consumer.poll(Duration::from_millis(200)).await.unwrap();
            if consumer.group_metadata().unwrap().generation_id >= 0
                && consumer.assignment().len() == 2
            {
                break;
            }
        }
        let events = consumer.take_rebalance_events();
        assert!(
            events.iter().any(|e| !e.lost.is_empty()),
            "partitions reported lost: {events:?}"
        );
        assert_eq!(consumer.assignment().len(), 2);
        consumer
            .commit_sync()
            .await
            .expect("commits again after rejoining");
        consumer.close().await.unwrap();
    })
    .await;
}

/// Records the listener's calls.
/// The listener's calls: (callback, partitions).
type Calls = Arc<Mutex<Vec<(&'static str, Vec<Tp>)>>>;

struct Recorder(Calls);

impl ConsumerRebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, partitions: &[(String, i32)]) {
        self.0
            .lock()
            .unwrap()
            .push(("revoked", partitions.to_vec()));
    }
    fn on_partitions_assigned(&mut self, partitions: &[(String, i32)]) {
        self.0
            .lock()
            .unwrap()
            .push(("assigned", partitions.to_vec()));
    }
}

/// Two members, then a third; returns the first member's rebalance
/// events after the third joined, its assignment before, and the
/// listener's calls.
async fn third_member_joins(
    bootstrap: &[SocketAddr],
    strategy: &str,
) -> (Vec<RebalanceEvent>, Vec<Tp>, Vec<(&'static str, Vec<Tp>)>) {
    create_topic(bootstrap, "t", 6).await;
    let all = partitions("t", 6);
    let pairs = [("partition.assignment.strategy", strategy)];
    let calls = Arc::new(Mutex::new(Vec::new()));
    let config = member_config(
        GROUP,
        &[
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            pairs[0],
        ],
    );
    let mut consumer = Consumer::new(bootstrap.to_vec(), config);
    consumer.subscribe_with_listener(vec!["t".into()], Box::new(Recorder(calls.clone())));
    let a = Member::run(consumer);
    let b = Member::spawn(bootstrap, &pairs, &["t"]);
    wait_for("two members assigned", 30_000, || settled(&[&a, &b], &all)).await;
    let before = a.assignment();
    let events_before = a.events().len();
    let calls_before = calls.lock().unwrap().len();
    let c = Member::spawn(bootstrap, &pairs, &["t"]);
    wait_for("three members assigned", 60_000, || {
        settled(&[&a, &b, &c], &all) && c.assignment().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_never_owned_twice(&[a.events(), b.events(), c.events()]);
    let after: Vec<RebalanceEvent> = a.events()[events_before..].to_vec();
    let listener_calls = calls.lock().unwrap()[calls_before..].to_vec();
    for m in [a, b, c] {
        m.stop(CLOSE).await;
    }
    (after, before, listener_calls)
}

// KIP-429: with cooperative-sticky a member keeps the partitions it still
// owns through the rebalance and revokes only those that move.
#[madsim::test]
async fn cooperative_sticky_revokes_only_the_partitions_that_move() {
    in_cluster(|bootstrap| async move {
        let (events, before, calls) = third_member_joins(&bootstrap, "cooperative-sticky").await;
        let revoked: Vec<Tp> = events.iter().flat_map(|e| e.revoked.clone()).collect();
        assert_eq!(
            revoked.len(),
            1,
            "of 3 owned, 1 moves to the new member: {events:?}"
        );
        let kept: BTreeSet<Tp> = before
            .iter()
            .filter(|tp| !revoked.contains(tp))
            .cloned()
            .collect();
        for e in &events {
            assert!(
                kept.iter().all(|tp| e.owned.contains(tp)),
                "kept partitions stay owned throughout: {e:?}"
            );
        }
        assert!(
            calls
                .iter()
                .filter(|(k, _)| *k == "revoked")
                .all(|(_, ps)| ps.len() == 1),
            "{calls:?}"
        );
    })
    .await;
}

// Eager protocol (range): every member revokes all it owns before rejoining.
#[madsim::test]
async fn eager_range_revokes_everything_on_rebalance() {
    in_cluster(|bootstrap| async move {
        let (events, before, calls) = third_member_joins(&bootstrap, "range").await;
        let first = events.first().expect("a rebalance event");
        assert_eq!(first.revoked, before, "everything revoked before rejoining");
        assert!(first.owned.is_empty());
        assert_eq!(
            calls.first(),
            Some(&("revoked", before.clone())),
            "the listener was told first"
        );
        assert!(
            calls
                .iter()
                .any(|(k, ps)| *k == "assigned" && ps.len() == 2),
            "{calls:?}"
        );
    })
    .await;
}

// KIP-345: a static member restarted within session.timeout.ms gets its
// partitions back and the group does not rebalance.
#[madsim::test]
async fn static_member_restart_within_session_timeout_keeps_its_partitions_without_a_rebalance() {
    in_cluster(|bootstrap| async move {
        create_topic(&bootstrap, "t", 4).await;
        let all = partitions("t", 4);
        let statics =
            |id: &'static str| [("group.instance.id", id), ("session.timeout.ms", "30000")];
        let a = Member::spawn(&bootstrap, &statics("a"), &["t"]);
        let b = Member::spawn(&bootstrap, &statics("b"), &["t"]);
        wait_for("two static members assigned", 30_000, || {
            settled(&[&a, &b], &all)
        })
        .await;
        let generation = b.generation();
        let a_owned = a.assignment();
        let b_events = b.events().len();
        a.stop(CRASH).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let a2 = Member::spawn(&bootstrap, &statics("a"), &["t"]);
        wait_for("the restarted member assigned", 30_000, || {
            !a2.assignment().is_empty()
        })
        .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(a2.assignment(), a_owned, "same partitions back");
        assert_eq!(a2.generation(), generation, "no new generation");
        assert_eq!(b.generation(), generation);
        assert_eq!(
            b.events().len(),
            b_events,
            "the other member saw no rebalance"
        );
        a2.stop(CLOSE).await;
        b.stop(CLOSE).await;
    })
    .await;
}

// enable.auto.commit: the positions of earlier polls are committed every
// auto.commit.interval.ms without the application committing.
#[madsim::test]
async fn auto_commit_commits_the_positions_of_earlier_polls() {
    in_cluster(|bootstrap| async move {
        create_topic(&bootstrap, "t", 2).await;
        produce(&bootstrap, "t", 2, 40).await;
        let a = Member::spawn(&bootstrap, &[("auto.commit.interval.ms", "1000")], &["t"]);
        wait_for("all records read", 30_000, || a.records().len() >= 40).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut probe = Consumer::new(
            bootstrap.clone(),
            ConsumerConfig::from_map(&map(&[("group.id", GROUP)])).unwrap(),
        );
        let committed = probe
            .committed(&[("t".into(), 0), ("t".into(), 1)])
            .await
            .unwrap();
        for p in 0..2 {
            assert_eq!(
                committed[&("t".to_string(), p)],
                Some(OffsetAndMetadata::new(20)),
                "partition {p}"
            );
        }
        a.stop(CLOSE).await;
    })
    .await;
}

// KafkaConsumer.subscribe(Pattern): the pattern is re-evaluated on metadata
// refresh, so a matching topic created later is assigned; others are not.
#[madsim::test]
async fn regex_subscription_picks_up_a_topic_created_later() {
    in_cluster(|bootstrap| async move {
        create_topic(&bootstrap, "ev-a", 2).await;
        create_topic(&bootstrap, "other", 2).await;
        let config = member_config(GROUP, &[("metadata.max.age.ms", "1000")]);
        let mut consumer = Consumer::new(bootstrap.clone(), config);
        assert!(
            consumer.subscribe_pattern("ev-[").is_err(),
            "a bad regex is a ConfigError"
        );
        consumer.subscribe_pattern("ev-.*").unwrap();
        let a = Member::run(consumer);
        wait_for("ev-a assigned", 30_000, || a.assignment().len() == 2).await;
        assert!(a.assignment().iter().all(|(t, _)| t == "ev-a"));
        create_topic(&bootstrap, "ev-b", 3).await;
        produce(&bootstrap, "ev-b", 3, 9).await;
        wait_for("ev-b assigned", 30_000, || a.assignment().len() == 5).await;
        wait_for("ev-b records read", 30_000, || {
            a.records().iter().filter(|(t, _, _)| t == "ev-b").count() == 9
        })
        .await;
        assert!(a.assignment().iter().all(|(t, _)| t != "other"));
        a.stop(CLOSE).await;
    })
    .await;
}

// Standalone commits (assign with a group.id): generation -1 and an empty
// member id, as Kafka's consumer sends when it manages partitions itself.
#[madsim::test]
async fn assign_mode_with_a_group_id_commits_standalone_and_resumes_from_it() {
    in_cluster(|bootstrap| async move {
        create_topic(&bootstrap, "t", 1).await;
        produce(&bootstrap, "t", 1, 10).await;
        let config = member_config("solo", &[]);
        let mut c = Consumer::new(bootstrap.clone(), config.clone());
        c.assign(vec![("t".into(), 0)]);
        let offsets = BTreeMap::from([(("t".to_string(), 0), OffsetAndMetadata::new(7))]);
        c.commit_sync_offsets(offsets)
            .await
            .expect("standalone commit");
        let mut c2 = Consumer::new(bootstrap.clone(), config);
        c2.assign(vec![("t".into(), 0)]);
        let mut first = None;
        for _ in 0..50 {
            if let Some(r) = c2.poll(Duration::from_millis(200)).await.unwrap().first() {
                first = Some(r.offset);
                break;
            }
        }
        assert_eq!(
            first,
            Some(7),
            "an assigned partition starts at the group's committed offset"
        );
    })
    .await;
}

// LeaveGroup on close: a dynamic member that closes gives its partitions
// up at once instead of after session.timeout.ms.
#[madsim::test]
async fn a_closed_member_leaves_the_group_and_its_partitions_move_before_the_session_timeout() {
    in_cluster(|bootstrap| async move {
        let took = survivor_takes_over(&bootstrap, CLOSE).await;
        assert!(
            took < Duration::from_millis(7_000),
            "moved after {took:?}: no LeaveGroup?"
        );
    })
    .await;
}

// KafkaConsumer.commitAsync: callbacks run on a later poll, in call order,
// and the last commit is what the group has.
#[madsim::test]
async fn commit_async_callbacks_complete_in_order_on_the_next_poll() {
    in_cluster(|bootstrap| async move {
        create_topic(&bootstrap, "t", 1).await;
        produce(&bootstrap, "t", 1, 10).await;
        let config = member_config(GROUP, &[("enable.auto.commit", "false")]);
        let mut c = Consumer::new(bootstrap.clone(), config);
        c.subscribe(vec!["t".into()]);
        let mut read = 0;
        for _ in 0..100 {
            read += c.poll(Duration::from_millis(200)).await.unwrap().len();
            if read == 10 {
                break;
            }
        }
        assert_eq!(read, 10);
        let done: Arc<Mutex<Vec<(i64, bool)>>> = Arc::new(Mutex::new(Vec::new()));
        for offset in [3, 6, 10] {
            let d = done.clone();
            let offsets = BTreeMap::from([(("t".to_string(), 0), OffsetAndMetadata::new(offset))]);
            c.commit_async(
                Some(offsets),
                Some(Box::new(move |r| {
                    d.lock().unwrap().push((offset, r.is_ok()))
                })),
            );
        }
        assert!(
            done.lock().unwrap().is_empty(),
            "completed only on a later poll"
        );
        c.poll(Duration::from_millis(100)).await.unwrap();
        assert_eq!(
            *done.lock().unwrap(),
            vec![(3, true), (6, true), (10, true)]
        );
        let committed = c.committed(&[("t".into(), 0)]).await.unwrap();
        assert_eq!(
            committed[&("t".to_string(), 0)].as_ref().map(|o| o.offset),
            Some(10)
        );
        c.close().await.unwrap();
    })
    .await;
}

// Kafka auto-commits for assigned partitions too when a group.id is set
// (as a standalone member).
#[madsim::test]
async fn assign_mode_with_a_group_id_auto_commits_standalone() {
    in_cluster(|bootstrap| async move {
        create_topic(&bootstrap, "t", 1).await;
        produce(&bootstrap, "t", 1, 10).await;
        let config = member_config("solo", &[("auto.commit.interval.ms", "500")]);
        let mut c = Consumer::new(bootstrap.clone(), config);
        c.assign(vec![("t".into(), 0)]);
        let mut read = 0;
        for _ in 0..100 {
            read += c.poll(Duration::from_millis(200)).await.unwrap().len();
            if read == 10
                && c.committed(&[("t".into(), 0)]).await.unwrap()[&("t".to_string(), 0)].is_some()
            {
                break;
            }
        }
        let committed = c.committed(&[("t".into(), 0)]).await.unwrap();
        assert_eq!(
            committed[&("t".to_string(), 0)].as_ref().map(|o| o.offset),
            Some(10)
        );
    })
    .await;
}

// KIP-345: a newer instance with the same group.instance.id fences the
// older one; the fenced member's heartbeat gets FENCED_INSTANCE_ID and its
// poll fails from then on.
#[madsim::test]
async fn a_static_member_fenced_by_a_newer_instance_fails_its_poll() {
    in_cluster(|bootstrap| async move {
        create_topic(&bootstrap, "t", 2).await;
        let pairs = [
            ("group.instance.id", "i"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
        ];
        let mut old = Consumer::new(bootstrap.clone(), member_config(GROUP, &pairs));
        old.subscribe(vec!["t".into()]);
        for _ in 0..200 {
            old.poll(Duration::from_millis(200)).await.unwrap();
            if old.assignment().len() == 2 {
                break;
            }
        }
        assert_eq!(old.assignment().len(), 2);
        let newer = Member::spawn(&bootstrap, &pairs, &["t"]);
        wait_for("the newer instance assigned", 30_000, || {
            newer.assignment().len() == 2
        })
        .await;
        let mut fenced = None;
        for _ in 0..100 {
            match old.poll(Duration::from_millis(200)).await {
                Ok(_) => {}
                Err(e) => {
                    fenced = Some(e);
                    break;
                }
            }
        }
        let e = fenced.expect("the old instance is fenced");
        assert!(
            matches!(e, ClientError::Broker { code: 82, .. }),
            "FENCED_INSTANCE_ID: {e:?}"
        );
        assert!(
            old.poll(Duration::from_millis(10)).await.is_err(),
            "fatal for every later poll"
        );
        drop(old);
        newer.stop(CLOSE).await;
    })
    .await;
}

// Kafka's leader rejoins when the metadata of the group's subscription
// changes: a subscribed topic created after the group formed is assigned.
#[madsim::test]
async fn a_subscribed_topic_created_after_the_group_formed_is_assigned() {
    in_cluster(|bootstrap| async move {
        create_topic(&bootstrap, "t", 1).await;
        let config = member_config(GROUP, &[("metadata.max.age.ms", "1000")]);
        let mut consumer = Consumer::new(bootstrap.clone(), config);
        consumer.subscribe(vec!["t".into(), "late".into()]);
        let a = Member::run(consumer);
        wait_for("t assigned", 30_000, || a.assignment().len() == 1).await;
        create_topic(&bootstrap, "late", 2).await;
        wait_for("late assigned", 30_000, || a.assignment().len() == 3).await;
        a.stop(CLOSE).await;
    })
    .await;
}
