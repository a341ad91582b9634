//! Kafka's default partitioner for keyed records: murmur2 of the key bytes.
//!
//! Must match the Java client bit for bit, so that the harness knows which
//! partition a keyed send goes to even when its outcome is unknown.

/// Kafka's `Utils.murmur2` (seed 0x9747b28c), returned as a Java `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a keyed record:
/// `toPositive(murmur2(key)) % partitions`, over all partitions of the topic.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "partition_for_key: partitions must be positive, got {partitions}");
    to_positive(murmur2(key)) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from Kafka's UtilsTest.testMurmur2 (clients/src/test/.../UtilsTest.java).
    #[test]
    fn murmur2_matches_kafka_utils_test_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (&[b'a', b'b', b'c'], 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), *want, "murmur2({:?})", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn to_positive_clears_the_sign_bit_rather_than_negating() {
        assert_eq!(to_positive(-1), 0x7fff_ffff);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn partition_for_key_is_in_range_and_matches_the_formula() {
        for p in 1..=7 {
            let got = partition_for_key(b"foobar", p);
            assert_eq!(got, (-790_332_482i32 & 0x7fff_ffff) % p);
            assert!((0..p).contains(&got));
        }
    }
}
