//! Coordinators: where a consumer group's or a transactional producer's
//! coordinator lives.
//!
//! Kafka places a group on partition
//! `abs(javaStringHashCode(group_id)) % offsets.topic.num.partitions` of the
//! internal `__consumer_offsets` topic, and a transactional id on
//! `__transaction_state` the same way; the coordinator is that partition's
//! leader. [`placement`] holds the arithmetic and the internal topics'
//! settings; `api::find_coordinator` answers clients. The group and
//! transaction coordinators themselves come with their issues.

pub mod placement;
