//! Record batch v2 headers: parsing, validation (magic, sizes, CRC-32C) and
//! the two in-place rewrites the broker makes (baseOffset on leader append,
//! partitionLeaderEpoch), neither covered by the CRC.
//!
//! Batches are stored and served exactly as the producer sent them (compressed
//! ones included): nothing here decompresses.
//!
//! # Format (Kafka's `DefaultRecordBatch`, all big-endian)
//!
//! ```text
//! @0  baseOffset i64        @8  batchLength i32 (bytes after this field)
//! @12 partitionLeaderEpoch i32                @16 magic i8 (= 2)
//! @17 crc u32 (CRC-32C over @21..end)         @21 attributes i16
//! @23 lastOffsetDelta i32   @27 baseTimestamp i64   @35 maxTimestamp i64
//! @43 producerId i64        @51 producerEpoch i16   @53 baseSequence i32
//! @57 recordCount i32       @61 records…
//! ```

use std::ops::Range;

/// Bytes of the fixed v2 header, up to and including recordCount.
pub const HEADER_LEN: usize = 61;
/// baseOffset + batchLength: the bytes not counted by batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format this broker stores.
pub const MAGIC_V2: i8 = 2;
/// Largest batch accepted (a sanity bound: a corrupt length field beyond it
/// is corruption, not a huge batch). Kafka's message.max.bytes default is ~1 MiB.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// Why bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a header, or than the header's batchLength says:
    /// a partial (e.g. torn) trailing batch.
    #[error("truncated batch: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported magic {0} (only v2)")]
    BadMagic(i8),
    #[error("bad batchLength {0}")]
    BadLength(i32),
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("bad record count {record_count} for lastOffsetDelta {last_offset_delta}")]
    BadRecordCount { record_count: i32, last_offset_delta: i32 },
}

/// The fixed header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the batchLength field; the whole batch is this + 12.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (which may hold more batches).
    /// Checks only that the 61 header bytes are there and that batchLength
    /// is sane; see [`BatchHeader::validate`] for the rest.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated { needed: HEADER_LEN, available: buf.len() });
        }
        let batch_length = i32_at(buf, BATCH_LENGTH_AT);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32
            || batch_length as usize + LOG_OVERHEAD > MAX_BATCH_BYTES
        {
            return Err(BatchError::BadLength(batch_length));
        }
        Ok(BatchHeader {
            base_offset: i64_at(buf, BASE_OFFSET_AT),
            batch_length,
            partition_leader_epoch: i32_at(buf, PARTITION_LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: u32::from_be_bytes(buf[CRC_AT..CRC_AT + 4].try_into().expect("4 bytes")),
            attributes: i16_at(buf, ATTRIBUTES_AT),
            last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: i64_at(buf, BASE_TIMESTAMP_AT),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP_AT),
            producer_id: i64_at(buf, PRODUCER_ID_AT),
            producer_epoch: i16_at(buf, PRODUCER_EPOCH_AT),
            base_sequence: i32_at(buf, BASE_SEQUENCE_AT),
            record_count: i32_at(buf, RECORD_COUNT_AT),
        })
    }

    /// The whole batch's size in bytes (header included).
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Kafka's codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Checks that `batch` (exactly this header's batch, or a buffer starting
    /// with it) is v2, long enough and that its CRC-32C matches.
    pub fn validate(&self, batch: &[u8]) -> Result<(), BatchError> {
        if self.magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(self.magic));
        }
        let total = self.total_len();
        if batch.len() < total {
            return Err(BatchError::Truncated { needed: total, available: batch.len() });
        }
        if self.last_offset_delta < 0 || self.record_count < 0 {
            return Err(BatchError::BadRecordCount {
                record_count: self.record_count,
                last_offset_delta: self.last_offset_delta,
            });
        }
        let computed = crc32c::crc32c(&batch[ATTRIBUTES_AT..total]);
        if computed != self.crc {
            return Err(BatchError::CrcMismatch { stored: self.crc, computed });
        }
        Ok(())
    }
}

/// Parses and validates the batch at the start of `buf`.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    header.validate(buf)?;
    Ok(header)
}

/// Rewrites baseOffset in place (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites partitionLeaderEpoch in place (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Frames the batches in `buf`: yields each header with its byte range, and
/// ends after yielding one error if the rest is not a whole batch (partial
/// trailing batch, or a nonsensical length). Does not check magic or CRC.
pub fn iter_batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter { buf, pos: 0, done: false }
}

/// See [`iter_batches`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl BatchIter<'_> {
    /// Byte position of the next batch (after an error: of the bad batch).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let total = header.total_len();
        if rest.len() < total {
            self.done = true;
            return Some(Err(BatchError::Truncated { needed: total, available: rest.len() }));
        }
        let range = self.pos..self.pos + total;
        self.pos += total;
        Some(Ok((header, range)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// A producer's record at `offset` within its batch (no producer id).
    pub(crate) fn record(offset: usize, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: offset as i64,
            // The encoder splits batches where offset - sequence changes.
            sequence: offset as i32,
            timestamp,
            key,
            value,
            headers: IndexMap::new(),
        }
    }

    /// `records` as one v2 batch (baseOffset 0, no leader epoch).
    pub(crate) fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, records, &RecordEncodeOptions { version: 2, compression }).expect("encode");
        buf.to_vec()
    }

    /// One batch of `n` records with values `"{tag}-{i}"`, as a producer sends it
    /// (baseOffset 0, no leader epoch).
    pub(crate) fn batch(n: usize, tag: &str, compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| record(i, 1_000 + i as i64, Some(Bytes::from(format!("k{i}"))), Some(Bytes::from(format!("{tag}-{i}")))))
            .collect();
        encode(&records, compression)
    }

    #[test]
    fn parses_uncompressed_batch_header() {
        let b = batch(3, "v", Compression::None);
        let h = validate(&b).unwrap();
        assert_eq!(h.magic, 2);
        assert_eq!(h.total_len(), b.len());
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_002);
        assert_eq!(h.compression(), 0);
        assert!(!h.is_transactional() && !h.is_control());
    }

    #[test]
    fn parses_zstd_batch_without_decompressing() {
        let b = batch(50, "zzzzzzzzzzzzzzzzzzzzzzzz", Compression::Zstd);
        let h = validate(&b).unwrap();
        assert_eq!(h.compression(), 4);
        assert_eq!(h.record_count, 50);
        assert_eq!(h.last_offset(), 49);
        assert_eq!(h.total_len(), b.len());
    }

    #[test]
    fn offset_and_epoch_rewrite_keeps_crc_valid() {
        for compression in [Compression::None, Compression::Zstd] {
            let mut b = batch(4, "x", compression);
            set_base_offset(&mut b, 1_234_567);
            set_partition_leader_epoch(&mut b, 9);
            let h = validate(&b).unwrap();
            assert_eq!(h.base_offset, 1_234_567);
            assert_eq!(h.partition_leader_epoch, 9);
            assert_eq!(h.next_offset(), 1_234_571);
        }
    }

    #[test]
    fn flipped_byte_fails_crc() {
        let b = batch(2, "v", Compression::None);
        for at in [ATTRIBUTES_AT, RECORD_COUNT_AT, b.len() - 1] {
            let mut bad = b.clone();
            bad[at] ^= 0x40;
            assert!(matches!(validate(&bad), Err(BatchError::CrcMismatch { .. })), "flip at {at}");
        }
        let mut bad = b.clone();
        bad[MAGIC_AT] = 1;
        assert_eq!(validate(&bad), Err(BatchError::BadMagic(1)));
    }

    #[test]
    fn truncated_batch_is_detected() {
        let b = batch(2, "v", Compression::None);
        let short = &b[..b.len() - 1];
        assert!(matches!(validate(short), Err(BatchError::Truncated { .. })));
        assert!(matches!(validate(&b[..10]), Err(BatchError::Truncated { .. })));
    }

    #[test]
    fn iter_batches_frames_and_stops_at_partial_tail() {
        let a = batch(2, "a", Compression::None);
        let z = batch(3, "b", Compression::Zstd);
        let mut buf = a.clone();
        buf.extend_from_slice(&z);
        let got: Vec<_> = iter_batches(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, 0..a.len());
        assert_eq!(got[1].1, a.len()..buf.len());
        assert_eq!(got[1].0.record_count, 3);

        buf.extend_from_slice(&a[..a.len() / 2]);
        let mut it = iter_batches(&buf);
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(it.next(), Some(Err(BatchError::Truncated { .. }))));
        assert_eq!(it.position(), a.len() + z.len());
        assert!(it.next().is_none());
    }

    #[test]
    fn garbage_length_is_bad_length() {
        let mut b = batch(1, "a", Compression::None);
        b[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(iter_batches(&b).next(), Some(Err(BatchError::BadLength(-5))));
    }
}
