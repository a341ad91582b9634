//! The broker process: shared state, background loops and the listener.
//!
//! A broker is rebuilt from its disk on every start: logs are recovered by
//! `Log::open`, high watermarks come from the checkpoint file, and roles come
//! from the controller's image, fetched by the first heartbeat.

pub mod connection;
pub mod fetcher;
pub mod heartbeat;

use crate::config::{defaults, Settings, TopicSettings};
use crate::controller::image::MetadataImage;
use crate::log::{Log, LogConfig};
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

#[derive(Debug, Clone)]
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

    /// The log dir a partition lives in (round-robin by partition for now;
    /// several dirs with failure handling are a later issue).
    pub fn partition_dir(&self, topic: &str, partition: i32) -> String {
        let dirs = &self.config.log_dirs;
        let dir = &dirs[(partition as usize) % dirs.len()];
        format!("{dir}/{topic}-{partition}")
    }

    pub fn log_config(&self, settings: &TopicSettings) -> LogConfig {
        LogConfig {
            segment_bytes: settings.segment_bytes,
            index_interval_bytes: settings.index_interval_bytes,
            flush_messages: settings.flush_messages,
            flush_ms: settings.flush_ms,
        }
    }

    /// Reads the HW checkpoints of every log dir.
    fn read_hw_checkpoints(&self) -> BTreeMap<TopicPartition, i64> {
        let mut out = BTreeMap::new();
        for dir in &self.config.log_dirs {
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
    pub fn write_hw_checkpoints(&self) {
        let parts = self.partitions.lock().unwrap();
        let mut per_dir: BTreeMap<String, Vec<(String, i32, i64)>> = BTreeMap::new();
        for ((t, p), part) in parts.iter() {
            let dirs = &self.config.log_dirs;
            let dir = dirs[(*p as usize) % dirs.len()].clone();
            per_dir.entry(dir).or_default().push((t.clone(), *p, part.high_watermark));
        }
        drop(parts);
        for (dir, entries) in per_dir {
            let bytes = serde_json::to_vec(&entries).expect("serialise checkpoint");
            if let Err(e) = self.storage.write_atomic(&format!("{dir}/{HW_CHECKPOINT}"), &bytes) {
                tracing::warn!(broker = self.config.id, "HW checkpoint failed: {e}");
            }
        }
    }

    /// Opens (recovering) or creates the local replica of a partition.
    pub fn open_partition(&self, topic: &str, partition: i32, hw_checkpoint: i64) -> anyhow::Result<Partition> {
        let (state, topic_configs) = {
            let image = self.image.lock().unwrap();
            let t = image.topics.get(topic).ok_or_else(|| anyhow::anyhow!("unknown topic {topic}"))?;
            (t.partitions[partition as usize].clone(), t.configs.clone())
        };
        let settings = TopicSettings::resolve(&self.config.settings, &topic_configs);
        let dir = self.partition_dir(topic, partition);
        self.storage.create_dir_all(&dir)?;
        let log = Log::open(self.storage.clone(), &dir, self.log_config(&settings))
            .map_err(|e| anyhow::anyhow!("open {dir}: {e}"))?;
        Ok(Partition::new(topic, partition, self.config.id, log, settings, state, hw_checkpoint))
    }
}

/// Runs a broker process until it is killed.
pub async fn run_broker(storage: Arc<dyn Storage>, config: BrokerConfig, incarnation: u64) -> anyhow::Result<()> {
    for dir in &config.log_dirs {
        storage.create_dir_all(dir)?;
    }
    let listen = config.listen;
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
        start: tokio::time::Instant::now(),
    });
    let hw = shared.read_hw_checkpoints();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut tasks = vec![
        tokio::spawn(heartbeat::heartbeat_loop(shared.clone(), hw)),
        tokio::spawn(heartbeat::isr_loop(shared.clone())),
        tokio::spawn(housekeeping_loop(shared.clone())),
    ];
    let result = loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tasks.retain(|t| !t.is_finished());
                tokio::spawn(connection::serve_connection(shared.clone(), stream, peer));
            }
            Err(e) => break Err(e.into()),
        }
    };
    for t in tasks {
        t.abort();
    }
    result
}

/// HW checkpoints, time-based flushes, retention (every
/// `log.retention.check.interval.ms`) and the cleaner (every
/// `log.cleaner.backoff.ms`).
async fn housekeeping_loop(shared: Arc<BrokerShared>) {
    let mut last_checkpoint_ms = 0;
    let retention_every_ms = shared.config.settings.u64_or("log.retention.check.interval.ms", defaults::RETENTION_CHECK_INTERVAL_MS);
    let clean_every_ms = shared.config.settings.u64_or("log.cleaner.backoff.ms", defaults::CLEANER_BACKOFF_MS);
    let mut last_retention_ms = 0;
    let mut last_clean_ms = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(FLUSH_CHECK_INTERVAL_MS)).await;
        let now_ms = shared.now_ms();
        {
            let mut parts = shared.partitions.lock().unwrap();
            for p in parts.values_mut() {
                if let Err(e) = p.log.maybe_flush(now_ms) {
                    tracing::warn!(broker = shared.config.id, topic = %p.topic, p = p.partition, "flush failed: {e}");
                }
            }
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
        if now_ms - last_checkpoint_ms >= HW_CHECKPOINT_INTERVAL_MS {
            last_checkpoint_ms = now_ms;
            shared.write_hw_checkpoints();
        }
    }
}
