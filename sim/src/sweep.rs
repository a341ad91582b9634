//! Seed sweeps over several OS threads, one madsim runtime per seed.
//! Threads are started outside any simulation (madsim forbids threads
//! inside one); results come back in seed order whatever the scheduling.
//!
//! A [`Shard`] picks every N-th seed of a range, so a CI matrix can split
//! one sweep over several jobs.

use crate::report::SeedResult;
use crate::report_files::Keep;
use crate::run::run_seed;
use crate::scenario::Scenario;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `--check-determinism` reruns the first this many seeds of the sweep…
pub const DETERMINISM_FIRST_SEEDS: usize = 3;
/// …and then unmet seeds, up to this many seeds in all.
pub const DETERMINISM_SAMPLE_MAX: usize = 5;

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
    let seeds: Vec<u64> = seeds.collect();
    run_seed_list(scenario, &seeds, threads, on_done)
}

/// Runs the seeds in `seeds` (a shard, or a sample to rerun); results in
/// the order of `seeds`, each with its history and artifacts. `on_done` as
/// for [`run_seeds`].
pub fn run_seed_list(
    scenario: &Scenario,
    seeds: &[u64],
    threads: usize,
    on_done: &(dyn Fn(u64, &anyhow::Result<SeedResult>) + Sync),
) -> Vec<(u64, anyhow::Result<SeedResult>)> {
    run_seed_list_keeping(scenario, seeds, threads, on_done, Keep::All)
}

/// As [`run_seed_list`], but a seed that `keep` does not keep loses its
/// history and artifacts as soon as it is judged, so a long sweep holds
/// only what `--out` will write.
pub fn run_seed_list_keeping(
    scenario: &Scenario,
    seeds: &[u64],
    threads: usize,
    on_done: &(dyn Fn(u64, &anyhow::Result<SeedResult>) + Sync),
    keep: Keep,
) -> Vec<(u64, anyhow::Result<SeedResult>)> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let at = next.fetch_add(1, Ordering::SeqCst);
                let Some(&seed) = seeds.get(at) else {
                    return;
                };
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
                let r = r.map(|res| if keep.keeps(&res) { res } else { res.without_artifacts() });
                results.lock().unwrap().push((at, seed, r));
            });
        }
    });
    let mut out = results.into_inner().unwrap();
    out.sort_by_key(|(at, _, _)| *at);
    out.into_iter().map(|(_, seed, r)| (seed, r)).collect()
}

/// The seeds `--check-determinism` reruns, from the sweep's `(seed, met)`
/// in seed order: the first [`DETERMINISM_FIRST_SEEDS`], then unmet seeds,
/// at most [`DETERMINISM_SAMPLE_MAX`].
pub fn determinism_sample(swept: &[(u64, bool)]) -> Vec<u64> {
    let mut sample: Vec<u64> = swept.iter().take(DETERMINISM_FIRST_SEEDS).map(|(s, _)| *s).collect();
    for (seed, met) in swept {
        if sample.len() >= DETERMINISM_SAMPLE_MAX {
            break;
        }
        if !met && !sample.contains(seed) {
            sample.push(*seed);
        }
    }
    sample
}

/// What a rerun of a seed must reproduce: its trace hash, or its error.
pub fn replay_fingerprint(r: &anyhow::Result<SeedResult>) -> String {
    match r {
        Ok(res) => res.trace_hash.clone(),
        Err(e) => format!("error: {e:#}"),
    }
}

/// `K/N`: the K-th of N shards (1-based) of a seed range. Shard K runs the
/// seeds whose position in the range is ≡ K-1 (mod N), so shards 1..=N
/// together run every seed exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, 1-based (`1..=count`).
    pub index: u64,
    /// How many shards the range is split into.
    pub count: u64,
}

impl Shard {
    /// The seeds of `range` this shard runs, in order.
    pub fn seeds(&self, range: Range<u64>) -> Vec<u64> {
        let start = range.start;
        range.filter(|s| (s - start) % self.count == self.index - 1).collect()
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: expected K/N with 1 <= K <= N (e.g. 2/4)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::{determinism_sample, Shard};

    #[test]
    fn determinism_sample_is_the_first_three_then_unmet_seeds_up_to_five() {
        let all_met: Vec<(u64, bool)> = (10..20).map(|s| (s, true)).collect();
        assert_eq!(determinism_sample(&all_met), vec![10, 11, 12]);
        let some_unmet: Vec<(u64, bool)> = (0..10).map(|s| (s, s % 3 != 1)).collect();
        assert_eq!(determinism_sample(&some_unmet), vec![0, 1, 2, 4, 7]);
        assert_eq!(determinism_sample(&[(5, false)]), vec![5]);
        assert!(determinism_sample(&[]).is_empty());
    }

    #[test]
    fn shards_parse_as_k_of_n_one_based() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("1/1".parse::<Shard>().unwrap().to_string(), "1/1");
        for bad in ["0/4", "5/4", "2", "2/", "/4", "a/b", "-1/4", "1/0", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_partition_the_range_by_position() {
        let shards: Vec<Vec<u64>> = (1..=3).map(|k| Shard { index: k, count: 3 }.seeds(10..17)).collect();
        assert_eq!(shards, vec![vec![10, 13, 16], vec![11, 14], vec![12, 15]]);
        assert!(Shard { index: 4, count: 4 }.seeds(0..3).is_empty());
    }
}
