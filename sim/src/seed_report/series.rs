//! Time series over simulated time, computed from the history alone, for
//! the seed's plots:
//!
//! - throughput: acknowledged (ok) sends per second, and sends that failed
//!   or ended unknown (`fail`/`info`) per second;
//! - send latency: invocation to completion of ok sends (needs the
//!   history's optional `invoke_t_ms`), median, 99th percentile and maximum
//!   per bucket;
//! - consumer lag: summed over partitions, the highest acknowledged offset
//!   minus the highest offset any poll has read, as of each bucket's end;
//! - unseen: values acknowledged by then that no poll has read by then
//!   (at the end of the run this is the `unseen` checker's count).
//!
//! Buckets are [`bucket_ms`] wide; a bucket with no ok send has no latency
//! point (a gap in the line, not a zero).

use crate::history::{History, OpType};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many buckets per series (wider buckets for long runs).
pub const BUCKETS_MAX: u64 = 400;
/// The narrowest bucket.
pub const BUCKET_MS_MIN: u64 = 1000;

/// One line of a plot: (bucket start in ms, value); `None` is a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: &'static str,
    pub points: Vec<(u64, Option<f64>)>,
}

/// Every series of one seed, on shared buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedSeries {
    pub bucket_ms: u64,
    /// The run's simulated length (the x axis' end).
    pub end_ms: u64,
    pub throughput: Vec<Series>,
    pub latency: Vec<Series>,
    pub lag: Vec<Series>,
    pub unseen: Vec<Series>,
}

/// Whole seconds, at least [`BUCKET_MS_MIN`], so `end_ms` takes at most
/// [`BUCKETS_MAX`] buckets.
pub fn bucket_ms(end_ms: u64) -> u64 {
    let per = end_ms.div_ceil(BUCKETS_MAX);
    per.div_ceil(1000).max(1) * 1000
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[u64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

/// The series of a history whose run lasted `end_ms`.
pub fn compute(h: &History, end_ms: u64) -> SeedSeries {
    let end_ms = end_ms.max(h.ops.iter().map(|o| o.t_ms).max().unwrap_or(0));
    let bucket = bucket_ms(end_ms);
    let n = (end_ms / bucket + 1) as usize;
    let at = |t: u64| ((t / bucket) as usize).min(n - 1);
    let mut acked = vec![0u64; n];
    let mut failed = vec![0u64; n];
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); n];
    // Lag and unseen change at op completions; sample each bucket's end.
    let mut order: Vec<usize> = (0..h.ops.len()).collect();
    order.sort_by_key(|&i| h.ops[i].t_ms);
    let mut acked_hi: BTreeMap<&str, i64> = BTreeMap::new();
    let mut read_hi: BTreeMap<&str, i64> = BTreeMap::new();
    let mut read: BTreeSet<(&str, i64)> = BTreeSet::new();
    let mut unread: BTreeSet<(&str, i64)> = BTreeSet::new();
    let mut lag = vec![0f64; n];
    let mut unseen = vec![0f64; n];
    let mut next = order.iter().peekable();
    for (b, (lag_b, unseen_b)) in lag.iter_mut().zip(unseen.iter_mut()).enumerate() {
        let bucket_end = (b as u64 + 1) * bucket;
        while let Some(&&i) = next.peek() {
            let op = &h.ops[i];
            if op.t_ms >= bucket_end && b + 1 < n {
                break;
            }
            next.next();
            for s in op.send_views(i) {
                match s.op_type {
                    OpType::Ok => {
                        acked[at(op.t_ms)] += 1;
                        if let Some(inv) = op.invoke_t_ms {
                            latencies[at(op.t_ms)].push(op.t_ms.saturating_sub(inv));
                        }
                        if let Some(o) = s.offset {
                            let hi = acked_hi.entry(s.partition).or_insert(-1);
                            *hi = (*hi).max(o);
                        }
                        if !read.contains(&(s.partition, s.value)) {
                            unread.insert((s.partition, s.value));
                        }
                    }
                    OpType::Fail | OpType::Info => failed[at(op.t_ms)] += 1,
                }
            }
            for p in op.poll_views() {
                for &(o, v) in &p.reads {
                    let hi = read_hi.entry(p.partition).or_insert(-1);
                    *hi = (*hi).max(o);
                    read.insert((p.partition, v));
                    unread.remove(&(p.partition, v));
                }
            }
        }
        *lag_b = acked_hi.iter().map(|(p, &a)| (a - read_hi.get(p).copied().unwrap_or(-1)).max(0) as f64).sum();
        *unseen_b = unread.len() as f64;
    }
    let per_s = 1000.0 / bucket as f64;
    let points = |v: Vec<Option<f64>>| -> Vec<(u64, Option<f64>)> {
        v.into_iter().enumerate().map(|(b, y)| (b as u64 * bucket, y)).collect()
    };
    let rate = |v: &[u64]| points(v.iter().map(|&c| Some(c as f64 * per_s)).collect());
    let mut sorted = latencies;
    for l in &mut sorted {
        l.sort_unstable();
    }
    let lat = |q: f64| points(sorted.iter().map(|l| (!l.is_empty()).then(|| quantile(l, q))).collect());
    SeedSeries {
        bucket_ms: bucket,
        end_ms,
        throughput: vec![
            Series { name: "acked sends/s", points: rate(&acked) },
            Series { name: "failed or unknown sends/s", points: rate(&failed) },
        ],
        latency: vec![
            Series { name: "p50 ms", points: lat(0.5) },
            Series { name: "p99 ms", points: lat(0.99) },
            Series { name: "max ms", points: lat(1.0) },
        ],
        lag: vec![Series { name: "lag (offsets)", points: points(lag.into_iter().map(Some).collect()) }],
        unseen: vec![Series { name: "unseen acked values", points: points(unseen.into_iter().map(Some).collect()) }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    #[test]
    fn buckets_are_whole_seconds_and_at_most_buckets_max() {
        assert_eq!(bucket_ms(60_000), 1000);
        assert_eq!(bucket_ms(400_000), 1000);
        assert_eq!(bucket_ms(400_001), 2000);
        assert_eq!(bucket_ms(0), 1000);
    }

    #[test]
    fn throughput_latency_lag_and_unseen_follow_the_history() {
        let h = History {
            ops: vec![
                Op::send_ok(0, 100, "t/0", 1, Some(0)).invoked_at(50),
                Op::send_ok(0, 900, "t/0", 2, Some(1)).invoked_at(100),
                Op::send_info(0, 1500, "t/0", 3),
                Op::poll_ok(1, 2500, vec![("t/0".into(), vec![(0, 1)])]),
                Op::poll_ok(1, 3500, vec![("t/0".into(), vec![(1, 2)])]),
            ],
        };
        let s = compute(&h, 3999);
        let ys = |v: &Series| v.points.iter().map(|p| p.1).collect::<Vec<_>>();
        assert_eq!(ys(&s.throughput[0]), vec![Some(2.0), Some(0.0), Some(0.0), Some(0.0)]);
        assert_eq!(ys(&s.throughput[1]), vec![Some(0.0), Some(1.0), Some(0.0), Some(0.0)]);
        assert_eq!(ys(&s.latency[0]), vec![Some(50.0), None, None, None]);
        assert_eq!(ys(&s.latency[2]), vec![Some(800.0), None, None, None]);
        assert_eq!(ys(&s.lag[0]), vec![Some(2.0), Some(2.0), Some(1.0), Some(0.0)]);
        assert_eq!(ys(&s.unseen[0]), vec![Some(2.0), Some(2.0), Some(1.0), Some(0.0)]);
    }
}
