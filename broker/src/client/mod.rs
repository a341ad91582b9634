//! Kafka clients speaking the wire protocol to any broker: a producer, a
//! consumer (assign mode and consumer groups) and an admin client. They
//! use madsim's TCP and clock under `--cfg madsim` and real tokio
//! otherwise; nothing here iterates unordered maps or reads the wall clock
//! directly.
//!
//! # Layout
//!
//! - [`clock`]: the client's wall clock (system clock plus an offset a
//!   harness can jump), read for record timestamps.
//! - [`config`]: producer / consumer / admin settings under Kafka's names.
//! - [`error`]: `ConfigError`, `ClientError`, `SendError` and the produce
//!   error classification (definite failure vs unknown outcome).
//! - [`network`]: one multiplexed connection per broker (writer and reader
//!   tasks, correlation ids, request timeouts, lazy reconnect, closing
//!   after connections.max.idle.ms).
//! - [`metadata`]: brokers and partition leaders from Metadata v12, with
//!   refresh on stale-leader errors and on a max-age timer.
//! - [`partitioner`]: Kafka's murmur2, the built-in sticky partitioner
//!   (KIP-480/794), round-robin, random and the `Partitioner` trait.
//! - [`interceptor`]: `ProducerRecord` and Kafka's `ProducerInterceptor`.
//! - [`accumulator`]: Kafka's RecordAccumulator as state (batches per
//!   partition, linger, batch.size, buffer.memory, drains, retries with
//!   KIP-580 backoff, delivery.timeout.ms) and the idempotent producer's
//!   sequence numbers, epoch bumps and unresolved partitions.
//! - [`producer`]: `Producer` (send, send_with_callback, flush, close) and
//!   its sender task: InitProducerId, Produce v9 requests per broker with
//!   max.in.flight, compression, metadata refresh.
//! - [`consumer`]: the consumer, a module of its own (see its `# Layout`):
//!   assign mode (positions, Fetch v12 to every leader, offset reset via
//!   ListOffsets, `end_offsets`) and group mode (`subscribe`, the group
//!   membership state machine in `consumer::group`, its coordinator
//!   driver with join and heartbeat tasks, commits, rebalance listener).
//! - [`assignor`]: the partition assignors a group leader runs (range,
//!   roundrobin, sticky, cooperative-sticky, or a custom one) and the
//!   consumer protocol's subscription / assignment bytes.
//! - [`admin`]: CreateTopics v7 and waiting for leaders.

pub mod accumulator;
pub mod admin;
pub mod assignor;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod error;
pub mod interceptor;
pub mod metadata;
pub mod network;
pub mod partitioner;
pub mod producer;

pub use admin::{Admin, AlterConfigOp, ConfigEntry};
pub use assignor::{PartitionAssignor, RebalanceProtocol};
pub use clock::ClientClock;
pub use config::{AdminConfig, AssignorChoice, ConsumerConfig, Interceptors, NetworkConfig, OffsetReset, PartitionerChoice, ProducerConfig};
pub use consumer::{
    CommitCallback, Consumer, ConsumerGroupMetadata, ConsumerRebalanceListener, ConsumerRecord, OffsetAndMetadata, RebalanceEvent,
};
pub use error::{ClientError, ConfigError, SendError, SendErrorKind};
pub use interceptor::{ProducerInterceptor, ProducerRecord};
pub use partitioner::{murmur2, partition_for_key, BuiltInPartitioner, Partitioner, RandomPartitioner, RoundRobinPartitioner};
pub use producer::{Producer, RecordMetadata};
