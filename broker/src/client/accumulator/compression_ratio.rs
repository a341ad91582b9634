//! Kafka's `CompressionRatioEstimator`: how well each topic's batches
//! compress under each codec, so that compressed batches are filled to
//! `batch.size` by their estimated compressed size rather than by their
//! uncompressed size.
//!
//! - The ratio (compressed / uncompressed record bytes) starts at 1.0.
//! - After each batch is built, its observed ratio moves the estimate:
//!   better than estimated lowers it by [`IMPROVING_STEP`] only, worse
//!   raises it at once by at least [`DETERIORATING_STEP`] (to the observed
//!   ratio if that is higher), so a batch seldom outgrows `batch.size`.
//! - A batch's estimated size is its header plus its record bytes times the
//!   estimate times [`ESTIMATION_FACTOR`] (Kafka's
//!   `COMPRESSION_RATE_ESTIMATION_FACTOR`, MemoryRecordsBuilder); without
//!   compression it is the plain size.
//!
//! Kafka keeps one process-wide table; here each producer has its own (no
//! global state in a simulation).

use kafka_protocol::records::Compression;
use std::collections::BTreeMap;

/// Lowers the estimate after a batch that compressed better than estimated.
pub const IMPROVING_STEP: f32 = 0.005;
/// Raises the estimate (at least) after a batch that compressed worse.
pub const DETERIORATING_STEP: f32 = 0.05;
/// Safety margin on the estimated compressed size.
pub const ESTIMATION_FACTOR: f32 = 1.05;
/// Where every estimate starts: no gain assumed.
pub const INITIAL_RATIO: f32 = 1.0;

/// Estimated compression ratios per (topic, codec).
#[derive(Debug, Default, Clone)]
pub struct CompressionRatios {
    by_topic_codec: BTreeMap<(String, u8), f32>,
}

impl CompressionRatios {
    /// The current estimate for `topic` under `codec` (1.0 until observed;
    /// always 1.0 without compression).
    pub fn estimate(&self, topic: &str, codec: Compression) -> f32 {
        if codec == Compression::None {
            return INITIAL_RATIO;
        }
        self.by_topic_codec.get(&(topic.to_string(), codec as u8)).copied().unwrap_or(INITIAL_RATIO)
    }

    /// A batch of `topic` compressed `uncompressed` record bytes to
    /// `compressed`: moves the estimate and returns it.
    pub fn observe(&mut self, topic: &str, codec: Compression, compressed: usize, uncompressed: usize) -> f32 {
        if codec == Compression::None || uncompressed == 0 {
            return INITIAL_RATIO;
        }
        let observed = compressed as f32 / uncompressed as f32;
        let estimate = self.by_topic_codec.entry((topic.to_string(), codec as u8)).or_insert(INITIAL_RATIO);
        if observed > *estimate {
            *estimate = (*estimate + DETERIORATING_STEP).max(observed);
        } else if observed < *estimate {
            *estimate -= IMPROVING_STEP;
        }
        *estimate
    }
}

/// The estimated encoded size of a batch of `header` bytes and `records`
/// uncompressed record bytes (Kafka's `estimatedBytesWritten`).
pub fn estimated_size(header: usize, records: usize, codec: Compression, ratio: f32) -> usize {
    if codec == Compression::None {
        return header + records;
    }
    header + (records as f32 * ratio * ESTIMATION_FACTOR) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    // Kafka's CompressionRatioEstimator: slow to believe a better ratio,
    // quick to take a worse one, per topic and codec.
    #[test]
    fn estimate_improves_slowly_and_deteriorates_quickly() {
        let mut r = CompressionRatios::default();
        assert_eq!(r.estimate("t", Compression::Zstd), 1.0);
        let e = r.observe("t", Compression::Zstd, 10, 100);
        assert!((e - 0.995).abs() < 1e-6, "{e}");
        assert_eq!(r.estimate("t", Compression::Gzip), 1.0, "per codec");
        assert_eq!(r.estimate("u", Compression::Zstd), 1.0, "per topic");
        for _ in 0..99 {
            r.observe("t", Compression::Zstd, 10, 100);
        }
        let low = r.estimate("t", Compression::Zstd);
        assert!((low - 0.5).abs() < 1e-3, "{low}");
        // Slightly worse than estimated: at least one deteriorating step up.
        let e = r.observe("t", Compression::Zstd, 51, 100);
        assert!((e - (low + DETERIORATING_STEP)).abs() < 1e-6, "{e}");
        // Much worse: straight to the observed ratio.
        assert!((r.observe("t", Compression::Zstd, 90, 100) - 0.9).abs() < 1e-6);
        assert_eq!(r.observe("t", Compression::None, 10, 100), 1.0, "no codec, no estimate");
    }

    #[test]
    fn estimated_size_scales_records_not_the_header() {
        assert_eq!(estimated_size(61, 1000, Compression::None, 0.1), 1061);
        assert_eq!(estimated_size(61, 1000, Compression::Zstd, 1.0), 61 + 1050);
        assert_eq!(estimated_size(61, 1000, Compression::Zstd, 0.5), 61 + 525);
    }
}
