//! Checkers: one file per anomaly of DESIGN.md's catalogue, each a pure
//! function from a history to the anomalies it finds (Jepsen's Kafka
//! checker is the model; the code is ours).
//!
//! # Layout
//!
//! - [`lost_write`]: acknowledged values missing below what readers passed.
//! - [`unseen`]: acknowledged values never read at all.
//! - [`duplicate`]: one value read at two offsets of a partition.
//! - [`inconsistent_offsets`]: two values at one offset (reads and acks).
//! - [`poll_order`]: consumers' reads skip or go back (between and
//!   within polls).
//! - [`nonmonotonic_send`]: a producer's later send lands before its
//!   earlier one (between and within ops).
//! - [`key_order`]: sends of one key, one after the other in real time,
//!   land out of order (extension key `key-order`).
//! - [`aborted_read`]: a read of a failed send or an aborted transaction.
//! - [`precommitted_read`]: a transaction read its own write.
//! - [`txn_cycles`]: `g0` / `g1c` dependency cycles between transactions
//!   (Tarjan's strongly connected components).
//! - [`eos`]: consume-transform-produce output is not the input, once.
//! - [`ownership`]: a partition with two owners in a generation, or read
//!   by a member that does not own it.
//! - [`assignment`]: the final generation leaves a partition unowned.
//! - [`committed_ahead`]: a commit beyond the consumer's position.
//! - [`hanging_txn`]: a last stable offset stuck below the log end.
//! - [`liveness`]: the final reader did not reach every end (run-level).
//! - [`index`]: the version orders and writers several checkers share.
//!
//! Broker-side checkers judge the run's observations (see
//! [`crate::observations`]) instead of the client history:
//!
//! - [`replica_divergence`]: replicas disagree below both their HWs.
//! - [`hw_regression`]: a replica's HW goes back within one process life.
//! - [`epoch_regression`]: an accepted leader epoch, or the epochs along a
//!   replica's log, go backwards.
//! - [`leader_per_epoch`]: two brokers lead one partition in one epoch.
//! - [`replica_model`]: each replica's log rebuilt from observations.

pub mod aborted_read;
pub mod assignment;
pub mod committed_ahead;
pub mod duplicate;
pub mod eos;
pub mod epoch_regression;
pub mod hanging_txn;
pub mod hw_regression;
pub mod inconsistent_offsets;
pub mod index;
pub mod key_order;
pub mod leader_per_epoch;
pub mod liveness;
pub mod lost_write;
pub mod nonmonotonic_send;
pub mod ownership;
pub mod poll_order;
pub mod precommitted_read;
pub mod replica_divergence;
pub mod replica_model;
#[cfg(test)]
mod same_results;
pub mod txn_cycles;
pub mod unseen;

use crate::history::History;
use crate::observations::Observed;
use serde::Serialize;
use std::collections::BTreeMap;

/// Every anomaly key of DESIGN.md's catalogue (scenarios may name any).
pub const CATALOGUE: &[&str] = &[
    "lost-write",
    "unseen",
    "duplicate",
    "inconsistent-offsets",
    "aborted-read",
    "precommitted-read",
    "poll-skip",
    "nonmonotonic-poll",
    "int-poll-skip",
    "int-nonmonotonic-poll",
    "nonmonotonic-send",
    "int-nonmonotonic-send",
    "key-order",
    "g0",
    "g1c",
    "eos-violation",
    "ownership",
    "assignment-incomplete",
    "committed-ahead",
    "replica-divergence",
    "hw-regression",
    "epoch-regression",
    "leader-per-epoch",
    "hanging-txn",
    "liveness",
];

/// The keys this build checks; every one appears in a result's counts.
/// The whole catalogue: group and transaction keys count 0 on histories
/// without group or txn ops, and `liveness` plus the broker-side keys
/// count 0 on a stored history (`ksim check`).
pub const IMPLEMENTED: &[&str] = CATALOGUE;

/// How many example values a detail line lists at most.
pub const DETAIL_EXAMPLES_MAX: usize = 8;

/// One anomaly found in a history. In JSON, a `duplicate` also carries
/// `processes` (the producer sessions that sent its value) and
/// `across-producer-sessions` (more than one did; see [`duplicate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Catalogue key.
    pub key: &'static str,
    /// "topic/partition".
    pub partition: String,
    pub value: Option<i64>,
    pub offset: Option<i64>,
    /// One line for a human.
    pub detail: String,
}

impl Serialize for Anomaly {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let sessions = duplicate::sessions(self);
        let mut st = s.serialize_struct("Anomaly", if sessions.is_some() { 7 } else { 5 })?;
        st.serialize_field("key", self.key)?;
        st.serialize_field("partition", &self.partition)?;
        st.serialize_field("value", &self.value)?;
        st.serialize_field("offset", &self.offset)?;
        st.serialize_field("detail", &self.detail)?;
        if let Some(processes) = sessions {
            st.serialize_field("processes", &processes)?;
            st.serialize_field("across-producer-sessions", &(processes.len() > 1))?;
        }
        st.end()
    }
}

impl Anomaly {
    pub fn new(key: &'static str, partition: &str, value: Option<i64>, offset: Option<i64>, detail: String) -> Anomaly {
        Anomaly { key, partition: partition.to_string(), value, offset, detail }
    }
}

/// All checkers' findings for one history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckResult {
    /// Anomalies per key; every implemented key is present (0 when none).
    pub counts: BTreeMap<String, u64>,
    /// Grouped by checker, in the order [`check_run`] runs them.
    pub anomalies: Vec<Anomaly>,
}

impl CheckResult {
    /// Groups anomalies by key, with every implemented key counted.
    pub fn from_anomalies(anomalies: Vec<Anomaly>) -> CheckResult {
        let mut counts: BTreeMap<String, u64> = IMPLEMENTED.iter().map(|k| (k.to_string(), 0)).collect();
        for a in &anomalies {
            *counts.entry(a.key.to_string()).or_default() += 1;
        }
        CheckResult { counts, anomalies }
    }

    /// Total anomalies of every key.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// Runs every history checker (a stored history has no broker
/// observations: the broker-side keys count 0).
pub fn check_all(h: &History) -> CheckResult {
    check_run(h, &[])
}

/// Runs every implemented checker on a run's history and broker-side
/// observations.
pub fn check_run(h: &History, obs: &[Observed]) -> CheckResult {
    let ix = index::Index::build(h);
    let mut all = Vec::new();
    for (_, check) in HISTORY_CHECKERS {
        all.extend(check(h, &ix));
    }
    all.extend(replica_divergence::check(obs));
    all.extend(hw_regression::check(obs));
    all.extend(epoch_regression::check(obs));
    all.extend(leader_per_epoch::check(obs));
    CheckResult::from_anomalies(all)
}

/// A history checker, given the history and its shared index.
pub type HistoryChecker = fn(&History, &index::Index<'_>) -> Vec<Anomaly>;

/// Every history checker by module name, in the order [`check_run`] runs
/// them (`ksim bench` times each).
pub const HISTORY_CHECKERS: &[(&str, HistoryChecker)] = &[
    ("lost_write", |_, ix| lost_write::check(ix)),
    ("duplicate", |_, ix| duplicate::check(ix)),
    ("inconsistent_offsets", |_, ix| inconsistent_offsets::check(ix)),
    ("unseen", |_, ix| unseen::check(ix)),
    ("poll_order", poll_order::check),
    ("nonmonotonic_send", nonmonotonic_send::check),
    ("key_order", key_order::check),
    ("aborted_read", aborted_read::check),
    ("precommitted_read", precommitted_read::check),
    ("txn_cycles", txn_cycles::check),
    ("eos", eos::check),
    ("ownership", |h, _| ownership::check(h)),
    ("assignment", assignment::check),
    ("committed_ahead", committed_ahead::check),
    ("hanging_txn", |h, _| hanging_txn::check(h)),
];

/// Per partition (by [`index::Part`]), every value any ok poll read,
/// sorted and distinct (computed once per index: `lost-write` and
/// `unseen` share it).
pub(crate) fn values_read<'b>(ix: &'b index::Index<'_>) -> &'b [Vec<i64>] {
    ix.values_read.get_or_init(|| read_values(ix))
}

fn read_values(ix: &index::Index<'_>) -> Vec<Vec<i64>> {
    let mut read = ix.per_part::<i64>();
    for p in ix.ok_polls() {
        read[p.part as usize].extend(p.reads.iter().map(|&(_, v)| v));
    }
    for values in &mut read {
        values.sort_unstable();
        values.dedup();
    }
    read
}

/// One acknowledged (ok) send's value, as [`acknowledged`] sums it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acked {
    pub value: i64,
    /// Its first known offset (a value acknowledged twice keeps it).
    pub offset: Option<i64>,
    /// When its last acknowledgement completed.
    pub t_ms: u64,
}

/// Per partition (by [`index::Part`]), the acknowledged values in value
/// order (computed once per index, as [`values_read`]).
pub(crate) fn acknowledged<'b>(ix: &'b index::Index<'_>) -> &'b [Vec<Acked>] {
    ix.acknowledged.get_or_init(|| acknowledged_values(ix))
}

fn acknowledged_values(ix: &index::Index<'_>) -> Vec<Vec<Acked>> {
    let mut acked = ix.per_part::<Acked>();
    for s in ix.ok_sends() {
        acked[s.part as usize].push(Acked { value: s.value, offset: s.offset, t_ms: s.t_ms });
    }
    for values in &mut acked {
        // Stable: a value's acknowledgements stay in history order.
        values.sort_by_key(|a| a.value);
        values.dedup_by(|later, first| {
            if later.value != first.value {
                return false;
            }
            first.offset = first.offset.or(later.offset);
            first.t_ms = later.t_ms;
            true
        });
    }
    acked
}

/// Per partition (by [`index::Part`]), (key, seen) pairs: a key (an
/// offset or a value) and something seen with it. Sorted only at the end
/// ([`conflicts`]), which is far cheaper than a set per key on
/// million-op histories.
pub(crate) type SeenWith = Vec<Vec<(i64, i64)>>;

/// Every (partition, key, distinct things seen, ascending) where a key was
/// seen with more than one thing, in partition then key order.
pub(crate) fn conflicts<'a>(ix: &index::Index<'a>, map: SeenWith) -> Vec<(&'a str, i64, Vec<i64>)> {
    let mut out = Vec::new();
    for (part, mut pairs) in map.into_iter().enumerate() {
        pairs.sort_unstable();
        pairs.dedup();
        for group in pairs.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
            out.push((ix.name(part as index::Part), group[0].0, group.iter().map(|x| x.1).collect()));
        }
    }
    out
}

/// "a, b, c and N more" for detail lines.
pub(crate) fn examples<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(DETAIL_EXAMPLES_MAX).map(|i| i.to_string()).collect();
    let more = items.len().saturating_sub(DETAIL_EXAMPLES_MAX);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
pub(crate) mod vectors {
    //! Helpers for the checkers' unit vectors.
    use crate::history::{History, Op, OpType};

    pub const P: &str = "events/0";

    pub fn ok(value: i64, offset: i64) -> Op {
        Op::send(1, 0, OpType::Ok, P, value, Some(offset))
    }

    pub fn poll(reads: &[(i64, i64)]) -> Op {
        Op::poll_ok(2, 0, vec![(P.to_string(), reads.to_vec())])
    }

    pub fn history(ops: Vec<Op>) -> History {
        History { ops }
    }

    /// The shared index of a vector history.
    pub fn ix(h: &History) -> super::index::Index<'_> {
        super::index::Index::build(h)
    }

    pub fn keys(anomalies: &[super::Anomaly]) -> Vec<(&'static str, Option<i64>, Option<i64>)> {
        anomalies.iter().map(|a| (a.key, a.value, a.offset)).collect()
    }
}

#[cfg(test)]
pub(crate) mod obs_vectors {
    //! Helpers for the broker-side checkers' unit vectors (partition t/0).
    use crate::observations::Observed;
    use ksim_broker::observe::{BatchMark, ObsEvent, Observation};

    pub fn ev(broker: i32, event: ObsEvent) -> Observed {
        Observed { t_ms: 0, obs: Observation { broker, incarnation: 1, topic: "t".into(), partition: 0, event } }
    }

    pub fn mark(base: i64, last: i64, epoch: i32, crc: u32) -> BatchMark {
        BatchMark { base_offset: base, last_offset: last, leader_epoch: epoch, crc }
    }

    /// Batches as (base, last, epoch, crc).
    pub fn append(broker: i32, batches: &[(i64, i64, i32, u32)]) -> Observed {
        ev(broker, ObsEvent::Append { batches: batches.iter().map(|&(b, l, e, c)| mark(b, l, e, c)).collect() })
    }

    pub fn hw(broker: i32, value: i64) -> Observed {
        ev(broker, ObsEvent::Hw { value })
    }
}

#[cfg(test)]
mod tests {
    use super::vectors::*;
    use super::*;

    #[test]
    fn every_implemented_key_is_counted_and_in_the_catalogue() {
        let r = check_all(&History::default());
        assert_eq!(r.counts.len(), IMPLEMENTED.len());
        assert!(r.counts.values().all(|&c| c == 0));
        assert!(IMPLEMENTED.iter().all(|k| CATALOGUE.contains(k)));
    }

    #[test]
    fn offset_reuse_after_acks_1_failover_shows_lost_write_unseen_inconsistent_offsets_and_a_nonmonotonic_send() {
        // Value 2 acknowledged at offset 1, then a new leader put 3 at offset 1
        // (the same producer's later send landed at its earlier one's offset).
        let h = history(vec![ok(1, 0), ok(2, 1), ok(3, 1), ok(4, 2), poll(&[(0, 1), (1, 3), (2, 4)])]);
        let r = check_all(&h);
        assert_eq!(r.counts["lost-write"], 1);
        assert_eq!(r.counts["unseen"], 1);
        assert_eq!(r.counts["inconsistent-offsets"], 1);
        assert_eq!(r.counts["nonmonotonic-send"], 1);
        assert_eq!(r.counts["duplicate"], 0);
        assert_eq!(r.total(), 4);
    }
}
