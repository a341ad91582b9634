//! The bytes of the "consumer" embedded protocol: ConsumerProtocolSubscription
//! (JoinGroup member metadata) and ConsumerProtocolAssignment (SyncGroup
//! assignments), each a 2-byte version followed by the versioned body,
//! through the kafka-protocol crate's generated codecs.
//!
//! # Format
//!
//! Subscription v0: topics, user data; v1 adds owned partitions (KIP-429);
//! v2 the generation they belong to (KIP-792); v3 the rack id (KIP-881).
//! Assignment v0..v3: assigned partitions, user data. A reader decodes a
//! version newer than it knows with the newest layout it knows (the fields
//! are only ever appended), as Kafka's ConsumerProtocol does.
//!
//! This module stands in for `assignor::protocol` (the assignors branch),
//! which was not on this branch when the consumer was written.

use super::super::assignor::{Assignment, Subscription, TopicPartition};
use super::super::error::ClientError;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::{self, ConsumerProtocolAssignment};
use kafka_protocol::messages::consumer_protocol_subscription::{self, ConsumerProtocolSubscription};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;

/// The versions this consumer writes (Kafka 3.5+).
pub const SUBSCRIPTION_VERSION: i16 = 3;
pub const ASSIGNMENT_VERSION: i16 = 3;

/// Partitions grouped by topic, topics and partitions sorted.
fn by_topic(partitions: &[TopicPartition]) -> BTreeMap<&str, Vec<i32>> {
    let mut out: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        out.entry(t.as_str()).or_default().push(*p);
    }
    for ps in out.values_mut() {
        ps.sort_unstable();
        ps.dedup();
    }
    out
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

pub fn encode_subscription(s: &Subscription) -> Bytes {
    let owned = by_topic(&s.owned_partitions)
        .into_iter()
        .map(|(t, ps)| consumer_protocol_subscription::TopicPartition::default().with_topic(topic_name(t)).with_partitions(ps))
        .collect();
    let body = ConsumerProtocolSubscription::default()
        .with_topics(s.topics.iter().map(|t| StrBytes::from_string(t.clone())).collect())
        .with_user_data(s.user_data.clone())
        .with_owned_partitions(owned)
        .with_generation_id(s.generation_id)
        .with_rack_id(s.rack_id.clone().map(StrBytes::from_string));
    let mut buf = BytesMut::new();
    buf.put_i16(SUBSCRIPTION_VERSION);
    body.encode(&mut buf, SUBSCRIPTION_VERSION).expect("a subscription always encodes");
    buf.freeze()
}

/// The version prefix and the version to decode the body with.
fn version(bytes: &mut Bytes, max: i16, what: &str) -> Result<i16, ClientError> {
    if bytes.len() < 2 {
        return Err(ClientError::Malformed(format!("{what}: {} bytes, no version", bytes.len())));
    }
    let v = i16::from_be_bytes([bytes[0], bytes[1]]);
    let _ = bytes.split_to(2);
    if v < 0 {
        return Err(ClientError::Malformed(format!("{what}: negative version {v}")));
    }
    Ok(v.min(max))
}

pub fn decode_subscription(bytes: &Bytes) -> Result<Subscription, ClientError> {
    let mut b = bytes.clone();
    let v = version(&mut b, SUBSCRIPTION_VERSION, "subscription")?;
    let s = ConsumerProtocolSubscription::decode(&mut b, v).map_err(|e| ClientError::Malformed(format!("subscription: {e}")))?;
    Ok(Subscription {
        topics: s.topics.iter().map(|t| t.to_string()).collect(),
        user_data: s.user_data,
        owned_partitions: s
            .owned_partitions
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic.0.to_string(), *p)))
            .collect(),
        generation_id: if v >= 2 { s.generation_id } else { -1 },
        rack_id: s.rack_id.map(|r| r.to_string()),
    })
}

pub fn encode_assignment(a: &Assignment) -> Bytes {
    let assigned = by_topic(&a.partitions)
        .into_iter()
        .map(|(t, ps)| consumer_protocol_assignment::TopicPartition::default().with_topic(topic_name(t)).with_partitions(ps))
        .collect();
    let body = ConsumerProtocolAssignment::default().with_assigned_partitions(assigned).with_user_data(a.user_data.clone());
    let mut buf = BytesMut::new();
    buf.put_i16(ASSIGNMENT_VERSION);
    body.encode(&mut buf, ASSIGNMENT_VERSION).expect("an assignment always encodes");
    buf.freeze()
}

/// An empty byte string is an empty assignment (a member the leader gave
/// nothing, as Kafka's coordinator sends for members missing from SyncGroup).
pub fn decode_assignment(bytes: &Bytes) -> Result<Assignment, ClientError> {
    if bytes.is_empty() {
        return Ok(Assignment::default());
    }
    let mut b = bytes.clone();
    let v = version(&mut b, ASSIGNMENT_VERSION, "assignment")?;
    let a = ConsumerProtocolAssignment::decode(&mut b, v).map_err(|e| ClientError::Malformed(format!("assignment: {e}")))?;
    let mut partitions: Vec<TopicPartition> = a
        .assigned_partitions
        .iter()
        .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic.0.to_string(), *p)))
        .collect();
    partitions.sort();
    partitions.dedup();
    Ok(Assignment { partitions, user_data: a.user_data })
}

#[cfg(test)]
mod tests {
    use super::*;

    // KIP-429/KIP-792: owned partitions and their generation survive the round trip.
    #[test]
    fn subscription_round_trips_with_owned_partitions_and_generation() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: Some(Bytes::from_static(b"x")),
            owned_partitions: vec![("a".into(), 1), ("a".into(), 0), ("b".into(), 2)],
            generation_id: 7,
            rack_id: None,
        };
        let bytes = encode_subscription(&s);
        assert_eq!(&bytes[..2], &[0, 3], "version 3 prefix");
        let back = decode_subscription(&bytes).unwrap();
        assert_eq!(back.topics, s.topics);
        assert_eq!(back.owned_partitions, vec![("a".into(), 0), ("a".into(), 1), ("b".into(), 2)]);
        assert_eq!(back.generation_id, 7);
        assert_eq!(back.user_data, s.user_data);
    }

    #[test]
    fn assignment_round_trips_and_empty_bytes_are_an_empty_assignment() {
        let a = Assignment { partitions: vec![("t".into(), 3), ("t".into(), 1)], user_data: None };
        let back = decode_assignment(&encode_assignment(&a)).unwrap();
        assert_eq!(back.partitions, vec![("t".into(), 1), ("t".into(), 3)]);
        assert_eq!(decode_assignment(&Bytes::new()).unwrap(), Assignment::default());
    }

    // Kafka's ConsumerProtocol: a v0 subscription (no owned partitions) and
    // a newer version than known both decode; garbage is an error, not a panic.
    #[test]
    fn old_and_newer_versions_decode_and_garbage_is_an_error() {
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("t")])
            .encode(&mut v0, 0)
            .unwrap();
        let s = decode_subscription(&v0.freeze()).unwrap();
        assert_eq!((s.topics, s.generation_id), (vec!["t".to_string()], -1));
        let mut newer = encode_subscription(&Subscription { topics: vec!["t".into()], generation_id: 2, ..Default::default() }).to_vec();
        newer[1] = 9;
        newer.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode_subscription(&Bytes::from(newer)).unwrap().generation_id, 2);
        assert!(decode_subscription(&Bytes::from_static(&[0])).is_err());
        assert!(decode_subscription(&Bytes::from_static(&[0, 1, 0, 0, 0, 9])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0])).is_err());
    }
}
