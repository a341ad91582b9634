//! The record formats of `__consumer_offsets` (Kafka's
//! GroupMetadataManager / `OffsetCommitKey`, `OffsetCommitValue`,
//! `GroupMetadataKey`, `GroupMetadataValue` schemas), hand-written because
//! kafka-protocol has no types for them.
//!
//! # Format
//!
//! All integers big-endian; `string` is an i16 length then UTF-8 bytes
//! (-1 = null for nullable strings); `bytes` is an i32 length then bytes;
//! arrays are an i32 count then elements. Every key and value starts with
//! an i16 schema version.
//!
//! ```text
//! offset key   v0/v1: version | group string | topic string | partition i32
//! group key    v2:    version | group string
//! offset value v0: version | offset i64 | metadata string | commit_ts i64
//!              v1: version | offset i64 | metadata string | commit_ts i64 | expire_ts i64
//!              v2: version | offset i64 | metadata string | commit_ts i64
//!              v3: version | offset i64 | leader_epoch i32 | metadata string | commit_ts i64
//! group value  v3: version | protocol_type string | generation i32
//!                  | protocol nullable string | leader nullable string
//!                  | current_state_timestamp i64 | members array of:
//!                    member_id string | group_instance_id nullable string
//!                    | client_id string | client_host string
//!                    | rebalance_timeout i32 | session_timeout i32
//!                    | subscription bytes | assignment bytes
//! ```
//!
//! We write offset keys v1, offset values v3, group keys v2 and group
//! values v3, and read every version Kafka has written for them (group
//! values v0–v2 lack fields that v3 adds; they are read with defaults).
//! A record with a null value is a tombstone: it deletes its key.

use bytes::Bytes;

/// Offset commit key versions 0 and 1 share a layout.
pub const OFFSET_KEY_VERSION: i16 = 1;
pub const GROUP_KEY_VERSION: i16 = 2;
pub const OFFSET_VALUE_VERSION: i16 = 3;
pub const GROUP_VALUE_VERSION: i16 = 3;
/// Bound on members decoded from one group record (a corrupt count must
/// not allocate without limit).
const MEMBERS_MAX: usize = 1 << 16;

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordKey {
    Offset { group: String, topic: String, partition: i32 },
    Group { group: String },
}

/// A committed offset (OffsetCommitValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the committer did not know it.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One member as the group record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's membership at a generation (GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// A decoded record value; `None` from [`decode_value`] is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValue {
    Offset(OffsetValue),
    Group(GroupValue),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).expect("string longer than i16::MAX");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
        Some(s) => put_str(out, s),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = i32::try_from(b.len()).expect("bytes longer than i32::MAX");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
}

pub fn encode_key(key: &RecordKey) -> Vec<u8> {
    let mut out = Vec::new();
    match key {
        RecordKey::Offset { group, topic, partition } => {
            out.extend_from_slice(&OFFSET_KEY_VERSION.to_be_bytes());
            put_str(&mut out, group);
            put_str(&mut out, topic);
            out.extend_from_slice(&partition.to_be_bytes());
        }
        RecordKey::Group { group } => {
            out.extend_from_slice(&GROUP_KEY_VERSION.to_be_bytes());
            put_str(&mut out, group);
        }
    }
    out
}

pub fn encode_offset_value(v: &OffsetValue) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&OFFSET_VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&v.offset.to_be_bytes());
    out.extend_from_slice(&v.leader_epoch.to_be_bytes());
    put_str(&mut out, &v.metadata);
    out.extend_from_slice(&v.commit_timestamp_ms.to_be_bytes());
    out
}

pub fn encode_group_value(v: &GroupValue) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&GROUP_VALUE_VERSION.to_be_bytes());
    put_str(&mut out, &v.protocol_type);
    out.extend_from_slice(&v.generation.to_be_bytes());
    put_nullable_str(&mut out, v.protocol.as_deref());
    put_nullable_str(&mut out, v.leader.as_deref());
    out.extend_from_slice(&v.current_state_timestamp_ms.to_be_bytes());
    out.extend_from_slice(&(v.members.len() as i32).to_be_bytes());
    for m in &v.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.group_instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

/// A cursor over a record's bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        anyhow::ensure!(self.buf.len() >= n, "record truncated: need {n} bytes, {} left", self.buf.len());
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn i16(&mut self) -> anyhow::Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into()?))
    }
    fn i32(&mut self) -> anyhow::Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into()?))
    }
    fn i64(&mut self) -> anyhow::Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into()?))
    }
    fn nullable_str(&mut self) -> anyhow::Result<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(String::from_utf8(self.take(len as usize)?.to_vec())?))
    }
    fn str(&mut self) -> anyhow::Result<String> {
        self.nullable_str()?.ok_or_else(|| anyhow::anyhow!("null where a string is required"))
    }
    fn bytes(&mut self) -> anyhow::Result<Bytes> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}

pub fn decode_key(buf: &[u8]) -> anyhow::Result<RecordKey> {
    let mut r = Reader { buf };
    match r.i16()? {
        0 | 1 => Ok(RecordKey::Offset { group: r.str()?, topic: r.str()?, partition: r.i32()? }),
        2 => Ok(RecordKey::Group { group: r.str()? }),
        v => anyhow::bail!("unknown __consumer_offsets key version {v}"),
    }
}

/// Decodes the value for `key`; `None` (a null value) is a tombstone.
pub fn decode_value(key: &RecordKey, value: Option<&[u8]>) -> anyhow::Result<Option<RecordValue>> {
    let Some(buf) = value else { return Ok(None) };
    let mut r = Reader { buf };
    let version = r.i16()?;
    match key {
        RecordKey::Offset { .. } => {
            let offset = r.i64()?;
            let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
            let metadata = r.str()?;
            let commit_timestamp_ms = r.i64()?;
            anyhow::ensure!((0..=3).contains(&version), "unknown offset value version {version}");
            Ok(Some(RecordValue::Offset(OffsetValue { offset, leader_epoch, metadata, commit_timestamp_ms })))
        }
        RecordKey::Group { .. } => {
            anyhow::ensure!((0..=3).contains(&version), "unknown group value version {version}");
            let protocol_type = r.str()?;
            let generation = r.i32()?;
            let protocol = r.nullable_str()?;
            let leader = r.nullable_str()?;
            let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
            let count = r.i32()?.max(0) as usize;
            anyhow::ensure!(count <= MEMBERS_MAX, "group record with {count} members");
            let mut members = Vec::with_capacity(count);
            for _ in 0..count {
                let member_id = r.str()?;
                let group_instance_id = if version >= 3 { r.nullable_str()? } else { None };
                let client_id = r.str()?;
                let client_host = r.str()?;
                let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
                let session_timeout_ms = r.i32()?;
                let rebalance_timeout_ms = if rebalance_timeout_ms < 0 { session_timeout_ms } else { rebalance_timeout_ms };
                let subscription = r.bytes()?;
                let assignment = r.bytes()?;
                members.push(MemberValue {
                    member_id,
                    group_instance_id,
                    client_id,
                    client_host,
                    rebalance_timeout_ms,
                    session_timeout_ms,
                    subscription,
                    assignment,
                });
            }
            Ok(Some(RecordValue::Group(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp_ms, members })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_commit_key_v1_and_value_v3_round_trip() {
        let key = RecordKey::Offset { group: "g".into(), topic: "events".into(), partition: 7 };
        let bytes = encode_key(&key);
        // version 1 | "g" | "events" | 7
        assert_eq!(&bytes[..5], &[0, 1, 0, 1, b'g']);
        assert_eq!(&bytes[bytes.len() - 4..], &7i32.to_be_bytes());
        assert_eq!(decode_key(&bytes).unwrap(), key);
        let v = OffsetValue { offset: 42, leader_epoch: 3, metadata: "m".into(), commit_timestamp_ms: 1_700_000_000_000 };
        let vb = encode_offset_value(&v);
        assert_eq!(vb.len(), 2 + 8 + 4 + 3 + 8);
        assert_eq!(decode_value(&key, Some(&vb)).unwrap(), Some(RecordValue::Offset(v)));
    }

    #[test]
    fn group_metadata_key_v2_and_value_v3_round_trip() {
        let key = RecordKey::Group { group: "my-group".into() };
        let bytes = encode_key(&key);
        assert_eq!(&bytes[..2], &[0, 2]);
        assert_eq!(decode_key(&bytes).unwrap(), key);
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("c-1".into()),
            current_state_timestamp_ms: 99,
            members: vec![
                MemberValue {
                    member_id: "c-1".into(),
                    group_instance_id: Some("i-1".into()),
                    client_id: "c".into(),
                    client_host: "/10.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                },
                MemberValue {
                    member_id: "c-2".into(),
                    group_instance_id: None,
                    client_id: "c".into(),
                    client_host: "/10.0.0.2".into(),
                    rebalance_timeout_ms: 1,
                    session_timeout_ms: 2,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        };
        let vb = encode_group_value(&v);
        assert_eq!(decode_value(&key, Some(&vb)).unwrap(), Some(RecordValue::Group(v)));
        // An Empty group: no protocol, no leader, no members.
        let empty = GroupValue { protocol_type: String::new(), generation: 6, protocol: None, leader: None, current_state_timestamp_ms: 100, members: vec![] };
        let eb = encode_group_value(&empty);
        assert_eq!(decode_value(&key, Some(&eb)).unwrap(), Some(RecordValue::Group(empty)));
    }

    #[test]
    fn null_value_is_a_tombstone() {
        let key = RecordKey::Group { group: "g".into() };
        assert_eq!(decode_value(&key, None).unwrap(), None);
    }

    #[test]
    fn older_offset_value_versions_decode() {
        let key = RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 0 };
        // v1: offset, metadata, commit ts, expire ts.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&10i64.to_be_bytes());
        v1.extend_from_slice(&[0, 0]);
        v1.extend_from_slice(&5i64.to_be_bytes());
        v1.extend_from_slice(&6i64.to_be_bytes());
        let want = OffsetValue { offset: 10, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 5 };
        assert_eq!(decode_value(&key, Some(&v1)).unwrap(), Some(RecordValue::Offset(want)));
    }

    #[test]
    fn truncated_or_unknown_records_are_errors_not_panics() {
        assert!(decode_key(&[0]).is_err());
        assert!(decode_key(&[0, 9, 0, 0]).is_err());
        let key = RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 0 };
        let full = encode_offset_value(&OffsetValue { offset: 1, leader_epoch: 0, metadata: "x".into(), commit_timestamp_ms: 0 });
        for cut in 0..full.len() {
            assert!(decode_value(&key, Some(&full[..cut])).is_err(), "cut at {cut}");
        }
    }
}
