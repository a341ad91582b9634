//! Producer, consumer and admin settings under Kafka's own names, parsed
//! from string maps (scenario files). Unknown keys are ignored with a debug
//! log; a bad value is a `ConfigError` naming the key.

use super::assignor::{PartitionAssignor, RebalanceProtocol};
use super::clock::ClientClock;
use super::error::ConfigError;
use super::interceptor::ProducerInterceptor;
use super::partitioner::{Partitioner, DEFAULT_PARTITIONER_CLASS, RANDOM_CLASS, ROUND_ROBIN_CLASS, UNIFORM_STICKY_CLASS};
use kafka_protocol::records::Compression;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

/// Settings every client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Sent in every request header (`client.id`).
    pub client_id: String,
    /// How long to wait for one response before failing it and closing the
    /// connection (`request.timeout.ms`, Kafka default 30000).
    pub request_timeout_ms: u64,
    /// Pause before a retry (`retry.backoff.ms`, default 100).
    pub retry_backoff_ms: u64,
    /// Metadata older than this is refreshed before use
    /// (`metadata.max.age.ms`, default 300000).
    pub metadata_max_age_ms: u64,
    /// A connection with nothing in flight for this long is closed and
    /// reopened on next use (`connections.max.idle.ms`, default 540000).
    pub connections_max_idle_ms: u64,
}

impl NetworkConfig {
    fn parse(m: &Reader<'_>, default_client_id: &str) -> Result<Self, ConfigError> {
        Ok(NetworkConfig {
            client_id: m.string("client.id", default_client_id),
            request_timeout_ms: m.num("request.timeout.ms", 30_000)?,
            retry_backoff_ms: m.num("retry.backoff.ms", 100)?,
            metadata_max_age_ms: m.num("metadata.max.age.ms", 300_000)?,
            connections_max_idle_ms: m.num("connections.max.idle.ms", 540_000)?,
        })
    }
}

const NETWORK_KEYS: &[&str] =
    &["client.id", "request.timeout.ms", "retry.backoff.ms", "metadata.max.age.ms", "connections.max.idle.ms"];

/// Kafka's `MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION_FOR_IDEMPOTENCE`: the
/// broker keeps the metadata of the last 5 batches per producer and
/// partition, so an idempotent producer may have at most 5 in flight.
pub const MAX_IN_FLIGHT_FOR_IDEMPOTENCE: usize = 5;

/// Producer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    pub network: NetworkConfig,
    /// `acks`: -1 (all), 0 or 1. Kafka 3.x default: all.
    pub acks: i16,
    /// `retries`: how many times a failed produce is retried (default i32::MAX).
    pub retries: u32,
    /// `delivery.timeout.ms` (KIP-91): upper bound on one send from the
    /// moment it is appended, covering linger, waiting, in-flight time and
    /// retries. At least `linger.ms + request.timeout.ms`.
    pub delivery_timeout_ms: u64,
    /// `enable.idempotence` after Kafka's post-processing: default true
    /// (Kafka 3.0+, KIP-679), silently turned off when it was only
    /// defaulted and `acks` is not all or `retries` is 0.
    pub enable_idempotence: bool,
    /// `max.request.size`: a larger record fails without being sent, and
    /// a Produce request carries at most this many batch bytes.
    pub max_request_size: usize,
    /// `batch.size` (default 16384): a partition's open batch is closed
    /// (and sendable at once) when the next record would take it past this
    /// many bytes; the built-in partitioner moves keyless records to a new
    /// sticky partition after this many bytes (KIP-794).
    pub batch_size: usize,
    /// `linger.ms` (Kafka 4.0 default 5): how long a batch that is not full
    /// waits for more records before it is sendable.
    pub linger_ms: u64,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd, applied per batch.
    pub compression: Compression,
    /// `buffer.memory` (default 32 MiB): bytes of records the producer holds
    /// unacknowledged; a send beyond it waits for space.
    pub buffer_memory: usize,
    /// `max.block.ms` (default 60000): how long a send may wait for buffer
    /// space or for the topic's metadata before it fails.
    pub max_block_ms: u64,
    /// `max.in.flight.requests.per.connection` (default 5): Produce requests
    /// outstanding per broker connection.
    pub max_in_flight: usize,
    /// `retry.backoff.max.ms` (KIP-580, default 1000): the exponential
    /// retry backoff starts at `retry.backoff.ms` and doubles up to this.
    pub retry_backoff_max_ms: u64,
    /// `partitioner.ignore.keys` (default false, KIP-794): keyed records
    /// are partitioned like keyless ones by the built-in partitioner.
    pub partitioner_ignore_keys: bool,
    /// `partitioner.class`, or a partitioner set with `with_partitioner`.
    pub partitioner: PartitionerChoice,
    /// Interceptors in call order (`with_interceptor`; Kafka's
    /// `interceptor.classes` cannot name Rust types, so it is not read).
    pub interceptors: Interceptors,
    /// Seed of the partitioners' rng; `None` draws one from
    /// `madsim::rand::random()` when the producer is created (deterministic
    /// under madsim).
    pub seed: Option<u64>,
    /// The wall clock record timestamps (CreateTime) come from.
    pub clock: ClientClock,
}

/// Which partitioner picks the partition of records sent without one.
#[derive(Clone, Default)]
pub enum PartitionerChoice {
    /// `partitioner.class` unset: Kafka 3.3+'s built-in partitioning (KIP-794).
    #[default]
    BuiltIn,
    /// `org.apache.kafka.clients.producer.RoundRobinPartitioner`.
    RoundRobin,
    /// `random`: uniformly random per record (seeded).
    Random,
    /// Set programmatically with `ProducerConfig::with_partitioner`.
    Custom(Arc<dyn Partitioner>),
}

impl std::fmt::Debug for PartitionerChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartitionerChoice::BuiltIn => write!(f, "BuiltIn"),
            PartitionerChoice::RoundRobin => write!(f, "RoundRobin"),
            PartitionerChoice::Random => write!(f, "Random"),
            PartitionerChoice::Custom(p) => write!(f, "Custom({:p})", Arc::as_ptr(p)),
        }
    }
}

/// Custom partitioners are equal when they are the same object.
impl PartialEq for PartitionerChoice {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PartitionerChoice::Custom(a), PartitionerChoice::Custom(b)) => Arc::ptr_eq(a, b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Eq for PartitionerChoice {}

/// A producer's interceptors, in call order.
#[derive(Clone, Default)]
pub struct Interceptors(pub Vec<Arc<dyn ProducerInterceptor>>);

impl std::fmt::Debug for Interceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interceptors({})", self.0.len())
    }
}

/// Equal when they hold the same objects in the same order.
impl PartialEq for Interceptors {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Eq for Interceptors {}

const PRODUCER_KEYS: &[&str] = &[
    "acks",
    "retries",
    "delivery.timeout.ms",
    "enable.idempotence",
    "max.request.size",
    "batch.size",
    "partitioner.class",
    "partitioner.ignore.keys",
    "linger.ms",
    "compression.type",
    "buffer.memory",
    "max.block.ms",
    "max.in.flight.requests.per.connection",
    "retry.backoff.max.ms",
];

impl Default for ProducerConfig {
    fn default() -> Self {
        Self::from_map(&BTreeMap::new()).expect("producer defaults are valid")
    }
}

impl ProducerConfig {
    pub fn from_map(m: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let r = Reader::new(m, "producer", &[NETWORK_KEYS, PRODUCER_KEYS]);
        let acks = match r.get("acks").map(|v| v.trim().to_ascii_lowercase()) {
            None => -1,
            Some(v) if v == "all" || v == "-1" => -1,
            Some(v) if v == "0" => 0,
            Some(v) if v == "1" => 1,
            Some(v) => return Err(r.invalid("acks", &v, "expected all, -1, 0 or 1")),
        };
        let retries: i32 = r.num("retries", i32::MAX)?;
        if retries < 0 {
            return Err(r.invalid("retries", &retries.to_string(), "must be >= 0"));
        }
        let max_in_flight: usize = r.num("max.in.flight.requests.per.connection", 5)?;
        if max_in_flight == 0 {
            return Err(r.invalid("max.in.flight.requests.per.connection", "0", "must be >= 1"));
        }
        let enable_idempotence = idempotence(&r, acks, retries, max_in_flight)?;
        let compression = match r.get("compression.type").map(|v| v.trim().to_ascii_lowercase()) {
            None => Compression::None,
            Some(v) => match v.as_str() {
                "none" => Compression::None,
                "gzip" => Compression::Gzip,
                "snappy" => Compression::Snappy,
                "lz4" => Compression::Lz4,
                "zstd" => Compression::Zstd,
                _ => return Err(r.invalid("compression.type", &v, "expected none, gzip, snappy, lz4 or zstd")),
            },
        };
        let network = NetworkConfig::parse(&r, "ksim-producer")?;
        let linger_ms: u64 = r.num("linger.ms", 5)?;
        let delivery_timeout_ms = delivery_timeout(&r, linger_ms, network.request_timeout_ms)?;
        let retry_backoff_max_ms: u64 = r.num("retry.backoff.max.ms", 1000)?;
        let mut partitioner_ignore_keys = r.bool("partitioner.ignore.keys", false)?;
        let partitioner = match r.get("partitioner.class").map(|v| v.trim()) {
            None | Some("") | Some(DEFAULT_PARTITIONER_CLASS) => PartitionerChoice::BuiltIn,
            Some(UNIFORM_STICKY_CLASS) => {
                partitioner_ignore_keys = true;
                PartitionerChoice::BuiltIn
            }
            Some(ROUND_ROBIN_CLASS) => PartitionerChoice::RoundRobin,
            Some(RANDOM_CLASS) => PartitionerChoice::Random,
            Some(v) => {
                let reason = format!("expected unset, {ROUND_ROBIN_CLASS}, {RANDOM_CLASS}, {DEFAULT_PARTITIONER_CLASS} or {UNIFORM_STICKY_CLASS} (custom partitioners: ProducerConfig::with_partitioner)");
                return Err(r.invalid("partitioner.class", v, &reason));
            }
        };
        Ok(ProducerConfig {
            // KIP-580: a max below the base backoff caps the base too.
            retry_backoff_max_ms: retry_backoff_max_ms.max(1),
            network,
            acks,
            retries: retries as u32,
            delivery_timeout_ms,
            enable_idempotence,
            max_request_size: r.num("max.request.size", 1_048_576)?,
            batch_size: r.num("batch.size", 16_384)?,
            linger_ms,
            compression,
            buffer_memory: r.num("buffer.memory", 33_554_432)?,
            max_block_ms: r.num("max.block.ms", 60_000)?,
            max_in_flight,
            partitioner_ignore_keys,
            partitioner,
            interceptors: Interceptors::default(),
            seed: None,
            clock: ClientClock::default(),
        })
    }

    /// Uses `partitioner` for records sent without a partition (replaces
    /// `partitioner.class`).
    pub fn with_partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.partitioner = PartitionerChoice::Custom(partitioner);
        self
    }

    /// Appends an interceptor; interceptors run in the order they were added.
    pub fn with_interceptor(mut self, interceptor: Arc<dyn ProducerInterceptor>) -> Self {
        self.interceptors.0.push(interceptor);
        self
    }

    /// Fixes the seed of the partitioners' rng.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Reads record timestamps from `clock` (a harness shares it to make
    /// the producer's wall clock jump).
    pub fn with_clock(mut self, clock: ClientClock) -> Self {
        self.clock = clock;
        self
    }
}

/// Kafka's `postProcessAndValidateIdempotenceConfigs` (4.x): idempotence is
/// on unless turned off. With `enable.idempotence` set to true explicitly,
/// `retries=0` or `acks` other than all is a `ConfigError`; when it was only
/// defaulted, either silently turns it off (KIP-679, Kafka 3.2+). More than 5
/// requests in flight per connection is an error whenever idempotence stays
/// on (Kafka 4.0 made this an error for the defaulted case too).
fn idempotence(r: &Reader<'_>, acks: i16, retries: i32, max_in_flight: usize) -> Result<bool, ConfigError> {
    let configured = r.get("enable.idempotence").is_some();
    if !r.bool("enable.idempotence", true)? {
        return Ok(false);
    }
    if retries == 0 {
        if configured {
            return Err(r.invalid("enable.idempotence", "true", "the idempotent producer needs retries > 0"));
        }
        tracing::info!("idempotence disabled because retries is 0");
        return Ok(false);
    }
    if acks != -1 {
        if configured {
            return Err(r.invalid("enable.idempotence", "true", "the idempotent producer needs acks=all"));
        }
        tracing::info!("idempotence disabled because acks is {acks}, not all");
        return Ok(false);
    }
    if max_in_flight > MAX_IN_FLIGHT_FOR_IDEMPOTENCE {
        let reason = format!("the idempotent producer needs at most {MAX_IN_FLIGHT_FOR_IDEMPOTENCE} (or enable.idempotence=false)");
        return Err(r.invalid("max.in.flight.requests.per.connection", &max_in_flight.to_string(), &reason));
    }
    Ok(true)
}

/// Kafka's `configureDeliveryTimeout`: delivery.timeout.ms must cover
/// linger.ms + request.timeout.ms; an explicit smaller value is an error, a
/// defaulted one is raised to that sum.
fn delivery_timeout(r: &Reader<'_>, linger_ms: u64, request_timeout_ms: u64) -> Result<u64, ConfigError> {
    let floor = linger_ms.saturating_add(request_timeout_ms);
    let value: u64 = r.num("delivery.timeout.ms", 120_000)?;
    if value >= floor {
        return Ok(value);
    }
    if r.get("delivery.timeout.ms").is_some() {
        let reason = format!("must be >= linger.ms + request.timeout.ms = {floor}");
        return Err(r.invalid("delivery.timeout.ms", &value.to_string(), &reason));
    }
    Ok(floor)
}

/// What a consumer does when it has no valid position (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail the poll with `ClientError::NoOffsetForPartition`.
    None,
}

/// One entry of `partition.assignment.strategy`.
#[derive(Clone)]
pub enum AssignorChoice {
    /// A built-in assignor by its protocol name (`range`, `roundrobin`,
    /// `sticky`, `cooperative-sticky`); Kafka class names are mapped to these.
    BuiltIn(&'static str),
    /// Set programmatically with `ConsumerConfig::with_assignor`.
    Custom(Arc<dyn PartitionAssignor>),
}

impl AssignorChoice {
    /// The protocol name sent in JoinGroup.
    pub fn name(&self) -> &str {
        match self {
            AssignorChoice::BuiltIn(n) => n,
            AssignorChoice::Custom(a) => a.name(),
        }
    }

    /// The rebalance protocols the assignor supports (Kafka's
    /// `supportedProtocols`: only cooperative-sticky adds COOPERATIVE among
    /// the built-ins).
    pub fn supported_protocols(&self) -> Vec<RebalanceProtocol> {
        match self {
            AssignorChoice::BuiltIn("cooperative-sticky") => vec![RebalanceProtocol::Eager, RebalanceProtocol::Cooperative],
            AssignorChoice::BuiltIn(_) => vec![RebalanceProtocol::Eager],
            AssignorChoice::Custom(a) => a.supported_protocols(),
        }
    }
}

impl std::fmt::Debug for AssignorChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AssignorChoice::BuiltIn(n) => write!(f, "{n}"),
            AssignorChoice::Custom(a) => write!(f, "Custom({})", a.name()),
        }
    }
}

/// Built-ins are equal by name, custom assignors when they are the same object.
impl PartialEq for AssignorChoice {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (AssignorChoice::BuiltIn(a), AssignorChoice::BuiltIn(b)) => a == b,
            (AssignorChoice::Custom(a), AssignorChoice::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for AssignorChoice {}

/// Kafka's built-in assignors: (protocol name, class name).
pub const BUILT_IN_ASSIGNORS: &[(&str, &str)] = &[
    ("range", "org.apache.kafka.clients.consumer.RangeAssignor"),
    ("roundrobin", "org.apache.kafka.clients.consumer.RoundRobinAssignor"),
    ("sticky", "org.apache.kafka.clients.consumer.StickyAssignor"),
    ("cooperative-sticky", "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"),
];

/// Kafka's rule (ConsumerCoordinator): the rebalance protocol is the highest
/// one every configured assignor supports; none in common is an error.
pub fn common_rebalance_protocol(assignors: &[AssignorChoice]) -> Option<RebalanceProtocol> {
    let mut common: Option<Vec<RebalanceProtocol>> = None;
    for a in assignors {
        let supported = a.supported_protocols();
        common = Some(match common {
            None => supported,
            Some(c) => c.into_iter().filter(|p| supported.contains(p)).collect(),
        });
    }
    common?.into_iter().max()
}

/// Consumer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub network: NetworkConfig,
    /// `auto.offset.reset` (Kafka default: latest).
    pub auto_offset_reset: OffsetReset,
    /// `max.poll.records` (default 500): the most records one poll returns.
    pub max_poll_records: usize,
    /// `fetch.max.wait.ms` (default 500): how long a broker may hold a fetch.
    pub fetch_max_wait_ms: u64,
    /// `fetch.min.bytes` (default 1).
    pub fetch_min_bytes: i32,
    /// `max.partition.fetch.bytes` (default 1 MiB).
    pub max_partition_fetch_bytes: i32,
    /// `fetch.max.bytes` (default 50 MiB).
    pub fetch_max_bytes: i32,
    /// `default.api.timeout.ms` (default 60000): bound on end_offsets,
    /// commit_sync and committed.
    pub default_api_timeout_ms: u64,
    /// `group.id`: the consumer group; `None` for a standalone consumer
    /// (subscribe then fails and nothing is committed).
    pub group_id: Option<String>,
    /// `group.instance.id` (KIP-345): a static member keeps its assignment
    /// across restarts within session.timeout.ms and never sends LeaveGroup.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` (default 45000): the coordinator removes a
    /// member that has not heartbeated for this long.
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms` (default 3000): how often the heartbeat task
    /// tells the coordinator the member is alive.
    pub heartbeat_interval_ms: u64,
    /// `max.poll.interval.ms` (default 300000): a member that does not poll
    /// for this long leaves the group; also the rebalance timeout sent in
    /// JoinGroup.
    pub max_poll_interval_ms: u64,
    /// `enable.auto.commit`: default true when group.id is set; true
    /// without a group.id is an error (Kafka's InvalidConfigurationException).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (default 5000).
    pub auto_commit_interval_ms: u64,
    /// `partition.assignment.strategy` in preference order (default Kafka's
    /// `[range, cooperative-sticky]`), or an assignor set with `with_assignor`.
    pub assignors: Vec<AssignorChoice>,
    /// The highest protocol all `assignors` support.
    pub rebalance_protocol: RebalanceProtocol,
    /// The wall clock poll deadlines and fetch backoffs are measured on
    /// (Kafka's consumer times them with `Time.milliseconds()`).
    pub clock: ClientClock,
}

const CONSUMER_KEYS: &[&str] = &[
    "auto.offset.reset",
    "max.poll.records",
    "fetch.max.wait.ms",
    "fetch.min.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
    "isolation.level",
    "default.api.timeout.ms",
    "group.id",
    "group.instance.id",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "partition.assignment.strategy",
];

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self::from_map(&BTreeMap::new()).expect("consumer defaults are valid")
    }
}

impl ConsumerConfig {
    pub fn from_map(m: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let r = Reader::new(m, "consumer", &[NETWORK_KEYS, CONSUMER_KEYS]);
        let auto_offset_reset = match r.get("auto.offset.reset").map(|v| v.trim().to_ascii_lowercase()) {
            None => OffsetReset::Latest,
            Some(v) if v == "earliest" => OffsetReset::Earliest,
            Some(v) if v == "latest" => OffsetReset::Latest,
            Some(v) if v == "none" => OffsetReset::None,
            Some(v) => return Err(r.invalid("auto.offset.reset", &v, "expected earliest, latest or none")),
        };
        match r.get("isolation.level").map(|v| v.trim().to_ascii_lowercase()) {
            None => {}
            Some(v) if v == "read_uncommitted" => {}
            Some(v) if v == "read_committed" => {
                return Err(ConfigError::NotImplemented { key: "isolation.level".into(), value: v });
            }
            Some(v) => return Err(r.invalid("isolation.level", &v, "expected read_uncommitted or read_committed")),
        }
        let max_poll_records: usize = r.num("max.poll.records", 500)?;
        if max_poll_records == 0 {
            return Err(r.invalid("max.poll.records", "0", "must be >= 1"));
        }
        let group_id = r.get("group.id").map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let group_instance_id = r.get("group.instance.id").map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if group_instance_id.is_some() && group_id.is_none() {
            return Err(r.invalid("group.instance.id", r.get("group.instance.id").unwrap_or(""), "needs a group.id"));
        }
        let enable_auto_commit = r.bool("enable.auto.commit", group_id.is_some())?;
        if enable_auto_commit && group_id.is_none() {
            return Err(r.invalid("enable.auto.commit", "true", "cannot be true without a group.id"));
        }
        let session_timeout_ms: u64 = r.num("session.timeout.ms", 45_000)?;
        let heartbeat_interval_ms: u64 = r.num("heartbeat.interval.ms", 3_000)?;
        if heartbeat_interval_ms == 0 || heartbeat_interval_ms >= session_timeout_ms {
            let reason = format!("must be > 0 and below session.timeout.ms ({session_timeout_ms})");
            return Err(r.invalid("heartbeat.interval.ms", &heartbeat_interval_ms.to_string(), &reason));
        }
        let max_poll_interval_ms: u64 = r.num("max.poll.interval.ms", 300_000)?;
        if max_poll_interval_ms == 0 || max_poll_interval_ms > i32::MAX as u64 {
            return Err(r.invalid("max.poll.interval.ms", &max_poll_interval_ms.to_string(), "must be between 1 and 2147483647"));
        }
        if session_timeout_ms > i32::MAX as u64 {
            return Err(r.invalid("session.timeout.ms", &session_timeout_ms.to_string(), "must be at most 2147483647"));
        }
        let auto_commit_interval_ms: u64 = r.num("auto.commit.interval.ms", 5_000)?;
        let assignors = assignment_strategy(&r)?;
        let rebalance_protocol = common_rebalance_protocol(&assignors).ok_or_else(|| {
            r.invalid("partition.assignment.strategy", r.get("partition.assignment.strategy").unwrap_or(""), "the assignors share no rebalance protocol")
        })?;
        Ok(ConsumerConfig {
            group_id,
            group_instance_id,
            session_timeout_ms,
            heartbeat_interval_ms,
            max_poll_interval_ms,
            enable_auto_commit,
            auto_commit_interval_ms,
            assignors,
            rebalance_protocol,
            network: NetworkConfig::parse(&r, "ksim-consumer")?,
            auto_offset_reset,
            max_poll_records,
            fetch_max_wait_ms: r.num("fetch.max.wait.ms", 500)?,
            fetch_min_bytes: r.num("fetch.min.bytes", 1)?,
            max_partition_fetch_bytes: r.num("max.partition.fetch.bytes", 1_048_576)?,
            fetch_max_bytes: r.num("fetch.max.bytes", 52_428_800)?,
            default_api_timeout_ms: r.num("default.api.timeout.ms", 60_000)?,
            clock: ClientClock::default(),
        })
    }

    /// Times polls and backoffs on `clock` (a harness shares it to make the
    /// consumer's wall clock jump).
    pub fn with_clock(mut self, clock: ClientClock) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `assignor` as the only partition assignment strategy (replaces
    /// `partition.assignment.strategy`; Kafka names a class there, which
    /// cannot name a Rust type). The rebalance protocol becomes the
    /// highest one it supports.
    pub fn with_assignor(mut self, assignor: Box<dyn PartitionAssignor>) -> Self {
        self.assignors = vec![AssignorChoice::Custom(Arc::from(assignor))];
        self.rebalance_protocol = common_rebalance_protocol(&self.assignors).unwrap_or(RebalanceProtocol::Eager);
        self
    }
}

/// `partition.assignment.strategy`: a comma-separated list of built-in
/// protocol names or Kafka class names, in preference order.
fn assignment_strategy(r: &Reader<'_>) -> Result<Vec<AssignorChoice>, ConfigError> {
    const KEY: &str = "partition.assignment.strategy";
    let Some(value) = r.get(KEY) else {
        return Ok(vec![AssignorChoice::BuiltIn("range"), AssignorChoice::BuiltIn("cooperative-sticky")]);
    };
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, _)) = BUILT_IN_ASSIGNORS.iter().find(|(n, class)| item == *n || item == *class) else {
            let known: Vec<&str> = BUILT_IN_ASSIGNORS.iter().map(|(n, _)| *n).collect();
            let reason = format!("unknown assignor {item:?}: expected {} or their Kafka class names (custom assignors: ConsumerConfig::with_assignor)", known.join(", "));
            return Err(r.invalid(KEY, value, &reason));
        };
        if !out.contains(&AssignorChoice::BuiltIn(name)) {
            out.push(AssignorChoice::BuiltIn(name));
        }
    }
    if out.is_empty() {
        return Err(r.invalid(KEY, value, "names no assignor"));
    }
    Ok(out)
}

/// Admin client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub network: NetworkConfig,
    /// `default.api.timeout.ms` (default 60000): bound on one admin call,
    /// retries included.
    pub default_api_timeout_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self::from_map(&BTreeMap::new()).expect("admin defaults are valid")
    }
}

impl AdminConfig {
    pub fn from_map(m: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let r = Reader::new(m, "admin", &[NETWORK_KEYS, &["default.api.timeout.ms"]]);
        Ok(AdminConfig {
            network: NetworkConfig::parse(&r, "ksim-admin")?,
            default_api_timeout_ms: r.num("default.api.timeout.ms", 60_000)?,
        })
    }
}

/// Typed reads from a settings map; logs keys this client does not read.
struct Reader<'a> {
    m: &'a BTreeMap<String, String>,
}

impl<'a> Reader<'a> {
    fn new(m: &'a BTreeMap<String, String>, client: &str, known: &[&[&str]]) -> Self {
        for k in m.keys() {
            if !known.iter().any(|ks| ks.contains(&k.as_str())) {
                tracing::debug!("{client} config: ignoring {k} (not used by this client)");
            }
        }
        Reader { m }
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.m.get(key).map(|s| s.as_str())
    }

    fn invalid(&self, key: &str, value: &str, reason: &str) -> ConfigError {
        ConfigError::Invalid { key: key.into(), value: value.into(), reason: reason.into() }
    }

    fn string(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_string()
    }

    fn num<T: FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| self.invalid(key, v, &e.to_string())),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v == "true" => Ok(true),
            Some(v) if v == "false" => Ok(false),
            Some(v) => Err(self.invalid(key, &v, "expected true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn producer_acks_spellings() {
        for (v, want) in [("all", -1), ("-1", -1), ("0", 0), ("1", 1), ("ALL", -1)] {
            assert_eq!(ProducerConfig::from_map(&map(&[("acks", v)])).unwrap().acks, want, "acks={v}");
        }
        assert_eq!(ProducerConfig::default().acks, -1);
        let e = ProducerConfig::from_map(&map(&[("acks", "2")])).unwrap_err();
        assert!(e.to_string().contains("acks"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key_and_unknown_keys_are_ignored() {
        let e = ProducerConfig::from_map(&map(&[("retries", "many")])).unwrap_err();
        assert!(e.to_string().contains("retries"), "{e}");
        let e = ConsumerConfig::from_map(&map(&[("fetch.max.wait.ms", "-")])).unwrap_err();
        assert!(e.to_string().contains("fetch.max.wait.ms"), "{e}");
        assert!(ProducerConfig::from_map(&map(&[("linger.ms", "5"), ("whatever", "x")])).is_ok());
    }

    // KIP-679 and ProducerConfig.postProcessAndValidateIdempotenceConfigs:
    // on by default; a conflicting setting disables a defaulted idempotence
    // silently and rejects an explicit one.
    #[test]
    fn idempotence_defaults_on_and_conflicts_disable_or_reject_it_as_kafka_does() {
        let idem = |pairs: &[(&str, &str)]| ProducerConfig::from_map(&map(pairs)).map(|c| c.enable_idempotence);
        assert_eq!(idem(&[]), Ok(true));
        assert_eq!(idem(&[("enable.idempotence", "false")]), Ok(false));
        assert_eq!(idem(&[("enable.idempotence", "true")]), Ok(true));
        assert_eq!(idem(&[("acks", "1")]), Ok(false));
        assert_eq!(idem(&[("acks", "0")]), Ok(false));
        assert_eq!(idem(&[("retries", "0")]), Ok(false));
        assert_eq!(idem(&[("acks", "1"), ("enable.idempotence", "false")]), Ok(false));
        for conflict in [("acks", "1"), ("retries", "0"), ("max.in.flight.requests.per.connection", "6")] {
            let e = idem(&[conflict, ("enable.idempotence", "true")]).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { .. }), "{conflict:?}: {e}");
        }
        // Kafka 4.x: more than 5 in flight is an error even when defaulted.
        assert!(idem(&[("max.in.flight.requests.per.connection", "6")]).is_err());
        assert_eq!(idem(&[("max.in.flight.requests.per.connection", "6"), ("enable.idempotence", "false")]), Ok(false));
        assert_eq!(idem(&[("max.in.flight.requests.per.connection", "6"), ("acks", "1")]), Ok(false));
    }

    // KafkaProducer.configureDeliveryTimeout (KIP-91).
    #[test]
    fn delivery_timeout_must_cover_linger_and_request_timeout() {
        let c = ProducerConfig::from_map(&map(&[("request.timeout.ms", "200000")])).unwrap();
        assert_eq!(c.delivery_timeout_ms, 200_005, "a defaulted delivery.timeout.ms is raised");
        let e = ProducerConfig::from_map(&map(&[("delivery.timeout.ms", "1000"), ("request.timeout.ms", "5000")])).unwrap_err();
        assert!(e.to_string().contains("delivery.timeout.ms"), "{e}");
    }

    #[test]
    fn batching_settings_follow_kafka_4_defaults_and_parse() {
        let c = ProducerConfig::default();
        assert_eq!((c.linger_ms, c.buffer_memory, c.max_block_ms, c.max_in_flight), (5, 33_554_432, 60_000, 5));
        assert_eq!((c.compression, c.retry_backoff_max_ms, c.delivery_timeout_ms), (Compression::None, 1000, 120_000));
        for (name, want) in [("gzip", Compression::Gzip), ("snappy", Compression::Snappy), ("lz4", Compression::Lz4), ("zstd", Compression::Zstd)] {
            assert_eq!(ProducerConfig::from_map(&map(&[("compression.type", name)])).unwrap().compression, want);
        }
        let e = ProducerConfig::from_map(&map(&[("compression.type", "brotli")])).unwrap_err();
        assert!(e.to_string().contains("compression.type"), "{e}");
        let e = ProducerConfig::from_map(&map(&[("max.in.flight.requests.per.connection", "0")])).unwrap_err();
        assert!(e.to_string().contains("max.in.flight"), "{e}");
    }

    // KIP-794 keys and Kafka's partitioner class names.
    #[test]
    fn partitioner_settings_parse() {
        let c = ProducerConfig::default();
        assert_eq!((c.partitioner.clone(), c.batch_size, c.partitioner_ignore_keys), (PartitionerChoice::BuiltIn, 16_384, false));
        let c = ProducerConfig::from_map(&map(&[("partitioner.class", ROUND_ROBIN_CLASS)])).unwrap();
        assert_eq!(c.partitioner, PartitionerChoice::RoundRobin);
        let c = ProducerConfig::from_map(&map(&[("partitioner.class", "random"), ("batch.size", "10")])).unwrap();
        assert_eq!((c.partitioner, c.batch_size), (PartitionerChoice::Random, 10));
        let c = ProducerConfig::from_map(&map(&[("partitioner.class", UNIFORM_STICKY_CLASS)])).unwrap();
        assert_eq!((c.partitioner, c.partitioner_ignore_keys), (PartitionerChoice::BuiltIn, true));
        let c = ProducerConfig::from_map(&map(&[("partitioner.ignore.keys", "true")])).unwrap();
        assert!(c.partitioner_ignore_keys);
        let e = ProducerConfig::from_map(&map(&[("partitioner.class", "com.example.Mine")])).unwrap_err();
        assert!(e.to_string().contains("partitioner.class"), "{e}");
    }

    #[test]
    fn consumer_defaults_follow_kafka() {
        let c = ConsumerConfig::default();
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(c.max_poll_records, 500);
        assert_eq!(c.fetch_max_wait_ms, 500);
        let e = ConsumerConfig::from_map(&map(&[("isolation.level", "read_committed")])).unwrap_err();
        assert!(matches!(e, ConfigError::NotImplemented { .. }), "{e}");
        let c = ConsumerConfig::from_map(&map(&[("auto.offset.reset", "earliest")])).unwrap();
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
    }

    // KAFKA-FACTS.md consumer defaults (Kafka 3.x).
    #[test]
    fn group_settings_follow_kafka_defaults() {
        let c = ConsumerConfig::from_map(&map(&[("group.id", "g")])).unwrap();
        assert_eq!(c.group_id.as_deref(), Some("g"));
        assert_eq!((c.session_timeout_ms, c.heartbeat_interval_ms, c.max_poll_interval_ms), (45_000, 3_000, 300_000));
        assert_eq!((c.enable_auto_commit, c.auto_commit_interval_ms), (true, 5_000));
        assert_eq!(c.assignors, vec![AssignorChoice::BuiltIn("range"), AssignorChoice::BuiltIn("cooperative-sticky")]);
        assert_eq!(c.rebalance_protocol, RebalanceProtocol::Eager, "range supports only EAGER");
        let standalone = ConsumerConfig::default();
        assert_eq!((standalone.group_id, standalone.enable_auto_commit), (None, false));
        let e = ConsumerConfig::from_map(&map(&[("enable.auto.commit", "true")])).unwrap_err();
        assert!(e.to_string().contains("enable.auto.commit"), "{e}");
        let e = ConsumerConfig::from_map(&map(&[("group.id", "g"), ("heartbeat.interval.ms", "50000")])).unwrap_err();
        assert!(e.to_string().contains("heartbeat.interval.ms"), "{e}");
        let e = ConsumerConfig::from_map(&map(&[("group.instance.id", "i")])).unwrap_err();
        assert!(e.to_string().contains("group.instance.id"), "{e}");
    }

    // ConsumerCoordinator: the protocol is the highest one all assignors support.
    #[test]
    fn assignment_strategy_takes_names_and_class_names() {
        let c = ConsumerConfig::from_map(&map(&[("partition.assignment.strategy", "org.apache.kafka.clients.consumer.CooperativeStickyAssignor")])).unwrap();
        assert_eq!(c.assignors, vec![AssignorChoice::BuiltIn("cooperative-sticky")]);
        assert_eq!(c.rebalance_protocol, RebalanceProtocol::Cooperative);
        let c = ConsumerConfig::from_map(&map(&[("partition.assignment.strategy", "roundrobin, sticky")])).unwrap();
        assert_eq!(c.assignors.iter().map(|a| a.name()).collect::<Vec<_>>(), vec!["roundrobin", "sticky"]);
        assert_eq!(c.rebalance_protocol, RebalanceProtocol::Eager);
        for bad in ["", "fair", "range,com.example.Mine"] {
            let e = ConsumerConfig::from_map(&map(&[("partition.assignment.strategy", bad)])).unwrap_err();
            assert!(e.to_string().contains("partition.assignment.strategy"), "{bad}: {e}");
        }
    }
}
