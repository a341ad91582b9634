//! `epoch-regression`: a partition's leader epoch goes backwards, in either
//! of two places:
//! - the leader epoch a broker accepts from the controller for a partition
//!   decreases within one process lifetime;
//! - a replica's log holds a batch stamped with a lower leader epoch than
//!   the batch before it (a stale leader's data appended after a newer
//!   one's; the log's epochs must never decrease along offsets, KIP-101).
//!
//! One anomaly per replica (and incarnation, for the first kind).

use super::replica_model::{partition_name, ReplicaKey, ReplicaModel};
use super::Anomaly;
use crate::observations::Observed;
use ksim_broker::observe::ObsEvent;
use std::collections::{BTreeMap, BTreeSet};

pub const KEY: &str = "epoch-regression";

pub fn check(obs: &[Observed]) -> Vec<Anomaly> {
    let mut seen_epoch: BTreeMap<(String, i32, u64), i32> = BTreeMap::new();
    let mut logs: BTreeMap<ReplicaKey, ReplicaModel> = BTreeMap::new();
    let mut reported: BTreeSet<(String, i32, u64, bool)> = BTreeSet::new();
    let mut out = Vec::new();
    for o in obs {
        let part = partition_name(o);
        let broker = o.obs.broker;
        match &o.obs.event {
            ObsEvent::Epoch { leader_epoch } => {
                let key = (part.clone(), broker, o.obs.incarnation);
                if let Some(&prev) = seen_epoch.get(&key) {
                    if *leader_epoch < prev && reported.insert((part.clone(), broker, o.obs.incarnation, false)) {
                        out.push(Anomaly {
                            key: KEY,
                            partition: part.clone(),
                            value: Some(*leader_epoch as i64),
                            offset: None,
                            detail: format!("at {} ms broker {broker} went from leader epoch {prev} back to {leader_epoch}", o.t_ms),
                        });
                    }
                }
                let slot = seen_epoch.entry(key).or_insert(*leader_epoch);
                *slot = (*slot).max(*leader_epoch);
            }
            ObsEvent::Append { batches } => {
                let log = logs.entry((part.clone(), broker)).or_default();
                // The model before the append, truncated to where it starts.
                let mut prev = batches.first().and_then(|f| {
                    log.batches.range(..f.base_offset).next_back().map(|(_, b)| b.leader_epoch)
                });
                for b in batches {
                    if let Some(p) = prev {
                        if b.leader_epoch < p && reported.insert((part.clone(), broker, 0, true)) {
                            out.push(Anomaly {
                                key: KEY,
                                partition: part.clone(),
                                value: Some(b.leader_epoch as i64),
                                offset: Some(b.base_offset),
                                detail: format!(
                                    "at {} ms broker {broker} appended a batch of epoch {} at offset {} after one of epoch {p}",
                                    o.t_ms, b.leader_epoch, b.base_offset
                                ),
                            });
                        }
                    }
                    prev = Some(b.leader_epoch);
                }
                log.apply(&o.obs.event);
            }
            other => logs.entry((part, broker)).or_default().apply(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::obs_vectors::*;
    use super::*;

    #[test]
    fn rising_epochs_are_quiet() {
        let obs = vec![
            ev(0, ObsEvent::Epoch { leader_epoch: 1 }),
            ev(0, ObsEvent::Epoch { leader_epoch: 3 }),
            append(0, &[(0, 0, 1, 1), (1, 1, 3, 2)]),
            append(0, &[(2, 2, 3, 3)]),
        ];
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn accepted_epoch_going_back_fires() {
        let obs = vec![ev(0, ObsEvent::Epoch { leader_epoch: 4 }), ev(0, ObsEvent::Epoch { leader_epoch: 2 })];
        assert_eq!(check(&obs).len(), 1);
    }

    #[test]
    fn lower_epoch_batch_after_higher_fires_but_not_after_truncation() {
        let bad = vec![append(0, &[(0, 0, 3, 1)]), append(0, &[(1, 1, 2, 2)])];
        assert_eq!(check(&bad).len(), 1);
        let ok = vec![append(0, &[(0, 0, 1, 1), (1, 1, 3, 2)]), ev(0, ObsEvent::Truncate { to: 1 }), append(0, &[(1, 1, 2, 3)])];
        assert!(check(&ok).is_empty());
    }
}
