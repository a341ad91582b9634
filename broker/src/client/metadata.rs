//! The client's view of the cluster: brokers and each partition's leader,
//! learned with Metadata v12 from any reachable broker (known brokers first,
//! then the bootstrap list), and refreshed when a caller reports it stale
//! (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE,
//! FENCED_LEADER_EPOCH, network errors) or when older than
//! metadata.max.age.ms.

use super::error::ClientError;
use super::network::Pool;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub const METADATA_VERSION: i16 = 12;

/// Where to send requests for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    pub node_id: i32,
    pub addr: SocketAddr,
    /// -1 when unknown.
    pub leader_epoch: i32,
}

/// One partition as the last Metadata response described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionMeta {
    /// -1 when there is no leader.
    pub leader: i32,
    pub leader_epoch: i32,
}

#[derive(Debug, Default)]
struct State {
    brokers: BTreeMap<i32, SocketAddr>,
    /// Partitions by index, for topics the broker knew.
    topics: BTreeMap<String, Vec<PartitionMeta>>,
    /// Topics this client asks about.
    wanted: BTreeSet<String>,
    stale: bool,
    refreshed_at: Option<Instant>,
    /// Rotates which broker a refresh asks first.
    next_probe: usize,
}

/// Shared network and metadata of one client.
pub struct Cluster {
    pub pool: Pool,
    bootstrap: Vec<SocketAddr>,
    state: Mutex<State>,
    /// Serialises refreshes so a burst of stale reports causes one.
    refresh_lock: tokio::sync::Mutex<()>,
}

impl Cluster {
    pub fn new(bootstrap: Vec<SocketAddr>, pool: Pool) -> Cluster {
        Cluster { pool, bootstrap, state: Mutex::new(State::default()), refresh_lock: tokio::sync::Mutex::new(()) }
    }

    /// Marks the metadata stale: the next lookup refreshes it first.
    pub fn invalidate(&self) {
        self.state.lock().unwrap().stale = true;
    }

    /// Whether a lookup of `topic` would refresh first (unknown topic,
    /// stale, or older than metadata.max.age.ms).
    pub fn needs_refresh(&self, topic: &str) -> bool {
        let st = self.state.lock().unwrap();
        let max_age = Duration::from_millis(self.pool.config().metadata_max_age_ms);
        st.stale
            || !st.wanted.contains(topic)
            || !st.topics.contains_key(topic)
            || st.refreshed_at.is_none_or(|t| t.elapsed() >= max_age)
    }

    /// Refreshes if the topic is unknown, the data is stale or too old.
    async fn ensure_fresh(&self, topic: &str) -> Result<(), ClientError> {
        if !self.needs_refresh(topic) {
            return Ok(());
        }
        let _guard = self.refresh_lock.lock().await;
        // Someone else may have refreshed while we waited.
        if !self.needs_refresh(topic) {
            return Ok(());
        }
        self.state.lock().unwrap().wanted.insert(topic.to_string());
        self.refresh().await
    }

    /// Asks brokers in turn for metadata of the wanted topics.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let wanted: Vec<String> = self.state.lock().unwrap().wanted.iter().cloned().collect();
        let candidates = self.any_brokers();
        let request = MetadataRequest::default()
            .with_topics(Some(
                wanted
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone())))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let (_, resp) = self.call_any(ApiKey::Metadata, METADATA_VERSION, RequestKind::Metadata(request), &candidates).await?;
        let ResponseKind::Metadata(resp) = resp else {
            return Err(ClientError::Malformed("Metadata: wrong response kind".into()));
        };
        let mut brokers = BTreeMap::new();
        for b in &resp.brokers {
            match resolve(b.host.as_str(), b.port) {
                Some(addr) => {
                    brokers.insert(b.node_id.0, addr);
                }
                None => tracing::warn!("metadata: cannot resolve broker {} at {}:{}", b.node_id.0, b.host.as_str(), b.port),
            }
        }
        let mut topics = BTreeMap::new();
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else { continue };
            if t.error_code != 0 {
                continue;
            }
            let count = t.partitions.iter().map(|p| p.partition_index + 1).max().unwrap_or(0).max(0) as usize;
            let mut parts = vec![PartitionMeta { leader: -1, leader_epoch: -1 }; count];
            for p in &t.partitions {
                if p.partition_index < 0 {
                    return Err(ClientError::Malformed(format!("metadata: negative partition index for {name}")));
                }
                parts[p.partition_index as usize] = PartitionMeta { leader: p.leader_id.0, leader_epoch: p.leader_epoch };
            }
            topics.insert(name, parts);
        }
        let mut st = self.state.lock().unwrap();
        keep_newer_leader_epochs(&st.topics, &mut topics);
        st.brokers = brokers;
        st.topics = topics;
        st.stale = false;
        st.refreshed_at = Some(Instant::now());
        Ok(())
    }

    /// Sends a request to the first of `candidates` that answers (the known
    /// brokers and the bootstrap list when empty). Returns who answered.
    pub async fn call_any(
        &self,
        api_key: ApiKey,
        version: i16,
        body: RequestKind,
        candidates: &[SocketAddr],
    ) -> Result<(SocketAddr, ResponseKind), ClientError> {
        let mut last = ClientError::Network { addr: "(none)".into(), message: "no brokers to ask".into(), sent: false };
        for addr in candidates {
            match self.pool.request(*addr, api_key, version, body.clone()).await {
                Ok(r) => return Ok((*addr, r)),
                Err(e) => {
                    tracing::debug!("{api_key:?} to {addr} failed: {e}");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Every broker address worth trying for a cluster-wide request.
    pub fn any_brokers(&self) -> Vec<SocketAddr> {
        let mut st = self.state.lock().unwrap();
        let mut c: Vec<SocketAddr> = st.brokers.values().copied().collect();
        for b in &self.bootstrap {
            if !c.contains(b) {
                c.push(*b);
            }
        }
        let n = c.len().max(1);
        c.rotate_left(st.next_probe % n);
        st.next_probe = st.next_probe.wrapping_add(1);
        c
    }

    /// The address of broker `id` (refreshing once if it is not known yet).
    pub async fn broker_addr(&self, id: i32) -> Option<SocketAddr> {
        if let Some(a) = self.state.lock().unwrap().brokers.get(&id) {
            return Some(*a);
        }
        self.refresh().await.ok()?;
        self.state.lock().unwrap().brokers.get(&id).copied()
    }

    /// The partitions of a topic as last seen (refreshing first if needed).
    pub async fn partitions(&self, topic: &str) -> Result<Vec<PartitionMeta>, ClientError> {
        self.ensure_fresh(topic).await?;
        let st = self.state.lock().unwrap();
        st.topics
            .get(topic)
            .cloned()
            .ok_or_else(|| ClientError::UnknownTopicOrPartition { topic: topic.to_string(), partition: -1 })
    }

    /// The partitions of a topic as last seen, without refreshing.
    pub fn cached_partitions(&self, topic: &str) -> Option<Vec<PartitionMeta>> {
        self.state.lock().unwrap().topics.get(topic).cloned()
    }

    /// A partition's leader as last seen, without refreshing; `None` when
    /// the topic, partition, leader or its address is unknown.
    pub fn cached_leader(&self, topic: &str, partition: i32) -> Option<Leader> {
        let st = self.state.lock().unwrap();
        let p = st.topics.get(topic)?.get(usize::try_from(partition).ok()?)?;
        let addr = *st.brokers.get(&p.leader)?;
        Some(Leader { node_id: p.leader, addr, leader_epoch: p.leader_epoch })
    }

    /// Refreshes now if `topic` needs it (see `needs_refresh`).
    pub async fn refresh_if_needed(&self, topic: &str) -> Result<(), ClientError> {
        self.ensure_fresh(topic).await
    }

    /// The current leader of a partition (refreshing first if needed).
    /// LEADER_NOT_AVAILABLE when it has none or its broker is not listed.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<Leader, ClientError> {
        self.ensure_fresh(topic).await?;
        let st = self.state.lock().unwrap();
        let unknown = || ClientError::UnknownTopicOrPartition { topic: topic.to_string(), partition };
        let parts = st.topics.get(topic).ok_or_else(unknown)?;
        let p = usize::try_from(partition).ok().and_then(|i| parts.get(i)).ok_or_else(unknown)?;
        let context = format!("{topic}-{partition}");
        let no_leader = || ClientError::broker(5, context.clone(), Some("no leader in metadata"));
        if p.leader < 0 {
            return Err(no_leader());
        }
        let addr = *st.brokers.get(&p.leader).ok_or_else(no_leader)?;
        Ok(Leader { node_id: p.leader, addr, leader_epoch: p.leader_epoch })
    }
}

/// A broker's advertised host and port as a socket address (IP literals,
/// and `localhost` for real-mode runs).
/// KIP-320 (Kafka's `Metadata.updateLatestMetadata`): a broker with a
/// stale image (one that was cut off, say) may still name an old leader; a
/// partition whose cached leader epoch is newer than the fresh answer's
/// keeps the cached leader, so the client never goes back to a zombie
/// leader (whose log may be shorter: a fetch there can be out of range).
fn keep_newer_leader_epochs(cached: &BTreeMap<String, Vec<PartitionMeta>>, fresh: &mut BTreeMap<String, Vec<PartitionMeta>>) {
    for (name, parts) in fresh.iter_mut() {
        let Some(cached) = cached.get(name) else { continue };
        for (new, old) in parts.iter_mut().zip(cached) {
            if old.leader_epoch > new.leader_epoch && new.leader_epoch >= 0 {
                tracing::debug!("metadata: {name}: keeping leader epoch {} over older {}", old.leader_epoch, new.leader_epoch);
                *new = *old;
            }
        }
    }
}

fn resolve(host: &str, port: i32) -> Option<SocketAddr> {
    let port = u16::try_from(port).ok()?;
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    host.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, port))
}

/// Errors after which a partition's leader should be looked up again.
pub fn is_stale_metadata_code(code: i16) -> bool {
    matches!(
        code,
        3   // UNKNOWN_TOPIC_OR_PARTITION
        | 5 // LEADER_NOT_AVAILABLE
        | 6 // NOT_LEADER_OR_FOLLOWER
        | 9 // REPLICA_NOT_AVAILABLE
        | 56 // KAFKA_STORAGE_ERROR
        | 74 // FENCED_LEADER_EPOCH
        | 75 // UNKNOWN_LEADER_EPOCH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(parts: &[(i32, i32)]) -> Vec<PartitionMeta> {
        parts.iter().map(|&(leader, leader_epoch)| PartitionMeta { leader, leader_epoch }).collect()
    }

    /// KIP-320: metadata from a broker with a stale image never moves a
    /// partition back to an older leader epoch; newer epochs, unknown
    /// epochs and new topics or partitions are taken as they come.
    #[test]
    fn kip_320_metadata_with_an_older_leader_epoch_keeps_the_cached_leader() {
        let cached = BTreeMap::from([("t".to_string(), meta(&[(2, 5), (1, 3)]))]);
        let mut fresh = BTreeMap::from([
            ("t".to_string(), meta(&[(1, 4), (0, 4), (2, 1)])),
            ("u".to_string(), meta(&[(0, 0)])),
        ]);
        keep_newer_leader_epochs(&cached, &mut fresh);
        assert_eq!(fresh["t"], meta(&[(2, 5), (0, 4), (2, 1)]));
        assert_eq!(fresh["u"], meta(&[(0, 0)]));
        let mut unknown = BTreeMap::from([("t".to_string(), meta(&[(-1, -1)]))]);
        keep_newer_leader_epochs(&cached, &mut unknown);
        assert_eq!(unknown["t"], meta(&[(-1, -1)]), "no leader (epoch unknown) is taken as is");
    }
}
