//! Kafka clients speaking the wire protocol to any broker: a producer, an
//! assign-mode consumer and an admin client. They use madsim's TCP and
//! clock under `--cfg madsim` and real tokio otherwise; nothing here
//! iterates unordered maps or reads the wall clock directly.
//!
//! # Layout
//!
//! - [`config`]: producer / consumer / admin settings under Kafka's names.
//! - [`error`]: `ConfigError`, `ClientError`, `SendError` and the produce
//!   error classification (definite failure vs unknown outcome).
//! - [`network`]: one multiplexed connection per broker (writer and reader
//!   tasks, correlation ids, request timeouts, lazy reconnect).
//! - [`metadata`]: brokers and partition leaders from Metadata v12, with
//!   refresh on stale-leader errors and on a max-age timer.
//! - [`partitioner`]: Kafka's murmur2 and the default keyed partitioner.
//! - [`producer`]: record batch v2 + Produce v9, retries, delivery timeout.
//! - [`consumer`]: positions, Fetch v12 to every leader, offset reset via
//!   ListOffsets, `end_offsets`.
//! - [`admin`]: CreateTopics v7 and waiting for leaders.

pub mod admin;
pub mod config;
pub mod consumer;
pub mod error;
pub mod metadata;
pub mod network;
pub mod partitioner;
pub mod producer;

pub use admin::{Admin, AlterConfigOp, ConfigEntry};
pub use config::{AdminConfig, ConsumerConfig, NetworkConfig, OffsetReset, ProducerConfig};
pub use consumer::{Consumer, ConsumerRecord};
pub use error::{ClientError, ConfigError, SendError};
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{Producer, RecordMetadata};
