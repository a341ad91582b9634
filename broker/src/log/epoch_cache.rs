//! The leader-epoch cache (KIP-101, KIP-279): for each leader epoch, the
//! first offset written in it. Followers ask the leader for the end offset of
//! their latest epoch and truncate to it, instead of to the high watermark.
//!
//! # Format
//!
//! The `leader-epoch-checkpoint` file, as Kafka writes it, replaced whole with
//! `write_atomic` on every change:
//!
//! ```text
//! 0            <- version
//! 2            <- number of entries
//! 0 0          <- epoch start_offset
//! 3 120
//! ```

use std::sync::Arc;

use super::LogError;
use crate::storage::Storage;

/// The checkpoint file's name inside a partition directory.
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const CHECKPOINT_VERSION: u32 = 0;
/// Bound on entries read from a checkpoint (a corrupt count must not allocate
/// without limit).
const MAX_ENTRIES: usize = 1 << 20;

/// Epoch `epoch` began at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The epoch cache of one partition replica, persisted in `path`.
pub struct LeaderEpochCache {
    storage: Arc<dyn Storage>,
    path: String,
    /// Strictly increasing in both epoch and start offset.
    entries: Vec<EpochEntry>,
}

impl std::fmt::Debug for LeaderEpochCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderEpochCache").field("path", &self.path).field("entries", &self.entries).finish()
    }
}

fn parse_checkpoint(path: &str, text: &str) -> Result<Vec<EpochEntry>, LogError> {
    let bad = |reason: &str| LogError::CorruptCheckpoint { path: path.to_string(), reason: reason.to_string() };
    let mut lines = text.lines();
    let version: u32 = lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| bad("version"))?;
    if version != CHECKPOINT_VERSION {
        return Err(bad("unknown version"));
    }
    let count: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| bad("count"))?;
    if count > MAX_ENTRIES {
        return Err(bad("too many entries"));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let line = lines.next().ok_or_else(|| bad("missing entry"))?;
        let mut parts = line.split_whitespace();
        let epoch = parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| bad("epoch"))?;
        let start_offset = parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| bad("offset"))?;
        entries.push(EpochEntry { epoch, start_offset });
    }
    for w in entries.windows(2) {
        if w[0].epoch >= w[1].epoch || w[0].start_offset > w[1].start_offset {
            return Err(bad("entries not increasing"));
        }
    }
    Ok(entries)
}

impl LeaderEpochCache {
    /// Loads the checkpoint at `path` (empty cache if the file is missing).
    pub fn load(storage: Arc<dyn Storage>, path: &str) -> Result<Self, LogError> {
        let entries = if storage.exists(path) {
            let bytes = storage.read_all(path)?;
            let text = String::from_utf8(bytes).map_err(|_| LogError::CorruptCheckpoint {
                path: path.to_string(),
                reason: "not UTF-8".into(),
            })?;
            parse_checkpoint(path, &text)?
        } else {
            Vec::new()
        };
        Ok(LeaderEpochCache { storage, path: path.to_string(), entries })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    fn persist(&self) -> Result<(), LogError> {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        self.storage.write_atomic(&self.path, text.as_bytes())?;
        Ok(())
    }

    /// Records that `epoch` starts at `start_offset`, as Kafka's
    /// `LeaderEpochFileCache.assign`: no change if `epoch` is the latest and
    /// starts no later; otherwise entries with an epoch >= `epoch` or a start
    /// offset >= `start_offset` are replaced. Returns whether it changed
    /// (and so was checkpointed).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, LogError> {
        assert!(epoch >= 0, "assign: negative epoch {epoch}");
        assert!(start_offset >= 0, "assign: negative offset {start_offset}");
        if let Some(latest) = self.entries.last() {
            if latest.epoch == epoch && start_offset >= latest.start_offset {
                return Ok(false);
            }
        }
        let before = self.entries.len();
        self.entries.retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        if self.entries.len() != before {
            tracing::debug!(path = %self.path, epoch, start_offset, removed = before - self.entries.len(),
                "epoch cache: replaced conflicting entries");
        }
        self.entries.push(EpochEntry { epoch, start_offset });
        self.persist()?;
        Ok(true)
    }

    /// Drops entries that start at or after `end_offset` (the new log end
    /// after a truncation or recovery).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), LogError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Empties the cache (the log was truncated fully).
    pub fn clear(&mut self) -> Result<(), LogError> {
        if !self.entries.is_empty() {
            self.entries.clear();
            self.persist()?;
        }
        Ok(())
    }

    /// KIP-101/KIP-279 (Kafka's `LeaderEpochFileCache.endOffsetFor`): the
    /// largest known epoch <= `requested` and the offset where it ended, i.e.
    /// the start offset of the next known epoch, or `log_end_offset` when
    /// `requested` is the latest epoch. `None` (Kafka's UNDEFINED_EPOCH /
    /// UNDEFINED_EPOCH_OFFSET) when the cache is empty or `requested` is above
    /// every known epoch. A `requested` epoch below every known one yields
    /// `(requested, start of the first epoch)`.
    pub fn end_offset_for_epoch(&self, requested: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if requested < 0 {
            return None;
        }
        let latest = self.entries.last()?;
        if latest.epoch == requested {
            return Some((requested, log_end_offset));
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            None => Some((requested, higher.start_offset)),
            Some(floor) => Some((floor.epoch, higher.start_offset)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimDisk;

    fn cache() -> (LeaderEpochCache, SimDisk) {
        let disk = SimDisk::new(5_000);
        disk.create_dir_all("/p").unwrap();
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        (LeaderEpochCache::load(storage, "/p/leader-epoch-checkpoint").unwrap(), disk)
    }

    #[test]
    fn assign_persists_and_reloads() {
        let (mut c, disk) = cache();
        assert!(c.assign(0, 0).unwrap());
        assert!(!c.assign(0, 5).unwrap(), "same epoch, later offset: no change");
        assert!(c.assign(2, 10).unwrap());
        let text = String::from_utf8(disk.read_all("/p/leader-epoch-checkpoint").unwrap()).unwrap();
        assert_eq!(text, "0\n2\n0 0\n2 10\n");
        let again = LeaderEpochCache::load(Arc::new(disk), "/p/leader-epoch-checkpoint").unwrap();
        assert_eq!(again.entries(), c.entries());
    }

    #[test]
    fn assign_lower_epoch_replaces_later_entries() {
        let (mut c, _) = cache();
        c.assign(1, 0).unwrap();
        c.assign(3, 10).unwrap();
        c.assign(5, 20).unwrap();
        c.assign(4, 15).unwrap();
        assert_eq!(c.entries(), &[EpochEntry { epoch: 1, start_offset: 0 }, EpochEntry { epoch: 3, start_offset: 10 }, EpochEntry { epoch: 4, start_offset: 15 }]);
    }

    // KIP-101: leader has epochs 0@0, 1@5, 2@8, LEO 12.
    #[test]
    fn end_offset_for_epoch_kip101_vectors() {
        let (mut c, _) = cache();
        c.assign(0, 0).unwrap();
        c.assign(1, 5).unwrap();
        c.assign(2, 8).unwrap();
        assert_eq!(c.end_offset_for_epoch(0, 12), Some((0, 5)));
        assert_eq!(c.end_offset_for_epoch(1, 12), Some((1, 8)));
        assert_eq!(c.end_offset_for_epoch(2, 12), Some((2, 12)), "latest epoch ends at LEO");
        assert_eq!(c.end_offset_for_epoch(3, 12), None, "unknown future epoch");
        assert_eq!(c.end_offset_for_epoch(-1, 12), None);
    }

    // KIP-279: the leader skipped epochs; a follower asking for an epoch the
    // leader never had gets the largest epoch below it and where that ended.
    #[test]
    fn end_offset_for_epoch_kip279_missing_epoch_returns_floor() {
        let (mut c, _) = cache();
        c.assign(1, 0).unwrap();
        c.assign(3, 10).unwrap();
        c.assign(6, 25).unwrap();
        assert_eq!(c.end_offset_for_epoch(2, 30), Some((1, 10)));
        assert_eq!(c.end_offset_for_epoch(4, 30), Some((3, 25)));
        assert_eq!(c.end_offset_for_epoch(5, 30), Some((3, 25)));
        assert_eq!(c.end_offset_for_epoch(7, 30), None);
        // Below every known epoch: the requested epoch and the first start.
        assert_eq!(c.end_offset_for_epoch(0, 30), Some((0, 0)));
    }

    #[test]
    fn empty_cache_knows_no_epoch() {
        let (c, _) = cache();
        assert_eq!(c.end_offset_for_epoch(0, 0), None);
        assert_eq!(c.latest_epoch(), None);
    }

    #[test]
    fn truncate_from_end_drops_epochs_starting_at_or_after() {
        let (mut c, disk) = cache();
        c.assign(0, 0).unwrap();
        c.assign(1, 5).unwrap();
        c.assign(2, 8).unwrap();
        c.truncate_from_end(8).unwrap();
        assert_eq!(c.latest_epoch(), Some(1));
        assert_eq!(c.end_offset_for_epoch(1, 8), Some((1, 8)));
        let again = LeaderEpochCache::load(Arc::new(disk), "/p/leader-epoch-checkpoint").unwrap();
        assert_eq!(again.entries().len(), 2);
    }

    #[test]
    fn corrupt_checkpoint_is_an_error() {
        let (_, disk) = cache();
        disk.write_atomic("/p/leader-epoch-checkpoint", b"0\n3\n1 0\n").unwrap();
        let r = LeaderEpochCache::load(Arc::new(disk), "/p/leader-epoch-checkpoint");
        assert!(matches!(r, Err(LogError::CorruptCheckpoint { .. })));
    }
}
