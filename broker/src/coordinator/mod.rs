//! Coordinators: where a consumer group's or a transactional producer's
//! coordinator lives.
//!
//! Kafka places a group on partition
//! `abs(javaStringHashCode(group_id)) % offsets.topic.num.partitions` of the
//! internal `__consumer_offsets` topic, and a transactional id on
//! `__transaction_state` the same way; the coordinator is that partition's
//! leader.
//!
//! # Layout
//!
//! - [`placement`]: the arithmetic and the internal topics' settings;
//!   `api::find_coordinator` answers clients.
//! - [`group`]: the classic group coordinator as a pure state machine
//!   (membership, rebalances, static members, offset validation, timers as
//!   deadlines), tested without I/O.
//! - [`offsets_topic`]: Kafka's `__consumer_offsets` record formats (offset
//!   commit and group metadata keys/values, tombstones).
//! - [`runtime`]: the group coordinator's I/O: routing to the offsets
//!   partition we lead, parked JoinGroup/SyncGroup requests, appends
//!   answered at the high watermark, loading on leadership, timers on tokio
//!   time. The API handlers (`api::join_group`, …) call it.
//!
//! The transaction coordinator comes with its own issue.

pub mod group;
pub mod offsets_topic;
pub mod placement;
pub mod runtime;
