//! `liveness`: after heal (every fault stops at `heal_ms`) the system must
//! recover within the scenario's bound. The measure is the final reader: it
//! starts when the workload stops, learns every partition's end (the high
//! watermark) and must read up to it within `final_poll_ms`. A partition
//! left without a leader, a consumer that cannot fetch, or an end that
//! cannot be learned all show up here.
//!
//! A second, run-level measure watches the controller after heal: within
//! `[run] liveness_ms` of `heal_ms`, every partition must have a leader and
//! an ISR of at least min(`min.insync.replicas`, replication factor) in the
//! controller's image ([`unrecovered`] says which do not yet).
//!
//! A third watches every consumer group after heal: within `liveness_ms`
//! of `heal_ms` (and before the workload stops), the live members of each
//! group must agree on one generation whose assignments cover every
//! partition of the group's topics exactly once ([`group_state`]), and
//! keep it with no further rebalance until the deadline
//! ([`GroupSettling`]: a group that keeps rebalancing without faults, e.g.
//! processing longer than max.poll.interval.ms, never settles).
//!
//! All three are run-level facts, not in the history: `ksim check` on a
//! stored history always counts 0.

use super::Anomaly;
use ksim_broker::config::{Settings, TopicSettings};
use ksim_broker::controller::image::MetadataImage;
use std::collections::{BTreeMap, BTreeSet};

pub const KEY: &str = "liveness";

/// One anomaly when the final reader did not reach the end of every
/// partition within `final_poll_ms`.
pub fn check(final_reads_complete: bool, final_poll_ms: u64) -> Vec<Anomaly> {
    if final_reads_complete {
        return Vec::new();
    }
    run_level(format!("after heal the final reader did not reach the end of every partition within {final_poll_ms} ms"))
}

/// One run-level liveness anomaly (no partition, value or offset).
fn run_level(detail: String) -> Vec<Anomaly> {
    vec![Anomaly { key: KEY, partition: String::new(), value: None, offset: None, detail }]
}

/// The partitions of `image` not yet recovered, as `topic/p: why`, in
/// order: no leader, or fewer in-sync replicas than
/// min(`min.insync.replicas`, replicas) — the most a healed cluster can
/// reach. `broker` is the cluster's config (topic overrides come from the
/// image). Empty when everything recovered.
pub fn unrecovered(image: &MetadataImage, broker: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    for (name, topic) in &image.topics {
        let min_isr = TopicSettings::resolve(broker, &topic.configs).min_insync_replicas.max(1) as usize;
        for p in &topic.partitions {
            let need = min_isr.min(p.replicas.len());
            if p.leader < 0 {
                out.push(format!("{name}/{}: no leader", p.partition));
            } else if p.isr.len() < need {
                out.push(format!("{name}/{}: ISR {:?} below {need}", p.partition, p.isr));
            }
        }
    }
    out
}

/// One anomaly when the cluster had not recovered `liveness_ms` after heal
/// (`stuck`: what [`unrecovered`] said last, or why no image was read).
pub fn check_recovery(stuck: &[String], liveness_ms: u64) -> Vec<Anomaly> {
    if stuck.is_empty() {
        return Vec::new();
    }
    run_level(format!("{liveness_ms} ms after heal the controller's image still shows {}", stuck.join("; ")))
}

/// A live group member as the harness sees it after its latest poll: the
/// generation it joined and the partitions it owns there (`None`: not in
/// a generation, e.g. still joining or kicked out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub process: u64,
    pub joined: Option<(i64, Vec<String>)>,
}

/// Whether `group` is stable now: `Ok(Some(generation))` when every live
/// member joined that generation, no partition has two owners, and every
/// partition in `partitions` (the group's topics') is owned; `Ok(None)`
/// when the group has no live member (not judged); `Err(why)` otherwise.
pub fn group_state(group: &str, members: &[MemberView], partitions: &BTreeSet<String>) -> Result<Option<i64>, String> {
    if members.is_empty() {
        return Ok(None);
    }
    let joining: Vec<u64> = members.iter().filter(|m| m.joined.is_none()).map(|m| m.process).collect();
    if !joining.is_empty() {
        return Err(format!("group {group}: member process(es) {joining:?} in no generation"));
    }
    let generations: BTreeSet<i64> = members.iter().filter_map(|m| m.joined.as_ref().map(|(g, _)| *g)).collect();
    if generations.len() > 1 {
        return Err(format!("group {group}: members in generations {generations:?}"));
    }
    let mut owner: BTreeMap<&str, u64> = BTreeMap::new();
    for m in members {
        for p in m.joined.iter().flat_map(|(_, owned)| owned) {
            if let Some(other) = owner.insert(p, m.process) {
                return Err(format!("group {group}: {p} owned by processes {other} and {}", m.process));
            }
        }
    }
    let unowned: Vec<&str> = partitions.iter().map(String::as_str).filter(|p| !owner.contains_key(p)).collect();
    if !unowned.is_empty() {
        return Err(format!("group {group}: {} unassigned", unowned.join(", ")));
    }
    Ok(generations.into_iter().next())
}

/// A group's settling as the liveness watch samples it from heal to its
/// deadline: it must reach a stable generation ([`group_state`]) and hold
/// it, with no further rebalance, for the last `hold_ms` before the
/// deadline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSettling {
    /// The stable generation held since (ms) — `None` while unstable.
    stable: Option<(i64, u64)>,
    /// Why the group was last unstable.
    why: Option<String>,
    /// Generations the group went through while watched.
    generations: BTreeSet<i64>,
}

impl GroupSettling {
    /// One sample at `now_ms`.
    pub fn observe(&mut self, state: Result<Option<i64>, String>, now_ms: u64) {
        match state {
            Ok(None) => {}
            Ok(Some(g)) => {
                self.generations.insert(g);
                if !matches!(self.stable, Some((held, _)) if held == g) {
                    self.stable = Some((g, now_ms));
                }
            }
            Err(why) => {
                self.stable = None;
                self.why = Some(why);
            }
        }
    }

    /// At the deadline: why the group did not settle, or `None`. A group
    /// never judged unstable (or without live members) settled.
    pub fn unsettled(&self, group: &str, deadline_ms: u64, hold_ms: u64) -> Option<String> {
        match (&self.stable, &self.why) {
            (Some((_, since)), _) if deadline_ms.saturating_sub(*since) >= hold_ms => None,
            (None, None) => None,
            (Some((g, since)), _) => Some(format!(
                "group {group}: generation {g} held only {} ms before the deadline (needs {hold_ms} ms; {} generations since heal)",
                deadline_ms.saturating_sub(*since),
                self.generations.len()
            )),
            (None, Some(why)) => Some(why.clone()),
        }
    }
}

/// One anomaly when some group was not stable `liveness_ms` after heal
/// (`unstable`: what [`GroupSettling::unsettled`] said per group).
pub fn check_groups(unstable: &[String], liveness_ms: u64) -> Vec<Anomaly> {
    if unstable.is_empty() {
        return Vec::new();
    }
    run_level(format!("{liveness_ms} ms after heal (or when the workload stopped) {}", unstable.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksim_broker::controller::image::{PartitionState, TopicInfo};

    fn member(process: u64, generation: i64, owned: &[&str]) -> MemberView {
        MemberView { process, joined: Some((generation, owned.iter().map(|p| p.to_string()).collect())) }
    }

    fn parts(ps: &[&str]) -> BTreeSet<String> {
        ps.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_group_in_one_generation_covering_every_partition_once_is_stable() {
        let all = parts(&["t/0", "t/1", "t/2"]);
        let members = [member(1, 4, &["t/0", "t/2"]), member(2, 4, &["t/1"])];
        assert_eq!(group_state("g", &members, &all), Ok(Some(4)));
        assert!(check_groups(&[], 10_000).is_empty());
        assert_eq!(group_state("g", &[], &all), Ok(None), "no live member: not judged");
    }

    #[test]
    fn members_in_different_generations_are_not_stable() {
        let all = parts(&["t/0", "t/1"]);
        let why = group_state("g", &[member(1, 4, &["t/0"]), member(2, 5, &["t/1"])], &all).unwrap_err();
        assert!(why.contains("generations {4, 5}"), "{why}");
        let a = check_groups(&[why], 10_000);
        assert_eq!((a.len(), a[0].key), (1, KEY));
        assert!(a[0].detail.contains("10000 ms after heal") && a[0].detail.contains("group g"));
    }

    #[test]
    fn a_joining_member_an_unassigned_partition_or_two_owners_are_not_stable() {
        let all = parts(&["t/0", "t/1"]);
        let joining = MemberView { process: 3, joined: None };
        let why = group_state("g", &[member(1, 2, &["t/0", "t/1"]), joining], &all).unwrap_err();
        assert!(why.contains("[3] in no generation"), "{why}");
        let why = group_state("g", &[member(1, 2, &["t/0"])], &all).unwrap_err();
        assert!(why.contains("t/1 unassigned"), "{why}");
        let why = group_state("g", &[member(1, 2, &["t/0", "t/1"]), member(2, 2, &["t/1"])], &all).unwrap_err();
        assert!(why.contains("t/1 owned by processes 1 and 2"), "{why}");
    }

    /// A group settles when it reaches a stable generation and keeps it
    /// for the hold before the deadline; one that churns (stable for a
    /// moment, then rebalancing again) does not, and says so.
    #[test]
    fn a_group_must_hold_one_stable_generation_until_the_deadline() {
        let mut settled = GroupSettling::default();
        settled.observe(Err("group g: members in generations {1, 2}".into()), 0);
        settled.observe(Ok(Some(2)), 1_000);
        settled.observe(Ok(Some(2)), 9_000);
        assert_eq!(settled.unsettled("g", 10_000, 5_000), None);

        let mut churning = GroupSettling::default();
        for (t, g) in [(0, 3), (3_000, 4), (6_000, 5), (9_000, 6)] {
            churning.observe(Ok(Some(g)), t);
            churning.observe(Err("group g: member process(es) [1] in no generation".into()), t + 2_000);
        }
        let why = churning.unsettled("g", 10_000, 5_000).expect("unsettled");
        assert!(why.contains("in no generation"), "{why}");
        churning.observe(Ok(Some(7)), 9_500);
        let why = churning.unsettled("g", 10_000, 5_000).expect("unsettled");
        assert!(why.contains("generation 7 held only 500 ms") && why.contains("5 generations"), "{why}");

        assert_eq!(GroupSettling::default().unsettled("g", 10_000, 5_000), None, "no member ever seen");
    }

    fn image(min_isr: Option<&str>, parts: &[(i32, &[i32], &[i32])]) -> MetadataImage {
        let mut img = MetadataImage::default();
        let configs = min_isr.map(|v| Settings::from_pairs([("min.insync.replicas", v)])).unwrap_or_default();
        let partitions = parts
            .iter()
            .enumerate()
            .map(|(i, (leader, replicas, isr))| PartitionState {
                partition: i as i32,
                replicas: replicas.to_vec(),
                isr: isr.to_vec(),
                leader: *leader,
                leader_epoch: 0,
                partition_epoch: 0,
            })
            .collect();
        img.topics.insert("events".into(), TopicInfo { name: "events".into(), topic_id: [0; 16], configs, partitions });
        img
    }

    #[test]
    fn leaders_and_isrs_at_min_isr_are_recovered() {
        let img = image(Some("2"), &[(0, &[0, 1, 2], &[0, 1]), (1, &[1, 2, 0], &[1, 2, 0])]);
        assert!(unrecovered(&img, &Settings::default()).is_empty());
        assert!(check_recovery(&[], 20_000).is_empty());
    }

    #[test]
    fn a_partition_without_a_leader_is_not_recovered() {
        let img = image(None, &[(-1, &[0, 1, 2], &[0])]);
        let stuck = unrecovered(&img, &Settings::default());
        assert_eq!(stuck, vec!["events/0: no leader".to_string()]);
        let a = check_recovery(&stuck, 5_000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].key, KEY);
        assert!(a[0].detail.contains("5000 ms after heal") && a[0].detail.contains("events/0: no leader"));
    }

    #[test]
    fn an_isr_below_min_isr_is_not_recovered_and_the_broker_default_applies() {
        // KIP-966-style availability: min ISR 2 from the broker config.
        let broker = Settings::from_pairs([("min.insync.replicas", "2")]);
        let img = image(None, &[(0, &[0, 1, 2], &[0])]);
        assert_eq!(unrecovered(&img, &broker), vec!["events/0: ISR [0] below 2".to_string()]);
        // A topic override wins over the broker's value.
        let img = image(Some("1"), &[(0, &[0, 1, 2], &[0])]);
        assert!(unrecovered(&img, &broker).is_empty());
    }

    #[test]
    fn min_isr_above_the_replication_factor_asks_only_for_every_replica() {
        let img = image(Some("3"), &[(0, &[0, 1], &[0, 1])]);
        assert!(unrecovered(&img, &Settings::default()).is_empty());
    }

    #[test]
    fn a_final_reader_that_reached_every_end_is_live() {
        assert!(check(true, 20_000).is_empty());
    }

    #[test]
    fn a_final_reader_stuck_below_some_end_is_a_liveness_failure() {
        let a = check(false, 20_000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].key, KEY);
        assert!(a[0].detail.contains("20000 ms"));
    }
}
