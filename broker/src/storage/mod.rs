//! File storage behind a small synchronous trait, so the log runs on the
//! simulated disk ([`SimDisk`]) inside madsim and on real files ([`FsStorage`])
//! outside it.
//!
//! # Model
//!
//! Paths are `/`-separated strings. A write lands in the (simulated) OS page
//! cache; only [`Storage::sync`] makes it durable, although the OS also writes
//! dirty data back on its own after a while. Directory operations (create,
//! remove, rename, [`Storage::write_atomic`]) are durable at once, as with a
//! journalling file system followed by an fsync of the directory.
//!
//! # Layout
//!
//! - [`sim_disk`]: `SimDisk`, page cache vs durable bytes, crash and power
//!   loss (optionally tearing a write), injectable faults (EIO, disk full,
//!   failed directory).
//! - [`fs`]: `FsStorage`, the same trait on `std::fs` for real mode.

use std::io;

pub mod fs;
pub mod sim_disk;

pub use fs::FsStorage;
pub use sim_disk::{Clock, DiskFaults, DiskStats, ManualClock, SimClock, SimDisk};

/// Files as the log sees them. Sync methods: the simulated disk never blocks,
/// and the real one is used only from the broker's storage tasks.
pub trait Storage: Send + Sync + 'static {
    fn create_dir_all(&self, path: &str) -> io::Result<()>;
    /// Names (not paths) of the entries directly inside `path`, sorted.
    fn list_dir(&self, path: &str) -> io::Result<Vec<String>>;
    fn exists(&self, path: &str) -> bool;
    fn len(&self, path: &str) -> io::Result<u64>;
    /// Reads up to `len` bytes at `offset`; a short read at end of file.
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    fn read_all(&self, path: &str) -> io::Result<Vec<u8>>;
    /// Appends, creating the file if missing. Lands in the page cache only.
    fn append(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Sets the file's length (shrinks, or extends with zeros). Page cache only.
    fn truncate(&self, path: &str, len: u64) -> io::Result<()>;
    /// fsync: everything written to this file so far becomes durable.
    fn sync(&self, path: &str) -> io::Result<()>;
    /// Removes a file, or an empty directory.
    fn remove(&self, path: &str) -> io::Result<()>;
    /// Atomic and durable (journalled metadata), like rename(2)+fsync(dir).
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// write tmp, fsync, rename: a checkpoint file that is old or new, never torn.
    fn write_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
}

/// `dir/name` without doubling a trailing slash.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}
