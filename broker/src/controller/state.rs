//! The controller's state machine: events in, a new image out. No I/O.
//!
//! Leader election follows KRaft: a new leader comes from the ISR minus
//! fenced brokers, in replica order; with `unclean.leader.election.enable`
//! an out-of-sync live replica may lead when no ISR member is alive. A
//! fenced broker leaves every ISR it is in unless it is the last member
//! (then the partition has no leader and keeps that ISR, as Kafka does).

use super::image::{BrokerInfo, MetadataImage, PartitionState, TopicInfo, NO_LEADER};
use super::rpc::{ProducerIdBlock, RpcError};
use crate::config::{validate_topic_configs, validate_topic_config, Settings, TopicSettings};
use kafka_protocol::error::ResponseError;
use std::collections::{BTreeMap, BTreeSet};

/// Bound on partitions one topic may have (a named limit, as everything).
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// Producer ids per AllocateProducerIds block (Kafka's
/// `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

/// Admin changes to an existing topic, applied by the controller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TopicCommand {
    /// CreatePartitions: grow `topic` to `count` partitions (never shrink).
    CreatePartitions { topic: String, count: i32, validate_only: bool },
    /// IncrementalAlterConfigs SET (`Some`) / DELETE (`None`) per key.
    AlterConfigs { topic: String, ops: Vec<(String, Option<String>)>, validate_only: bool },
}

fn err(e: ResponseError, message: impl Into<String>) -> RpcError {
    RpcError::new(e.code(), message)
}

/// CreateTopics validation shared by the controller and `validate_only`
/// requests on brokers (no I/O, no state change).
pub fn validate_create_topic(image: &MetadataImage, name: &str, partitions: i32, replication_factor: i32, configs: &Settings) -> Result<(), RpcError> {
    if image.topics.contains_key(name) {
        return Err(err(ResponseError::TopicAlreadyExists, format!("topic {name} exists")));
    }
    if name.is_empty() || name.len() > 249 || name == "." || name == ".." || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(err(ResponseError::InvalidTopicException, format!("invalid topic name {name:?}")));
    }
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        return Err(err(ResponseError::InvalidPartitions, format!("partitions {partitions}")));
    }
    let brokers = image.brokers.len();
    if replication_factor < 1 || replication_factor as usize > brokers {
        return Err(err(
            ResponseError::InvalidReplicationFactor,
            format!("replication factor {replication_factor} with {brokers} brokers"),
        ));
    }
    validate_topic_configs(configs).map_err(|m| err(ResponseError::InvalidConfig, m))
}

#[derive(Debug, Clone)]
pub struct ControllerState {
    pub image: MetadataImage,
    /// Broker defaults (`unclean.leader.election.enable`, …).
    pub broker_settings: Settings,
    pub session_timeout_ms: u64,
    /// Last heartbeat per broker, simulated ms.
    last_heartbeat_ms: BTreeMap<i32, u64>,
    /// Counter for topic ids (deterministic, unlike random UUIDs).
    next_topic_id: u64,
    /// Per broker: (incarnation, replicas whose log dir failed in it). Not
    /// persisted: brokers repeat the list in every heartbeat.
    offline_replicas: BTreeMap<i32, (u64, BTreeSet<(String, i32)>)>,
}

/// What happened, for logs and the run's event trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerEvent {
    BrokerFenced(i32),
    BrokerUnfenced(i32),
    BrokerRestarted(i32),
    LeaderElected { topic: String, partition: i32, leader: i32, epoch: i32, unclean: bool },
    IsrChanged { topic: String, partition: i32, isr: Vec<i32> },
}

impl ControllerState {
    pub fn new(broker_settings: Settings, session_timeout_ms: u64) -> Self {
        ControllerState {
            image: MetadataImage::default(),
            broker_settings,
            session_timeout_ms,
            last_heartbeat_ms: BTreeMap::new(),
            next_topic_id: 1,
            offline_replicas: BTreeMap::new(),
        }
    }

    /// Restores from a persisted image; every broker gets a fresh session.
    pub fn restore(image: MetadataImage, broker_settings: Settings, session_timeout_ms: u64, now_ms: u64) -> Self {
        let last_heartbeat_ms = image.brokers.keys().map(|&b| (b, now_ms)).collect();
        let next_topic_id = image.topics.len() as u64 + 1;
        ControllerState { image, broker_settings, session_timeout_ms, last_heartbeat_ms, next_topic_id, offline_replicas: BTreeMap::new() }
    }

    fn bump(&mut self) {
        self.image.version += 1;
        self.image.assert_invariants();
    }

    /// A broker heartbeat. A new incarnation of a known broker is handled as
    /// a fence followed by an unfence: its replicas may have lost unflushed
    /// data, so it must not keep leadership or ISR membership across restarts.
    pub fn heartbeat(&mut self, broker_id: i32, incarnation: u64, host: &str, port: u16, now_ms: u64) -> Vec<ControllerEvent> {
        let mut events = Vec::new();
        self.last_heartbeat_ms.insert(broker_id, now_ms);
        match self.image.brokers.get(&broker_id).cloned() {
            None => {
                self.image.brokers.insert(
                    broker_id,
                    BrokerInfo { id: broker_id, host: host.to_string(), port, fenced: false, incarnation },
                );
                events.push(ControllerEvent::BrokerUnfenced(broker_id));
                self.elect_leaderless(&mut events);
                self.bump();
            }
            Some(info) => {
                let restarted = info.incarnation != incarnation;
                if restarted && !info.fenced {
                    events.push(ControllerEvent::BrokerRestarted(broker_id));
                    self.fence(broker_id, &mut events);
                }
                if restarted || info.fenced {
                    let b = self.image.brokers.get_mut(&broker_id).expect("known broker");
                    b.fenced = false;
                    b.incarnation = incarnation;
                    b.host = host.to_string();
                    b.port = port;
                    events.push(ControllerEvent::BrokerUnfenced(broker_id));
                    self.elect_leaderless(&mut events);
                    self.bump();
                }
            }
        }
        events
    }

    /// Whether `broker`'s replica of `topic/partition` is on a failed log dir
    /// in the broker's current incarnation.
    fn replica_offline(&self, broker: i32, topic: &str, partition: i32) -> bool {
        let current = self.image.brokers.get(&broker).map(|b| b.incarnation);
        self.offline_replicas
            .get(&broker)
            .is_some_and(|(inc, set)| Some(*inc) == current && set.contains(&(topic.to_string(), partition)))
    }

    /// A heartbeat's offline replicas (KRaft's handling of a broker's
    /// offline log dirs): each newly offline replica leaves the ISR (unless
    /// it is the last member, as with fencing) and loses leadership; it may
    /// neither lead nor rejoin the ISR until the broker restarts.
    pub fn replicas_offline(&mut self, broker_id: i32, incarnation: u64, replicas: &[(String, i32)]) -> Vec<ControllerEvent> {
        let mut events = Vec::new();
        if self.image.brokers.get(&broker_id).is_none_or(|b| b.incarnation != incarnation) {
            return events;
        }
        let entry = self.offline_replicas.entry(broker_id).or_insert_with(|| (incarnation, BTreeSet::new()));
        if entry.0 != incarnation {
            *entry = (incarnation, BTreeSet::new());
        }
        let new: Vec<(String, i32)> = replicas.iter().filter(|r| !entry.1.contains(*r)).cloned().collect();
        entry.1.extend(new.iter().cloned());
        let mut changed = false;
        for (topic, p) in new {
            let Some(ps) = self.image.partition(&topic, p) else { continue };
            if !ps.replicas.contains(&broker_id) {
                continue;
            }
            let (in_isr, leads, isr_len) = (ps.isr.contains(&broker_id), ps.leader == broker_id, ps.isr.len());
            if in_isr && isr_len > 1 {
                let ps = &mut self.image.topics.get_mut(&topic).unwrap().partitions[p as usize];
                ps.isr.retain(|&r| r != broker_id);
                ps.partition_epoch += 1;
                events.push(ControllerEvent::IsrChanged { topic: topic.clone(), partition: p, isr: ps.isr.clone() });
                changed = true;
            }
            if leads {
                self.elect(&topic, p as usize, &mut events);
                changed = true;
            }
        }
        if changed {
            self.bump();
        }
        events
    }

    /// Fences brokers whose session expired.
    pub fn tick(&mut self, now_ms: u64) -> Vec<ControllerEvent> {
        let mut events = Vec::new();
        let expired: Vec<i32> = self
            .image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                let last = self.last_heartbeat_ms.get(&b.id).copied().unwrap_or(0);
                now_ms.saturating_sub(last) > self.session_timeout_ms
            })
            .map(|b| b.id)
            .collect();
        for id in expired {
            self.fence(id, &mut events);
            self.bump();
        }
        events
    }

    fn fence(&mut self, broker_id: i32, events: &mut Vec<ControllerEvent>) {
        if let Some(b) = self.image.brokers.get_mut(&broker_id) {
            b.fenced = true;
        }
        events.push(ControllerEvent::BrokerFenced(broker_id));
        let names: Vec<String> = self.image.topics.keys().cloned().collect();
        for name in names {
            let n = self.image.topics[&name].partitions.len();
            for p in 0..n {
                let (contains, leader_is_it, isr_len) = {
                    let ps = &self.image.topics[&name].partitions[p];
                    (ps.isr.contains(&broker_id), ps.leader == broker_id, ps.isr.len())
                };
                if !contains && !leader_is_it {
                    continue;
                }
                if contains && isr_len > 1 {
                    let ps = &mut self.image.topics.get_mut(&name).unwrap().partitions[p];
                    ps.isr.retain(|&r| r != broker_id);
                    ps.partition_epoch += 1;
                    events.push(ControllerEvent::IsrChanged { topic: name.clone(), partition: p as i32, isr: ps.isr.clone() });
                }
                if leader_is_it {
                    self.elect(&name, p, events);
                }
            }
        }
    }

    /// Elects a leader for every partition that has none.
    fn elect_leaderless(&mut self, events: &mut Vec<ControllerEvent>) {
        let names: Vec<String> = self.image.topics.keys().cloned().collect();
        for name in names {
            let n = self.image.topics[&name].partitions.len();
            for p in 0..n {
                if self.image.topics[&name].partitions[p].leader == NO_LEADER {
                    self.elect(&name, p, events);
                }
            }
        }
    }

    /// Chooses a leader for `name/p` from the live ISR (or, when allowed,
    /// any live replica), bumping the leader epoch when it changes.
    fn elect(&mut self, name: &str, p: usize, events: &mut Vec<ControllerEvent>) {
        let topic = &self.image.topics[name];
        let settings = TopicSettings::resolve(&self.broker_settings, &topic.configs);
        let ps = &topic.partitions[p];
        let live = |r: &i32| !self.image.is_fenced(*r) && !self.replica_offline(*r, name, p as i32);
        let clean = ps.replicas.iter().copied().find(|r| ps.isr.contains(r) && live(r));
        let (leader, unclean) = match clean {
            Some(l) => (l, false),
            None if settings.unclean_leader_election_enable => {
                match ps.replicas.iter().copied().find(|r| live(r)) {
                    Some(l) => (l, true),
                    None => (NO_LEADER, false),
                }
            }
            None => (NO_LEADER, false),
        };
        let ps = &mut self.image.topics.get_mut(name).unwrap().partitions[p];
        if leader == ps.leader {
            return;
        }
        ps.leader = leader;
        ps.partition_epoch += 1;
        if leader != NO_LEADER {
            ps.leader_epoch += 1;
            if unclean {
                ps.isr = vec![leader];
            }
            events.push(ControllerEvent::LeaderElected {
                topic: name.to_string(),
                partition: p as i32,
                leader,
                epoch: ps.leader_epoch,
                unclean,
            });
        }
    }

    /// Preferred leader election (`auto.leader.rebalance.enable`): every
    /// partition led by someone other than its first replica moves back to
    /// that replica when it is unfenced and in the ISR. Like KRaft, this
    /// ignores `leader.imbalance.per.broker.percentage`.
    pub fn rebalance_leaders(&mut self) -> Vec<ControllerEvent> {
        let mut events = Vec::new();
        let names: Vec<String> = self.image.topics.keys().cloned().collect();
        for name in names {
            let n = self.image.topics[&name].partitions.len();
            for p in 0..n {
                let ps = &self.image.topics[&name].partitions[p];
                let preferred = ps.replicas[0];
                if ps.leader == preferred || !ps.isr.contains(&preferred) || self.image.is_fenced(preferred) {
                    continue;
                }
                let ps = &mut self.image.topics.get_mut(&name).unwrap().partitions[p];
                ps.leader = preferred;
                ps.leader_epoch += 1;
                ps.partition_epoch += 1;
                events.push(ControllerEvent::LeaderElected {
                    topic: name.clone(),
                    partition: p as i32,
                    leader: preferred,
                    epoch: ps.leader_epoch,
                    unclean: false,
                });
            }
        }
        if !events.is_empty() {
            self.bump();
        }
        events
    }

    /// AlterPartition from a leader (KIP-497): checked against the current
    /// leader epoch and partition epoch; new ISR members must be live.
    pub fn alter_partition(
        &mut self,
        broker_id: i32,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Result<PartitionState, RpcError> {
        let ps = self
            .image
            .partition(topic, partition)
            .ok_or_else(|| RpcError::new(ResponseError::UnknownTopicOrPartition.code(), "no such partition"))?
            .clone();
        if ps.leader != broker_id || ps.leader_epoch != leader_epoch {
            return Err(RpcError::new(ResponseError::FencedLeaderEpoch.code(), "not the current leader"));
        }
        if ps.partition_epoch != partition_epoch {
            return Err(RpcError::new(ResponseError::InvalidUpdateVersion.code(), "stale partition epoch"));
        }
        if !new_isr.contains(&broker_id) || new_isr.iter().any(|r| !ps.replicas.contains(r)) {
            return Err(RpcError::new(ResponseError::InvalidRequest.code(), "ISR must hold the leader and only replicas"));
        }
        let ineligible = |r: &i32| self.image.is_fenced(*r) || self.replica_offline(*r, topic, partition);
        if new_isr.iter().any(|r| !ps.isr.contains(r) && ineligible(r)) {
            return Err(RpcError::new(ResponseError::IneligibleReplica.code(), "fenced replica cannot join the ISR"));
        }
        let mut isr = new_isr;
        isr.sort_unstable();
        isr.dedup();
        let ps = &mut self.image.topics.get_mut(topic).unwrap().partitions[partition as usize];
        ps.isr = isr;
        ps.partition_epoch += 1;
        let out = ps.clone();
        self.bump();
        Ok(out)
    }

    /// A new partition `p`: replicas round-robin over `brokers` starting at
    /// `p`, first replica preferred leader; ISR = the live replicas.
    fn new_partition(&self, brokers: &[i32], p: i32, replication_factor: i32) -> PartitionState {
        let replicas: Vec<i32> = (0..replication_factor).map(|i| brokers[(p + i) as usize % brokers.len()]).collect();
        let isr: Vec<i32> = replicas.iter().copied().filter(|r| !self.image.is_fenced(*r)).collect();
        let (leader, isr) = match isr.first() {
            Some(&l) => (l, isr),
            None => (NO_LEADER, vec![replicas[0]]),
        };
        PartitionState { partition: p, replicas, isr, leader, leader_epoch: 0, partition_epoch: 0 }
    }

    /// Applies an admin change to an existing topic (validated first; with
    /// `validate_only` nothing changes).
    pub fn apply_topic_command(&mut self, cmd: TopicCommand) -> Result<(), RpcError> {
        match cmd {
            TopicCommand::CreatePartitions { topic, count, validate_only } => {
                let t = self.image.topics.get(&topic).ok_or_else(|| err(ResponseError::UnknownTopicOrPartition, format!("no topic {topic}")))?;
                let current = t.partitions.len() as i32;
                // Kafka: "Topic currently has N partitions, which is higher than the requested M."
                if count <= current {
                    return Err(err(ResponseError::InvalidPartitions, format!("topic {topic} has {current} partitions; {count} is not an increase")));
                }
                if count > MAX_PARTITIONS_PER_TOPIC {
                    return Err(err(ResponseError::InvalidPartitions, format!("partitions {count} over {MAX_PARTITIONS_PER_TOPIC}")));
                }
                let rf = t.partitions.first().map_or(1, |p| p.replicas.len()) as i32;
                let brokers: Vec<i32> = self.image.brokers.keys().copied().collect();
                if rf as usize > brokers.len() {
                    return Err(err(ResponseError::InvalidReplicationFactor, format!("replication factor {rf} with {} brokers", brokers.len())));
                }
                if validate_only {
                    return Ok(());
                }
                let new: Vec<PartitionState> = (current..count).map(|p| self.new_partition(&brokers, p, rf)).collect();
                self.image.topics.get_mut(&topic).expect("checked").partitions.extend(new);
            }
            TopicCommand::AlterConfigs { topic, ops, validate_only } => {
                let t = self.image.topics.get(&topic).ok_or_else(|| err(ResponseError::UnknownTopicOrPartition, format!("no topic {topic}")))?;
                let mut configs = t.configs.clone();
                for (key, value) in ops {
                    match value {
                        Some(v) => {
                            validate_topic_config(&key, &v).map_err(|m| err(ResponseError::InvalidConfig, m))?;
                            configs.0.insert(key, v);
                        }
                        None => {
                            // Kafka lets DELETE of an unset key pass, but not of an unknown one.
                            if crate::config::topic_config_def(&key).is_none() {
                                return Err(err(ResponseError::InvalidConfig, format!("unknown topic config {key}")));
                            }
                            configs.0.remove(&key);
                        }
                    }
                }
                if validate_only || configs == t.configs {
                    return Ok(());
                }
                self.image.topics.get_mut(&topic).expect("checked").configs = configs;
            }
        }
        self.bump();
        Ok(())
    }

    /// KIP-730 AllocateProducerIds: the next block of producer ids for a
    /// registered, unfenced broker of the given incarnation (Kafka checks the
    /// broker epoch: STALE_BROKER_EPOCH otherwise). The image records the
    /// next free id, so a block is never handed out twice once committed.
    pub fn allocate_producer_ids(&mut self, broker_id: i32, incarnation: u64) -> Result<ProducerIdBlock, RpcError> {
        match self.image.brokers.get(&broker_id) {
            Some(b) if b.incarnation == incarnation && !b.fenced => {}
            _ => return Err(err(ResponseError::StaleBrokerEpoch, format!("broker {broker_id} incarnation {incarnation} is not registered and unfenced"))),
        }
        let first = self.image.next_producer_id;
        assert!(first >= 0, "next producer id {first} is negative");
        let next = first
            .checked_add(PRODUCER_ID_BLOCK_SIZE as i64)
            .ok_or_else(|| err(ResponseError::UnknownServerError, "producer ids exhausted"))?;
        self.image.next_producer_id = next;
        self.bump();
        Ok(ProducerIdBlock { first, len: PRODUCER_ID_BLOCK_SIZE })
    }

    /// CreateTopics: replicas placed round-robin over registered brokers,
    /// first replica preferred leader; ISR = the live replicas.
    pub fn create_topic(&mut self, name: &str, partitions: i32, replication_factor: i32, configs: Settings) -> Result<(), RpcError> {
        validate_create_topic(&self.image, name, partitions, replication_factor, &configs)?;
        let brokers: Vec<i32> = self.image.brokers.keys().copied().collect();
        let parts = (0..partitions).map(|p| self.new_partition(&brokers, p, replication_factor)).collect();
        let mut topic_id = [0u8; 16];
        topic_id[8..].copy_from_slice(&self.next_topic_id.to_be_bytes());
        self.next_topic_id += 1;
        self.image.topics.insert(
            name.to_string(),
            TopicInfo { name: name.to_string(), topic_id, configs, partitions: parts },
        );
        self.bump();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster3() -> ControllerState {
        let mut c = ControllerState::new(Settings::new(), 9000);
        for b in 1..=3 {
            c.heartbeat(b, 100 + b as u64, "h", 9092, 0);
        }
        c.create_topic("t", 3, 3, Settings::new()).unwrap();
        c
    }

    #[test]
    fn kraft_fenced_leader_is_replaced_from_the_isr_and_epoch_bumps() {
        let mut c = cluster3();
        let before = c.image.partition("t", 0).unwrap().clone();
        assert_eq!(before.leader, 1);
        for b in 2..=3 {
            c.heartbeat(b, 100 + b as u64, "h", 9092, 5000);
        }
        let ev = c.tick(9500);
        assert!(ev.contains(&ControllerEvent::BrokerFenced(1)));
        let after = c.image.partition("t", 0).unwrap();
        assert_eq!(after.leader, 2);
        assert_eq!(after.leader_epoch, before.leader_epoch + 1);
        assert_eq!(after.isr, vec![2, 3]);
    }

    #[test]
    fn last_isr_member_fenced_leaves_partition_leaderless_without_unclean() {
        let mut c = cluster3();
        let ps = c.image.partition("t", 0).unwrap().clone();
        c.alter_partition(1, "t", 0, ps.leader_epoch, ps.partition_epoch, vec![1]).unwrap();
        c.heartbeat(2, 102, "h", 9092, 9000);
        c.heartbeat(3, 103, "h", 9092, 9000);
        c.tick(9500);
        let ps = c.image.partition("t", 0).unwrap();
        assert_eq!(ps.leader, NO_LEADER);
        assert_eq!(ps.isr, vec![1]);
    }

    #[test]
    fn unclean_election_picks_live_out_of_sync_replica() {
        let mut c = ControllerState::new(Settings::from_pairs([("unclean.leader.election.enable", "true")]), 9000);
        for b in 1..=3 {
            c.heartbeat(b, b as u64, "h", 9092, 0);
        }
        c.create_topic("t", 1, 3, Settings::new()).unwrap();
        let ps = c.image.partition("t", 0).unwrap().clone();
        c.alter_partition(1, "t", 0, ps.leader_epoch, ps.partition_epoch, vec![1]).unwrap();
        c.heartbeat(2, 2, "h", 9092, 9000);
        c.heartbeat(3, 3, "h", 9092, 9000);
        c.tick(9500);
        let ps = c.image.partition("t", 0).unwrap();
        assert_eq!(ps.leader, 2);
        assert_eq!(ps.isr, vec![2]);
    }

    #[test]
    fn restarted_broker_loses_leadership_even_within_session_timeout() {
        let mut c = cluster3();
        let ev = c.heartbeat(1, 999, "h", 9092, 1000);
        assert!(ev.contains(&ControllerEvent::BrokerRestarted(1)));
        let ps = c.image.partition("t", 0).unwrap();
        assert_ne!(ps.leader, 1);
        assert!(!ps.isr.contains(&1));
        assert!(!c.image.is_fenced(1));
    }

    #[test]
    fn alter_partition_rejects_stale_epochs_and_fenced_joiners() {
        let mut c = cluster3();
        let ps = c.image.partition("t", 0).unwrap().clone();
        let e = c.alter_partition(1, "t", 0, ps.leader_epoch + 1, ps.partition_epoch, vec![1]).unwrap_err();
        assert_eq!(e.code, ResponseError::FencedLeaderEpoch.code());
        let e = c.alter_partition(1, "t", 0, ps.leader_epoch, ps.partition_epoch + 7, vec![1]).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidUpdateVersion.code());
        let ok = c.alter_partition(1, "t", 0, ps.leader_epoch, ps.partition_epoch, vec![1, 2]).unwrap();
        assert_eq!(ok.isr, vec![1, 2]);
        c.heartbeat(1, 101, "h", 9092, 9000);
        c.heartbeat(2, 102, "h", 9092, 9000);
        c.tick(9500); // broker 3 fenced
        let ps = c.image.partition("t", 0).unwrap().clone();
        let e = c.alter_partition(1, "t", 0, ps.leader_epoch, ps.partition_epoch, vec![1, 2, 3]).unwrap_err();
        assert_eq!(e.code, ResponseError::IneligibleReplica.code());
    }

    // Kafka docs, `auto.leader.rebalance.enable`: the (KRaft) controller
    // moves leadership back to the preferred replica once it is in the ISR.
    #[test]
    fn rebalance_moves_leadership_back_to_the_preferred_replica() {
        let mut c = cluster3();
        c.heartbeat(1, 999, "h", 9092, 1000); // broker 1 restarts: loses leadership and ISR
        let ps = c.image.partition("t", 0).unwrap().clone();
        assert_eq!(ps.leader, 2);
        assert!(c.rebalance_leaders().iter().all(|e| !matches!(e, ControllerEvent::LeaderElected { partition: 0, .. })));
        assert_eq!(c.image.partition("t", 0).unwrap().leader, 2, "preferred replica not in the ISR yet");
        c.alter_partition(2, "t", 0, ps.leader_epoch, ps.partition_epoch, vec![1, 2, 3]).unwrap();
        let before = c.image.partition("t", 0).unwrap().clone();
        let version = c.image.version;
        let ev = c.rebalance_leaders();
        assert!(ev.contains(&ControllerEvent::LeaderElected {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            epoch: before.leader_epoch + 1,
            unclean: false
        }));
        let after = c.image.partition("t", 0).unwrap();
        assert_eq!(after.leader, 1);
        assert_eq!(after.isr, vec![1, 2, 3]);
        assert_eq!(after.partition_epoch, before.partition_epoch + 1);
        assert_eq!(c.image.version, version + 1);
        assert!(c.rebalance_leaders().is_empty(), "balanced: nothing to do");
    }

    #[test]
    fn rebalance_skips_a_fenced_preferred_replica() {
        let mut c = cluster3();
        c.heartbeat(2, 102, "h", 9092, 9000);
        c.heartbeat(3, 103, "h", 9092, 9000);
        c.tick(9500); // broker 1 fenced, leaves the ISRs
        assert!(c.rebalance_leaders().is_empty());
    }

    #[test]
    fn offline_replica_leaves_isr_and_leadership_until_restart() {
        let mut c = cluster3();
        let before = c.image.partition("t", 0).unwrap().clone();
        assert_eq!(before.leader, 1);
        let ev = c.replicas_offline(1, 101, &[("t".into(), 0)]);
        assert!(!ev.is_empty());
        let ps = c.image.partition("t", 0).unwrap().clone();
        assert_eq!(ps.leader, 2);
        assert_eq!(ps.leader_epoch, before.leader_epoch + 1);
        assert_eq!(ps.isr, vec![2, 3]);
        // Other partitions of broker 1 are untouched.
        assert!(c.image.partition("t", 1).unwrap().isr.contains(&1));
        // Repeating the report changes nothing; rejoining is refused.
        assert!(c.replicas_offline(1, 101, &[("t".into(), 0)]).is_empty());
        let e = c.alter_partition(2, "t", 0, ps.leader_epoch, ps.partition_epoch, vec![1, 2, 3]).unwrap_err();
        assert_eq!(e.code, ResponseError::IneligibleReplica.code());
        // A stale incarnation's report is ignored; a restart clears the set.
        assert!(c.replicas_offline(1, 7, &[("t".into(), 1)]).is_empty());
        c.heartbeat(1, 102, "h", 9092, 1000);
        let ps = c.image.partition("t", 0).unwrap().clone();
        c.alter_partition(2, "t", 0, ps.leader_epoch, ps.partition_epoch, vec![1, 2, 3]).unwrap();
    }

    #[test]
    fn create_topic_validates_replication_factor_and_duplicates() {
        let mut c = cluster3();
        assert_eq!(c.create_topic("t", 1, 1, Settings::new()).unwrap_err().code, ResponseError::TopicAlreadyExists.code());
        assert_eq!(c.create_topic("u", 1, 4, Settings::new()).unwrap_err().code, ResponseError::InvalidReplicationFactor.code());
        c.create_topic("u", 2, 2, Settings::new()).unwrap();
        assert_eq!(c.image.partition("u", 1).unwrap().replicas, vec![2, 3]);
        let bad = Settings::from_pairs([("retention.ms", "soon")]);
        assert_eq!(c.create_topic("v", 1, 1, bad).unwrap_err().code, ResponseError::InvalidConfig.code());
        let unknown = Settings::from_pairs([("no.such.config", "1")]);
        assert_eq!(c.create_topic("v", 1, 1, unknown).unwrap_err().code, ResponseError::InvalidConfig.code());
        assert_eq!(c.create_topic("v", 0, 1, Settings::new()).unwrap_err().code, ResponseError::InvalidPartitions.code());
    }

    // KIP-730: blocks never overlap and only a live, current broker gets one.
    #[test]
    fn producer_id_blocks_are_disjoint_and_need_a_current_broker() {
        let mut c = cluster3();
        let a = c.allocate_producer_ids(1, 101).unwrap();
        let b = c.allocate_producer_ids(2, 102).unwrap();
        assert_eq!(a, ProducerIdBlock { first: 0, len: PRODUCER_ID_BLOCK_SIZE });
        assert_eq!(b.first, a.first + a.len as i64);
        assert_eq!(c.image.next_producer_id, b.first + b.len as i64);
        let v = c.image.version;
        assert_eq!(c.allocate_producer_ids(1, 7).unwrap_err().code, ResponseError::StaleBrokerEpoch.code());
        assert_eq!(c.allocate_producer_ids(9, 1).unwrap_err().code, ResponseError::StaleBrokerEpoch.code());
        assert_eq!(c.image.version, v, "a refused allocation changes nothing");
        // A restored controller (failover) continues after the last block.
        let mut r = ControllerState::restore(c.image.clone(), Settings::new(), 9000, 0);
        assert_eq!(r.allocate_producer_ids(3, 103).unwrap().first, b.first + b.len as i64);
    }

    // Kafka CreatePartitions (KIP-195): increase only, new replicas placed like CreateTopics.
    #[test]
    fn create_partitions_only_increases_and_places_round_robin() {
        let mut c = cluster3();
        let inc = |count| TopicCommand::CreatePartitions { topic: "t".into(), count, validate_only: false };
        assert_eq!(c.apply_topic_command(inc(3)).unwrap_err().code, ResponseError::InvalidPartitions.code());
        assert_eq!(c.apply_topic_command(inc(2)).unwrap_err().code, ResponseError::InvalidPartitions.code());
        let v = c.image.version;
        c.apply_topic_command(TopicCommand::CreatePartitions { topic: "t".into(), count: 5, validate_only: true }).unwrap();
        assert_eq!(c.image.version, v);
        c.apply_topic_command(inc(5)).unwrap();
        assert_eq!(c.image.topics["t"].partitions.len(), 5);
        assert_eq!(c.image.partition("t", 3).unwrap().replicas, vec![1, 2, 3]);
        assert_eq!(c.image.partition("t", 4).unwrap().replicas, vec![2, 3, 1]);
        assert_eq!(c.image.partition("t", 4).unwrap().leader, 2);
        let e = c.apply_topic_command(TopicCommand::CreatePartitions { topic: "nope".into(), count: 2, validate_only: false }).unwrap_err();
        assert_eq!(e.code, ResponseError::UnknownTopicOrPartition.code());
    }

    // KIP-339 IncrementalAlterConfigs: SET and DELETE per key, validated.
    #[test]
    fn alter_configs_sets_and_deletes_overrides() {
        let mut c = cluster3();
        let alter = |ops: Vec<(&str, Option<&str>)>| TopicCommand::AlterConfigs {
            topic: "t".into(),
            ops: ops.into_iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect(),
            validate_only: false,
        };
        c.apply_topic_command(alter(vec![("retention.ms", Some("1000")), ("max.message.bytes", Some("10"))])).unwrap();
        assert_eq!(c.image.topics["t"].configs.get("retention.ms"), Some("1000"));
        c.apply_topic_command(alter(vec![("retention.ms", None)])).unwrap();
        assert_eq!(c.image.topics["t"].configs.get("retention.ms"), None);
        assert_eq!(c.image.topics["t"].configs.get("max.message.bytes"), Some("10"));
        let e = c.apply_topic_command(alter(vec![("max.message.bytes", Some("1")), ("retention.ms", Some("x"))])).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidConfig.code());
        assert_eq!(c.image.topics["t"].configs.get("max.message.bytes"), Some("10"), "a failed alter changes nothing");
    }

    // The topic-level unclean.leader.election.enable override beats the broker default.
    #[test]
    fn topic_unclean_override_is_used_when_electing() {
        let mut c = cluster3();
        c.apply_topic_command(TopicCommand::AlterConfigs {
            topic: "t".into(),
            ops: vec![("unclean.leader.election.enable".into(), Some("true".into()))],
            validate_only: false,
        })
        .unwrap();
        let ps = c.image.partition("t", 0).unwrap().clone();
        c.alter_partition(1, "t", 0, ps.leader_epoch, ps.partition_epoch, vec![1]).unwrap();
        c.heartbeat(2, 102, "h", 9092, 9000);
        c.heartbeat(3, 103, "h", 9092, 9000);
        c.tick(9500);
        assert_eq!(c.image.partition("t", 0).unwrap().leader, 2);
    }
}
