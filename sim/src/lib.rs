//! ksim-sim: the harness that builds a simulated cluster, attacks it with
//! faults, records a history of client operations and judges it.
//!
//! # Layout
//!
//! - [`scenario`]: the scenario TOML contract (serde), with errors that name
//!   file, line and field.
//! - [`history`]: operations and their JSONL form (the history contract).
//! - [`report`]: a seed's verdict against `[expect]`, and sweep summaries.
//! - [`report_files`]: the files `--out` writes (`results.jsonl`,
//!   `summary.md`, `junit.xml`) and which seeds get a directory (`Keep`).
//! - [`seed_report`]: one seed's directory: history, results, observations,
//!   fault windows, `log.txt`, `timeline.html` and SVG plots.
//! - [`checker`]: one file per anomaly in DESIGN.md's catalogue (client
//!   histories, and broker-side observations).
//! - [`observations`]: the per-run observer brokers report replica events
//!   to (appends, truncations, HW, epochs), for the broker-side checkers.
//! - [`cluster`]: builds broker, controller and client nodes in madsim, each
//!   server with its own simulated disk, each client restartable as a new
//!   history process.
//! - [`faults`]: resolves fault targets and injects every fault kind
//!   (node, partition shapes, network latency/loss, disk, client stalls and
//!   clock jumps) at fixed and seeded random (optionally swarm) times, and
//!   undoes them all by heal.
//! - [`schedule_gen`]: proptest strategies for generated fault schedules
//!   and workload shapes (property tests over a base scenario).
//! - [`shrink`]: `ksim shrink` — a failing seed's schedule made explicit,
//!   then minimised (fewer, shorter, earlier faults; a smaller workload)
//!   while the same anomaly shows.
//! - [`workload`]: producer and consumer processes that record the history.
//! - [`run`]: one seed end to end — build, run, heal, final polls, check —
//!   giving a `SeedResult` with its trace hash.
//! - [`sweep`]: seed ranges over several OS threads, one runtime each, and
//!   shards of a range for CI matrices.
//! - [`trace`]: the trace hash that proves a seed replays identically.
//! - [`bench`]: `ksim bench`'s measurements (scenario speed, checker
//!   throughput on a seeded generated history).

pub mod bench;
pub mod checker;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod observations;
pub mod report;
pub mod report_files;
pub mod run;
pub mod scenario;
pub mod schedule_gen;
pub mod seed_report;
pub mod shrink;
pub mod sweep;
pub mod trace;
pub mod workload;
