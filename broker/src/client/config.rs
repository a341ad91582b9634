//! Producer, consumer and admin settings under Kafka's own names, parsed
//! from string maps (scenario files). Unknown keys are ignored with a debug
//! log; a bad value is a `ConfigError` naming the key.

use super::clock::ClientClock;
use super::error::ConfigError;
use super::interceptor::ProducerInterceptor;
use super::partitioner::{Partitioner, DEFAULT_PARTITIONER_CLASS, RANDOM_CLASS, ROUND_ROBIN_CLASS, UNIFORM_STICKY_CLASS};
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
}

impl NetworkConfig {
    fn parse(m: &Reader<'_>, default_client_id: &str) -> Result<Self, ConfigError> {
        Ok(NetworkConfig {
            client_id: m.string("client.id", default_client_id),
            request_timeout_ms: m.num("request.timeout.ms", 30_000)?,
            retry_backoff_ms: m.num("retry.backoff.ms", 100)?,
            metadata_max_age_ms: m.num("metadata.max.age.ms", 300_000)?,
        })
    }
}

const NETWORK_KEYS: &[&str] = &["client.id", "request.timeout.ms", "retry.backoff.ms", "metadata.max.age.ms"];

/// Producer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    pub network: NetworkConfig,
    /// `acks`: -1 (all), 0 or 1. Kafka 3.x default: all.
    pub acks: i16,
    /// `retries`: how many times a failed produce is retried (default i32::MAX).
    pub retries: u32,
    /// `delivery.timeout.ms`: upper bound on one send, retries included.
    pub delivery_timeout_ms: u64,
    /// `enable.idempotence`. Only `false` is implemented: when the key is
    /// absent the producer runs non-idempotent (unlike Kafka 3.x's default of
    /// true); an explicit `true` is a `ConfigError` until idempotence lands.
    pub enable_idempotence: bool,
    /// `max.request.size`: a larger record batch fails without being sent.
    pub max_request_size: usize,
    /// `batch.size` (default 16384). Records are not batched yet; the
    /// built-in partitioner moves keyless records to a new sticky partition
    /// after this many bytes (KIP-794).
    pub batch_size: usize,
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
        let enable_idempotence = r.bool("enable.idempotence", false)?;
        if enable_idempotence {
            return Err(ConfigError::NotImplemented { key: "enable.idempotence".into(), value: "true".into() });
        }
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
            network: NetworkConfig::parse(&r, "ksim-producer")?,
            acks,
            retries: retries as u32,
            delivery_timeout_ms: r.num("delivery.timeout.ms", 120_000)?,
            enable_idempotence,
            max_request_size: r.num("max.request.size", 1_048_576)?,
            batch_size: r.num("batch.size", 16_384)?,
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

/// What a consumer does when it has no valid position (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail the poll with `ClientError::NoOffsetForPartition`.
    None,
}

/// Consumer settings (assign mode; groups are a later issue).
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
    /// `default.api.timeout.ms` (default 60000): bound on end_offsets.
    pub default_api_timeout_ms: u64,
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
        Ok(ConsumerConfig {
            network: NetworkConfig::parse(&r, "ksim-consumer")?,
            auto_offset_reset,
            max_poll_records,
            fetch_max_wait_ms: r.num("fetch.max.wait.ms", 500)?,
            fetch_min_bytes: r.num("fetch.min.bytes", 1)?,
            max_partition_fetch_bytes: r.num("max.partition.fetch.bytes", 1_048_576)?,
            fetch_max_bytes: r.num("fetch.max.bytes", 52_428_800)?,
            default_api_timeout_ms: r.num("default.api.timeout.ms", 60_000)?,
        })
    }
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

    #[test]
    fn idempotence_true_is_not_implemented_yet_and_absent_means_false() {
        let e = ProducerConfig::from_map(&map(&[("enable.idempotence", "true")])).unwrap_err();
        assert!(matches!(e, ConfigError::NotImplemented { .. }), "{e}");
        assert!(e.to_string().contains("enable.idempotence"));
        assert!(!ProducerConfig::default().enable_idempotence);
        assert!(ProducerConfig::from_map(&map(&[("enable.idempotence", "false")])).is_ok());
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
}
