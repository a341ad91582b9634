//! `hw-regression`: a replica's high watermark goes backwards within one
//! process lifetime (broker incarnation).
//!
//! What counts: every HW a replica reports (`Opened`, `Hw`) in one
//! incarnation must be at least the previous one, whatever the role — a
//! leader's HW never regresses in Kafka, and a follower only lowers its HW
//! by truncating committed data, which clean elections never require.
//! Across a restart the HW may start lower (it comes from the checkpoint,
//! clamped to the recovered log end): not counted. One anomaly per replica
//! and incarnation.

use super::replica_model::partition_name;
use super::Anomaly;
use crate::observations::Observed;
use ksim_broker::observe::ObsEvent;
use std::collections::{BTreeMap, BTreeSet};

pub const KEY: &str = "hw-regression";

pub fn check(obs: &[Observed]) -> Vec<Anomaly> {
    let mut last: BTreeMap<(String, i32, u64), i64> = BTreeMap::new();
    let mut reported = BTreeSet::new();
    let mut out = Vec::new();
    for o in obs {
        let value = match o.obs.event {
            ObsEvent::Opened { hw, .. } => hw,
            ObsEvent::Hw { value } => value,
            _ => continue,
        };
        let key = (partition_name(o), o.obs.broker, o.obs.incarnation);
        if let Some(&prev) = last.get(&key) {
            if value < prev && reported.insert(key.clone()) {
                out.push(Anomaly {
                    key: KEY,
                    partition: key.0.clone(),
                    value: Some(value),
                    offset: Some(prev),
                    detail: format!("at {} ms broker {}'s HW went from {prev} back to {value} in one process lifetime", o.t_ms, o.obs.broker),
                });
            }
        }
        last.insert(key, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::obs_vectors::*;
    use super::*;

    #[test]
    fn rising_hw_is_quiet() {
        assert!(check(&[hw(0, 1), hw(0, 5), hw(0, 5), hw(1, 2)]).is_empty());
    }

    #[test]
    fn falling_hw_in_one_incarnation_fires() {
        let found = check(&[hw(0, 5), hw(0, 3), hw(0, 2)]);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].value, found[0].offset), (Some(3), Some(5)));
    }

    #[test]
    fn lower_hw_after_a_restart_is_quiet() {
        let mut reopened = ev(0, ObsEvent::Opened { log_start: 0, log_end: 3, hw: 3, batches: vec![] });
        reopened.obs.incarnation = 2;
        assert!(check(&[hw(0, 5), reopened]).is_empty());
    }
}
