//! The Raft hard state and log on a node's disk.
//!
//! # Format
//!
//! - `DIR/hard_state.json`: `{"term":…,"voted_for":…}`, replaced with
//!   `write_atomic` (fsynced, never torn).
//! - `DIR/log`: one record per entry, `len: u32 BE | crc32c(json): u32 BE |
//!   json`, entries in index order from 1. Appends and truncations are
//!   fsynced before [`RaftStore`] returns, so an entry the node acknowledged
//!   survives power loss. On open, a torn or corrupt tail (power loss in the
//!   middle of an append) is cut off: it was never acknowledged.

use super::{Entry, HardState};
use crate::storage::{join, Storage};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;
use std::sync::Arc;

/// Record header: length and CRC-32C.
const HEADER_BYTES: usize = 8;
/// Bound on one record (a metadata image); larger is treated as corrupt.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

pub struct RaftStore {
    storage: Arc<dyn Storage>,
    hard_state_path: String,
    log_path: String,
    /// Byte offset where entry `i + 1` starts, plus the end of the log.
    offsets: Vec<u64>,
}

/// What a node reads back on start.
pub struct Recovered<C> {
    pub hard_state: HardState,
    pub entries: Vec<Entry<C>>,
    /// Bytes cut off the log's tail (a torn or corrupt record).
    pub dropped_tail_bytes: u64,
}

impl RaftStore {
    /// Opens (creating) the store in `dir` and recovers its contents.
    pub fn open<C: DeserializeOwned>(storage: Arc<dyn Storage>, dir: &str) -> io::Result<(RaftStore, Recovered<C>)> {
        storage.create_dir_all(dir)?;
        let hard_state_path = join(dir, "hard_state.json");
        let log_path = join(dir, "log");
        let hard_state = if storage.exists(&hard_state_path) {
            serde_json::from_slice(&storage.read_all(&hard_state_path)?).map_err(io::Error::other)?
        } else {
            HardState::default()
        };
        let bytes = if storage.exists(&log_path) { storage.read_all(&log_path)? } else { Vec::new() };
        let mut entries: Vec<Entry<C>> = Vec::new();
        let mut offsets = vec![0u64];
        let mut pos = 0usize;
        while let Some((entry, len)) = decode_record::<C>(&bytes[pos..]) {
            if entry.index != entries.len() as u64 + 1 {
                break; // not the next entry: treat as corruption
            }
            entries.push(entry);
            pos += len;
            offsets.push(pos as u64);
        }
        let dropped_tail_bytes = (bytes.len() - pos) as u64;
        if dropped_tail_bytes > 0 {
            storage.truncate(&log_path, pos as u64)?;
            storage.sync(&log_path)?;
        }
        let store = RaftStore { storage, hard_state_path, log_path, offsets };
        Ok((store, Recovered { hard_state, entries, dropped_tail_bytes }))
    }

    pub fn save_hard_state(&self, hs: &HardState) -> io::Result<()> {
        let bytes = serde_json::to_vec(hs).map_err(io::Error::other)?;
        self.storage.write_atomic(&self.hard_state_path, &bytes)
    }

    /// Appends entries (contiguous, after the last one) and fsyncs.
    pub fn append<C: Serialize>(&mut self, entries: &[Entry<C>]) -> io::Result<()> {
        let base = self.end();
        let mut buf = Vec::new();
        for e in entries {
            assert_eq!(e.index, self.offsets.len() as u64, "append must continue the log");
            let json = serde_json::to_vec(e).map_err(io::Error::other)?;
            assert!(json.len() <= MAX_RECORD_BYTES, "record too large: {}", json.len());
            buf.extend_from_slice(&(json.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
            buf.extend_from_slice(&json);
            self.offsets.push(base + buf.len() as u64);
        }
        self.storage.append(&self.log_path, &buf)?;
        self.storage.sync(&self.log_path)
    }

    /// Removes every entry with index ≥ `from_index` and fsyncs.
    pub fn truncate(&mut self, from_index: u64) -> io::Result<()> {
        assert!(from_index >= 1 && from_index <= self.offsets.len() as u64, "truncate at {from_index} outside the log");
        let at = self.offsets[from_index as usize - 1];
        self.offsets.truncate(from_index as usize);
        self.storage.truncate(&self.log_path, at)?;
        self.storage.sync(&self.log_path)
    }

    fn end(&self) -> u64 {
        *self.offsets.last().expect("offsets start with 0")
    }
}

/// One record from the front of `bytes`: the entry and the record's length,
/// or `None` when the bytes are short, torn or fail their CRC.
fn decode_record<C: DeserializeOwned>(bytes: &[u8]) -> Option<(Entry<C>, usize)> {
    if bytes.len() < HEADER_BYTES {
        return None;
    }
    let len = u32::from_be_bytes(bytes[0..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(bytes[4..8].try_into().ok()?);
    if len > MAX_RECORD_BYTES || bytes.len() < HEADER_BYTES + len {
        return None;
    }
    let json = &bytes[HEADER_BYTES..HEADER_BYTES + len];
    if crc32c::crc32c(json) != crc {
        return None;
    }
    let entry = serde_json::from_slice(json).ok()?;
    Some((entry, HEADER_BYTES + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{ManualClock, SimDisk};
    use rand::SeedableRng;

    fn entry(index: u64, v: u64) -> Entry<u64> {
        Entry { term: 1, index, cmd: Some(v) }
    }

    fn disk() -> SimDisk {
        SimDisk::with_clock(5000, Arc::new(ManualClock::new()))
    }

    #[test]
    fn power_loss_keeps_fsynced_entries_and_hard_state() {
        let disk = disk();
        let (mut store, rec) = RaftStore::open::<u64>(Arc::new(disk.clone()), "/raft").unwrap();
        assert!(rec.entries.is_empty());
        store.save_hard_state(&HardState { term: 3, voted_for: Some(1) }).unwrap();
        store.append(&[entry(1, 10), entry(2, 20), entry(3, 30)]).unwrap();
        store.truncate(3).unwrap();
        store.append(&[entry(3, 31)]).unwrap();
        disk.power_loss(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1), true);
        let (_, rec) = RaftStore::open::<u64>(Arc::new(disk.clone()), "/raft").unwrap();
        assert_eq!(rec.hard_state, HardState { term: 3, voted_for: Some(1) });
        assert_eq!(rec.entries, vec![entry(1, 10), entry(2, 20), entry(3, 31)]);
    }

    #[test]
    fn a_torn_tail_record_is_dropped_on_open() {
        let disk = disk();
        let (mut store, _) = RaftStore::open::<u64>(Arc::new(disk.clone()), "/raft").unwrap();
        store.append(&[entry(1, 10), entry(2, 20)]).unwrap();
        let len = disk.len("/raft/log").unwrap();
        disk.truncate("/raft/log", len - 3).unwrap(); // half-written last record
        let (mut store, rec) = RaftStore::open::<u64>(Arc::new(disk.clone()), "/raft").unwrap();
        assert_eq!(rec.entries, vec![entry(1, 10)]);
        assert!(rec.dropped_tail_bytes > 0);
        store.append(&[entry(2, 21)]).unwrap();
        let (_, rec) = RaftStore::open::<u64>(Arc::new(disk), "/raft").unwrap();
        assert_eq!(rec.entries, vec![entry(1, 10), entry(2, 21)]);
        assert_eq!(rec.dropped_tail_bytes, 0);
    }
}
