//! ksim-broker: the system under test — a Kafka-compatible broker, its
//! controller, its storage model and the Kafka clients the harness drives.
//!
//! The same code runs inside madsim (`--cfg madsim`: simulated TCP, clock and
//! the project's own simulated disk) and for real (tokio TCP, real files).
//!
//! # Layout
//!
//! - [`storage`]: the `Storage` trait (files: append, read, truncate, fsync,
//!   rename) and `SimDisk`, a page-cache model where a crash keeps unsynced
//!   bytes and a power loss drops them (optionally tearing the last write).
//! - [`log`]: record batch v2 parsing and CRC-32C validation, segmented
//!   partition logs with an offset index, the leader-epoch cache, crash
//!   recovery that truncates a torn or corrupt tail, retention, the log
//!   cleaner (compaction), batch re-encoding (recompression) and the
//!   idempotent producers' state (`log::producer_state`: duplicate, gap and
//!   epoch checks before a leader append, snapshots at segment roll).
//! - [`protocol`]: Kafka wire framing (4-byte size prefix), request/response
//!   headers and the codec glue around the `kafka-protocol` crate.
//! - [`config`]: broker/topic/client settings under Kafka's own names.
//! - [`api`]: one file per Kafka API the broker answers (ApiVersions,
//!   Metadata, CreateTopics, CreatePartitions, DescribeConfigs,
//!   IncrementalAlterConfigs, Produce, Fetch, ListOffsets, InitProducerId
//!   with producer id blocks from the controller, KIP-730, FindCoordinator,
//!   and the group coordinator's JoinGroup, SyncGroup, Heartbeat,
//!   LeaveGroup, DescribeGroups, ListGroups, OffsetCommit, OffsetFetch,
//!   OffsetDelete, DeleteGroups).
//! - [`replica`]: the partition replication state machine — leader and
//!   follower roles, ISR, high watermark, acks=all completion — free of I/O.
//! - [`controller`]: the metadata controller quorum: its own Raft
//!   (`controller::raft`, a pure state machine plus an fsynced log) elects
//!   the active controller, which handles broker registration and
//!   heartbeats, fencing, leader election from the ISR, ISR changes and
//!   preferred-leader rebalancing, committing each decision before answering.
//! - [`coordinator`]: coordinator placement (Java `String.hashCode` of the
//!   group or transactional id modulo the internal topic's partitions) and
//!   the internal `__consumer_offsets` / `__transaction_state` topics,
//!   created on the first FindCoordinator; the classic group coordinator
//!   (`coordinator::group`: a pure membership/rebalance/offsets state
//!   machine; `coordinator::offsets_topic`: Kafka's record formats;
//!   `coordinator::runtime`: parked requests, appends answered at the HW,
//!   loading/unloading groups as offsets-partition leadership moves, timers).
//! - [`observe`]: observations replicas report to a per-run observer
//!   (appends, truncations, HW, epochs, offline dirs) for the harness's
//!   broker-side checkers.
//! - [`server`]: the broker process: listener, connections, dispatch to
//!   `api`, follower fetchers, controller heartbeats, graceful shutdown
//!   (`server::shutdown`: logs closed, `.kafka_cleanshutdown` written, so
//!   the next start skips recovery), and the buggify fault points
//!   (`server::buggify`) the harness can switch on.
//! - [`client`]: producer, consumer (assign mode and consumer groups) and admin clients speaking
//!   the wire protocol (see its own `# Layout`).

pub mod api;
pub mod client;
pub mod config;
pub mod controller;
pub mod coordinator;
pub mod log;
pub mod observe;
pub mod protocol;
pub mod replica;
pub mod server;
pub mod storage;
