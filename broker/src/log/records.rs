//! Decoding a stored batch into records and building a v2 batch from
//! records: what the broker needs when it must change a batch's content
//! (recompression for `compression.type`, the log cleaner).
//!
//! Decoding uses kafka-protocol (which decompresses with the codec features
//! enabled on the workspace dependency). Encoding is our own because the
//! rebuilt batch must keep the original offset range: the cleaner drops
//! records but keeps a batch's baseOffset and lastOffsetDelta (Kafka's
//! `MemoryRecords.filterTo` does the same for v2, `overrideLastOffset`), so
//! the log stays contiguous batch to batch while offsets inside have gaps.
//! Header keys are decoded into kafka-protocol's map, so a record with a
//! repeated header key keeps only the last value after a rewrite.
//!
//! # Format of one record (inside the, possibly compressed, records section)
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint (-1 null) | key | valueLength varint (-1 null) | value
//! headerCount varint | (keyLength varint | key | valueLength varint | value)*
//! ```

use super::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{self as cmpr, Compressor};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};

/// Attribute bits kept from the original batch (timestamp type,
/// transactional, control); the codec bits are replaced.
const KEEP_ATTRIBUTES: i16 = 0x08 | 0x10 | 0x20;

/// One record as the broker sees it: absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// Kafka's codec for id 0..=4 (`compression.type` names in [`codec_by_name`]).
pub fn codec(id: u8) -> Option<Compression> {
    Some(match id {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => return None,
    })
}

/// The codec a broker/topic `compression.type` asks for; None for `producer`.
pub fn codec_by_name(name: &str) -> Option<Compression> {
    Some(match name {
        "uncompressed" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => return None,
    })
}

/// Decodes (decompressing) the records of exactly one batch.
pub fn decode_batch(batch: &[u8]) -> anyhow::Result<Vec<LogRecord>> {
    let mut buf = Bytes::copy_from_slice(batch);
    let set = RecordBatchDecoder::decode(&mut buf)?;
    Ok(set
        .records
        .into_iter()
        .map(|r: Record| LogRecord {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers.into_iter().map(|(k, v)| (Bytes::copy_from_slice(k.as_bytes()), v)).collect(),
        })
        .collect())
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Builds one v2 batch covering offsets `[base_offset, base_offset +
/// last_offset_delta]` holding `records` (a subset of that range, in
/// order), compressed with `compression`. Producer id/epoch, base sequence,
/// leader epoch and the timestamp-type/transactional/control bits come from
/// `template`. With no records the batch is empty (recordCount 0) and keeps
/// the template's timestamps. The CRC is computed afresh.
pub fn build_batch(template: &BatchHeader, base_offset: i64, last_offset_delta: i32, records: &[LogRecord], compression: Compression) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(last_offset_delta >= 0, "negative lastOffsetDelta");
    let last = base_offset + last_offset_delta as i64;
    anyhow::ensure!(
        records.windows(2).all(|w| w[0].offset < w[1].offset) && records.iter().all(|r| (base_offset..=last).contains(&r.offset)),
        "records outside the batch's offset range or out of order"
    );
    let (base_ts, max_ts) = match (records.iter().map(|r| r.timestamp).min(), records.iter().map(|r| r.timestamp).max()) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (template.base_timestamp, template.max_timestamp),
    };
    let mut raw = Vec::new();
    let mut body = Vec::new();
    for r in records {
        body.clear();
        body.push(0); // record attributes (unused)
        put_varint(&mut body, r.timestamp - base_ts);
        put_varint(&mut body, r.offset - base_offset);
        put_bytes(&mut body, r.key.as_deref());
        put_bytes(&mut body, r.value.as_deref());
        put_varint(&mut body, r.headers.len() as i64);
        for (k, v) in &r.headers {
            put_bytes(&mut body, Some(k));
            put_bytes(&mut body, v.as_deref());
        }
        put_varint(&mut raw, body.len() as i64);
        raw.extend_from_slice(&body);
    }
    let mut section = BytesMut::new();
    let fill = |tmp: &mut BytesMut| {
        tmp.extend_from_slice(&raw);
        Ok(())
    };
    match compression {
        Compression::None => section.extend_from_slice(&raw),
        Compression::Gzip => cmpr::Gzip::compress(&mut section, fill)?,
        Compression::Snappy => cmpr::Snappy::compress(&mut section, fill)?,
        Compression::Lz4 => cmpr::Lz4::compress(&mut section, fill)?,
        Compression::Zstd => cmpr::Zstd::compress(&mut section, fill)?,
    }
    let attributes = (template.attributes & KEEP_ATTRIBUTES) | compression as i16;
    let mut out = Vec::with_capacity(HEADER_LEN + section.len());
    out.extend_from_slice(&base_offset.to_be_bytes());
    let batch_length = (HEADER_LEN - LOG_OVERHEAD + section.len()) as i32;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&template.partition_leader_epoch.to_be_bytes());
    out.push(2); // magic
    out.extend_from_slice(&[0; 4]); // crc, filled below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_ts.to_be_bytes());
    out.extend_from_slice(&max_ts.to_be_bytes());
    out.extend_from_slice(&template.producer_id.to_be_bytes());
    out.extend_from_slice(&template.producer_epoch.to_be_bytes());
    out.extend_from_slice(&template.base_sequence.to_be_bytes());
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    assert_eq!(out.len(), HEADER_LEN, "v2 header length");
    out.extend_from_slice(&section);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// An uncompressed batch of `values` (no keys, every timestamp
/// `timestamp_ms`, baseOffset 0) carrying an idempotent producer's id,
/// epoch and base sequence, as a producer sends it: for tests and tools
/// that speak Produce with raw batches.
pub fn producer_batch(producer_id: i64, producer_epoch: i16, base_sequence: i32, values: &[Bytes], timestamp_ms: i64) -> anyhow::Result<Vec<u8>> {
    let records: Vec<(Option<Bytes>, Option<Bytes>)> = values.iter().map(|v| (None, Some(v.clone()))).collect();
    keyed_batch(producer_id, producer_epoch, base_sequence, &records, timestamp_ms)
}

/// An uncompressed batch of (key, value) records (a null value is a
/// tombstone), every timestamp `timestamp_ms`, baseOffset 0, with the given
/// producer id, epoch and base sequence (-1s: not idempotent, as the
/// broker's own coordinator appends).
pub fn keyed_batch(
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: &[(Option<Bytes>, Option<Bytes>)],
    timestamp_ms: i64,
) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(!records.is_empty(), "a batch needs a record");
    let template = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: records.len() as i32 - 1,
        base_timestamp: timestamp_ms,
        max_timestamp: timestamp_ms,
        producer_id,
        producer_epoch,
        base_sequence,
        record_count: records.len() as i32,
    };
    let records: Vec<LogRecord> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| LogRecord { offset: i as i64, timestamp: timestamp_ms, key: k.clone(), value: v.clone(), headers: Vec::new() })
        .collect();
    build_batch(&template, 0, template.last_offset_delta, &records, Compression::None)
}

/// Re-encodes one batch with another codec, same offsets and records.
pub fn recompress(batch: &[u8], compression: Compression) -> anyhow::Result<Vec<u8>> {
    let header = super::batch::validate(batch)?;
    let records = decode_batch(batch)?;
    build_batch(&header, header.base_offset, header.last_offset_delta, &records, compression)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{tests::batch, validate};

    #[test]
    fn recompress_round_trips_every_codec() {
        let original = batch(5, "value", Compression::None);
        let before = decode_batch(&original).unwrap();
        for (id, c) in [(1u8, Compression::Gzip), (2, Compression::Snappy), (3, Compression::Lz4), (4, Compression::Zstd), (0, Compression::None)] {
            let b = recompress(&original, c).unwrap();
            let h = validate(&b).expect("fresh CRC");
            assert_eq!(h.compression(), id);
            assert_eq!(h.record_count, 5);
            assert_eq!(h.last_offset_delta, 4);
            assert_eq!(decode_batch(&b).unwrap(), before);
        }
    }

    #[test]
    fn producer_batch_carries_producer_id_epoch_and_sequence() {
        let b = producer_batch(42, 3, 17, &[Bytes::from_static(b"a"), Bytes::from_static(b"b")], 5_000).unwrap();
        let h = validate(&b).unwrap();
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (42, 3, 17));
        assert_eq!((h.base_offset, h.last_offset_delta, h.record_count, h.max_timestamp), (0, 1, 2, 5_000));
        let values: Vec<_> = decode_batch(&b).unwrap().into_iter().map(|r| r.value.unwrap()).collect();
        assert_eq!(values, vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    }

    #[test]
    fn filtered_batch_keeps_its_offset_range() {
        let original = batch(5, "v", Compression::Zstd);
        let h = validate(&original).unwrap();
        let records: Vec<LogRecord> = decode_batch(&original).unwrap().into_iter().filter(|r| r.offset % 2 == 1).collect();
        let b = build_batch(&h, 100, 4, &records.iter().map(|r| LogRecord { offset: r.offset + 100, ..r.clone() }).collect::<Vec<_>>(), Compression::Zstd).unwrap();
        let nh = validate(&b).unwrap();
        assert_eq!((nh.base_offset, nh.last_offset(), nh.record_count, nh.compression()), (100, 104, 2, 4));
        let offsets: Vec<i64> = decode_batch(&b).unwrap().iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![101, 103]);
        let empty = build_batch(&h, 100, 4, &[], Compression::None).unwrap();
        assert_eq!(validate(&empty).unwrap().record_count, 0);
        assert!(decode_batch(&empty).unwrap().is_empty());
    }
}
