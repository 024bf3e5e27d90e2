//! The data directory: its lock, the instance id, the state files, the explicit reset.

use crate::export::{self, ExportError};
use crate::files;
use crate::{RedbStore, StoreError};
use std::fs::{self, DirBuilder, File, TryLockError};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The store's file in the data directory (schema [`crate::SCHEMA_VERSION`]).
pub const STATE_FILE: &str = "state.redb";
/// The whole state as one JSON document (schema 1), imported when there is no [`STATE_FILE`].
pub const STATE_JSON_FILE: &str = "state.json";
/// The file whose exclusive lock says a berth uses the directory. Its holder writes its pid
/// into it (for the message a second berth gets; after the holder exits the pid stays, but
/// only the lock counts).
pub const LOCK_FILE: &str = "lock";
/// The berth instance id: 32 lowercase hex digits.
pub const INSTANCE_ID_FILE: &str = "instance-id";

/// The exclusive lock on a data directory, released when the last holder drops it.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// Holding the open file holds the lock.
    _file: File,
}

impl DirLock {
    /// Create `dir` (mode 0700) if needed and lock it, or say who has it; the holder's pid
    /// goes into the lock file.
    fn take(dir: &Path) -> Result<DirLock, StoreError> {
        files::check_data_dir(dir)?;
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| StoreError::Io {
            action: "create data directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = dir.join(LOCK_FILE);
        let file = files::private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(|source| StoreError::Io { action: "open lock file", path: lock.clone(), source })?;
        files::make_private(&lock).map_err(|source| StoreError::Io {
            action: "chmod 600",
            path: lock.clone(),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => {
                // Best effort: the pid only makes a second berth's message clearer.
                let _ =
                    file.set_len(0).and_then(|()| (&file).write_all(format!("{}\n", std::process::id()).as_bytes()));
                Ok(DirLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => Err(StoreError::Locked { dir: dir.to_path_buf(), lock }),
            Err(TryLockError::Error(source)) => Err(StoreError::Io { action: "lock", path: lock, source }),
        }
    }
}

/// The pid the holder of `lock` wrote into it, if it did.
pub(crate) fn lock_holder(lock: &Path) -> Option<u32> {
    fs::read_to_string(lock).ok()?.trim().parse().ok()
}

/// berth's data directory, locked for as long as this value (or a store opened from it)
/// lives: a second open, from this process or another, gets [`StoreError::Locked`].
///
/// It holds [`STATE_FILE`] (or, from an older berth, [`STATE_JSON_FILE`]), [`LOCK_FILE`]
/// and [`INSTANCE_ID_FILE`].
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    instance_id: String,
    lock: Arc<DirLock>,
}

impl DataDir {
    /// Open (creating it, mode 0700, if needed) and lock the data directory at `path`, and
    /// read its instance id, making one the first time.
    ///
    /// A malformed instance-id file is [`StoreError::Unreadable`] (it is left as it is).
    pub fn open(path: impl AsRef<Path>) -> Result<DataDir, StoreError> {
        let path = path.as_ref();
        let lock = DirLock::take(path)?;
        let instance_id = instance_id(path)?;
        Ok(DataDir { path: path.to_path_buf(), instance_id, lock: Arc::new(lock) })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This berth's instance id (32 lowercase hex digits), the same across opens.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Open the store in [`STATE_FILE`]; the store keeps the directory locked while it lives.
    ///
    /// - no state yet: a new, empty store;
    /// - [`STATE_JSON_FILE`] and no [`STATE_FILE`]: the JSON state (schema 1) is imported
    ///   into a new [`STATE_FILE`] and kept as it was ([`RedbStore::imported_from`] says so);
    /// - a state file that cannot be read, or is from a newer berth: refused
    ///   ([`StoreError::Unreadable`], [`StoreError::NewerSchema`]), the file untouched.
    pub fn store(&self) -> Result<RedbStore, StoreError> {
        let redb = self.path.join(STATE_FILE);
        let json = self.path.join(STATE_JSON_FILE);
        if !present(&redb)? && present(&json)? {
            let bytes = read_state_file(&json)?;
            let state = export::from_json(&bytes).map_err(|e| match e {
                ExportError::Newer { found, supported } => {
                    StoreError::NewerSchema { file: json.clone(), found, supported }
                }
                other => StoreError::Unreadable { file: json.clone(), reason: other.to_string() },
            })?;
            return RedbStore::import(&redb, &json, &state, Some(Arc::clone(&self.lock)));
        }
        RedbStore::open_in(&redb, Some(Arc::clone(&self.lock)))
    }

    /// The explicit reset: move the state files of the data directory at `path` aside
    /// (`state.redb` → `state.redb.reset-<UTC time>`, e.g. `state.redb.reset-20260102T030405Z`,
    /// the same for `state.json`; `-2`, `-3`... are added rather than replace an earlier
    /// reset's file), so that the next open starts empty. Nothing is deleted, and the files
    /// are moved whatever they hold (damaged or not, even a directory in their place).
    ///
    /// The instance id is kept, so containers the old state left behind carry this berth's
    /// instance label and are removed as orphans (no task owns them) once the new state
    /// starts. Takes the directory's lock for the moves ([`StoreError::Locked`] while a berth
    /// uses it). Returns the moves made, (from, to).
    pub fn reset(path: impl AsRef<Path>) -> Result<Vec<(PathBuf, PathBuf)>, StoreError> {
        let path = path.as_ref();
        if !exists(path)? {
            return Ok(Vec::new());
        }
        let _lock = DirLock::take(path)?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let mut moved = Vec::new();
        for name in [STATE_FILE, STATE_JSON_FILE] {
            let from = path.join(name);
            if !present(&from)? {
                continue;
            }
            let mut to = path.join(format!("{name}.reset-{stamp}"));
            let mut n = 1;
            while present(&to)? {
                n += 1;
                to = path.join(format!("{name}.reset-{stamp}-{n}"));
            }
            fs::rename(&from, &to).map_err(|source| StoreError::Io {
                action: "move aside",
                path: from.clone(),
                source,
            })?;
            moved.push((from, to));
        }
        if !moved.is_empty() {
            sync_dir(path)?;
        }
        Ok(moved)
    }
}

fn exists(path: &Path) -> Result<bool, StoreError> {
    path.try_exists().map_err(|source| StoreError::Io { action: "look for", path: path.to_path_buf(), source })
}

/// Whether there is anything at `path` (a dangling symbolic link counts: it is not "no
/// state", and must not be replaced by a new store).
pub(crate) fn present(path: &Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Io { action: "look for", path: path.to_path_buf(), source }),
    }
}

/// The bytes of the state file `file` (which is [`present`]), or why it cannot be read as
/// one: [`StoreError::Unreadable`] for a directory, something other than a file, a dangling
/// link (what is at the path is wrong); [`StoreError::Io`] when reading it fails (berth may
/// not read it, EIO, ...): the file may well be fine, so no reset is advised.
pub(crate) fn read_state_file(file: &Path) -> Result<Vec<u8>, StoreError> {
    let unreadable = |reason: String| StoreError::Unreadable { file: file.to_path_buf(), reason };
    let io_error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => unreadable("it is a symbolic link to nothing".to_string()),
        // ELOOP: symbolic links that lead nowhere.
        _ if e.raw_os_error() == Some(40) => unreadable(format!("it is a loop of symbolic links ({e})")),
        _ => StoreError::Io { action: "read", path: file.to_path_buf(), source: e },
    };
    let meta = fs::metadata(file).map_err(io_error)?;
    if meta.is_dir() {
        return Err(unreadable("it is a directory, not a file".into()));
    }
    if !meta.is_file() {
        return Err(unreadable("it is not a regular file".into()));
    }
    fs::read(file).map_err(io_error)
}

/// fsync a directory, so that renames and new files in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| StoreError::Io {
        action: "sync directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// The instance id kept in `dir`, made (128 random bits) and written atomically the first time.
fn instance_id(dir: &Path) -> Result<String, StoreError> {
    let file = dir.join(INSTANCE_ID_FILE);
    files::make_private(&file).map_err(|source| StoreError::Io { action: "chmod 600", path: file.clone(), source })?;
    match fs::read(&file) {
        Ok(bytes) => parse_instance_id(&bytes).map(str::to_owned).ok_or_else(|| StoreError::Unreadable {
            file: file.clone(),
            reason: "expected 32 lowercase hexadecimal digits".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("{:032x}", rand::random::<u128>());
            write_atomically(dir, &file, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(source) => Err(StoreError::Io { action: "read", path: file, source }),
    }
}

/// The id in an instance-id file's bytes: 32 lowercase hex digits, optionally one newline.
fn parse_instance_id(bytes: &[u8]) -> Option<&str> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let ok = bytes.len() == 32 && bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok { std::str::from_utf8(bytes).ok() } else { None }
}

/// Write `file` in `dir` so that it is either absent or whole, mode 0600: a temporary
/// file, fsync, rename, fsync of the directory.
fn write_atomically(dir: &Path, file: &Path, contents: &[u8]) -> Result<(), StoreError> {
    debug_assert_eq!(file.parent(), Some(dir));
    files::write_atomically(file, contents).map_err(|source| StoreError::Io {
        action: "write",
        path: file.to_path_buf(),
        source,
    })
}
