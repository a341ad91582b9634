//! The scenario file contract (DESIGN.md, "Scenario file contract").
//!
//! A scenario is TOML read with serde; unknown fields are errors everywhere
//! except in the `config` maps, which carry Kafka's own config names
//! verbatim. Every error names the file, the line and (when known) the
//! field, as `scenarios/x.toml:12: field `rate_per_s`: invalid type: …`.
//! Parsing is followed by semantic checks (heal before the end of the run,
//! topics that exist, known anomaly keys, …) that report the same way.

use crate::checker;
use crate::report::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Default `[cluster] os_writeback_ms`: Linux's periodic dirty-page flush.
pub const DEFAULT_OS_WRITEBACK_MS: u64 = 5_000;
/// Default `[run] final_poll_ms`: how long the final reader may take.
pub const DEFAULT_FINAL_POLL_MS: u64 = 20_000;
/// Default `[run] liveness_ms`: how long after heal the cluster may take
/// to have a leader and a full-enough ISR for every partition (a restarted
/// broker registers, catches up and rejoins ISRs well within this).
pub const DEFAULT_LIVENESS_MS: u64 = 20_000;
/// Default `keys` per producer.
pub const DEFAULT_PRODUCER_KEYS: u32 = 16;

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, printed in summaries.
    pub name: String,
    /// What the scenario shows and why its expectation holds.
    #[serde(default)]
    pub description: String,
    pub cluster: ClusterSpec,
    pub topics: Vec<TopicSpec>,
    #[serde(default)]
    pub producers: Vec<ProducerSpec>,
    #[serde(default)]
    pub consumers: Vec<ConsumerSpec>,
    #[serde(default)]
    pub faults: FaultsSpec,
    pub run: RunSpec,
    pub expect: ExpectSpec,
    /// Where the scenario was loaded from (for replay commands); not in the file.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// `[cluster]`: the nodes and broker-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Number of brokers.
    pub brokers: u32,
    /// Controller quorum size (may share nodes).
    #[serde(default = "one")]
    pub controllers: u32,
    /// Log directories per broker (targets of `disk-dir-fail`).
    #[serde(default = "one")]
    pub log_dirs: u32,
    /// Kafka broker config, names verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, toml::Value>,
    /// The simulated OS writes dirty pages back after this long; only
    /// younger unsynced data dies in a power loss.
    #[serde(default = "default_os_writeback_ms")]
    pub os_writeback_ms: u64,
}

/// `[[topics]]`: a topic created before the workload starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    /// Kafka topic config, names verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, toml::Value>,
}

/// `[[producers]]`: `count` producer processes writing unique values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSpec {
    #[serde(default = "one")]
    pub count: u32,
    pub topic: String,
    /// Sends per simulated second, per process.
    pub rate_per_s: f64,
    /// Distinct keys (they pick the partition, as Kafka's partitioner does).
    #[serde(default = "default_keys")]
    pub keys: u32,
    #[serde(default)]
    pub transactional: bool,
    /// Kafka producer config, names verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, toml::Value>,
    /// An at-least-once application: values whose send was not
    /// acknowledged (outcome unknown, or still in flight) when the process
    /// crashed stay in an outbox that survives the crash, and the restarted
    /// process (a new producer session with a new producer id) sends them
    /// again before anything new. Off by default (the values are lost to
    /// the application, as before).
    #[serde(default, skip_serializing_if = "is_false")]
    pub resend_unacked_on_restart: bool,
}

/// `[[consumers]]`: `count` consumer processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    /// Consumer group; `None` for assign-mode (standalone) consumers.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default = "one")]
    pub count: u32,
    pub topics: Vec<String>,
    #[serde(default)]
    pub commit: CommitMode,
    /// Simulated processing time per non-empty poll.
    #[serde(default)]
    pub process_ms: u64,
    /// Kafka consumer config, names verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, toml::Value>,
}

/// When a consumer commits its offsets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitMode {
    #[default]
    AfterProcess,
    BeforeProcess,
    Auto,
    Async,
    Txn,
}

/// `[faults]`: seeded random faults and fixed ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsSpec {
    #[serde(default)]
    pub random: Option<RandomFaults>,
    #[serde(default)]
    pub at: Vec<FaultAt>,
    /// Fault points inside the broker (madsim's buggify), on during the
    /// main phase only (off for setup, from heal on).
    #[serde(default)]
    pub buggify: bool,
}

/// One random fault every `every_ms = [lo, hi]` until `heal_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    pub kinds: Vec<FaultKind>,
    pub every_ms: [u64; 2],
    /// Swarm testing: each seed draws a non-empty subset of `kinds` and
    /// injects only those, so some seeds see one kind in isolation and
    /// others a mix (the subset is reported with the seed).
    #[serde(default)]
    pub swarm: bool,
    /// Shapes random `partition` faults draw from, one per fault (seeded,
    /// uniformly); empty (the default): `isolate` only. `sets` splits the
    /// brokers into two seeded sides (needs two brokers); `one-way`,
    /// `bridge` and `majority` take the drawn broker as their target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<PartitionShape>,
    /// Share of random `crash` and `restart` faults that hit a client
    /// process (a producer or an assign-mode consumer, drawn uniformly:
    /// `producer:N` / `consumer:N`) instead of a broker; unset: brokers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_crashes: Option<Probability>,
}

impl RandomFaults {
    /// Random faults of `kinds` every `every_ms`, no swarm, no options.
    pub fn new(kinds: Vec<FaultKind>, every_ms: [u64; 2]) -> RandomFaults {
        RandomFaults { kinds, every_ms, swarm: false, shapes: Vec::new(), client_crashes: None }
    }
}

/// `[[faults.at]]`: one fault at a fixed time.
///
/// The fields after `duration_ms` refine one kind each and are errors on
/// any other kind (build one with [`FaultAt::new`] and set them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAt {
    pub at_ms: u64,
    pub kind: FaultKind,
    pub target: Target,
    /// How long the fault lasts; `None`: until heal.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// `partition`: which cut (default `isolate`, the target alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<PartitionShape>,
    /// `partition` with shape `sets` (two sides cut from each other) or
    /// `one-way` (traffic from side 0 to side 1 dropped): the sides, as targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sides: Option<Vec<Vec<Target>>>,
    /// `latency`: every packet's delay is drawn from `[lo, hi]` (network-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<[u64; 2]>,
    /// `loss`: probability that a packet is dropped (network-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Probability>,
    /// `slow-consumer`: the consumer waits this long after every poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_ms: Option<u64>,
    /// `clock-jump`: how far the client's wall clock moves (may be negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_ms: Option<i64>,
}

impl FaultAt {
    /// A fault with no kind-specific options.
    pub fn new(at_ms: u64, kind: FaultKind, target: Target, duration_ms: Option<u64>) -> FaultAt {
        FaultAt {
            at_ms,
            kind,
            target,
            duration_ms,
            shape: None,
            sides: None,
            latency_ms: None,
            rate: None,
            process_ms: None,
            jump_ms: None,
        }
    }
}

/// The cut a `partition` fault makes. Clients (producers, consumers) are
/// nodes too: they stay with the side that keeps working — the majority,
/// the larger bridge half, everyone but the isolated or one-way target —
/// unless `sides` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionShape {
    /// The target node(s) cut off from every other node (both ways).
    Isolate,
    /// `sides = [[..], [..]]` cut from each other both ways; nodes in
    /// neither side still reach both.
    Sets,
    /// Packets from the target (or `sides[0]`) to everyone else (or
    /// `sides[1]`) are dropped; the other direction still flows.
    OneWay,
    /// The servers other than the target split into two halves (seeded);
    /// the target, the bridge, still reaches both.
    Bridge,
    /// Brokers and controllers each split into a minority holding the
    /// target and a majority (seeded fill); the sides are cut both ways.
    Majority,
}

/// A probability in (0, 1]; a newtype so fault specs stay `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Probability(pub f64);

impl PartialEq for Probability {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Probability {}

/// The fault kinds of DESIGN.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Crash,
    /// Graceful broker stop (Kafka's clean shutdown: logs flushed and
    /// closed, producer snapshots and the clean-shutdown marker written);
    /// `restart` (or `duration_ms`) brings it back. A controller just stops.
    Shutdown,
    Restart,
    Pause,
    Partition,
    Latency,
    Loss,
    DiskEio,
    DiskFull,
    DiskDirFail,
    PowerLoss,
    SlowConsumer,
    /// A client process's wall clock jumps by `jump_ms` (brokers' clocks stay).
    ClockJump,
}

impl fmt::Display for FaultKind {
    /// The scenario-file name (`disk-eio`, `clock-jump`, …).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(kebab_name(self).as_str())
    }
}

impl fmt::Display for PartitionShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(kebab_name(self).as_str())
    }
}

/// A unit enum variant's serde name.
fn kebab_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// What a fault hits, written as in DESIGN.md (`broker:1`, `leader:events/0`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Broker(u32),
    AllBrokers,
    Controller(u32),
    ActiveController,
    Leader { topic: String, partition: i32 },
    Follower { topic: String, partition: i32 },
    Coordinator(String),
    Producer(u32),
    Consumer { group: String, index: u32 },
    /// The Nth assign-mode (group-less) consumer process, `consumer:N`.
    AssignConsumer(u32),
    Random,
}

/// The target forms, for error messages.
pub const TARGET_FORMS: &str = "broker:N, all-brokers, controller:N, active-controller, leader:TOPIC/P, \
follower:TOPIC/P, coordinator:GROUP, producer:N, consumer:GROUP/N, consumer:N, random";

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad target `{s}`, expected one of: {TARGET_FORMS}");
        let number = |n: &str| n.parse::<u32>().map_err(|_| bad());
        // "NAME/N" with a non-empty NAME.
        let slash = |rest: &str| -> Result<(String, u32), String> {
            let (name, n) = rest.rsplit_once('/').ok_or_else(bad)?;
            if name.is_empty() {
                return Err(bad());
            }
            Ok((name.to_string(), number(n)?))
        };
        match s {
            "all-brokers" => return Ok(Target::AllBrokers),
            "active-controller" => return Ok(Target::ActiveController),
            "random" => return Ok(Target::Random),
            _ => {}
        }
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "broker" => Ok(Target::Broker(number(rest)?)),
            "controller" => Ok(Target::Controller(number(rest)?)),
            "producer" => Ok(Target::Producer(number(rest)?)),
            "coordinator" if !rest.is_empty() => Ok(Target::Coordinator(rest.to_string())),
            "leader" => slash(rest).map(|(topic, p)| Target::Leader { topic, partition: p as i32 }),
            "follower" => slash(rest).map(|(topic, p)| Target::Follower { topic, partition: p as i32 }),
            "consumer" if !rest.contains('/') => Ok(Target::AssignConsumer(number(rest)?)),
            "consumer" => slash(rest).map(|(group, index)| Target::Consumer { group, index }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Broker(n) => write!(f, "broker:{n}"),
            Target::AllBrokers => write!(f, "all-brokers"),
            Target::Controller(n) => write!(f, "controller:{n}"),
            Target::ActiveController => write!(f, "active-controller"),
            Target::Leader { topic, partition } => write!(f, "leader:{topic}/{partition}"),
            Target::Follower { topic, partition } => write!(f, "follower:{topic}/{partition}"),
            Target::Coordinator(group) => write!(f, "coordinator:{group}"),
            Target::Producer(n) => write!(f, "producer:{n}"),
            Target::Consumer { group, index } => write!(f, "consumer:{group}/{index}"),
            Target::AssignConsumer(n) => write!(f, "consumer:{n}"),
            Target::Random => write!(f, "random"),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[run]`: phase lengths in simulated milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// The workload runs this long.
    pub duration_ms: u64,
    /// Faults stop here; liveness must follow.
    pub heal_ms: u64,
    /// Bound on the final reader after the workload stops.
    #[serde(default = "default_final_poll_ms")]
    pub final_poll_ms: u64,
    /// Bound on recovery after heal: by `heal_ms + liveness_ms` every
    /// partition must have a leader and an ISR of at least
    /// min(`min.insync.replicas`, replicas) in the controller's image.
    #[serde(default = "default_liveness_ms")]
    pub liveness_ms: u64,
}

/// `[expect]`: what every seed (pass) or some seed (violation) must show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub verdict: Verdict,
    /// With `violation`: the anomalies the unsafe setting is known to cause.
    #[serde(default)]
    pub anomalies: Vec<String>,
    /// Anomalies tolerated in this configuration (e.g. `duplicate` when
    /// idempotence is off): they never make a seed a violation.
    #[serde(default)]
    pub allow: Vec<String>,
}

fn one() -> u32 {
    1
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn default_keys() -> u32 {
    DEFAULT_PRODUCER_KEYS
}
fn default_os_writeback_ms() -> u64 {
    DEFAULT_OS_WRITEBACK_MS
}
fn default_final_poll_ms() -> u64 {
    DEFAULT_FINAL_POLL_MS
}
fn default_liveness_ms() -> u64 {
    DEFAULT_LIVENESS_MS
}

/// A scenario that cannot be used, with where in which file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    /// 1-based line; 0 when the error has no place in the text (unreadable file).
    pub line: usize,
    /// The offending field's key, when known.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError { file: file.clone(), line: 0, field: None, message: e.to_string() })?;
        let mut sc = Scenario::from_str(&text, &file)?;
        sc.path = Some(path.to_path_buf());
        Ok(sc)
    }

    /// Parses and validates scenario text; `file` names it in errors.
    pub fn from_str(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let sc: Scenario = toml::from_str(text).map_err(|e| parse_error(text, file, &e))?;
        sc.validate(text, file)?;
        Ok(sc)
    }

    /// The scenario as TOML that [`Scenario::from_str`] reads back equal
    /// (`path` aside): how `ksim shrink` writes a minimal case. Comments of
    /// the original file are not kept.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Semantic checks serde cannot express.
    fn validate(&self, text: &str, file: &str) -> Result<(), ScenarioError> {
        let err = |section: &str, nth: usize, field: &str, message: String| ScenarioError {
            file: file.to_string(),
            line: locate(text, section, nth, field),
            field: Some(field.to_string()),
            message,
        };
        if self.cluster.brokers == 0 {
            return Err(err("[cluster]", 0, "brokers", "a cluster needs at least one broker".into()));
        }
        let mut topics: BTreeMap<&str, u32> = BTreeMap::new();
        for (i, t) in self.topics.iter().enumerate() {
            if topics.insert(&t.name, t.partitions).is_some() {
                return Err(err("[[topics]]", i, "name", format!("topic `{}` is declared twice", t.name)));
            }
            if t.partitions == 0 {
                return Err(err("[[topics]]", i, "partitions", "a topic needs at least one partition".into()));
            }
            if t.replication_factor == 0 || t.replication_factor > self.cluster.brokers {
                return Err(err(
                    "[[topics]]",
                    i,
                    "replication_factor",
                    format!("replication_factor {} must be between 1 and brokers = {}", t.replication_factor, self.cluster.brokers),
                ));
            }
        }
        let unknown_topic = |name: &str| format!("unknown topic `{name}` (not in [[topics]])");
        for (i, p) in self.producers.iter().enumerate() {
            if !topics.contains_key(p.topic.as_str()) {
                return Err(err("[[producers]]", i, "topic", unknown_topic(&p.topic)));
            }
            if !(p.rate_per_s.is_finite() && p.rate_per_s > 0.0) {
                return Err(err("[[producers]]", i, "rate_per_s", format!("rate_per_s must be positive, got {}", p.rate_per_s)));
            }
        }
        for (i, c) in self.consumers.iter().enumerate() {
            if c.topics.is_empty() {
                return Err(err("[[consumers]]", i, "topics", "a consumer needs at least one topic".into()));
            }
            if let Some(t) = c.topics.iter().find(|t| !topics.contains_key(t.as_str())) {
                return Err(err("[[consumers]]", i, "topics", unknown_topic(t)));
            }
            if c.group.as_deref().is_some_and(|g| g.is_empty() || g.contains('/')) {
                return Err(err("[[consumers]]", i, "group", "a group id must be non-empty and without `/`".into()));
            }
            if c.commit == CommitMode::Txn {
                return Err(err(
                    "[[consumers]]",
                    i,
                    "commit",
                    "commit = \"txn\" needs transactions, which this build does not implement yet".into(),
                ));
            }
        }
        if let Some(r) = &self.faults.random {
            let [lo, hi] = r.every_ms;
            if lo == 0 || lo > hi {
                return Err(err("[faults", 0, "every_ms", format!("every_ms = [{lo}, {hi}] needs 0 < lo <= hi")));
            }
        }
        let clients = ClientCounts::of(self);
        if let Some(r) = &self.faults.random {
            if r.kinds.is_empty() {
                return Err(err("[faults", 0, "kinds", "random faults need at least one kind".into()));
            }
            for k in &r.kinds {
                if let Err(m) = check_kind_target(k, &Target::Random, &clients) {
                    return Err(err("[faults", 0, "kinds", m));
                }
            }
            if let Err((field, m)) = check_random_options(r, &clients) {
                return Err(err("[faults", 0, field, m));
            }
        }
        for (i, f) in self.faults.at.iter().enumerate() {
            let targets = std::iter::once(&f.target).chain(f.sides.iter().flatten().flatten());
            for t in targets {
                if let Err(m) = check_target(t, &topics, &clients) {
                    let field = if t == &f.target { "target" } else { "sides" };
                    return Err(err("[[faults.at]]", i, field, m));
                }
            }
            if let Err(m) = check_kind_target(&f.kind, &f.target, &clients) {
                return Err(err("[[faults.at]]", i, "target", m));
            }
            if let Err((field, m)) = check_fault_options(f) {
                return Err(err("[[faults.at]]", i, field, m));
            }
        }
        if self.run.heal_ms > self.run.duration_ms {
            return Err(err(
                "[run]",
                0,
                "heal_ms",
                format!("heal_ms {} is after duration_ms {}", self.run.heal_ms, self.run.duration_ms),
            ));
        }
        for (field, keys) in [("anomalies", &self.expect.anomalies), ("allow", &self.expect.allow)] {
            if let Some(k) = keys.iter().find(|k| !checker::CATALOGUE.contains(&k.as_str())) {
                return Err(err(
                    "[expect]",
                    0,
                    field,
                    format!("unknown anomaly `{k}`, expected one of: {}", checker::CATALOGUE.join(", ")),
                ));
            }
        }
        if self.expect.verdict == Verdict::Violation && self.expect.anomalies.is_empty() {
            return Err(err(
                "[expect]",
                0,
                "anomalies",
                "verdict = \"violation\" needs the anomalies it must show, e.g. anomalies = [\"lost-write\"]".into(),
            ));
        }
        Ok(())
    }
}

/// How many nodes of each kind a scenario starts (what `broker:N`,
/// `controller:N`, `producer:N`, `consumer:N` and `consumer:GROUP/N`
/// targets may name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCounts {
    pub brokers: u32,
    pub controllers: u32,
    pub producers: u32,
    /// Every consumer process in creation order, as the target that names
    /// it: `consumer:N` (assign mode) or `consumer:GROUP/N` (the Nth
    /// member process of GROUP across all `[[consumers]]` entries).
    pub consumers: Vec<Target>,
    /// `offsets.topic.replication.factor` of the brokers (Kafka's default
    /// 3): a `coordinator:GROUP` target needs that many brokers.
    pub offsets_replication_factor: u32,
}

impl ClientCounts {
    /// Assign-mode (group-less) consumer processes.
    pub fn assign_consumers(&self) -> u32 {
        self.consumers.iter().filter(|t| matches!(t, Target::AssignConsumer(_))).count() as u32
    }

    /// Producer and consumer processes.
    pub fn clients(&self) -> u32 {
        self.producers + self.consumers.len() as u32
    }

    /// The client behind draw `n` in `0..clients()`: producers first, then
    /// consumers in creation order.
    pub fn client(&self, n: u32) -> Target {
        match n.checked_sub(self.producers) {
            None => Target::Producer(n),
            Some(i) => self.consumers[i as usize].clone(),
        }
    }

    pub fn of(sc: &Scenario) -> ClientCounts {
        ClientCounts {
            brokers: sc.cluster.brokers,
            controllers: sc.cluster.controllers,
            producers: sc.producers.iter().map(|p| p.count).sum(),
            consumers: consumer_targets(sc),
            offsets_replication_factor: sc
                .cluster
                .config
                .get("offsets.topic.replication.factor")
                .and_then(|v| v.as_integer().or_else(|| v.as_str()?.parse().ok()))
                .map_or(3, |n| n.clamp(1, i64::from(u32::MAX)) as u32),
        }
    }
}

/// The target naming each consumer process, in creation order.
pub fn consumer_targets(sc: &Scenario) -> Vec<Target> {
    let mut assign = 0u32;
    let mut members: BTreeMap<&str, u32> = BTreeMap::new();
    let mut out = Vec::new();
    for c in &sc.consumers {
        for _ in 0..c.count {
            out.push(match &c.group {
                None => {
                    assign += 1;
                    Target::AssignConsumer(assign - 1)
                }
                Some(g) => {
                    let n = members.entry(g.as_str()).or_default();
                    *n += 1;
                    Target::Consumer { group: g.clone(), index: *n - 1 }
                }
            });
        }
    }
    out
}

/// A target names something that exists in the scenario.
fn check_target(t: &Target, topics: &BTreeMap<&str, u32>, clients: &ClientCounts) -> Result<(), String> {
    match t {
        Target::Leader { topic, partition } | Target::Follower { topic, partition } => match topics.get(topic.as_str()) {
            None => Err(format!("unknown topic `{topic}` (not in [[topics]])")),
            Some(&n) if *partition as i64 >= n as i64 => Err(format!("topic `{topic}` has {n} partitions")),
            Some(_) => Ok(()),
        },
        Target::Coordinator(g) if clients.brokers < clients.offsets_replication_factor => Err(format!(
            "`coordinator:{g}`: the offsets topic needs {} brokers (offsets.topic.replication.factor), the cluster has {}",
            clients.offsets_replication_factor, clients.brokers
        )),
        Target::Consumer { group, index } if !clients.consumers.contains(t) => {
            let members = clients.consumers.iter().filter(|c| matches!(c, Target::Consumer { group: g, .. } if g == group)).count();
            Err(if members == 0 {
                format!("`consumer:{group}/{index}`: no [[consumers]] entry has group = \"{group}\"")
            } else {
                format!("`consumer:{group}/{index}`: group `{group}` has {members} consumer process(es), numbered from 0")
            })
        }
        Target::Broker(n) if *n >= clients.brokers => {
            Err(format!("`broker:{n}`: the cluster has {} broker(s), numbered from 0", clients.brokers))
        }
        Target::Controller(n) if *n >= clients.controllers => {
            Err(format!("`controller:{n}`: the cluster has {} controller(s), numbered from 0", clients.controllers))
        }
        Target::Producer(n) if *n >= clients.producers => {
            Err(format!("`producer:{n}`: the scenario starts {} producer process(es), numbered from 0", clients.producers))
        }
        Target::AssignConsumer(n) if *n >= clients.assign_consumers() => Err(format!(
            "`consumer:{n}`: the scenario starts {} assign-mode consumer process(es), numbered from 0",
            clients.assign_consumers()
        )),
        _ => Ok(()),
    }
}

/// A kind can hit this target (disk faults need a server, client faults a client).
pub fn check_kind_target(kind: &FaultKind, t: &Target, clients: &ClientCounts) -> Result<(), String> {
    let client = matches!(t, Target::Producer(_) | Target::AssignConsumer(_) | Target::Consumer { .. });
    match kind {
        FaultKind::DiskEio | FaultKind::DiskFull | FaultKind::DiskDirFail if client => {
            Err(format!("`{t}` is a client: disk faults hit brokers and controllers"))
        }
        FaultKind::Shutdown if client => Err(format!("`{t}` is a client: shutdown stops brokers and controllers")),
        FaultKind::SlowConsumer => match t {
            Target::AssignConsumer(_) | Target::Consumer { .. } => Ok(()),
            Target::Random if !clients.consumers.is_empty() => Ok(()),
            Target::Random => Err("a random slow-consumer needs a consumer in [[consumers]]".into()),
            _ => Err(format!("slow-consumer targets a consumer (`consumer:N`, `consumer:GROUP/N` or `random`), not `{t}`")),
        },
        FaultKind::ClockJump => match t {
            Target::Producer(_) | Target::AssignConsumer(_) | Target::Consumer { .. } => Ok(()),
            Target::Random if clients.clients() > 0 => Ok(()),
            Target::Random => Err("a random clock-jump needs a producer or a consumer".into()),
            _ => Err(format!("clock-jump targets a client (`producer:N`, `consumer:N`, `consumer:GROUP/N` or `random`), not `{t}`")),
        },
        _ => Ok(()),
    }
}

/// `shapes` and `client_crashes` of `[faults] random` fit its kinds and the cluster.
fn check_random_options(r: &RandomFaults, clients: &ClientCounts) -> Result<(), (&'static str, String)> {
    if !r.shapes.is_empty() && !r.kinds.contains(&FaultKind::Partition) {
        return Err(("shapes", "`shapes` applies to random partition faults: add \"partition\" to kinds".into()));
    }
    if r.shapes.contains(&PartitionShape::Sets) && clients.brokers < 2 {
        return Err(("shapes", "shape \"sets\" splits the brokers in two: it needs at least 2 brokers".into()));
    }
    if let Some(Probability(p)) = r.client_crashes {
        if !(p.is_finite() && p > 0.0 && p <= 1.0) {
            return Err(("client_crashes", format!("client_crashes must be in (0, 1], got {p}")));
        }
        if !r.kinds.iter().any(|k| matches!(k, FaultKind::Crash | FaultKind::Restart)) {
            return Err(("client_crashes", "`client_crashes` applies to random crash and restart faults: add one to kinds".into()));
        }
        if clients.clients() == 0 {
            return Err(("client_crashes", "`client_crashes` needs a producer or a consumer to crash".into()));
        }
    }
    Ok(())
}

/// The kind-specific fields are set only on their kind, with sane values.
fn check_fault_options(f: &FaultAt) -> Result<(), (&'static str, String)> {
    let only = |field: &'static str, set: bool, kind: FaultKind| -> Result<(), (&'static str, String)> {
        if set && f.kind != kind {
            return Err((field, format!("`{field}` applies to kind = \"{kind}\" only")));
        }
        Ok(())
    };
    only("shape", f.shape.is_some(), FaultKind::Partition)?;
    only("sides", f.sides.is_some(), FaultKind::Partition)?;
    only("latency_ms", f.latency_ms.is_some(), FaultKind::Latency)?;
    only("rate", f.rate.is_some(), FaultKind::Loss)?;
    only("process_ms", f.process_ms.is_some(), FaultKind::SlowConsumer)?;
    only("jump_ms", f.jump_ms.is_some(), FaultKind::ClockJump)?;
    let shape = f.shape.unwrap_or(PartitionShape::Isolate);
    match (&f.sides, shape) {
        (Some(_), PartitionShape::Isolate | PartitionShape::Bridge | PartitionShape::Majority) => {
            return Err(("sides", "`sides` applies to shape = \"sets\" or \"one-way\" only".into()));
        }
        (None, PartitionShape::Sets) => {
            return Err(("sides", "shape = \"sets\" needs sides = [[targets…], [targets…]]".into()));
        }
        (Some(sides), _) if sides.len() != 2 || sides.iter().any(|s| s.is_empty()) => {
            return Err(("sides", format!("`sides` needs exactly two non-empty lists of targets, got {}", sides.len())));
        }
        _ => {}
    }
    if let Some([lo, hi]) = f.latency_ms {
        if lo > hi {
            return Err(("latency_ms", format!("latency_ms = [{lo}, {hi}] needs lo <= hi")));
        }
    }
    if let Some(Probability(r)) = f.rate {
        if !(r.is_finite() && r > 0.0 && r <= 1.0) {
            return Err(("rate", format!("rate must be in (0, 1], got {r}")));
        }
    }
    if f.kind == FaultKind::ClockJump && f.jump_ms.is_none() {
        return Err(("jump_ms", "kind = \"clock-jump\" needs jump_ms (milliseconds, may be negative)".into()));
    }
    Ok(())
}

/// Turns a toml/serde error into file, line and field.
fn parse_error(text: &str, file: &str, e: &toml::de::Error) -> ScenarioError {
    let message = e.message().trim().to_string();
    let start = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    // serde names the field in "unknown field `x`" / "missing field `x`";
    // otherwise the span points at a value and its key stands before it.
    let named = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split_once('`'))
        .map(|(f, _)| f.to_string());
    let field = named.or_else(|| key_before(text, start));
    ScenarioError { file: file.to_string(), line, field, message }
}

/// The key of the last `key =` on the line that holds byte `pos`, before it.
fn key_before(text: &str, pos: usize) -> Option<String> {
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..pos];
    let eq = before.rfind('=')?;
    let key = before[..eq].trim_end();
    let key_start = key.rfind(|c: char| c.is_whitespace() || c == '{' || c == ',').map_or(0, |i| i + 1);
    let key = key[key_start..].trim_matches('"');
    (!key.is_empty()).then(|| key.to_string())
}

/// Best-effort line of `field` inside the `nth` section whose header line
/// starts with `section` (e.g. `[[producers]]`, `[run]`, `[faults`): the
/// first line after that header that assigns `field` (also inside an inline
/// table). Falls back to the header line, then to line 1.
fn locate(text: &str, section: &str, nth: usize, field: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(section))
        .nth(nth)
        .map(|(i, _)| i);
    let Some(h) = header else { return 1 };
    let assigns = |l: &str| {
        let code = l.split('#').next().unwrap_or("");
        code.match_indices(field).any(|(i, _)| {
            let before_ok = code[..i].chars().last().is_none_or(|c| c.is_whitespace() || c == '{' || c == ',');
            let after = code[i + field.len()..].trim_start();
            before_ok && after.starts_with('=')
        })
    };
    for (i, l) in lines.iter().enumerate().skip(h) {
        // Any later header ends the section, except sub-tables when
        // `section` is a prefix like `[faults` (then `[faults.random]` continues).
        let t = l.trim_start();
        if i > h && t.starts_with('[') && (section.ends_with(']') || !t.starts_with(section)) {
            break;
        }
        if assigns(l) {
            return i + 1;
        }
    }
    h + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_strings_round_trip() {
        for s in [
            "broker:1",
            "all-brokers",
            "controller:0",
            "active-controller",
            "leader:events/0",
            "follower:my/topic/2",
            "coordinator:g1",
            "producer:3",
            "consumer:g1/2",
            "random",
        ] {
            let t: Target = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        for bad in ["broker", "broker:x", "leader:events", "leader:/0", "consumer:g1", "nobody:1", "coordinator:"] {
            assert!(bad.parse::<Target>().is_err(), "{bad} parsed");
        }
    }

    /// `shutdown` (a graceful broker stop) is a scenario kind for servers only.
    #[test]
    fn shutdown_kind_parses_and_targets_servers_only() {
        let kind: FaultKind = serde_json::from_value(serde_json::json!("shutdown")).unwrap();
        assert_eq!((kind.clone(), kind.to_string()), (FaultKind::Shutdown, "shutdown".to_string()));
        let counts = ClientCounts {
            brokers: 3,
            controllers: 1,
            producers: 1,
            consumers: vec![Target::AssignConsumer(0)],
            offsets_replication_factor: 3,
        };
        for ok in [Target::Broker(0), Target::Controller(0), Target::AllBrokers, Target::Random] {
            assert!(check_kind_target(&kind, &ok, &counts).is_ok(), "{ok}");
        }
        let e = check_kind_target(&kind, &Target::Producer(0), &counts).unwrap_err();
        assert!(e.contains("client"), "{e}");
    }

    /// Every scenario file in the repository survives load → write → load.
    #[test]
    fn scenario_files_round_trip_through_to_toml() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut dirs = vec![root];
        let mut files = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("readable scenarios dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|x| x == "toml") {
                    let mut loaded = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                    loaded.path = None;
                    let text = loaded.to_toml().expect("a scenario serialises");
                    let again = Scenario::from_str(&text, "written").unwrap_or_else(|e| panic!("{e}\n{text}"));
                    assert_eq!(again, loaded, "{}:\n{text}", path.display());
                    files += 1;
                }
            }
        }
        assert!(files > 0, "no scenario files found");
    }

    /// Fields left at their defaults and `None`s round-trip too.
    #[test]
    fn optional_fields_round_trip() {
        let text = r#"
name = "x"
[cluster]
brokers = 3
[[topics]]
name = "t"
partitions = 1
replication_factor = 3
[[producers]]
topic = "t"
rate_per_s = 2.5
config = { "acks" = "1", "retries" = 3, "x.y" = true }
resend_unacked_on_restart = true
[[consumers]]
group = "g"
topics = ["t"]
commit = "before-process"
[[consumers]]
count = 2
topics = ["t"]
[faults]
random = { kinds = ["crash", "disk-eio", "partition"], every_ms = [1, 2], swarm = true, shapes = ["one-way", "sets"], client_crashes = 0.5 }
buggify = true
[[faults.at]]
at_ms = 5
kind = "power-loss"
target = "leader:t/0"
[[faults.at]]
at_ms = 6
kind = "slow-consumer"
target = "consumer:1"
duration_ms = 7
process_ms = 300
[[faults.at]]
at_ms = 6
kind = "partition"
target = "broker:0"
shape = "sets"
sides = [["broker:0", "producer:0"], ["broker:1", "broker:2"]]
[[faults.at]]
at_ms = 7
kind = "latency"
target = "random"
latency_ms = [10, 20]
[[faults.at]]
at_ms = 7
kind = "loss"
target = "random"
rate = 0.25
[[faults.at]]
at_ms = 8
kind = "clock-jump"
target = "producer:0"
jump_ms = -60000
[run]
duration_ms = 10
heal_ms = 9
[expect]
verdict = "violation"
anomalies = ["lost-write"]
"#;
        let sc = Scenario::from_str(text, "t.toml").unwrap();
        let written = sc.to_toml().unwrap();
        assert_eq!(Scenario::from_str(&written, "w.toml").unwrap(), sc, "{written}");
    }

    #[test]
    fn key_before_finds_inline_table_keys() {
        let text = "random = { kinds = [\"crash\"], every_ms = \"x\" }";
        let pos = text.find("\"x\"").unwrap();
        assert_eq!(key_before(text, pos).as_deref(), Some("every_ms"));
    }
}
