//! `replica-divergence`: two replicas of a partition hold different batches
//! at an offset below both their high watermarks (broker-side check).
//!
//! Judged continuously: whenever a replica's HW rises over offsets
//! `[old, new)`, each of those offsets is compared (by the CRC-32C of the
//! batch holding it) with every other replica of the partition whose HW is
//! above it at that moment. Replicas are modelled from the observations
//! (`Opened` after recovery replaces the model with what the disk held), so
//! a replica that lost data below its HW in a power loss is compared as it
//! really is. One anomaly per partition and pair of brokers (the first
//! offset found).

use super::replica_model::{partition_name, ReplicaKey, ReplicaModel};
use super::Anomaly;
use crate::observations::Observed;
use ksim_broker::observe::ObsEvent;
use std::collections::{BTreeMap, BTreeSet};

pub const KEY: &str = "replica-divergence";

pub fn check(obs: &[Observed]) -> Vec<Anomaly> {
    let mut replicas: BTreeMap<ReplicaKey, ReplicaModel> = BTreeMap::new();
    let mut reported: BTreeSet<(String, i32, i32)> = BTreeSet::new();
    let mut out = Vec::new();
    for o in obs {
        let part = partition_name(o);
        let me = o.obs.broker;
        let ObsEvent::Hw { value } = o.obs.event else {
            replicas.entry((part, me)).or_default().apply(&o.obs.event);
            continue;
        };
        // Out of the map while the others are compared (no clone of its log).
        let mut mine = replicas.remove(&(part.clone(), me)).unwrap_or_default();
        for offset in mine.hw.max(0)..value {
            let Some(a) = mine.batch_at(offset) else { continue };
            for ((p, other), m) in replicas.range((part.clone(), i32::MIN)..=(part.clone(), i32::MAX)) {
                debug_assert_eq!(p, &part);
                if *other == me || offset >= m.hw {
                    continue;
                }
                let Some(b) = m.batch_at(offset) else { continue };
                let pair = (part.clone(), me.min(*other), me.max(*other));
                if a.crc != b.crc && !reported.contains(&pair) {
                    reported.insert(pair);
                    out.push(Anomaly {
                        key: KEY,
                        partition: part.clone(),
                        value: None,
                        offset: Some(offset),
                        detail: format!(
                            "at {} ms brokers {me} (HW {value}) and {other} (HW {}) hold different batches at offset {offset}: crc {:08x} (epoch {}) vs {:08x} (epoch {})",
                            o.t_ms, m.hw, a.crc, a.leader_epoch, b.crc, b.leader_epoch
                        ),
                    });
                }
            }
        }
        mine.hw = value;
        replicas.insert((part, me), mine);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::obs_vectors::*;
    use super::*;

    #[test]
    fn same_batches_below_both_hws_are_quiet() {
        let obs = vec![
            append(0, &[(0, 4, 1, 0xa), (5, 9, 1, 0xb)]),
            append(1, &[(0, 4, 1, 0xa), (5, 9, 1, 0xb)]),
            hw(0, 10),
            hw(1, 10),
        ];
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn different_batch_below_both_hws_fires_once() {
        let obs = vec![
            append(0, &[(0, 4, 1, 0xa), (5, 9, 1, 0xb)]),
            append(1, &[(0, 4, 1, 0xa), (5, 9, 2, 0xc)]),
            hw(0, 10),
            hw(1, 10),
        ];
        let found = check(&obs);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].offset, Some(5));
    }

    #[test]
    fn difference_above_a_hw_is_quiet_and_truncation_repairs_it() {
        // Broker 1 holds an uncommitted batch at 5 that broker 0 never had;
        // it truncates and fetches the leader's batch before its HW passes 5.
        let obs = vec![
            append(0, &[(0, 4, 1, 0xa), (5, 9, 2, 0xb)]),
            append(1, &[(0, 4, 1, 0xa), (5, 9, 1, 0xc)]),
            hw(0, 10),
            hw(1, 5),
            ev(1, ObsEvent::Truncate { to: 5 }),
            append(1, &[(5, 9, 2, 0xb)]),
            hw(1, 10),
        ];
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn recovery_replaces_the_model_with_what_the_disk_held() {
        // Broker 1 lost its tail in a power loss and refetched other data.
        let obs = vec![
            append(0, &[(0, 4, 1, 0xa)]),
            append(1, &[(0, 4, 1, 0xa), (5, 9, 1, 0xb)]),
            ev(1, ObsEvent::Opened { log_start: 0, log_end: 5, hw: 5, batches: vec![mark(0, 4, 1, 0xa)] }),
            append(1, &[(5, 9, 2, 0xd)]),
            append(0, &[(5, 9, 2, 0xd)]),
            hw(0, 10),
            hw(1, 10),
        ];
        assert!(check(&obs).is_empty());
    }
}
