//! `FsStorage`: the [`Storage`] trait on real files (`std::fs`), for real mode.
//!
//! Compiles in both builds, but inside a simulation `std::fs` would touch the
//! host disk: simulations use [`super::SimDisk`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Storage;

/// Real files under `root` (storage paths are taken relative to it; a leading
/// `/` is ignored).
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStorage { root: root.into() }
    }

    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

/// fsync the directory holding `path`, so that a create/rename in it is durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, path: &str) -> io::Result<()> {
        fs::create_dir_all(self.path(path))
    }

    fn list_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.path(path))? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &str) -> bool {
        self.path(path).exists()
    }

    fn len(&self, path: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(path))?.len())
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut file = File::open(self.path(path))?;
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(len.min(1 << 20));
        file.take(len as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn read_all(&self, path: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(path))
    }

    fn append(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new().create(true).append(true).open(self.path(path))?;
        file.write_all(bytes)
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        OpenOptions::new().write(true).open(self.path(path))?.set_len(len)
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        // fsync on any descriptor flushes the inode's dirty pages.
        OpenOptions::new().write(true).open(self.path(path))?.sync_all()
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        let p = self.path(path);
        if p.is_dir() {
            fs::remove_dir(&p)?;
        } else {
            fs::remove_file(&p)?;
        }
        sync_parent(&p)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let to = self.path(to);
        fs::rename(self.path(from), &to)?;
        sync_parent(&to)
    }

    fn write_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let target = self.path(path);
        let mut tmp = target.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &target)?;
        sync_parent(&target)
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    #[test]
    fn fs_storage_round_trip() {
        let root = std::env::temp_dir().join(format!("ksim-fs-{}", std::process::id()));
        let s = FsStorage::new(&root);
        s.create_dir_all("/p0").unwrap();
        s.append("/p0/a", b"hello").unwrap();
        s.append("/p0/a", b" world").unwrap();
        s.sync("/p0/a").unwrap();
        assert_eq!(s.read_at("/p0/a", 6, 100).unwrap(), b"world");
        s.truncate("/p0/a", 5).unwrap();
        assert_eq!(s.read_all("/p0/a").unwrap(), b"hello");
        s.write_atomic("/p0/c", b"ck").unwrap();
        s.rename("/p0/c", "/p0/d").unwrap();
        assert_eq!(s.list_dir("/p0").unwrap(), vec!["a", "d"]);
        fs::remove_dir_all(&root).unwrap();
    }
}
