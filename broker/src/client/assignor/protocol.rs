//! The "consumer" embedded protocol: ConsumerProtocolSubscription (the
//! JoinGroup member metadata) and ConsumerProtocolAssignment (the SyncGroup
//! member assignment), encoded with the kafka-protocol crate's messages.
//!
//! # Format
//!
//! Both are `int16 version` followed by the message body at that version
//! (Kafka's `MessageUtil.toVersionPrefixedByteBuffer`):
//!
//! - Subscription v0: `topics: [string]`, `user_data: nullable bytes`;
//!   v1 adds `owned_partitions: [topic: string, partitions: [int32]]`;
//!   v2 adds `generation_id: int32` (-1 when absent); v3 adds
//!   `rack_id: nullable string`.
//! - Assignment v0-v3 (same body at every version):
//!   `assigned_partitions: [topic: string, partitions: [int32]]`,
//!   `user_data: nullable bytes`.
//!
//! Decoding follows Kafka's `ConsumerProtocol`: a negative version is an
//! error, a version above the highest known one is read as the highest
//! (newer versions only append fields), and trailing bytes are ignored.
//! Malformed bytes give a [`ProtocolError`], never a panic; array counts are
//! checked against the bytes left before anything is allocated.

use super::{Assignment, Subscription, TopicPartition};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;

/// The highest ConsumerProtocolSubscription / Assignment version known
/// (Kafka 3.x writes this one).
pub const CONSUMER_PROTOCOL_VERSION_LATEST: i16 = 3;

/// Why consumer-protocol bytes could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("consumer protocol bytes too short for the version prefix ({len} bytes)")]
    MissingVersion { len: usize },
    #[error("unsupported consumer protocol version {0}")]
    UnsupportedVersion(i16),
    #[error("malformed consumer protocol message: {0}")]
    Malformed(String),
}

/// Kafka's `checkSubscriptionVersion` / `checkAssignmentVersion`.
fn effective_version(version: i16) -> Result<i16, ProtocolError> {
    if version < 0 {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    Ok(version.min(CONSUMER_PROTOCOL_VERSION_LATEST))
}

fn split_version(bytes: &[u8]) -> Result<(i16, &[u8]), ProtocolError> {
    if bytes.len() < 2 {
        return Err(ProtocolError::MissingVersion { len: bytes.len() });
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    Ok((effective_version(version)?, &bytes[2..]))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Partitions grouped by topic, topics in name order, partitions in the
/// order given (Kafka's `groupPartitionsByTopic`, made deterministic).
fn group_by_topic(partitions: &[TopicPartition]) -> BTreeMap<&str, Vec<i32>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic.as_str()).or_default().push(*partition);
    }
    by_topic
}

fn prefixed<M: Encodable>(message: &M, version: i16) -> Result<Bytes, ProtocolError> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&version.to_be_bytes());
    message.encode(&mut buf, version).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    Ok(buf.freeze())
}

/// Encodes `subscription` at `version` (clamped to 0..=latest as Kafka
/// does; fields newer than the version are left out).
/// `group_instance_id` is not part of the bytes.
pub fn encode_subscription(subscription: &Subscription, version: i16) -> Result<Bytes, ProtocolError> {
    let version = effective_version(version)?;
    let owned_partitions = group_by_topic(&subscription.owned_partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            OwnedTopic::default().with_topic(TopicName(str_bytes(topic))).with_partitions(partitions)
        })
        .collect();
    let message = ConsumerProtocolSubscription::default()
        .with_topics(subscription.topics.iter().map(|t| str_bytes(t)).collect())
        .with_user_data(subscription.user_data.clone())
        .with_owned_partitions(owned_partitions)
        .with_generation_id(subscription.generation_id)
        .with_rack_id(subscription.rack_id.as_deref().map(str_bytes));
    prefixed(&message, version)
}

/// Decodes version-prefixed ConsumerProtocolSubscription bytes. Below v2
/// the generation is -1; below v3 there is no rack.
pub fn decode_subscription(bytes: &[u8]) -> Result<Subscription, ProtocolError> {
    let (version, body) = split_version(bytes)?;
    check_subscription_counts(body, version)?;
    let mut buf = body;
    let message =
        ConsumerProtocolSubscription::decode(&mut buf, version).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let mut owned_partitions = Vec::new();
    for owned in &message.owned_partitions {
        for partition in &owned.partitions {
            owned_partitions.push((owned.topic.0.to_string(), *partition));
        }
    }
    Ok(Subscription {
        topics: message.topics.iter().map(|t| t.to_string()).collect(),
        user_data: message.user_data,
        owned_partitions,
        generation_id: message.generation_id,
        rack_id: message.rack_id.map(|r| r.to_string()),
        group_instance_id: None,
    })
}

/// Encodes `assignment` at `version` (clamped as for subscriptions).
pub fn encode_assignment(assignment: &Assignment, version: i16) -> Result<Bytes, ProtocolError> {
    let version = effective_version(version)?;
    let assigned_partitions = group_by_topic(&assignment.partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            AssignedTopic::default().with_topic(TopicName(str_bytes(topic))).with_partitions(partitions)
        })
        .collect();
    let message = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(assigned_partitions)
        .with_user_data(assignment.user_data.clone());
    prefixed(&message, version)
}

/// Decodes version-prefixed ConsumerProtocolAssignment bytes. Kafka
/// treats an empty SyncGroup assignment as "no partitions"; that is the
/// caller's decision, here zero bytes is [`ProtocolError::MissingVersion`].
pub fn decode_assignment(bytes: &[u8]) -> Result<Assignment, ProtocolError> {
    let (version, body) = split_version(bytes)?;
    check_assignment_counts(body)?;
    let mut buf = body;
    let message =
        ConsumerProtocolAssignment::decode(&mut buf, version).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let mut partitions = Vec::new();
    for assigned in &message.assigned_partitions {
        for partition in &assigned.partitions {
            partitions.push((assigned.topic.0.to_string(), *partition));
        }
    }
    Ok(Assignment { partitions, user_data: message.user_data })
}

/// A bounds-checked big-endian reader over Kafka's classic (non-flexible)
/// types. It checks array counts against the bytes left, so no count
/// taken from garbage reserves memory; the consumer-protocol decoders run
/// it over the body before the crate's decoder, and the sticky assignor's
/// user data is read with it directly.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.rest.len() < n {
            return Err(ProtocolError::Malformed(format!("need {n} bytes, {} left", self.rest.len())));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn int16(&mut self) -> Result<i16, ProtocolError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn int32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A nullable string (None for length -1).
    fn string(&mut self) -> Result<Option<String>, ProtocolError> {
        let len = self.int16()?;
        if len < -1 {
            return Err(ProtocolError::Malformed(format!("string length is negative ({len})")));
        }
        if len == -1 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        let s = std::str::from_utf8(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        Ok(Some(s.to_string()))
    }

    /// Nullable bytes: skip them.
    fn skip_bytes(&mut self) -> Result<(), ProtocolError> {
        let len = self.int32()?;
        if len > 0 {
            self.take(len as usize)?;
        }
        Ok(())
    }

    /// An array count of elements at least `element_len_min` bytes long.
    fn count(&mut self, element_len_min: usize) -> Result<usize, ProtocolError> {
        let n = self.int32()?;
        if n < 0 {
            return Err(ProtocolError::Malformed(format!("array length is negative ({n})")));
        }
        let n = n as usize;
        if n.saturating_mul(element_len_min) > self.rest.len() {
            return Err(ProtocolError::Malformed(format!("array of {n} elements in {} bytes", self.rest.len())));
        }
        Ok(n)
    }

    /// `[topic: string, partitions: [int32]]`, flattened in wire order.
    pub(crate) fn topic_partitions(&mut self) -> Result<Vec<TopicPartition>, ProtocolError> {
        let topics = self.count(2 + 4)?;
        let mut out = Vec::new();
        for _ in 0..topics {
            let topic = self.string()?.ok_or_else(|| ProtocolError::Malformed("null topic name".into()))?;
            let partitions = self.count(4)?;
            for _ in 0..partitions {
                out.push((topic.clone(), self.int32()?));
            }
        }
        Ok(out)
    }
}

/// Writes `[topic: string, partitions: [int32]]` grouped by topic (the
/// sticky assignor's user data; the consumer-protocol messages go through
/// the crate instead).
pub(crate) fn put_topic_partitions(buf: &mut BytesMut, partitions: &[TopicPartition]) -> Result<(), ProtocolError> {
    let by_topic = group_by_topic(partitions);
    buf.extend_from_slice(&(by_topic.len() as i32).to_be_bytes());
    for (topic, partitions) in by_topic {
        let len = i16::try_from(topic.len())
            .map_err(|_| ProtocolError::Malformed(format!("topic name of {} bytes", topic.len())))?;
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(topic.as_bytes());
        buf.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for partition in partitions {
            buf.extend_from_slice(&partition.to_be_bytes());
        }
    }
    Ok(())
}

fn check_subscription_counts(body: &[u8], version: i16) -> Result<(), ProtocolError> {
    let mut r = Reader::new(body);
    let topics = r.count(2)?;
    for _ in 0..topics {
        r.string()?;
    }
    r.skip_bytes()?;
    if version >= 1 {
        r.topic_partitions()?;
    }
    Ok(())
}

fn check_assignment_counts(body: &[u8]) -> Result<(), ProtocolError> {
    Reader::new(body).topic_partitions().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_subscription() -> Subscription {
        Subscription {
            topics: vec!["t0".into(), "t1".into()],
            user_data: Some(Bytes::from_static(b"ud")),
            owned_partitions: vec![("t0".into(), 2), ("t0".into(), 0), ("t1".into(), 1)],
            generation_id: 7,
            rack_id: Some("rack-a".into()),
            group_instance_id: None,
        }
    }

    #[test]
    fn subscription_round_trips_at_v3_with_version_prefix() {
        let sub = full_subscription();
        let bytes = encode_subscription(&sub, 3).unwrap();
        assert_eq!(&bytes[..2], &[0, 3], "the 2-byte version prefix is part of the bytes");
        assert_eq!(decode_subscription(&bytes).unwrap(), sub);
    }

    #[test]
    fn default_subscription_has_unknown_generation() {
        // ConsumerProtocolSubscription.GenerationId defaults to -1.
        let sub = Subscription::default();
        assert_eq!(sub.generation_id, -1);
        assert_eq!(decode_subscription(&encode_subscription(&sub, 3).unwrap()).unwrap(), sub);
    }

    #[test]
    fn subscription_older_versions_drop_newer_fields() {
        let sub = full_subscription();
        let v0 = decode_subscription(&encode_subscription(&sub, 0).unwrap()).unwrap();
        assert_eq!(v0.topics, sub.topics);
        assert_eq!(v0.user_data, sub.user_data);
        assert!(v0.owned_partitions.is_empty());
        assert_eq!(v0.generation_id, -1, "GenerationId defaults to -1 below v2");
        assert_eq!(v0.rack_id, None);
        let v1 = decode_subscription(&encode_subscription(&sub, 1).unwrap()).unwrap();
        assert_eq!(v1.owned_partitions, sub.owned_partitions);
        assert_eq!(v1.generation_id, -1);
        let v2 = decode_subscription(&encode_subscription(&sub, 2).unwrap()).unwrap();
        assert_eq!(v2.generation_id, 7);
        assert_eq!(v2.rack_id, None);
    }

    #[test]
    fn subscription_v0_bytes_match_kafka_layout() {
        let sub = Subscription { topics: vec!["ab".into()], generation_id: -1, ..Default::default() };
        let bytes = encode_subscription(&sub, 0).unwrap();
        // version 0, one topic "ab", null user data.
        assert_eq!(&bytes[..], &[0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn subscription_of_a_higher_unknown_version_reads_as_latest() {
        // ConsumerProtocol.checkSubscriptionVersion: newer versions append
        // fields, so a v9 message is read as v3 and the extra bytes ignored.
        let sub = full_subscription();
        let mut bytes = encode_subscription(&sub, 3).unwrap().to_vec();
        bytes[0] = 0;
        bytes[1] = 9;
        bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
        assert_eq!(decode_subscription(&bytes).unwrap(), sub);
    }

    #[test]
    fn negative_version_is_an_error() {
        let mut bytes = encode_subscription(&full_subscription(), 3).unwrap().to_vec();
        bytes[0] = 0xff;
        bytes[1] = 0xff;
        assert_eq!(decode_subscription(&bytes), Err(ProtocolError::UnsupportedVersion(-1)));
        assert_eq!(decode_assignment(&bytes), Err(ProtocolError::UnsupportedVersion(-1)));
    }

    #[test]
    fn assignment_round_trips_at_every_version() {
        let assignment = Assignment {
            partitions: vec![("a".into(), 0), ("a".into(), 3), ("b".into(), 1)],
            user_data: Some(Bytes::from_static(&[0, 0, 0, 5])),
        };
        for version in 0..=3 {
            let bytes = encode_assignment(&assignment, version).unwrap();
            assert_eq!(i16::from_be_bytes([bytes[0], bytes[1]]), version);
            assert_eq!(decode_assignment(&bytes).unwrap(), assignment, "version {version}");
        }
        let mut newer = encode_assignment(&assignment, 3).unwrap().to_vec();
        newer[1] = 4;
        assert_eq!(decode_assignment(&newer).unwrap(), assignment);
    }

    #[test]
    fn truncated_subscription_and_assignment_are_errors_not_panics() {
        let sub = encode_subscription(&full_subscription(), 3).unwrap();
        for len in 0..sub.len() {
            assert!(decode_subscription(&sub[..len]).is_err(), "prefix of {len} bytes decoded");
        }
        let assignment = encode_assignment(
            &Assignment { partitions: vec![("t".into(), 1)], user_data: Some(Bytes::from_static(b"x")) },
            3,
        )
        .unwrap();
        for len in 0..assignment.len() {
            assert!(decode_assignment(&assignment[..len]).is_err(), "prefix of {len} bytes decoded");
        }
    }

    #[test]
    fn huge_array_counts_are_rejected_before_allocation() {
        // version 3, topics count i32::MAX and nothing behind it.
        let bytes = [0, 3, 0x7f, 0xff, 0xff, 0xff, 0, 0];
        assert!(matches!(decode_subscription(&bytes), Err(ProtocolError::Malformed(_))));
        // assignment: one topic "t" with i32::MAX partitions.
        let bytes = [0, 0, 0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(decode_assignment(&bytes), Err(ProtocolError::Malformed(_))));
    }

    #[test]
    fn garbage_bytes_never_panic() {
        // A fixed xorshift stream: deterministic garbage of many lengths.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..300usize {
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(x as u8);
            }
            if len >= 2 {
                bytes[0] = 0;
                bytes[1] = (len % 5) as u8;
            }
            let _ = decode_subscription(&bytes);
            let _ = decode_assignment(&bytes);
        }
    }

    #[test]
    fn invalid_utf8_topic_is_an_error() {
        let bytes = [0, 0, 0, 0, 0, 1, 0, 2, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(decode_subscription(&bytes), Err(ProtocolError::Malformed(_))));
    }
}
