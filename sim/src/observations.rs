//! Broker-side observations of one run: the per-run [`Observer`] handed to
//! every broker in its `BrokerConfig`, stamping each observation with the
//! run's simulated time. The broker-side checkers judge what it collected.
//!
//! One collector per run, owned by the run (never a static: statics leak
//! across seeds, MADSIM-FACTS.md).

use ksim_broker::observe::{Observation, Observer};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

mod jsonl;
pub use jsonl::{from_jsonl, to_jsonl, FORMAT_VERSION};

/// Bound on observations kept per run; later ones are counted, not kept.
pub const OBSERVATIONS_MAX: usize = 4_000_000;

/// One observation with the simulated time it was made.
///
/// # Format
///
/// Serialised on its own (and in version 1 of `observations.jsonl`, see
/// [`to_jsonl`]), the observation's fields are flattened beside `t_ms`:
///
/// ```text
/// {"t_ms":8123,"broker":1,"incarnation":2,"topic":"events","partition":0,"event":{"kind":"hw","value":42}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Simulated ms since the main phase began, the history's clock (see
    /// [`RunObserver::take_since`]); observations made during setup are 0.
    pub t_ms: u64,
    #[serde(flatten)]
    pub obs: Observation,
}

/// Collects a run's observations in order.
pub struct RunObserver {
    start: tokio::time::Instant,
    seen: Mutex<Vec<Observed>>,
    dropped: Mutex<u64>,
}

impl RunObserver {
    /// Must be created inside the runtime (times are relative to now).
    pub fn new() -> Self {
        RunObserver { start: tokio::time::Instant::now(), seen: Mutex::new(Vec::new()), dropped: Mutex::new(0) }
    }

    /// Everything observed so far, and how many were dropped over the bound.
    /// Times are ms since this observer was created.
    pub fn take(&self) -> (Vec<Observed>, u64) {
        (std::mem::take(&mut *self.seen.lock().unwrap()), *self.dropped.lock().unwrap())
    }

    /// As [`RunObserver::take`], with times rebased to ms since `start`
    /// (the main phase's start, the history's clock), so observations,
    /// history and fault log share one clock in reports; earlier
    /// observations (setup) are stamped 0.
    pub fn take_since(&self, start: tokio::time::Instant) -> (Vec<Observed>, u64) {
        let offset_ms = start.saturating_duration_since(self.start).as_millis() as u64;
        let (mut seen, dropped) = self.take();
        for o in &mut seen {
            o.t_ms = o.t_ms.saturating_sub(offset_ms);
        }
        (seen, dropped)
    }
}

impl Default for RunObserver {
    fn default() -> Self {
        Self::new()
    }
}

impl Observer for RunObserver {
    fn observe(&self, obs: Observation) {
        let t_ms = self.start.elapsed().as_millis() as u64;
        let mut seen = self.seen.lock().unwrap();
        if seen.len() >= OBSERVATIONS_MAX {
            *self.dropped.lock().unwrap() += 1;
            return;
        }
        seen.push(Observed { t_ms, obs });
    }
}
