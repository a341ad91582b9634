//! Group-member consumer processes (`[[consumers]]` with `group`): each
//! subscribes to its topics, records every rebalance it goes through, and
//! polls, processes and commits as the scenario's `commit` mode says:
//!
//! - `after-process`: record the poll, process, then commitSync the next
//!   offsets of what was read (explicit offset map) — at least once;
//! - `before-process`: commitSync first, then process — at most once: a
//!   crash between the two loses the records for the group;
//! - `auto`: enable.auto.commit (the client commits the previous poll's
//!   positions every auto.commit.interval.ms and before a rebalance);
//! - `async`: process, then commitAsync; the commit is recorded when its
//!   callback runs (a later poll, commit or close).
//!
//! Unless the scenario's config sets it, enable.auto.commit is on for
//! `auto` only. A commit's outcome follows Kafka's classes: CommitFailed
//! and rebalance-in-progress (and other non-retriable errors) are definite
//! failures, timeouts and lost connections unknown. After every poll the
//! member's generation and assignment go to its [`ClientControl`] for the
//! liveness watch.

use super::consumer::{record_poll, POLL_BACKOFF_MS, POLL_TIMEOUT_MS};
use super::{tp_key, ClientControl, Event, Recorder, SendOutcome};
use crate::scenario::CommitMode;
use ksim_broker::client::{ClientError, Consumer, ConsumerConfig, ConsumerRecord, OffsetAndMetadata};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long a stopping member waits for close (final commit, LeaveGroup).
pub const CLOSE_TIMEOUT_MS: u64 = 5_000;

pub struct GroupConsumerSpec {
    pub process: u64,
    pub group: String,
    pub topics: Vec<String>,
    pub config: BTreeMap<String, String>,
    pub commit: CommitMode,
    /// Simulated processing time per non-empty poll.
    pub process_ms: u64,
    pub stop_ms: u64,
    pub control: Arc<ClientControl>,
}

/// The member's Kafka config: the scenario's, plus group.id and the commit
/// mode's enable.auto.commit unless the scenario set it.
fn config_of(spec: &GroupConsumerSpec) -> BTreeMap<String, String> {
    let mut config = spec.config.clone();
    config.insert("group.id".into(), spec.group.clone());
    config.entry("enable.auto.commit".into()).or_insert_with(|| (spec.commit == CommitMode::Auto).to_string());
    config
}

/// The next offset to consume in every partition `records` come from.
fn next_offsets(records: &[ConsumerRecord]) -> BTreeMap<(String, i32), i64> {
    let mut next = BTreeMap::new();
    for r in records {
        let o = next.entry((r.topic.clone(), r.partition)).or_insert(r.offset + 1);
        *o = (*o).max(r.offset + 1);
    }
    next
}

/// A commit's outcome in the history's classes.
fn commit_outcome(result: &Result<(), ClientError>) -> SendOutcome {
    match result {
        Ok(()) => SendOutcome::Ok(None),
        Err(e @ (ClientError::CommitFailed(_) | ClientError::RebalanceInProgress)) => SendOutcome::Fail(e.to_string()),
        Err(e) if e.is_retriable() => SendOutcome::Info(e.to_string()),
        Err(e) => SendOutcome::Fail(e.to_string()),
    }
}

fn offset_map(next: &BTreeMap<(String, i32), i64>) -> BTreeMap<(String, i32), OffsetAndMetadata> {
    next.iter()
        .map(|(tp, &offset)| (tp.clone(), OffsetAndMetadata { offset, leader_epoch: None, metadata: String::new() }))
        .collect()
}

fn commit_event(process: u64, group: String, t_ms: u64, next: &BTreeMap<(String, i32), i64>, outcome: SendOutcome) -> Event {
    Event::Commit {
        process,
        t_ms,
        group,
        offsets: next.iter().map(|((t, p), o)| (tp_key(t, *p), *o)).collect(),
        outcome,
    }
}

async fn commit_sync(spec: &GroupConsumerSpec, consumer: &mut Consumer, rec: &Recorder, next: &BTreeMap<(String, i32), i64>) {
    if next.is_empty() {
        return;
    }
    let result = consumer.commit_sync_offsets(offset_map(next)).await;
    rec.record(commit_event(spec.process, spec.group.clone(), rec.now_ms(), next, commit_outcome(&result)));
}

fn commit_async(spec: &GroupConsumerSpec, consumer: &mut Consumer, rec: &Arc<Recorder>, next: BTreeMap<(String, i32), i64>) {
    if next.is_empty() {
        return;
    }
    let offsets = offset_map(&next);
    let (rec, process, group) = (rec.clone(), spec.process, spec.group.clone());
    let callback = Box::new(move |result: Result<(), ClientError>| {
        rec.record(commit_event(process, group, rec.now_ms(), &next, commit_outcome(&result)));
    });
    consumer.commit_async(Some(offsets), Some(callback));
}

/// Records the rebalances the last poll went through and returns the
/// member's view after them (`None`: in no generation).
fn record_rebalances(
    spec: &GroupConsumerSpec,
    consumer: &mut Consumer,
    rec: &Recorder,
    mut joined: Option<(i64, Vec<String>)>,
) -> Option<(i64, Vec<String>)> {
    for e in consumer.take_rebalance_events() {
        let key = |tps: &[(String, i32)]| tps.iter().map(|(t, p)| tp_key(t, *p)).collect::<Vec<_>>();
        let generation = i64::from(e.generation_id);
        let assigned = key(&e.owned);
        let mut revoked = key(&e.revoked);
        revoked.extend(key(&e.lost));
        rec.record(Event::Rebalance {
            process: spec.process,
            t_ms: rec.now_ms(),
            group: spec.group.clone(),
            generation,
            assigned: assigned.clone(),
            revoked,
        });
        joined = (generation >= 0).then_some((generation, assigned));
    }
    if consumer.group_metadata().is_none_or(|m| m.generation_id < 0) {
        joined = None;
    }
    joined
}

/// The main-phase loop of one group member.
pub async fn run(spec: GroupConsumerSpec, bootstrap: Vec<SocketAddr>, rec: Arc<Recorder>) {
    spec.control.set_membership(None);
    let config = match ConsumerConfig::from_map(&config_of(&spec)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("consumer {}: bad config: {e}", spec.process);
            return;
        }
    };
    let mut consumer = Consumer::new(bootstrap, config.with_clock(spec.control.clock.clone()));
    consumer.subscribe(spec.topics.clone());
    rec.record(Event::Subscribe {
        process: spec.process,
        t_ms: rec.now_ms(),
        group: spec.group.clone(),
        topics: spec.topics.clone(),
    });
    let mut joined = None;
    while rec.now_ms() < spec.stop_ms {
        let polled = consumer.poll(Duration::from_millis(POLL_TIMEOUT_MS)).await;
        joined = record_rebalances(&spec, &mut consumer, &rec, joined);
        spec.control.set_membership(joined.clone());
        match polled {
            Ok(records) => {
                let next = next_offsets(&records);
                if spec.commit == CommitMode::BeforeProcess {
                    commit_sync(&spec, &mut consumer, &rec, &next).await;
                }
                record_poll(&rec, spec.process, &records);
                if spec.process_ms > 0 && !records.is_empty() {
                    tokio::time::sleep(Duration::from_millis(spec.process_ms)).await;
                }
                match spec.commit {
                    CommitMode::AfterProcess => commit_sync(&spec, &mut consumer, &rec, &next).await,
                    CommitMode::Async => commit_async(&spec, &mut consumer, &rec, next),
                    CommitMode::BeforeProcess | CommitMode::Auto | CommitMode::Txn => {}
                }
            }
            Err(e) => {
                tracing::debug!("consumer {}: poll failed: {e}", spec.process);
                tokio::time::sleep(Duration::from_millis(POLL_BACKOFF_MS)).await;
            }
        }
        // slow-consumer: processing stalls after every poll, data or not.
        let stall_ms = spec.control.stall_ms();
        if stall_ms > 0 {
            tokio::time::sleep(Duration::from_millis(stall_ms)).await;
        }
    }
    // Stop: leave the group (async commit callbacks run here too).
    let _ = tokio::time::timeout(Duration::from_millis(CLOSE_TIMEOUT_MS), consumer.close()).await;
    spec.control.set_membership(None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, partition: i32, offset: i64) -> ConsumerRecord {
        ConsumerRecord { topic: topic.into(), partition, offset, key: None, value: None, timestamp: 0 }
    }

    #[test]
    fn committed_offsets_are_one_past_the_last_record_read_per_partition() {
        let next = next_offsets(&[record("t", 0, 4), record("t", 1, 9), record("t", 0, 5)]);
        assert_eq!(next, BTreeMap::from([(("t".to_string(), 0), 6), (("t".to_string(), 1), 10)]));
        assert!(next_offsets(&[]).is_empty());
    }

    #[test]
    fn commit_failed_and_rebalance_in_progress_are_definite_timeouts_unknown() {
        assert_eq!(commit_outcome(&Ok(())), SendOutcome::Ok(None));
        assert!(matches!(commit_outcome(&Err(ClientError::CommitFailed("gen".into()))), SendOutcome::Fail(_)));
        assert!(matches!(commit_outcome(&Err(ClientError::RebalanceInProgress)), SendOutcome::Fail(_)));
        assert!(matches!(commit_outcome(&Err(ClientError::Timeout("commit".into()))), SendOutcome::Info(_)));
    }

    #[test]
    fn auto_commit_is_on_only_for_the_auto_mode_unless_the_scenario_sets_it() {
        let spec = |commit, config: &[(&str, &str)]| GroupConsumerSpec {
            process: 1,
            group: "g".into(),
            topics: vec!["t".into()],
            config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            commit,
            process_ms: 0,
            stop_ms: 0,
            control: Arc::new(ClientControl::default()),
        };
        let auto = |s: &GroupConsumerSpec| config_of(s)["enable.auto.commit"].clone();
        assert_eq!(auto(&spec(CommitMode::Auto, &[])), "true");
        assert_eq!(auto(&spec(CommitMode::AfterProcess, &[])), "false");
        assert_eq!(auto(&spec(CommitMode::AfterProcess, &[("enable.auto.commit", "true")])), "true");
        assert_eq!(config_of(&spec(CommitMode::Async, &[]))["group.id"], "g");
    }
}
