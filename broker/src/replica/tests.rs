//! The partition replication state machine, driven directly (no network):
//! a leader and its followers exchange what Fetch would carry.

use super::*;
use crate::config::Settings;
use crate::log::batch::tests::batch;
use crate::log::LogConfig;
use crate::storage::{ManualClock, SimDisk};
use kafka_protocol::records::Compression;
use std::sync::Arc;

const TOPIC: &str = "t";

fn state(leader: i32, isr: &[i32], leader_epoch: i32, partition_epoch: i32) -> PartitionState {
    PartitionState { partition: 0, replicas: vec![1, 2, 3], isr: isr.to_vec(), leader, leader_epoch, partition_epoch }
}

fn replica(broker_id: i32, min_isr: &str, st: PartitionState) -> Partition {
    let disk = SimDisk::with_clock(5_000, Arc::new(ManualClock::new()));
    let config = LogConfig { segment_bytes: 1 << 20, index_interval_bytes: 4096, flush_messages: None, flush_ms: None };
    let log = Log::open(Arc::new(disk), &format!("/data/{TOPIC}-0-b{broker_id}"), config).expect("open log");
    let settings = TopicSettings::resolve(&Settings::from_pairs([("min.insync.replicas", min_isr)]), &Settings::default());
    Partition::new(TOPIC, 0, broker_id, log, settings, st, 0, None)
}

fn produce(p: &mut Partition, n: usize, acks: i16) -> PResult<AppendInfo> {
    p.append_as_leader(&batch(n, "v", Compression::None), acks, 0)
}

/// One follower fetch round: the follower asks from its log end, appends
/// what the leader returns and takes its HW.
fn replicate(leader: &mut Partition, follower: &mut Partition, now_ms: u64) {
    let (offset, epoch) = follower.follower_fetch_position();
    let data = leader
        .read_for_follower(follower.broker_id, offset, epoch, leader.state.leader_epoch, usize::MAX, now_ms)
        .expect("follower fetch");
    if let Some((e, end)) = data.diverging {
        follower.truncate_on_divergence(e, end).expect("truncate");
        return;
    }
    follower.append_as_follower(&data.records, data.high_watermark, now_ms).expect("follower append");
}

#[test]
fn hw_is_the_minimum_log_end_over_the_isr() {
    let mut l = replica(1, "1", state(1, &[1, 2, 3], 0, 0));
    let mut f2 = replica(2, "1", state(1, &[1, 2, 3], 0, 0));
    let f3 = replica(3, "1", state(1, &[1, 2, 3], 0, 0));
    produce(&mut l, 3, 1).unwrap();
    assert_eq!(l.high_watermark, 0, "no follower has fetched yet");
    replicate(&mut l, &mut f2, 10);
    replicate(&mut l, &mut f2, 20);
    assert_eq!(l.high_watermark, 0, "follower 3 is in the ISR and has nothing");
    assert_eq!(f3.log_end_offset(), 0);
    // A leader's HW never moves backwards even when the ISR changes.
    l.apply_state(state(1, &[1, 2], 0, 1), 30);
    assert_eq!(l.high_watermark, 3);
    replicate(&mut l, &mut f2, 40);
    assert_eq!(f2.high_watermark, 3, "the follower learns the HW on its next fetch");
}

#[test]
fn acks_all_is_refused_when_the_isr_is_below_min_insync_replicas() {
    let mut l = replica(1, "2", state(1, &[1], 0, 0));
    assert_eq!(produce(&mut l, 1, -1).unwrap_err(), ResponseError::NotEnoughReplicas);
    assert_eq!(l.log_end_offset(), 0, "nothing appended");
    // acks=1 still appends (min.insync.replicas only applies to acks=all) ...
    produce(&mut l, 1, 1).unwrap();
    assert_eq!(l.log_end_offset(), 1);
    // ... but the HW does not advance under min ISR (KIP-966), so nothing
    // the ISR cannot make durable is visible to consumers.
    assert_eq!(l.high_watermark, 0);
    assert!(l.read_for_consumer(0, 0, usize::MAX).unwrap().records.is_empty());
}

#[test]
fn acks_all_fails_after_append_when_the_isr_shrinks_meanwhile() {
    let mut l = replica(1, "2", state(1, &[1, 2], 0, 0));
    let info = produce(&mut l, 2, -1).unwrap();
    assert_eq!(l.acks_all_status(info.last_offset, 0), None, "waiting for follower 2");
    l.apply_state(state(1, &[1], 0, 1), 10);
    assert_eq!(l.acks_all_status(info.last_offset, 0), Some(Err(ResponseError::NotEnoughReplicasAfterAppend)));
}

#[test]
fn acks_all_completes_once_the_isr_has_the_write() {
    let mut l = replica(1, "2", state(1, &[1, 2], 0, 0));
    let mut f = replica(2, "2", state(1, &[1, 2], 0, 0));
    let info = produce(&mut l, 2, -1).unwrap();
    replicate(&mut l, &mut f, 5);
    assert_eq!(l.acks_all_status(info.last_offset, 0), None, "follower has it, leader does not know yet");
    replicate(&mut l, &mut f, 6);
    assert_eq!(l.acks_all_status(info.last_offset, 0), Some(Ok(())));
    // A leader change fails waiting requests of the old epoch.
    l.apply_state(state(2, &[1, 2], 1, 1), 7);
    assert_eq!(l.acks_all_status(info.last_offset, 0), Some(Err(ResponseError::NotLeaderOrFollower)));
}

// KIP-320: fetches carrying a stale or future leader epoch are rejected.
#[test]
fn kip_320_fetches_with_other_leader_epochs_are_rejected() {
    let mut l = replica(1, "1", state(1, &[1, 2, 3], 3, 0));
    assert_eq!(l.read_for_consumer(0, 2, 100).unwrap_err(), ResponseError::FencedLeaderEpoch);
    assert_eq!(l.read_for_consumer(0, 4, 100).unwrap_err(), ResponseError::UnknownLeaderEpoch);
    assert!(l.read_for_consumer(0, 3, 100).is_ok());
    assert!(l.read_for_consumer(0, -1, 100).is_ok(), "no epoch: not checked");
    assert_eq!(l.read_for_follower(2, 0, -1, 2, 100, 0).unwrap_err(), ResponseError::FencedLeaderEpoch);
    let mut f = replica(2, "1", state(1, &[1, 2, 3], 3, 0));
    assert_eq!(f.read_for_consumer(0, 3, 100).unwrap_err(), ResponseError::NotLeaderOrFollower);
}

// KIP-101/KIP-279: a follower that has writes the new leader never got
// truncates to where its epoch ended on the leader, not to its HW.
#[test]
fn kip_279_follower_truncates_by_leader_epoch_not_high_watermark() {
    // Broker 1 leads epoch 0 and appends 2 batches; only the first reaches 2.
    let mut old = replica(1, "1", state(1, &[1, 2], 0, 0));
    let mut b2 = replica(2, "1", state(1, &[1, 2], 0, 0));
    produce(&mut old, 1, 1).unwrap();
    replicate(&mut old, &mut b2, 1);
    produce(&mut old, 1, 1).unwrap();
    assert_eq!((old.log_end_offset(), b2.log_end_offset()), (2, 1));
    // Broker 2 becomes leader in epoch 1 and takes two new writes.
    b2.apply_state(state(2, &[2], 1, 1), 2);
    produce(&mut b2, 2, 1).unwrap();
    assert_eq!(b2.log_end_offset(), 3);
    // The old leader follows: its offset-1 write (epoch 0) diverges.
    old.apply_state(state(2, &[2], 1, 1), 3);
    replicate(&mut b2, &mut old, 4);
    assert_eq!(old.log_end_offset(), 1, "truncated to the end of epoch 0 on the new leader");
    replicate(&mut b2, &mut old, 5);
    assert_eq!(old.log_end_offset(), 3);
    let a = old.log.read(0, 3, usize::MAX).unwrap();
    let b = b2.log.read(0, 3, usize::MAX).unwrap();
    assert_eq!(a, b, "replicas agree byte for byte after truncation");
}

#[test]
fn laggard_leaves_the_isr_after_replica_lag_time_max_and_rejoins_when_caught_up() {
    let lag_ms = 30_000;
    let mut l = replica(1, "1", state(1, &[1, 2, 3], 0, 0));
    let mut f2 = replica(2, "1", state(1, &[1, 2, 3], 0, 0));
    let mut f3 = replica(3, "1", state(1, &[1, 2, 3], 0, 0));
    produce(&mut l, 1, 1).unwrap();
    replicate(&mut l, &mut f2, 1_000);
    replicate(&mut l, &mut f3, 1_000);
    assert_eq!(l.wanted_isr_change(lag_ms, 20_000), None);
    // Follower 3 stops fetching; follower 2 keeps up.
    for t in (2_000..=32_000).step_by(1_000) {
        produce(&mut l, 1, 1).unwrap();
        replicate(&mut l, &mut f2, t);
    }
    assert_eq!(l.wanted_isr_change(lag_ms, 32_000), Some(vec![1, 2]));
    l.apply_state(state(1, &[1, 2], 0, 1), 32_000);
    // Follower 3 catches up and is added back.
    replicate(&mut l, &mut f3, 33_000);
    replicate(&mut l, &mut f3, 33_100);
    assert_eq!(l.wanted_isr_change(lag_ms, 33_100), Some(vec![1, 2, 3]));
}
