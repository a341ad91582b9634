//! Seed sweeps over several OS threads, one madsim runtime per seed.
//! Threads are started outside any simulation (madsim forbids threads
//! inside one); results come back in seed order whatever the scheduling.

use crate::report::SeedResult;
use crate::run::run_seed;
use crate::scenario::Scenario;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Threads to use by default: the machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Runs every seed in `seeds`; `on_done` is called as each finishes (for
/// progress output), from the worker thread.
pub fn run_seeds(
    scenario: &Scenario,
    seeds: Range<u64>,
    threads: usize,
    on_done: &(dyn Fn(u64, &anyhow::Result<SeedResult>) + Sync),
) -> Vec<(u64, anyhow::Result<SeedResult>)> {
    let next = AtomicU64::new(seeds.start);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= seeds.end {
                    return;
                }
                // A panic inside the simulation is a failed seed, not a dead sweep.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_seed(scenario, seed)))
                    .unwrap_or_else(|p| {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panic".into());
                        Err(anyhow::anyhow!("seed {seed} panicked: {msg}"))
                    });
                on_done(seed, &r);
                results.lock().unwrap().push((seed, r));
            });
        }
    });
    let mut out = results.into_inner().unwrap();
    out.sort_by_key(|(s, _)| *s);
    out
}
