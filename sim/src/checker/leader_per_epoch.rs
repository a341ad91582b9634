//! `leader-per-epoch`: two brokers became leader of the same partition in
//! the same leader epoch (the controller must bump the epoch on every
//! leader change; KRaft's "one leader per epoch" invariant).

use super::replica_model::partition_name;
use super::Anomaly;
use crate::observations::Observed;
use ksim_broker::observe::ObsEvent;
use std::collections::{BTreeMap, BTreeSet};

pub const KEY: &str = "leader-per-epoch";

pub fn check(obs: &[Observed]) -> Vec<Anomaly> {
    let mut leaders: BTreeMap<(String, i32), BTreeSet<i32>> = BTreeMap::new();
    let mut out = Vec::new();
    for o in obs {
        let ObsEvent::BecameLeader { epoch } = o.obs.event else { continue };
        let key = (partition_name(o), epoch);
        let set = leaders.entry(key.clone()).or_default();
        if set.insert(o.obs.broker) && set.len() == 2 {
            let brokers: Vec<String> = set.iter().map(|b| b.to_string()).collect();
            out.push(Anomaly {
                key: KEY,
                partition: key.0,
                value: Some(epoch as i64),
                offset: None,
                detail: format!("at {} ms brokers {} both led in epoch {epoch}", o.t_ms, brokers.join(" and ")),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::obs_vectors::*;
    use super::*;

    #[test]
    fn one_leader_per_epoch_is_quiet_even_across_restarts() {
        let mut again = ev(0, ObsEvent::BecameLeader { epoch: 1 });
        again.obs.incarnation = 9;
        let obs = vec![ev(0, ObsEvent::BecameLeader { epoch: 1 }), again, ev(1, ObsEvent::BecameLeader { epoch: 2 })];
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn two_leaders_in_one_epoch_fire() {
        let obs = vec![ev(0, ObsEvent::BecameLeader { epoch: 1 }), ev(1, ObsEvent::BecameLeader { epoch: 1 })];
        let found = check(&obs);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, Some(1));
    }
}
