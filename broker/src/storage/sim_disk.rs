//! `SimDisk`: the project's simulated disk (madsim's file system is a stub).
//!
//! # Model
//!
//! Each file has its page-cache contents (what reads see) and its durable
//! contents (what survives a power loss). Every append or truncate since the
//! last fsync is kept, in order, as a pending op stamped with the time it was
//! made. The simulated OS writes dirty data back by itself: a pending op older
//! than `os_writeback_ms` counts as durable (applied lazily, on every call and
//! at power loss). Ops are written back in order, so the durable contents are
//! always the page-cache contents at some earlier moment.
//!
//! - [`SimDisk::crash`]: the process died; the page cache survives and is
//!   written back as usual (no data changes).
//! - [`SimDisk::power_loss`]: the machine died; each file keeps its durable
//!   contents and loses its pending ops. With `tear`, a random prefix of each
//!   file's first lost append survives (a torn write).
//! - Directory operations (create, remove, rename, `write_atomic`) and file
//!   creation are durable immediately (journalled metadata).
//!
//! Faults ([`DiskFaults`]) make operations fail with EIO or "no space left"
//! without changing any data.
//!
//! All maps are `BTreeMap`s so that iteration (and so every outcome) is
//! deterministic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;

use super::Storage;

/// Linux's EIO, for injected I/O errors.
const EIO: i32 = 5;

/// Where the disk reads the time that stamps pending writes.
pub trait Clock: Send + Sync + 'static {
    /// Time since an arbitrary fixed origin; never goes backwards.
    fn now(&self) -> Duration;
}

/// The simulated clock of the current madsim runtime (time since it started).
/// Outside a runtime the time stands still at zero, so nothing is written
/// back by age (deterministic, and only unit tests run there).
/// Without `cfg(madsim)` it is the real monotonic clock.
#[derive(Debug, Clone)]
pub struct SimClock {
    #[cfg(not(madsim))]
    origin: std::time::Instant,
}

impl SimClock {
    pub fn new() -> Self {
        SimClock {
            #[cfg(not(madsim))]
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SimClock {
    #[cfg(madsim)]
    fn now(&self) -> Duration {
        madsim::time::TimeHandle::try_current()
            .map(|h| h.elapsed())
            .unwrap_or_default()
    }

    #[cfg(not(madsim))]
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that tests move by hand. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    /// Nanoseconds since the origin.
    now_ns: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn advance(&self, by: Duration) {
        self.now_ns.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: u64) {
        self.advance(Duration::from_millis(ms));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.now_ns.load(Ordering::SeqCst))
    }
}

/// Faults the harness switches on and off; the disk's methods honour them by
/// returning errors without changing any data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskFaults {
    /// `append` and `truncate` fail with EIO.
    pub eio_on_append: bool,
    /// `sync` fails with EIO (the data stays dirty, still at risk).
    pub eio_on_sync: bool,
    /// The disk is full: `append` (non-empty) and `write_atomic` fail with
    /// `StorageFull`.
    pub full: bool,
    /// Every operation on a path at or under one of these directories fails
    /// with EIO (a failed log dir, as with JBOD).
    pub failed_dirs: BTreeSet<String>,
}

/// Counters for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub appends: u64,
    pub append_bytes: u64,
    pub truncates: u64,
    pub syncs: u64,
    pub atomic_writes: u64,
    /// Pending ops made durable by the OS's own writeback.
    pub written_back_ops: u64,
    pub crashes: u64,
    pub power_losses: u64,
    /// Pending ops dropped by power losses.
    pub lost_ops: u64,
    /// Bytes of appends dropped by power losses (torn prefixes not counted).
    pub lost_bytes: u64,
    /// Appends of which a prefix survived a power loss.
    pub torn_writes: u64,
    /// Operations failed by injected faults.
    pub injected_errors: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Truncate(u64),
}

#[derive(Debug, Clone)]
struct PendingOp {
    /// When the op reached the page cache.
    at: Duration,
    op: Op,
}

#[derive(Debug, Clone, Default)]
struct FileState {
    /// Page-cache contents: what reads see.
    cache: Vec<u8>,
    /// Contents that survive a power loss.
    durable: Vec<u8>,
    /// Ops since the durable contents, oldest first.
    pending: VecDeque<PendingOp>,
}

fn apply(buf: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Append(bytes) => buf.extend_from_slice(bytes),
        Op::Truncate(len) => buf.resize(*len as usize, 0),
    }
}

struct Inner {
    clock: Arc<dyn Clock>,
    os_writeback: Duration,
    state: Mutex<DiskState>,
}

#[derive(Default)]
struct DiskState {
    files: BTreeMap<String, FileState>,
    dirs: BTreeSet<String>,
    faults: DiskFaults,
    stats: DiskStats,
    /// No pending op is older than this (a lower bound; `None`: nothing
    /// pending), so most calls skip the writeback scan over all files.
    earliest_pending: Option<Duration>,
}

/// The simulated disk of one node. Clones share the same disk.
#[derive(Clone)]
pub struct SimDisk {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk")
            .field("os_writeback", &self.inner.os_writeback)
            .finish_non_exhaustive()
    }
}

/// Strips trailing slashes; `"/"` stays the root.
fn normalize(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() && path.starts_with('/') {
        "/"
    } else {
        trimmed
    }
}

/// The directory holding `path` (`""` for a relative name, `"/"` for a
/// top-level absolute one).
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        None => "",
        Some(0) => {
            if path == "/" {
                ""
            } else {
                "/"
            }
        }
        Some(i) => &path[..i],
    }
}

fn is_root(path: &str) -> bool {
    path.is_empty() || path == "/"
}

fn under(path: &str, dir: &str) -> bool {
    let dir = normalize(dir);
    if dir == "/" {
        return path.starts_with('/');
    }
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{path}: no such file or directory"))
}

/// An injected EIO (`raw_os_error() == Some(5)`); `what` and `path` go to the trace.
fn eio(what: &str, path: &str) -> io::Error {
    tracing::debug!(what, path, "injected EIO");
    io::Error::from_raw_os_error(EIO)
}

impl DiskState {
    fn dir_exists(&self, path: &str) -> bool {
        is_root(path) || self.dirs.contains(path)
    }

    fn check_dir(&mut self, path: &str) -> io::Result<()> {
        if let Some(dir) = self.faults.failed_dirs.iter().find(|d| under(path, d)) {
            let e = eio("access (failed dir)", dir);
            self.stats.injected_errors += 1;
            return Err(e);
        }
        Ok(())
    }

    fn check_parent(&self, path: &str) -> io::Result<()> {
        let p = parent(path);
        if self.dir_exists(p) {
            Ok(())
        } else {
            Err(not_found(p))
        }
    }

    fn file(&self, path: &str) -> io::Result<&FileState> {
        self.files.get(path).ok_or_else(|| not_found(path))
    }

    /// The OS writes back every pending op older than `os_writeback`.
    fn write_back(&mut self, now: Duration, os_writeback: Duration) {
        match self.earliest_pending {
            None => return,
            Some(at) if now.saturating_sub(at) < os_writeback => return,
            Some(_) => {}
        }
        let mut earliest: Option<Duration> = None;
        for file in self.files.values_mut() {
            while let Some(front) = file.pending.front() {
                if now.saturating_sub(front.at) < os_writeback {
                    break;
                }
                let op = file.pending.pop_front().expect("front exists");
                apply(&mut file.durable, &op.op);
                self.stats.written_back_ops += 1;
            }
            match file.pending.front() {
                // Invariant: with nothing pending, durable and cached agree.
                None => assert_eq!(file.durable.len(), file.cache.len()),
                Some(front) => earliest = Some(earliest.map_or(front.at, |e| e.min(front.at))),
            }
        }
        self.earliest_pending = earliest;
    }
}

impl SimDisk {
    /// A disk on the simulated clock ([`SimClock`]); dirty data older than
    /// `os_writeback_ms` counts as written back.
    pub fn new(os_writeback_ms: u64) -> Self {
        Self::with_clock(os_writeback_ms, Arc::new(SimClock::new()))
    }

    /// A disk on a given clock (tests use [`ManualClock`]).
    pub fn with_clock(os_writeback_ms: u64, clock: Arc<dyn Clock>) -> Self {
        SimDisk {
            inner: Arc::new(Inner {
                clock,
                os_writeback: Duration::from_millis(os_writeback_ms),
                state: Mutex::new(DiskState::default()),
            }),
        }
    }

    /// Locks the state after letting the OS write back what is old enough.
    fn state(&self) -> MutexGuard<'_, DiskState> {
        let now = self.inner.clock.now();
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        st.write_back(now, self.inner.os_writeback);
        st
    }

    /// The process died (kill -9): the page cache survives, nothing changes.
    pub fn crash(&self) {
        let mut st = self.state();
        st.stats.crashes += 1;
    }

    /// The machine lost power: every file goes back to its durable contents
    /// (fsynced or written back by the OS). With `tear`, a random prefix
    /// (possibly empty, never whole) of each file's first lost append survives.
    pub fn power_loss<R: Rng + ?Sized>(&self, rng: &mut R, tear: bool) {
        let mut st = self.state();
        st.stats.power_losses += 1;
        let mut lost_ops = 0u64;
        let mut lost_bytes = 0u64;
        let mut torn = 0u64;
        for file in st.files.values_mut() {
            let mut pending = std::mem::take(&mut file.pending);
            if tear {
                if let Some(PendingOp { op: Op::Append(bytes), .. }) = pending.front() {
                    if bytes.len() > 1 {
                        let keep = rng.random_range(0..bytes.len());
                        if keep > 0 {
                            file.durable.extend_from_slice(&bytes[..keep]);
                            torn += 1;
                            lost_bytes += (bytes.len() - keep) as u64;
                            lost_ops += 1;
                            pending.pop_front();
                        }
                    }
                }
            }
            for op in &pending {
                lost_ops += 1;
                if let Op::Append(bytes) = &op.op {
                    lost_bytes += bytes.len() as u64;
                }
            }
            file.cache = file.durable.clone();
        }
        st.stats.lost_ops += lost_ops;
        st.stats.lost_bytes += lost_bytes;
        st.stats.torn_writes += torn;
    }

    pub fn stats(&self) -> DiskStats {
        self.state().stats.clone()
    }

    pub fn faults(&self) -> DiskFaults {
        self.state().faults.clone()
    }

    pub fn set_faults(&self, faults: DiskFaults) {
        self.state().faults = faults;
    }

    /// Changes the faults in place, e.g. `disk.update_faults(|f| f.full = true)`.
    pub fn update_faults(&self, change: impl FnOnce(&mut DiskFaults)) {
        change(&mut self.state().faults);
    }

    /// The contents a power loss now would leave (without tearing); `None`
    /// if the file does not exist. For tests and checkers.
    pub fn durable_contents(&self, path: &str) -> Option<Vec<u8>> {
        self.state().files.get(normalize(path)).map(|f| f.durable.clone())
    }

    /// Bytes not yet durable in any file (sum over pending appends).
    pub fn dirty_bytes(&self) -> u64 {
        let st = self.state();
        st.files
            .values()
            .flat_map(|f| f.pending.iter())
            .map(|p| match &p.op {
                Op::Append(b) => b.len() as u64,
                Op::Truncate(_) => 0,
            })
            .sum()
    }

    fn push_op(&self, path: &str, op: Op) -> io::Result<()> {
        let now = self.inner.clock.now();
        let path = normalize(path);
        let mut st = self.state();
        st.check_dir(path)?;
        if st.faults.eio_on_append {
            st.stats.injected_errors += 1;
            return Err(eio("write", path));
        }
        match &op {
            Op::Append(bytes) => {
                if st.faults.full && !bytes.is_empty() {
                    st.stats.injected_errors += 1;
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        format!("append {path}: no space left on device (injected)"),
                    ));
                }
                if !st.files.contains_key(path) {
                    if st.dirs.contains(path) {
                        return Err(io::Error::new(
                            io::ErrorKind::IsADirectory,
                            format!("{path}: is a directory"),
                        ));
                    }
                    st.check_parent(path)?;
                    // File creation is journalled metadata: durable at once, empty.
                    st.files.insert(path.to_string(), FileState::default());
                }
                st.stats.appends += 1;
                st.stats.append_bytes += bytes.len() as u64;
            }
            Op::Truncate(_) => {
                st.file(path)?;
                st.stats.truncates += 1;
            }
        }
        st.earliest_pending.get_or_insert(now);
        let file = st.files.get_mut(path).expect("file exists");
        apply(&mut file.cache, &op);
        file.pending.push_back(PendingOp { at: now, op });
        Ok(())
    }
}

impl Storage for SimDisk {
    fn create_dir_all(&self, path: &str) -> io::Result<()> {
        let path = normalize(path);
        let mut st = self.state();
        st.check_dir(path)?;
        let mut p = path;
        while !is_root(p) {
            if st.files.contains_key(p) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{p}: is a file"),
                ));
            }
            st.dirs.insert(p.to_string());
            p = parent(p);
        }
        Ok(())
    }

    fn list_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let path = normalize(path);
        let mut st = self.state();
        st.check_dir(path)?;
        if !st.dir_exists(path) {
            return Err(not_found(path));
        }
        let names: BTreeSet<String> = st
            .files
            .keys()
            .chain(st.dirs.iter())
            .filter(|p| parent(p) == path && p.as_str() != path)
            .map(|p| p[p.rfind('/').map_or(0, |i| i + 1)..].to_string())
            .collect();
        Ok(names.into_iter().collect())
    }

    fn exists(&self, path: &str) -> bool {
        let path = normalize(path);
        let st = self.state();
        st.files.contains_key(path) || st.dir_exists(path)
    }

    fn len(&self, path: &str) -> io::Result<u64> {
        let path = normalize(path);
        let mut st = self.state();
        st.check_dir(path)?;
        Ok(st.file(path)?.cache.len() as u64)
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let path = normalize(path);
        let mut st = self.state();
        st.check_dir(path)?;
        let cache = &st.file(path)?.cache;
        let start = (offset as usize).min(cache.len());
        let end = start.saturating_add(len).min(cache.len());
        Ok(cache[start..end].to_vec())
    }

    fn read_all(&self, path: &str) -> io::Result<Vec<u8>> {
        let path = normalize(path);
        let mut st = self.state();
        st.check_dir(path)?;
        Ok(st.file(path)?.cache.clone())
    }

    fn append(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.push_op(path, Op::Append(bytes.to_vec()))
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.push_op(path, Op::Truncate(len))
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        let path = normalize(path);
        let mut st = self.state();
        st.check_dir(path)?;
        if st.faults.eio_on_sync {
            st.stats.injected_errors += 1;
            return Err(eio("fsync", path));
        }
        st.file(path)?;
        st.stats.syncs += 1;
        let file = st.files.get_mut(path).expect("file exists");
        file.durable = file.cache.clone();
        file.pending.clear();
        Ok(())
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        let path = normalize(path);
        let mut st = self.state();
        st.check_dir(path)?;
        if st.files.remove(path).is_some() {
            return Ok(());
        }
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        let busy = st.files.keys().chain(st.dirs.iter()).any(|p| parent(p) == path && p != path);
        if busy {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{path}: directory not empty"),
            ));
        }
        st.dirs.remove(path);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (normalize(from), normalize(to));
        let mut st = self.state();
        st.check_dir(from)?;
        st.check_dir(to)?;
        st.check_parent(to)?;
        if st.dirs.contains(to) {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{to}: is a directory")));
        }
        // Only files are renamed; the log never renames directories.
        let file = st.files.remove(from).ok_or_else(|| not_found(from))?;
        st.files.insert(to.to_string(), file);
        Ok(())
    }

    fn write_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let path = normalize(path);
        let mut st = self.state();
        st.check_dir(path)?;
        if st.faults.full {
            st.stats.injected_errors += 1;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("write {path}: no space left on device (injected)"),
            ));
        }
        if st.faults.eio_on_append || st.faults.eio_on_sync {
            st.stats.injected_errors += 1;
            return Err(eio("write_atomic", path));
        }
        st.check_parent(path)?;
        if st.dirs.contains(path) {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{path}: is a directory")));
        }
        st.stats.atomic_writes += 1;
        st.files.insert(
            path.to_string(),
            FileState { cache: bytes.to_vec(), durable: bytes.to_vec(), pending: VecDeque::new() },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const WRITEBACK_MS: u64 = 5_000;

    fn disk() -> (SimDisk, ManualClock) {
        let clock = ManualClock::new();
        let disk = SimDisk::with_clock(WRITEBACK_MS, Arc::new(clock.clone()));
        disk.create_dir_all("/data/p0").unwrap();
        (disk, clock)
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    #[test]
    fn reads_see_unsynced_appends() {
        let (d, _) = disk();
        d.append("/data/p0/a", b"hello ").unwrap();
        d.append("/data/p0/a", b"world").unwrap();
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"hello world");
        assert_eq!(d.len("/data/p0/a").unwrap(), 11);
        assert_eq!(d.read_at("/data/p0/a", 6, 100).unwrap(), b"world");
        assert_eq!(d.read_at("/data/p0/a", 50, 10).unwrap(), b"");
    }

    #[test]
    fn crash_keeps_unsynced_data() {
        let (d, _) = disk();
        d.append("/data/p0/a", b"abc").unwrap();
        d.crash();
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"abc");
        assert_eq!(d.stats().crashes, 1);
    }

    #[test]
    fn power_loss_drops_unsynced_appends() {
        let (d, _) = disk();
        d.append("/data/p0/a", b"synced").unwrap();
        d.sync("/data/p0/a").unwrap();
        d.append("/data/p0/a", b"-lost").unwrap();
        d.power_loss(&mut rng(), false);
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"synced");
        assert_eq!(d.stats().lost_bytes, 5);
    }

    #[test]
    fn power_loss_keeps_data_older_than_writeback() {
        let (d, clock) = disk();
        d.append("/data/p0/a", b"old").unwrap();
        clock.advance_ms(WRITEBACK_MS);
        d.append("/data/p0/a", b"new").unwrap();
        clock.advance_ms(WRITEBACK_MS - 1);
        d.power_loss(&mut rng(), false);
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"old");
    }

    #[test]
    fn created_file_survives_power_loss_empty() {
        let (d, _) = disk();
        d.append("/data/p0/new", b"xyz").unwrap();
        d.power_loss(&mut rng(), false);
        assert!(d.exists("/data/p0/new"));
        assert_eq!(d.len("/data/p0/new").unwrap(), 0);
    }

    #[test]
    fn power_loss_with_tear_keeps_a_strict_prefix_of_first_lost_append() {
        let mut torn_seen = false;
        for seed in 0..32 {
            let (d, _) = disk();
            d.append("/data/p0/a", b"base").unwrap();
            d.sync("/data/p0/a").unwrap();
            d.append("/data/p0/a", b"0123456789").unwrap();
            d.append("/data/p0/a", b"later").unwrap();
            d.power_loss(&mut ChaCha8Rng::seed_from_u64(seed), true);
            let got = d.read_all("/data/p0/a").unwrap();
            assert!(got.starts_with(b"base"));
            let tail = &got[4..];
            assert!(tail.len() < 10, "never the whole write");
            assert_eq!(tail, &b"0123456789"[..tail.len()]);
            torn_seen |= !tail.is_empty();
        }
        assert!(torn_seen, "some seed tears");
    }

    #[test]
    fn truncate_is_pending_until_sync() {
        let (d, _) = disk();
        d.append("/data/p0/a", b"abcdef").unwrap();
        d.sync("/data/p0/a").unwrap();
        d.truncate("/data/p0/a", 2).unwrap();
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"ab");
        d.power_loss(&mut rng(), false);
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"abcdef");
        d.truncate("/data/p0/a", 3).unwrap();
        d.sync("/data/p0/a").unwrap();
        d.power_loss(&mut rng(), true);
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"abc");
    }

    #[test]
    fn writeback_applies_ops_in_order() {
        let (d, clock) = disk();
        d.append("/data/p0/a", b"abcdef").unwrap();
        clock.advance_ms(1);
        d.truncate("/data/p0/a", 3).unwrap();
        clock.advance_ms(1);
        d.append("/data/p0/a", b"XY").unwrap();
        clock.advance_ms(WRITEBACK_MS - 1);
        // First op is 5001 ms old, second 5000: both written back; third not.
        assert_eq!(d.durable_contents("/data/p0/a").unwrap(), b"abc");
        d.power_loss(&mut rng(), false);
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"abc");
    }

    #[test]
    fn writeback_reaches_every_file_whatever_else_was_synced() {
        let (d, clock) = disk();
        d.append("/data/p0/a", b"a1").unwrap();
        clock.advance_ms(10);
        d.append("/data/p0/b", b"b1").unwrap();
        d.sync("/data/p0/a").unwrap();
        clock.advance_ms(WRITEBACK_MS - 5);
        assert_eq!(d.durable_contents("/data/p0/b").unwrap(), b"");
        clock.advance_ms(5);
        assert_eq!(d.durable_contents("/data/p0/b").unwrap(), b"b1");
        d.append("/data/p0/a", b"a2").unwrap();
        clock.advance_ms(WRITEBACK_MS);
        d.power_loss(&mut rng(), false);
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"a1a2");
        assert_eq!(d.stats().lost_ops, 0);
    }

    #[test]
    fn write_atomic_and_rename_are_durable_at_once() {
        let (d, _) = disk();
        d.write_atomic("/data/p0/ckpt", b"v1").unwrap();
        d.write_atomic("/data/p0/ckpt", b"v2").unwrap();
        d.append("/data/p0/tmp", b"t").unwrap();
        d.sync("/data/p0/tmp").unwrap();
        d.rename("/data/p0/tmp", "/data/p0/renamed").unwrap();
        d.power_loss(&mut rng(), true);
        assert_eq!(d.read_all("/data/p0/ckpt").unwrap(), b"v2");
        assert!(!d.exists("/data/p0/tmp"));
        assert_eq!(d.read_all("/data/p0/renamed").unwrap(), b"t");
    }

    #[test]
    fn list_dir_names_direct_children_sorted() {
        let (d, _) = disk();
        d.create_dir_all("/data/p0/sub/deeper").unwrap();
        d.append("/data/p0/b.log", b"").unwrap();
        d.append("/data/p0/a.log", b"").unwrap();
        assert_eq!(d.list_dir("/data/p0").unwrap(), vec!["a.log", "b.log", "sub"]);
        assert_eq!(d.list_dir("/data").unwrap(), vec!["p0"]);
        assert_eq!(d.list_dir("/").unwrap(), vec!["data"]);
        assert!(d.list_dir("/nope").is_err());
    }

    #[test]
    fn append_needs_an_existing_directory() {
        let (d, _) = disk();
        let e = d.append("/missing/a", b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn remove_refuses_non_empty_directory() {
        let (d, _) = disk();
        d.append("/data/p0/a", b"x").unwrap();
        assert!(d.remove("/data/p0").is_err());
        d.remove("/data/p0/a").unwrap();
        d.remove("/data/p0").unwrap();
        assert!(!d.exists("/data/p0"));
    }

    #[test]
    fn eio_on_append_fails_without_changing_data() {
        let (d, _) = disk();
        d.append("/data/p0/a", b"ok").unwrap();
        d.update_faults(|f| f.eio_on_append = true);
        assert!(d.append("/data/p0/a", b"no").is_err());
        assert!(d.truncate("/data/p0/a", 0).is_err());
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"ok");
        d.set_faults(DiskFaults::default());
        d.append("/data/p0/a", b"!").unwrap();
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"ok!");
        assert_eq!(d.stats().injected_errors, 2);
    }

    #[test]
    fn eio_on_sync_leaves_data_dirty() {
        let (d, _) = disk();
        d.append("/data/p0/a", b"dirty").unwrap();
        d.update_faults(|f| f.eio_on_sync = true);
        assert!(d.sync("/data/p0/a").is_err());
        d.power_loss(&mut rng(), false);
        assert_eq!(d.read_all("/data/p0/a").unwrap(), b"");
    }

    #[test]
    fn full_disk_rejects_appends_and_checkpoints() {
        let (d, _) = disk();
        d.update_faults(|f| f.full = true);
        let e = d.append("/data/p0/a", b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(d.write_atomic("/data/p0/c", b"x").unwrap_err().kind(), io::ErrorKind::StorageFull);
        // Shrinking still works on a full disk.
        d.update_faults(|f| f.full = false);
        d.append("/data/p0/a", b"xyz").unwrap();
        d.update_faults(|f| f.full = true);
        d.truncate("/data/p0/a", 1).unwrap();
        d.sync("/data/p0/a").unwrap();
    }

    #[test]
    fn failed_dir_fails_everything_under_it_only() {
        let (d, _) = disk();
        d.create_dir_all("/data/p1").unwrap();
        d.append("/data/p0/a", b"x").unwrap();
        d.append("/data/p1/a", b"y").unwrap();
        d.update_faults(|f| {
            f.failed_dirs.insert("/data/p0".into());
        });
        assert!(d.read_all("/data/p0/a").is_err());
        assert!(d.append("/data/p0/a", b"x").is_err());
        assert!(d.sync("/data/p0/a").is_err());
        assert!(d.list_dir("/data/p0").is_err());
        assert!(d.write_atomic("/data/p0/c", b"x").is_err());
        assert_eq!(d.read_all("/data/p1/a").unwrap(), b"y");
        // "/data/p0x" is not under "/data/p0".
        d.create_dir_all("/data/p0x").unwrap();
    }
}
