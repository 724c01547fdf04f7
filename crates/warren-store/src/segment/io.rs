//! The file operations the segment log needs, behind a trait: real files, and a
//! simulated disk that can lose whatever was not synced (for power-loss tests).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Work that makes earlier writes durable, run off the async threads.
pub type SyncJob = Box<dyn FnOnce() -> io::Result<()> + Send>;

/// One append-only file.
pub trait StoreFile: Send {
    /// Append `data` at the end.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Read `len` octets at `offset`.
    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// The whole file.
    fn read_all(&mut self) -> io::Result<Vec<u8>>;
    /// A job that syncs everything appended so far (`fdatasync`).
    fn sync_job(&self) -> io::Result<SyncJob>;
    /// Cut the file to `len` octets (dropping a damaged tail before appending).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// A directory of files.
pub trait Storage: Send + Sync + 'static {
    /// Its file type.
    type File: StoreFile;
    /// Open `name`, creating it if missing.
    fn open(&self, name: &str) -> io::Result<Self::File>;
    /// Remove `name` (missing is fine).
    fn remove(&self, name: &str) -> io::Result<()>;
    /// The names of the files present.
    fn list(&self) -> io::Result<Vec<String>>;
    /// A job that makes file creations and removals durable (syncs the directory).
    fn sync_dir_job(&self) -> io::Result<SyncJob>;
    /// A job that writes `data` as the whole of file `name` and syncs it.
    fn write_file_job(&self, name: &str, data: Vec<u8>) -> io::Result<SyncJob>;
    /// Remove the directory and everything in it.
    fn destroy(&self) -> io::Result<()>;
}

/// Real files in a directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    dir: PathBuf,
}

impl FsStorage {
    /// Use (and create) `dir`.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        fs::create_dir_all(dir.as_ref())?;
        Ok(Self {
            dir: dir.as_ref().to_path_buf(),
        })
    }
}

/// A real file, written with `pwrite` at its end (no seek per write) and read with
/// `pread`.
#[derive(Debug)]
pub struct FsFile {
    file: File,
    len: u64,
}

impl StoreFile for FsFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, self.len)?;
        self.len += data.len() as u64;
        Ok(())
    }

    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut out = vec![0; len];
        self.file.read_exact_at(&mut out, offset)?;
        Ok(out)
    }

    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_end(&mut out)?;
        Ok(out)
    }

    fn sync_job(&self) -> io::Result<SyncJob> {
        let file = self.file.try_clone()?;
        Ok(Box::new(move || file.sync_data()))
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.len = len;
        Ok(())
    }
}

impl Storage for FsStorage {
    type File = FsFile;

    fn open(&self, name: &str) -> io::Result<FsFile> {
        let file = OpenOptions::new()
            .read(true)
            .append(false)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join(name))?;
        let len = file.metadata()?.len();
        Ok(FsFile { file, len })
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn sync_dir_job(&self) -> io::Result<SyncJob> {
        let dir = self.dir.clone();
        Ok(Box::new(move || File::open(dir)?.sync_all()))
    }

    fn write_file_job(&self, name: &str, data: Vec<u8>) -> io::Result<SyncJob> {
        let path = self.dir.join(name);
        Ok(Box::new(move || {
            let mut file = File::create(path)?;
            file.write_all(&data)?;
            file.sync_data()
        }))
    }

    fn destroy(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// Decides, for a file name and the index of an unsynced write, whether a simulated
/// crash keeps that write.
pub type KeepWrite<'a> = dyn Fn(&str, usize) -> bool + 'a;

/// A simulated disk: contents live in memory; [`SimStorage::crash`] keeps only what was
/// synced (and, if asked, some of what was not, possibly with holes), as a power loss
/// might.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    disk: Arc<Mutex<SimDisk>>,
}

#[derive(Debug, Default)]
struct SimDisk {
    files: BTreeMap<String, SimFile>,
    /// Faults to inject: the next N syncs fail.
    failing_syncs: u32,
}

#[derive(Debug, Default, Clone)]
struct SimFile {
    data: Vec<u8>,
    /// Octets known to be on the platter.
    synced: usize,
    /// Unsynced writes, for crashes that keep some of them: (offset, length).
    pending: Vec<(usize, usize)>,
    /// The file's directory entry is durable.
    entry_durable: bool,
    /// The file was removed, but the removal is not durable yet.
    removed: bool,
}

fn lock(disk: &Mutex<SimDisk>) -> MutexGuard<'_, SimDisk> {
    // A poisoned simulated disk only happens after a test already panicked.
    disk.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A file on the simulated disk.
#[derive(Debug)]
pub struct SimHandle {
    disk: Arc<Mutex<SimDisk>>,
    name: String,
}

impl SimStorage {
    /// An empty disk.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the next `n` syncs fail.
    pub fn fail_next_syncs(&self, n: u32) {
        lock(&self.disk).failing_syncs = n;
    }

    /// Power loss. Every file keeps what was synced. With `keep`, each unsynced write is
    /// kept when `keep(file, write index)` says so and zeroed otherwise (torn and
    /// reordered writes); without, unsynced writes are all lost. File creations and
    /// removals that were not made durable are undone.
    pub fn crash(&self, keep: Option<&KeepWrite<'_>>) {
        let mut disk = lock(&self.disk);
        disk.files.retain(|_, f| f.entry_durable);
        for (name, f) in &mut disk.files {
            f.removed = false;
            let mut end = f.synced;
            if let Some(keep) = keep {
                for (i, (offset, len)) in f.pending.clone().into_iter().enumerate() {
                    if keep(name, i) {
                        end = end.max(offset + len);
                    } else {
                        f.data[offset..offset + len].fill(0);
                    }
                }
            }
            f.data.truncate(end);
            f.synced = end;
            f.pending.clear();
        }
    }

    /// Flip the bits of one octet of `name` (for corruption tests).
    pub fn corrupt(&self, name: &str, offset: usize) {
        if let Some(f) = lock(&self.disk).files.get_mut(name)
            && let Some(b) = f.data.get_mut(offset)
        {
            *b ^= 0xFF;
        }
    }

    /// Cut `name` to `len` octets.
    pub fn truncate(&self, name: &str, len: usize) {
        if let Some(f) = lock(&self.disk).files.get_mut(name) {
            f.data.truncate(len);
            f.synced = f.synced.min(len);
        }
    }

    /// The size of `name`, if it exists.
    #[must_use]
    pub fn size(&self, name: &str) -> Option<usize> {
        lock(&self.disk)
            .files
            .get(name)
            .filter(|f| !f.removed)
            .map(|f| f.data.len())
    }
}

impl StoreFile for SimHandle {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut disk = lock(&self.disk);
        let f = disk.files.entry(self.name.clone()).or_default();
        let offset = f.data.len();
        f.data.extend_from_slice(data);
        f.pending.push((offset, data.len()));
        Ok(())
    }

    fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let disk = lock(&self.disk);
        let f = disk.files.get(&self.name).ok_or(io::ErrorKind::NotFound)?;
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        f.data
            .get(start..start + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }

    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let disk = lock(&self.disk);
        Ok(disk
            .files
            .get(&self.name)
            .map(|f| f.data.clone())
            .unwrap_or_default())
    }

    fn sync_job(&self) -> io::Result<SyncJob> {
        let disk = self.disk.clone();
        let name = self.name.clone();
        Ok(Box::new(move || {
            let mut disk = lock(&disk);
            if disk.failing_syncs > 0 {
                disk.failing_syncs -= 1;
                return Err(io::Error::other("simulated sync failure"));
            }
            if let Some(f) = disk.files.get_mut(&name) {
                f.synced = f.data.len();
                f.pending.clear();
            }
            Ok(())
        }))
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut disk = lock(&self.disk);
        if let Some(f) = disk.files.get_mut(&self.name) {
            let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
            f.data.truncate(len);
            f.synced = f.synced.min(len);
            f.pending.retain(|(offset, _)| *offset < len);
            for p in &mut f.pending {
                p.1 = p.1.min(len - p.0);
            }
        }
        Ok(())
    }
}

impl Storage for SimStorage {
    type File = SimHandle;

    fn open(&self, name: &str) -> io::Result<SimHandle> {
        let mut disk = lock(&self.disk);
        let f = disk.files.entry(name.to_owned()).or_default();
        if f.removed {
            *f = SimFile::default();
        }
        Ok(SimHandle {
            disk: self.disk.clone(),
            name: name.to_owned(),
        })
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        if let Some(f) = lock(&self.disk).files.get_mut(name) {
            f.removed = true;
        }
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(lock(&self.disk)
            .files
            .iter()
            .filter(|(_, f)| !f.removed)
            .map(|(n, _)| n.clone())
            .collect())
    }

    fn sync_dir_job(&self) -> io::Result<SyncJob> {
        let disk = self.disk.clone();
        Ok(Box::new(move || {
            let mut disk = lock(&disk);
            disk.files.retain(|_, f| !f.removed);
            for f in disk.files.values_mut() {
                f.entry_durable = true;
            }
            Ok(())
        }))
    }

    fn write_file_job(&self, name: &str, data: Vec<u8>) -> io::Result<SyncJob> {
        let disk = self.disk.clone();
        let name = name.to_owned();
        Ok(Box::new(move || {
            let mut disk = lock(&disk);
            if disk.failing_syncs > 0 {
                disk.failing_syncs -= 1;
                return Err(io::Error::other("simulated sync failure"));
            }
            let f = disk.files.entry(name).or_default();
            let len = data.len();
            f.data = data;
            f.synced = len;
            f.pending.clear();
            f.removed = false;
            Ok(())
        }))
    }

    fn destroy(&self) -> io::Result<()> {
        lock(&self.disk).files.clear();
        Ok(())
    }
}
