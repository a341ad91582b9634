//! Graceful broker shutdown (Kafka's controlled shutdown, lite) and the
//! clean-shutdown marker.
//!
//! Asked through a [`ShutdownSignal`], the broker stops accepting
//! connections and serving requests (its listener, connection, heartbeat,
//! ISR and housekeeping tasks end), checkpoints high watermarks, closes
//! every local log ([`crate::log::Log::close`]: every segment fsynced, the
//! producer state snapshotted at the log end) and, in each log dir whose
//! logs all closed, writes [`CLEAN_SHUTDOWN_FILE`]. Then `run_broker`
//! returns. Unlike Kafka's controlled shutdown it does not first ask the
//! controller to move its leaderships away: the controller notices the
//! missing heartbeats, as after a crash.
//!
//! At the next start the marker is read and deleted before any log of its
//! dir is opened (so a crash later in that process means full recovery
//! again); the replicas found in a marked dir open with
//! [`LogRecovery::CleanShutdown`], each once.

use super::{BrokerShared, TopicPartition};
use crate::log::LogRecovery;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// Kafka's clean-shutdown marker, one per log dir.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

/// Asks one broker process to shut down gracefully, and tells when it has.
/// One per process start: a harness keeps the current process's signal.
#[derive(Debug, Default)]
pub struct ShutdownSignal {
    requested: AtomicBool,
    wake: Notify,
    finished: AtomicBool,
    done: Notify,
}

impl ShutdownSignal {
    pub fn new() -> ShutdownSignal {
        ShutdownSignal::default()
    }

    /// Starts the graceful shutdown (idempotent).
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Resolves once a shutdown was asked for.
    pub async fn requested(&self) {
        until_set(&self.requested, &self.wake).await
    }

    /// Every log was closed and the markers written (or the attempt ended).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Resolves once the shutdown finished.
    pub async fn finished(&self) {
        until_set(&self.finished, &self.done).await
    }

    fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
        self.done.notify_waiters();
    }
}

/// Resolves once `flag` is set; whoever sets it notifies `wake` after.
/// The waiter registers before reading the flag, so a notification between
/// the read and the wait is not lost.
async fn until_set(flag: &AtomicBool, wake: &Notify) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if flag.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

/// What a graceful shutdown did, per log dir.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Logs closed cleanly.
    pub closed: usize,
    /// Logs whose close failed (their dir gets no marker).
    pub failed: Vec<TopicPartition>,
    /// Dirs that got the clean-shutdown marker.
    pub marked_dirs: Vec<String>,
}

impl BrokerShared {
    /// Reads and deletes the clean-shutdown marker of every online dir,
    /// returning the dirs that had one. Call before opening any log.
    pub(super) fn take_clean_shutdown_markers(&self) -> BTreeSet<String> {
        let offline = self.dirs.lock().unwrap().offline.clone();
        let mut clean = BTreeSet::new();
        for dir in self.config.log_dirs.iter().filter(|d| !offline.contains(*d)) {
            let path = format!("{dir}/{CLEAN_SHUTDOWN_FILE}");
            if !self.storage.exists(&path) {
                continue;
            }
            match self.storage.remove(&path) {
                Ok(()) => {
                    clean.insert(dir.clone());
                }
                Err(e) => tracing::warn!(broker = self.config.id, dir, "cannot delete the clean-shutdown marker, recovering fully: {e}"),
            }
        }
        clean
    }

    /// How a replica's log is to be opened: as after a clean shutdown the
    /// first time a replica of a marked dir opens in this process.
    pub(super) fn recovery_for(&self, key: &TopicPartition) -> LogRecovery {
        if self.dirs.lock().unwrap().clean_replicas.remove(key) {
            LogRecovery::CleanShutdown
        } else {
            LogRecovery::Full
        }
    }

    /// Closes every local log and writes the clean-shutdown markers. No
    /// replica can be opened or written afterwards in this process.
    pub(super) fn close_logs(&self) -> ShutdownReport {
        self.stopping.store(true, Ordering::SeqCst);
        self.write_hw_checkpoints();
        let parts = std::mem::take(&mut *self.partitions.lock().unwrap());
        let placement = self.dirs.lock().unwrap().placement.clone();
        let mut report = ShutdownReport::default();
        let mut failed_dirs = BTreeSet::new();
        for (key, mut p) in parts {
            match p.log.close() {
                Ok(()) => report.closed += 1,
                Err(e) => {
                    tracing::warn!(broker = self.config.id, topic = %key.0, partition = key.1, "log close failed: {e}");
                    failed_dirs.extend(placement.get(&key).cloned());
                    report.failed.push(key);
                }
            }
        }
        let offline = self.dirs.lock().unwrap().offline.clone();
        for dir in &self.config.log_dirs {
            if offline.contains(dir) || failed_dirs.contains(dir) {
                continue;
            }
            match self.storage.write_atomic(&format!("{dir}/{CLEAN_SHUTDOWN_FILE}"), b"") {
                Ok(()) => report.marked_dirs.push(dir.clone()),
                Err(e) => tracing::warn!(broker = self.config.id, dir, "cannot write the clean-shutdown marker: {e}"),
            }
        }
        tracing::info!(broker = self.config.id, closed = report.closed, failed = report.failed.len(), marked = ?report.marked_dirs, "graceful shutdown: logs closed");
        report
    }
}

/// Ends a graceful shutdown: logs closed, markers written, signal finished.
pub(super) fn complete(shared: &BrokerShared, signal: &ShutdownSignal) -> ShutdownReport {
    let report = shared.close_logs();
    signal.finish();
    report
}
