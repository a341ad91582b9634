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
}

/// One random fault every `every_ms = [lo, hi]` until `heal_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    pub kinds: Vec<FaultKind>,
    pub every_ms: [u64; 2],
}

/// `[[faults.at]]`: one fault at a fixed time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAt {
    pub at_ms: u64,
    pub kind: FaultKind,
    pub target: Target,
    /// How long the fault lasts; `None`: until heal.
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// The fault kinds of DESIGN.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Crash,
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
    Random,
}

/// The target forms, for error messages.
pub const TARGET_FORMS: &str = "broker:N, all-brokers, controller:N, active-controller, leader:TOPIC/P, \
follower:TOPIC/P, coordinator:GROUP, producer:N, consumer:GROUP/N, random";

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
fn default_keys() -> u32 {
    DEFAULT_PRODUCER_KEYS
}
fn default_os_writeback_ms() -> u64 {
    DEFAULT_OS_WRITEBACK_MS
}
fn default_final_poll_ms() -> u64 {
    DEFAULT_FINAL_POLL_MS
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
        }
        if let Some(r) = &self.faults.random {
            let [lo, hi] = r.every_ms;
            if lo == 0 || lo > hi {
                return Err(err("[faults", 0, "every_ms", format!("every_ms = [{lo}, {hi}] needs 0 < lo <= hi")));
            }
        }
        for (i, f) in self.faults.at.iter().enumerate() {
            if let Target::Leader { topic, partition } | Target::Follower { topic, partition } = &f.target {
                match topics.get(topic.as_str()) {
                    None => return Err(err("[[faults.at]]", i, "target", unknown_topic(topic))),
                    Some(&n) if *partition as i64 >= n as i64 => {
                        return Err(err("[[faults.at]]", i, "target", format!("topic `{topic}` has {n} partitions")));
                    }
                    Some(_) => {}
                }
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
[[consumers]]
group = "g"
topics = ["t"]
commit = "before-process"
[faults]
random = { kinds = ["crash", "disk-eio"], every_ms = [1, 2] }
[[faults.at]]
at_ms = 5
kind = "power-loss"
target = "leader:t/0"
[[faults.at]]
at_ms = 6
kind = "pause"
target = "consumer:g/1"
duration_ms = 7
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
