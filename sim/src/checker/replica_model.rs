//! Each replica's log as the broker-side observations describe it: batches
//! by base offset, rebuilt from `Opened` (what recovery found on disk),
//! `Append` and `Truncate`, plus the replica's current high watermark.
//! Shared by `replica-divergence` and `epoch-regression`.

use crate::observations::Observed;
use ksim_broker::observe::{BatchMark, ObsEvent};
use std::collections::BTreeMap;

/// A partition as "topic/partition" (the anomalies' form).
pub fn partition_name(o: &Observed) -> String {
    format!("{}/{}", o.obs.topic, o.obs.partition)
}

/// One replica's modelled log and HW.
#[derive(Debug, Clone, Default)]
pub struct ReplicaModel {
    /// By base offset.
    pub batches: BTreeMap<i64, BatchMark>,
    pub hw: i64,
}

impl ReplicaModel {
    /// The batch holding `offset`, if the replica has it.
    pub fn batch_at(&self, offset: i64) -> Option<&BatchMark> {
        self.batches.range(..=offset).next_back().map(|(_, b)| b).filter(|b| b.last_offset >= offset)
    }

    /// The last batch.
    pub fn last(&self) -> Option<&BatchMark> {
        self.batches.values().next_back()
    }

    /// Applies a log event (not `Hw`: callers judge HW moves first).
    pub fn apply(&mut self, event: &ObsEvent) {
        match event {
            ObsEvent::Opened { hw, batches, .. } => {
                self.batches = batches.iter().map(|b| (b.base_offset, *b)).collect();
                self.hw = *hw;
            }
            ObsEvent::Append { batches } => {
                if let Some(first) = batches.first() {
                    self.truncate(first.base_offset);
                }
                self.batches.extend(batches.iter().map(|b| (b.base_offset, *b)));
            }
            ObsEvent::Truncate { to } => {
                self.truncate(*to);
                self.hw = self.hw.min(*to);
            }
            ObsEvent::Hw { value } => self.hw = *value,
            _ => {}
        }
    }

    /// Drops every batch holding an offset at or after `to` (the log
    /// truncates whole batches).
    fn truncate(&mut self, to: i64) {
        // Batches do not overlap: those starting at or after `to`, plus the
        // one straddling it. O(log n + dropped), not a scan per append.
        drop(self.batches.split_off(&to));
        if self.batches.values().next_back().is_some_and(|b| b.last_offset >= to) {
            self.batches.pop_last();
        }
    }
}

/// Replica key: (topic/partition, broker).
pub type ReplicaKey = (String, i32);

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(base_offset: i64, last_offset: i64) -> BatchMark {
        BatchMark { base_offset, last_offset, leader_epoch: 0, crc: base_offset as u32 }
    }

    /// Kafka truncates whole batches: a truncation point inside a batch
    /// drops that batch and everything after it; an append overwrites
    /// from its first offset on.
    #[test]
    fn truncation_drops_the_straddling_batch_and_all_later_ones() {
        let mut m = ReplicaModel::default();
        m.apply(&ObsEvent::Append { batches: vec![mark(0, 4), mark(5, 9), mark(10, 14)] });
        m.apply(&ObsEvent::Truncate { to: 7 });
        assert_eq!(m.batches.keys().copied().collect::<Vec<_>>(), vec![0]);
        m.apply(&ObsEvent::Append { batches: vec![mark(5, 6), mark(7, 8)] });
        m.apply(&ObsEvent::Truncate { to: 7 });
        assert_eq!(m.batches.keys().copied().collect::<Vec<_>>(), vec![0, 5]);
        m.apply(&ObsEvent::Append { batches: vec![mark(5, 5)] });
        assert_eq!(m.batches.values().map(|b| (b.base_offset, b.last_offset)).collect::<Vec<_>>(), vec![(0, 4), (5, 5)]);
    }
}
