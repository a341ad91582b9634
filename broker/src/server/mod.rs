//! The broker process: shared state, background loops and the listener.
//!
//! A broker is rebuilt from its disk on every start: logs are recovered by
//! `Log::open`, high watermarks come from the checkpoint file, and roles come
//! from the controller's image, fetched by the first heartbeat.

pub mod buggify;
pub mod connection;
pub mod fetcher;
pub mod heartbeat;
pub mod shutdown;

pub use shutdown::{ShutdownReport, ShutdownSignal, CLEAN_SHUTDOWN_FILE};

use crate::config::{defaults, Settings, TopicSettings};
use crate::controller::image::MetadataImage;
use crate::log::{Log, LogConfig, LogError};
use crate::observe::{Observer, ObserverHandle};
use crate::replica::Partition;
use crate::storage::Storage;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Where high watermarks are checkpointed, per log dir (Kafka's name).
pub const HW_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Kafka's `replica.high.watermark.checkpoint.interval.ms` default.
pub const HW_CHECKPOINT_INTERVAL_MS: u64 = 5_000;
/// How often flush.ms is checked.
pub const FLUSH_CHECK_INTERVAL_MS: u64 = 100;

pub type TopicPartition = (String, i32);

#[derive(Clone)]
pub struct BrokerConfig {
    pub id: i32,
    pub listen: SocketAddr,
    /// Host/port clients are told to use (Metadata responses).
    pub advertised_host: String,
    pub advertised_port: u16,
    pub controllers: Vec<SocketAddr>,
    pub log_dirs: Vec<String>,
    /// Broker settings under Kafka's names.
    pub settings: Settings,
    /// Where replicas report appends, truncations, HW and epoch changes
    /// (the harness's broker-side checkers; one per run, never global).
    pub observer: Option<Arc<dyn Observer>>,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("id", &self.id)
            .field("listen", &self.listen)
            .field("log_dirs", &self.log_dirs)
            .field("settings", &self.settings)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

/// The broker's log dirs (Kafka's `log.dirs`, JBOD): where each local
/// replica lives and which dirs failed. A failed dir stays offline until the
/// process restarts, as in Kafka.
#[derive(Debug, Default)]
pub struct LogDirs {
    /// Dirs that failed in this process.
    pub offline: BTreeSet<String>,
    /// The dir holding each local replica (found at startup or chosen).
    pub placement: BTreeMap<TopicPartition, String>,
    /// Replicas whose dir is offline: requests for them get
    /// KAFKA_STORAGE_ERROR and the controller is told.
    pub offline_replicas: BTreeSet<TopicPartition>,
    /// Replicas found at startup in a dir the last process shut down
    /// cleanly, not opened yet: they open without recovery (see `shutdown`).
    pub clean_replicas: BTreeSet<TopicPartition>,
}

/// `topic-partition` directory names back to their key (Kafka's naming;
/// topic names may hold '-', the partition is after the last one).
pub fn parse_replica_dir(name: &str) -> Option<TopicPartition> {
    let (topic, p) = name.rsplit_once('-')?;
    let p: i32 = p.parse().ok()?;
    (!topic.is_empty() && p >= 0).then(|| (topic.to_string(), p))
}

impl BrokerConfig {
    pub fn heartbeat_interval_ms(&self) -> u64 {
        self.settings.u64_or("broker.heartbeat.interval.ms", defaults::BROKER_HEARTBEAT_INTERVAL_MS)
    }
    pub fn replica_lag_time_max_ms(&self) -> u64 {
        self.settings.u64_or("replica.lag.time.max.ms", defaults::REPLICA_LAG_TIME_MAX_MS)
    }
    pub fn replica_fetch_wait_max_ms(&self) -> u64 {
        self.settings.u64_or("replica.fetch.wait.max.ms", defaults::REPLICA_FETCH_WAIT_MAX_MS)
    }
}

/// State shared by every task of one broker process.
pub struct BrokerShared {
    pub config: BrokerConfig,
    pub storage: Arc<dyn Storage>,
    /// Differs on every process start (the controller's restart detector).
    pub incarnation: u64,
    pub image: Mutex<MetadataImage>,
    pub partitions: Mutex<BTreeMap<TopicPartition, Partition>>,
    /// Woken on every append and HW change (acks=all waiters, long polls).
    pub progress: Notify,
    /// Woken when the set of partitions this broker follows changes.
    pub followers_changed: Notify,
    /// Leaders we have a fetcher task for.
    pub fetchers: Mutex<BTreeSet<i32>>,
    /// Index in `config.controllers` of the last controller that answered
    /// as the active one: requests go there first.
    pub controller_hint: std::sync::atomic::AtomicUsize,
    /// Log dirs and replica placement. Lock order: `partitions` first.
    pub dirs: Mutex<LogDirs>,
    /// Woken when a log dir fails (heartbeat now, tell the controller).
    pub dirs_changed: Notify,
    /// Woken (with a stored permit) when every log dir failed: the broker
    /// shuts down, as Kafka does.
    pub halt: Notify,
    /// The producer id block InitProducerId hands ids out of (KIP-730).
    pub producer_ids: tokio::sync::Mutex<crate::api::init_producer_id::ProducerIdBlockState>,
    /// A graceful shutdown closed the logs: no replica opens any more.
    pub stopping: std::sync::atomic::AtomicBool,
    /// The group coordinator for the offsets partitions this broker leads.
    pub groups: crate::coordinator::runtime::GroupRuntime,
    start: tokio::time::Instant,
}

impl BrokerShared {
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Wall-clock ms since the epoch (simulated under madsim): the timebase
    /// of record timestamps, for retention.ms and delete.retention.ms.
    pub fn wall_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }

    /// The observer handle replicas of this process report to.
    pub fn observer_handle(&self) -> Option<ObserverHandle> {
        self.config.observer.as_ref().map(|o| ObserverHandle {
            observer: o.clone(),
            broker: self.config.id,
            incarnation: self.incarnation,
        })
    }

    /// Finds every replica already on disk, dir by dir; a dir that cannot be
    /// listed starts offline. A replica found twice keeps its first dir.
    fn scan_log_dirs(&self) {
        let clean = self.take_clean_shutdown_markers();
        let mut dirs = self.dirs.lock().unwrap();
        for dir in &self.config.log_dirs {
            let names = self.storage.create_dir_all(dir).and_then(|()| self.storage.list_dir(dir));
            match names {
                Ok(names) => {
                    for key in names.iter().filter_map(|n| parse_replica_dir(n)) {
                        if dirs.placement.get(&key).is_none_or(|d| d == dir) && clean.contains(dir) {
                            dirs.clean_replicas.insert(key.clone());
                        }
                        dirs.placement.entry(key).or_insert_with(|| dir.clone());
                    }
                }
                Err(e) => {
                    tracing::error!(broker = self.config.id, dir, "log dir offline at startup: {e}");
                    dirs.offline.insert(dir.clone());
                }
            }
        }
        let offline: Vec<TopicPartition> =
            dirs.placement.iter().filter(|(_, d)| dirs.offline.contains(*d)).map(|(k, _)| k.clone()).collect();
        dirs.offline_replicas.extend(offline);
    }

    /// The log dir for a replica: where it already lives, else the online
    /// dir holding the fewest replicas (ties: the first in `log.dirs`, as
    /// Kafka's placement by partition count). Err if its dir is offline or
    /// no dir is online.
    pub fn replica_dir(&self, topic: &str, partition: i32) -> anyhow::Result<String> {
        let mut dirs = self.dirs.lock().unwrap();
        let key = (topic.to_string(), partition);
        if let Some(dir) = dirs.placement.get(&key) {
            anyhow::ensure!(!dirs.offline.contains(dir), "log dir {dir} of {topic}-{partition} is offline");
            return Ok(dir.clone());
        }
        let dir = self
            .config
            .log_dirs
            .iter()
            .filter(|d| !dirs.offline.contains(*d))
            .min_by_key(|d| dirs.placement.values().filter(|p| p == d).count())
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no online log dir"))?;
        dirs.placement.insert(key, dir.clone());
        Ok(dir)
    }

    /// The directory of a replica's log.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> anyhow::Result<String> {
        Ok(format!("{}/{topic}-{partition}", self.replica_dir(topic, partition)?))
    }

    /// Whether the replica's dir failed in this process.
    pub fn is_offline(&self, key: &TopicPartition) -> bool {
        self.dirs.lock().unwrap().offline_replicas.contains(key)
    }

    /// Kafka's LogDirFailureChannel: an I/O error in `dir` takes the whole
    /// dir offline. Its replicas leave `parts` (requests for them get
    /// KAFKA_STORAGE_ERROR), the heartbeat tells the controller at once, and
    /// when no dir is left the broker halts.
    pub fn fail_dir_locked(&self, parts: &mut BTreeMap<TopicPartition, Partition>, dir: &str, reason: &str) {
        let mut dirs = self.dirs.lock().unwrap();
        if !dirs.offline.insert(dir.to_string()) {
            return;
        }
        let keys: Vec<TopicPartition> =
            dirs.placement.iter().filter(|(_, d)| d.as_str() == dir).map(|(k, _)| k.clone()).collect();
        for key in keys {
            if let Some(p) = parts.remove(&key) {
                p.note_offline(dir);
            }
            dirs.offline_replicas.insert(key);
        }
        let all_failed = self.config.log_dirs.iter().all(|d| dirs.offline.contains(d));
        tracing::error!(broker = self.config.id, dir, reason, all_failed, "log dir offline");
        drop(dirs);
        self.dirs_changed.notify_one();
        self.progress.notify_waiters();
        if all_failed {
            self.halt.notify_one();
        }
    }

    pub fn fail_dir(&self, dir: &str, reason: &str) {
        let mut parts = self.partitions.lock().unwrap();
        self.fail_dir_locked(&mut parts, dir, reason);
    }

    /// Takes offline the dirs of every replica whose last log operation hit
    /// an I/O error. Call after working on replicas, with the lock held.
    pub fn handle_storage_failures(&self, parts: &mut BTreeMap<TopicPartition, Partition>) {
        let failed: Vec<TopicPartition> = parts.iter().filter(|(_, p)| p.storage_failed).map(|(k, _)| k.clone()).collect();
        for key in failed {
            let dir = self.dirs.lock().unwrap().placement.get(&key).cloned();
            match dir {
                Some(dir) => self.fail_dir_locked(parts, &dir, &format!("I/O error on {}-{}", key.0, key.1)),
                None => {
                    parts.remove(&key);
                }
            }
        }
    }

    /// The error for a replica this broker does not serve: its dir failed
    /// (KAFKA_STORAGE_ERROR) or it is not ours (NOT_LEADER_OR_FOLLOWER).
    pub fn missing_replica_error(&self, key: &TopicPartition) -> kafka_protocol::error::ResponseError {
        if self.is_offline(key) {
            kafka_protocol::error::ResponseError::KafkaStorageError
        } else {
            kafka_protocol::error::ResponseError::NotLeaderOrFollower
        }
    }

    pub fn log_config(&self, settings: &TopicSettings) -> LogConfig {
        LogConfig {
            segment_bytes: settings.segment_bytes,
            index_interval_bytes: settings.index_interval_bytes,
            flush_messages: settings.flush_messages,
            flush_ms: settings.flush_ms,
        }
    }

    /// Reads the HW checkpoints of every online log dir.
    fn read_hw_checkpoints(&self) -> BTreeMap<TopicPartition, i64> {
        let mut out = BTreeMap::new();
        let offline = self.dirs.lock().unwrap().offline.clone();
        for dir in self.config.log_dirs.iter().filter(|d| !offline.contains(*d)) {
            let path = format!("{dir}/{HW_CHECKPOINT}");
            let Ok(bytes) = self.storage.read_all(&path) else { continue };
            let Ok(map) = serde_json::from_slice::<Vec<(String, i32, i64)>>(&bytes) else { continue };
            for (t, p, hw) in map {
                out.insert((t, p), hw);
            }
        }
        out
    }

    /// Writes every partition's HW to its dir's checkpoint (atomically).
    /// A failed write takes the dir offline, as in Kafka.
    pub fn write_hw_checkpoints(&self) {
        let parts = self.partitions.lock().unwrap();
        let dirs = self.dirs.lock().unwrap();
        let mut per_dir: BTreeMap<String, Vec<(String, i32, i64)>> = BTreeMap::new();
        for ((t, p), part) in parts.iter() {
            let Some(dir) = dirs.placement.get(&(t.clone(), *p)) else { continue };
            per_dir.entry(dir.clone()).or_default().push((t.clone(), *p, part.high_watermark));
        }
        drop(dirs);
        drop(parts);
        for (dir, entries) in per_dir {
            let bytes = serde_json::to_vec(&entries).expect("serialise checkpoint");
            if let Err(e) = self.storage.write_atomic(&format!("{dir}/{HW_CHECKPOINT}"), &bytes) {
                tracing::warn!(broker = self.config.id, "HW checkpoint failed: {e}");
                self.fail_dir(&dir, &format!("HW checkpoint: {e}"));
            }
        }
    }

    /// Opens (recovering) or creates the local replica of a partition.
    pub fn open_partition(&self, topic: &str, partition: i32, hw_checkpoint: i64) -> anyhow::Result<Partition> {
        anyhow::ensure!(!self.stopping.load(std::sync::atomic::Ordering::SeqCst), "broker {} is shutting down", self.config.id);
        let (state, topic_configs) = {
            let image = self.image.lock().unwrap();
            let t = image.topics.get(topic).ok_or_else(|| anyhow::anyhow!("unknown topic {topic}"))?;
            (t.partitions[partition as usize].clone(), t.configs.clone())
        };
        let settings = TopicSettings::resolve(&self.config.settings, &topic_configs);
        let log_dir = self.replica_dir(topic, partition)?;
        let dir = format!("{log_dir}/{topic}-{partition}");
        let recovery = self.recovery_for(&(topic.to_string(), partition));
        let opened = self
            .storage
            .create_dir_all(&dir)
            .map_err(LogError::from)
            .and_then(|()| Log::open_with(self.storage.clone(), &dir, self.log_config(&settings), recovery));
        let log = match opened {
            Ok(log) => log,
            Err(e) => {
                if crate::replica::log_error_code(&e) == kafka_protocol::error::ResponseError::KafkaStorageError {
                    self.fail_dir(&log_dir, &format!("opening {dir}: {e}"));
                }
                anyhow::bail!("open {dir}: {e}");
            }
        };
        let observer = self.observer_handle();
        Ok(Partition::new(topic, partition, self.config.id, log, settings, state, hw_checkpoint, observer))
    }
}

/// Runs a broker process until it is killed.
pub async fn run_broker(storage: Arc<dyn Storage>, config: BrokerConfig, incarnation: u64) -> anyhow::Result<()> {
    run_broker_until(storage, config, incarnation, Arc::new(ShutdownSignal::new())).await
}

/// Runs a broker process until it is killed or `shutdown` is requested;
/// then it shuts down gracefully (see [`shutdown`]) and returns Ok.
pub async fn run_broker_until(
    storage: Arc<dyn Storage>,
    config: BrokerConfig,
    incarnation: u64,
    shutdown: Arc<ShutdownSignal>,
) -> anyhow::Result<()> {
    anyhow::ensure!(!config.log_dirs.is_empty(), "log.dirs is empty");
    let listen = config.listen;
    let groups = crate::coordinator::runtime::GroupRuntime::new(&config.settings, format!("{}.{incarnation}", config.id));
    let shared = Arc::new(BrokerShared {
        config,
        storage,
        incarnation,
        image: Mutex::new(MetadataImage::default()),
        partitions: Mutex::new(BTreeMap::new()),
        progress: Notify::new(),
        followers_changed: Notify::new(),
        fetchers: Mutex::new(BTreeSet::new()),
        controller_hint: std::sync::atomic::AtomicUsize::new(0),
        dirs: Mutex::new(LogDirs::default()),
        dirs_changed: Notify::new(),
        halt: Notify::new(),
        producer_ids: tokio::sync::Mutex::new(Default::default()),
        stopping: std::sync::atomic::AtomicBool::new(false),
        groups,
        start: tokio::time::Instant::now(),
    });
    shared.scan_log_dirs();
    if shared.config.log_dirs.iter().all(|d| shared.dirs.lock().unwrap().offline.contains(d)) {
        anyhow::bail!("broker {}: every log dir is offline", shared.config.id);
    }
    let hw = shared.read_hw_checkpoints();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut tasks = vec![
        tokio::spawn(heartbeat::heartbeat_loop(shared.clone(), hw)),
        tokio::spawn(heartbeat::isr_loop(shared.clone())),
        tokio::spawn(housekeeping_loop(shared.clone())),
        tokio::spawn(crate::coordinator::runtime::run(shared.clone())),
    ];
    let result = loop {
        tokio::select! {
            biased;
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.retain(|t| !t.is_finished());
                    tasks.push(tokio::spawn(connection::serve_connection(shared.clone(), stream, peer)));
                }
                Err(e) => break Err(e.into()),
            },
            () = shared.halt.notified() => {
                break Err(anyhow::anyhow!("broker {}: every log dir failed, shutting down", shared.config.id));
            }
            () = shutdown.requested() => break Ok(()),
        }
    };
    // Stop serving first: nothing may touch a log while it is closed.
    drop(listener);
    for t in tasks {
        t.abort();
    }
    if result.is_ok() {
        shutdown::complete(&shared, &shutdown);
    }
    result
}

/// HW checkpoints, time-based flushes (`flush.ms`, checked every
/// `FLUSH_CHECK_INTERVAL_MS`, as Kafka's `log.flush.scheduler.interval.ms`),
/// retention (every `log.retention.check.interval.ms`), the cleaner
/// (every `log.cleaner.backoff.ms`) and producer id expiry (every
/// `producer.id.expiration.check.interval.ms`).
async fn housekeeping_loop(shared: Arc<BrokerShared>) {
    let mut last_checkpoint_ms = 0;
    let retention_every_ms = shared.config.settings.u64_or("log.retention.check.interval.ms", defaults::RETENTION_CHECK_INTERVAL_MS);
    let clean_every_ms = shared.config.settings.u64_or("log.cleaner.backoff.ms", defaults::CLEANER_BACKOFF_MS);
    let expire_every_ms = shared
        .config
        .settings
        .u64_or("producer.id.expiration.check.interval.ms", defaults::PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS);
    let mut last_retention_ms = 0;
    let mut last_clean_ms = 0;
    let mut last_expire_ms = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(FLUSH_CHECK_INTERVAL_MS)).await;
        let now_ms = shared.now_ms();
        {
            let mut parts = shared.partitions.lock().unwrap();
            for p in parts.values_mut() {
                if let Err(e) = p.maybe_flush(now_ms) {
                    tracing::warn!(broker = shared.config.id, topic = %p.topic, p = p.partition, "flush failed: {e}");
                }
            }
            shared.handle_storage_failures(&mut parts);
        }
        let retention_due = now_ms - last_retention_ms >= retention_every_ms;
        let clean_due = now_ms - last_clean_ms >= clean_every_ms;
        if retention_due || clean_due {
            let wall_ms = shared.wall_ms();
            let mut parts = shared.partitions.lock().unwrap();
            for p in parts.values_mut() {
                if retention_due {
                    match p.retention_pass(wall_ms) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(broker = shared.config.id, topic = %p.topic, p = p.partition, segments = n, log_start = p.log.log_start_offset(), "retention"),
                        Err(e) => tracing::warn!(broker = shared.config.id, topic = %p.topic, p = p.partition, "retention failed: {e:?}"),
                    }
                }
                if clean_due {
                    if let Err(e) = p.clean_pass(wall_ms) {
                        tracing::warn!(broker = shared.config.id, topic = %p.topic, p = p.partition, "cleaner failed: {e:?}");
                    }
                }
            }
            if retention_due {
                last_retention_ms = now_ms;
            }
            if clean_due {
                last_clean_ms = now_ms;
            }
        }
        if now_ms - last_expire_ms >= expire_every_ms {
            last_expire_ms = now_ms;
            let wall_ms = shared.wall_ms();
            let mut parts = shared.partitions.lock().unwrap();
            for p in parts.values_mut() {
                let n = p.expire_producers(wall_ms);
                if n > 0 {
                    tracing::info!(broker = shared.config.id, topic = %p.topic, p = p.partition, producers = n, "expired producer ids");
                }
            }
        }
        if now_ms - last_checkpoint_ms >= HW_CHECKPOINT_INTERVAL_MS {
            last_checkpoint_ms = now_ms;
            shared.write_hw_checkpoints();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_replica_dir;

    #[test]
    fn replica_dir_names_split_at_the_last_dash() {
        assert_eq!(parse_replica_dir("events-0"), Some(("events".into(), 0)));
        assert_eq!(parse_replica_dir("my-topic-12"), Some(("my-topic".into(), 12)));
        assert_eq!(parse_replica_dir("replication-offset-checkpoint"), None);
        assert_eq!(parse_replica_dir("-3"), None);
    }
}
