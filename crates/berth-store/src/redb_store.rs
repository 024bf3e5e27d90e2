//! The default store: one redb file with per-task records and the change log.
//!
//! Tables:
//! - `meta` (`&str → u64`): `schema_version` ([`SCHEMA_VERSION`]) and `next_seq`;
//! - `tasks` (arn → the task as JSON): one record per task, so a save writes what changed;
//! - `changes` (seq → the state change as JSON): the retained change log.
//!
//! A file is checked before it is opened for writing: its bytes are read into memory and
//! opened there (redb's integrity check and crash repair run on that copy), the schema
//! version is read and every record decoded. Only a file that passes is opened in place, so
//! a damaged file, or one from a newer berth, is never written to.

use crate::datadir::{DirLock, present, read_state_file, sync_dir};
use crate::{ChangesSince, DEFAULT_RETAINED_CHANGES, Group, Loaded, Saver, StoreError, gap_before};
use berth_model::{StateChange, Task};
use redb::backends::InMemoryBackend;
use redb::{
    Builder, Database, Durability, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition, TableError,
};
use std::fmt::Display;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The schema version of `state.redb` this berth writes, and the newest it reads.
/// Version 1 was the whole state in one JSON file ([`crate::export`]). Version 2 wrote every
/// field of a task record; version 3 leaves out the fields at their default (an absent field
/// reads back as the default), which makes a record of three plain containers some 600
/// bytes instead of 3.5 KB. A version-2 record is a version-3 record with nothing left out,
/// so a version-2 store is read as it is and marked version 3 when opened for writing: a
/// berth that knows only version 2 then refuses it as newer instead of failing on a record.
pub const SCHEMA_VERSION: u32 = 3;

/// The oldest schema version of `state.redb` this berth reads.
const OLDEST_SCHEMA_VERSION: u32 = 2;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
const KEY_SCHEMA: &str = "schema_version";
const KEY_NEXT_SEQ: &str = "next_seq";

/// redb's page cache; the state is small, redb's default (1 GiB) is far more than needed.
const CACHE_BYTES: usize = 16 << 20;

/// The default [`Saver`]: a redb file, each [`Saver::save`] one write transaction committed
/// with `Durability::Immediate` (durable when it returns).
///
/// Open it through [`crate::DataDir::store`], which holds the data directory's lock;
/// [`RedbStore::open`] opens a file without one (tests, benchmarks, tools).
pub struct RedbStore {
    db: Arc<Database>,
    file: PathBuf,
    next_seq: u64,
    /// The oldest retained change, if any.
    oldest: Option<u64>,
    retention: u64,
    /// What the check at open decoded, handed out by the first `load`.
    preloaded: Option<Loaded>,
    imported_from: Option<PathBuf>,
    guard: Option<Arc<DirLock>>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("file", &self.file)
            .field("next_seq", &self.next_seq)
            .field("oldest", &self.oldest)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Open the store in `file`, creating an empty one (schema [`SCHEMA_VERSION`]) when
    /// there is no such file. Takes no lock beyond redb's own on the file; prefer
    /// [`crate::DataDir::store`].
    ///
    /// Refuses, leaving the file untouched, a file that is not a readable berth store
    /// ([`StoreError::Unreadable`], an empty file included) or that has a newer schema
    /// ([`StoreError::NewerSchema`]).
    pub fn open(file: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        Self::open_in(file.as_ref(), None)
    }

    pub(crate) fn open_in(file: &Path, guard: Option<Arc<DirLock>>) -> Result<RedbStore, StoreError> {
        if !present(file)? {
            create(file, &Loaded { next_seq: 1, ..Loaded::default() })?;
        }
        Self::open_existing(file, guard)
    }

    /// Write `state` into a new store in `file` (which must not exist) and open it.
    pub(crate) fn import(
        file: &Path,
        source: &Path,
        state: &Loaded,
        guard: Option<Arc<DirLock>>,
    ) -> Result<RedbStore, StoreError> {
        create(file, state)?;
        let mut store = Self::open_existing(file, guard)?;
        store.imported_from = Some(source.to_path_buf());
        Ok(store)
    }

    fn open_existing(file: &Path, guard: Option<Arc<DirLock>>) -> Result<RedbStore, StoreError> {
        let loaded = inspect(file)?;
        // A store an older berth made may be readable by others: it holds task environments.
        crate::files::make_private(file).map_err(|source| StoreError::Io {
            action: "chmod 600",
            path: file.to_path_buf(),
            source,
        })?;
        let db = Builder::new().set_cache_size(CACHE_BYTES).open(file).map_err(|e| match io_cause(e.into()) {
            // Opening writes (redb's repair after a crash): no space, EROFS, EACCES, a
            // lock are not damage; the contents were checked above.
            Ok(source) => StoreError::Io { action: "open for writing", path: file.to_path_buf(), source },
            Err(e) => unreadable(file, format!("it cannot be opened for writing ({e})")),
        })?;
        mark_current(&db, file)?;
        Ok(RedbStore {
            db: Arc::new(db),
            file: file.to_path_buf(),
            next_seq: loaded.next_seq,
            oldest: loaded.changes.first().map(|c| c.seq),
            retention: DEFAULT_RETAINED_CHANGES,
            preloaded: Some(loaded),
            imported_from: None,
            guard,
        })
    }

    /// How many changes the log keeps at least (default [`DEFAULT_RETAINED_CHANGES`]).
    pub fn retention(&self) -> u64 {
        self.retention
    }

    /// Keep the last `changes` changes (at least 1); older ones are deleted from the next
    /// save on.
    pub fn set_retention(&mut self, changes: u64) {
        self.retention = changes.max(1);
    }

    /// The store's file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The sequence number the next committed change gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The `state.json` this store was made from at this open, if it was (the file is kept).
    pub fn imported_from(&self) -> Option<&Path> {
        self.imported_from.as_deref()
    }

    /// The committed changes with `seq >= from`, at most `max`, and the gap when some of
    /// the asked positions were dropped by retention (for readers of the log).
    pub fn changes_since(&self, from: u64, max: usize) -> Result<ChangesSince, StoreError> {
        read_since(&*self.db, &self.file, from, max)
    }

    /// A handle that reads the change log from other threads while this store saves; it
    /// sees a group only once its commit is durable. It keeps the file (and the data
    /// directory's lock) open while it lives.
    pub fn reader(&self) -> RedbReader {
        RedbReader { db: Arc::clone(&self.db), file: self.file.clone(), _guard: self.guard.clone() }
    }
}

impl Saver for RedbStore {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        match self.preloaded.take() {
            Some(loaded) => Ok(loaded),
            None => read_all(&*self.db, &self.file),
        }
    }

    fn save(&mut self, group: Group) -> Result<Vec<StateChange>, StoreError> {
        if group.is_empty() {
            return Ok(Vec::new());
        }
        let file = self.file.as_path();
        // Encode first: nothing can fail for the data inside the transaction.
        let mut tasks = Vec::with_capacity(group.tasks.len());
        for (arn, task) in group.tasks {
            let bytes = match &task {
                Some(task) => Some(encode(file, &format!("task {arn}"), &**task)?),
                None => None,
            };
            tasks.push((arn, bytes));
        }
        let first = self.next_seq;
        let mut changes = group.changes;
        let mut encoded = Vec::with_capacity(changes.len());
        for (seq, change) in (first..).zip(changes.iter_mut()) {
            change.seq = seq;
            encoded.push(encode(file, &format!("change {seq}"), &*change)?);
        }
        let next = first + changes.len() as u64;
        let oldest = self.oldest.or((!changes.is_empty()).then_some(first));
        let cut = next.saturating_sub(self.retention);
        let drop_below = oldest.filter(|&o| o < cut).map(|_| cut);

        let mut txn = self.db.begin_write().map_err(save_err(file))?;
        txn.set_durability(Durability::Immediate).map_err(save_err(file))?;
        {
            let mut table = txn.open_table(TASKS).map_err(save_err(file))?;
            for (arn, bytes) in &tasks {
                match bytes {
                    Some(bytes) => drop(table.insert(arn.as_str(), bytes.as_slice()).map_err(save_err(file))?),
                    None => drop(table.remove(arn.as_str()).map_err(save_err(file))?),
                }
            }
            let mut table = txn.open_table(CHANGES).map_err(save_err(file))?;
            for (seq, bytes) in (first..).zip(&encoded) {
                table.insert(seq, bytes.as_slice()).map_err(save_err(file))?;
            }
            if let Some(cut) = drop_below {
                table.retain_in(..cut, |_, _| false).map_err(save_err(file))?;
            }
            let mut meta = txn.open_table(META).map_err(save_err(file))?;
            meta.insert(KEY_NEXT_SEQ, next).map_err(save_err(file))?;
        }
        crate::crash::point("in-commit");
        txn.commit().map_err(save_err(file))?;

        self.next_seq = next;
        self.oldest = match drop_below {
            Some(cut) => Some(cut),
            None => oldest,
        };
        self.preloaded = None;
        Ok(changes)
    }

    fn force_save(&mut self) -> Result<(), StoreError> {
        // Every save is durable when it returns.
        Ok(())
    }

    fn change_source(&self) -> Option<Arc<dyn crate::ChangeSource>> {
        Some(Arc::new(self.reader()))
    }
}

/// Reads the change log of a [`RedbStore`] from any thread ([`RedbStore::reader`]).
#[derive(Clone)]
pub struct RedbReader {
    db: Arc<Database>,
    file: PathBuf,
    _guard: Option<Arc<DirLock>>,
}

impl std::fmt::Debug for RedbReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbReader").field("file", &self.file).finish_non_exhaustive()
    }
}

impl crate::ChangeSource for RedbReader {
    fn changes_since(&self, from: u64, max: usize) -> Result<ChangesSince, StoreError> {
        read_since(&*self.db, &self.file, from, max)
    }
}

impl RedbReader {
    /// The committed changes with `seq >= from`, at most `max`, and the gap when some of
    /// the asked positions were dropped by retention.
    pub fn changes_since(&self, from: u64, max: usize) -> Result<ChangesSince, StoreError> {
        read_since(&*self.db, &self.file, from, max)
    }
}

fn unreadable(file: &Path, reason: impl Display) -> StoreError {
    StoreError::Unreadable { file: file.to_path_buf(), reason: reason.to_string() }
}

/// A redb error on `file`: an I/O error underneath (no space, EIO, permissions, a
/// read-only file system) is [`StoreError::Io`], which says to fix the cause rather than
/// reset; anything else is [`StoreError::Database`].
fn db_err<E: Into<redb::Error>>(file: &Path) -> impl Fn(E) -> StoreError + '_ {
    move |e| db_error(file, "read or write berth state in", e.into())
}

/// [`db_err`] for a save: the message says a save failed.
fn save_err<E: Into<redb::Error>>(file: &Path) -> impl Fn(E) -> StoreError + '_ {
    move |e| db_error(file, "save berth state to", e.into())
}

fn db_error(file: &Path, action: &'static str, e: redb::Error) -> StoreError {
    match io_cause(e) {
        Ok(source) => StoreError::Io { action, path: file.to_path_buf(), source },
        Err(e) => StoreError::Database { file: file.to_path_buf(), reason: e.to_string() },
    }
}

/// The I/O error under a redb error, if that is what it is (redb's own file lock counts:
/// another process has the file open).
fn io_cause(e: redb::Error) -> Result<std::io::Error, redb::Error> {
    match e {
        redb::Error::Io(e) => Ok(e),
        redb::Error::PreviousIo => {
            Ok(std::io::Error::other("an earlier I/O error on the file (redb refuses to go on after one)"))
        }
        redb::Error::DatabaseAlreadyOpen => Ok(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "the file is open in another process (its lock is held)",
        )),
        other => Err(other),
    }
}

fn encode<T: serde::Serialize + ?Sized>(file: &Path, what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value)
        .map_err(|e| StoreError::Database { file: file.to_path_buf(), reason: format!("cannot encode {what}: {e}") })
}

/// Check `file` without writing to it: open a copy of its bytes in memory (running redb's
/// integrity check, and its repair after a crash, on the copy), check the schema version
/// and decode every record.
fn inspect(file: &Path) -> Result<Loaded, StoreError> {
    let bytes = read_state_file(file)?;
    if bytes.is_empty() {
        return Err(unreadable(file, "the file is empty"));
    }
    let checked = catch_unwind(AssertUnwindSafe(move || -> Result<Loaded, StoreError> {
        let copy = InMemoryBackend::new();
        copy.set_len(bytes.len() as u64).and_then(|()| copy.write(0, &bytes)).map_err(|e| unreadable(file, e))?;
        drop(bytes);
        let db = Builder::new()
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .create_with_backend(copy)
            .map_err(|e| unreadable(file, format!("not a readable redb database ({e})")))?;
        read_all(&db, file).map_err(|e| match e {
            StoreError::Database { reason, .. } => unreadable(file, reason),
            other => other,
        })
    }));
    match checked {
        Ok(result) => result,
        Err(_) => Err(unreadable(file, "the database is damaged (reading it failed)")),
    }
}

/// Mark a store of an older schema (checked, so one this berth reads as it is) with
/// [`SCHEMA_VERSION`], durably, before anything else is written to it.
fn mark_current(db: &Database, file: &Path) -> Result<(), StoreError> {
    let version = {
        let txn = db.begin_read().map_err(db_err(file))?;
        let meta = txn.open_table(META).map_err(db_err(file))?;
        meta.get(KEY_SCHEMA).map_err(db_err(file))?.map(|v| v.value())
    };
    if version == Some(u64::from(SCHEMA_VERSION)) {
        return Ok(());
    }
    let txn = db.begin_write().map_err(db_err(file))?;
    {
        let mut meta = txn.open_table(META).map_err(db_err(file))?;
        meta.insert(KEY_SCHEMA, u64::from(SCHEMA_VERSION)).map_err(db_err(file))?;
    }
    txn.commit().map_err(db_err(file))
}

/// Everything in the store, checked: a berth store of a schema this berth reads, every
/// record decodes.
fn read_all<D: ReadableDatabase>(db: &D, file: &Path) -> Result<Loaded, StoreError> {
    let txn = db.begin_read().map_err(db_err(file))?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(TableError::TableDoesNotExist(_)) => {
            return Err(unreadable(file, "it holds no berth metadata (not a berth state file)"));
        }
        Err(e) => return Err(unreadable(file, e)),
    };
    let version = meta
        .get(KEY_SCHEMA)
        .map_err(db_err(file))?
        .map(|v| v.value())
        .ok_or_else(|| unreadable(file, "no schema version"))?;
    if version > u64::from(SCHEMA_VERSION) {
        return Err(StoreError::NewerSchema {
            file: file.to_path_buf(),
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: SCHEMA_VERSION,
        });
    }
    if version < u64::from(OLDEST_SCHEMA_VERSION) {
        return Err(unreadable(file, format!("schema version {version} was never written in a redb store")));
    }
    let next_seq = meta
        .get(KEY_NEXT_SEQ)
        .map_err(db_err(file))?
        .map(|v| v.value())
        .filter(|&n| n >= 1)
        .ok_or_else(|| unreadable(file, "no next sequence number"))?;

    let table = txn.open_table(TASKS).map_err(|e| unreadable(file, e))?;
    let mut tasks = Vec::new();
    for entry in table.iter().map_err(db_err(file))? {
        let (arn, bytes) = entry.map_err(db_err(file))?;
        let task: Task = serde_json::from_slice(bytes.value())
            .map_err(|e| unreadable(file, format!("task record {} does not decode ({e})", arn.value())))?;
        // Saves and removals find a task's record by its arn: one filed under another key
        // would be a second, undeletable copy.
        if task.arn != arn.value() {
            return Err(unreadable(file, format!("task record {} holds task {}", arn.value(), task.arn)));
        }
        tasks.push(task);
    }

    let table = txn.open_table(CHANGES).map_err(|e| unreadable(file, e))?;
    let mut changes = Vec::new();
    for entry in table.iter().map_err(db_err(file))? {
        let (seq, bytes) = entry.map_err(db_err(file))?;
        changes.push(decode_change(file, seq.value(), bytes.value(), next_seq)?);
    }
    Ok(Loaded { tasks, changes, next_seq })
}

fn decode_change(file: &Path, seq: u64, bytes: &[u8], next_seq: u64) -> Result<StateChange, StoreError> {
    let change: StateChange = serde_json::from_slice(bytes)
        .map_err(|e| unreadable(file, format!("change record {seq} does not decode ({e})")))?;
    if change.seq != seq || seq >= next_seq || seq == 0 {
        return Err(unreadable(
            file,
            format!("change record {seq} holds Seq {} (next sequence number {next_seq})", change.seq),
        ));
    }
    Ok(change)
}

fn read_since<D: ReadableDatabase>(db: &D, file: &Path, from: u64, max: usize) -> Result<ChangesSince, StoreError> {
    let txn = db.begin_read().map_err(db_err(file))?;
    let meta = txn.open_table(META).map_err(db_err(file))?;
    let next_seq = meta.get(KEY_NEXT_SEQ).map_err(db_err(file))?.map(|v| v.value()).unwrap_or(1);
    let table = txn.open_table(CHANGES).map_err(db_err(file))?;
    let oldest = table.first().map_err(db_err(file))?.map(|(seq, _)| seq.value());
    let gap = gap_before(from, oldest, next_seq);
    let start = from.max(1).max(oldest.unwrap_or(0));
    let mut changes = Vec::new();
    for entry in table.range(start..).map_err(db_err(file))?.take(max) {
        let (seq, bytes) = entry.map_err(db_err(file))?;
        changes.push(decode_change(file, seq.value(), bytes.value(), next_seq)?);
    }
    Ok(ChangesSince { gap, changes, next_seq })
}

/// Make a new store holding `state` in `file`: built under a temporary name, made durable,
/// then renamed into place (so a crash never leaves a half-made `file`).
fn create(file: &Path, state: &Loaded) -> Result<(), StoreError> {
    let mut tmp_name = file.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = file.with_file_name(tmp_name);
    // A leftover of an interrupted create is removed, and the file made empty with mode 0600
    // first: redb creates files with the default mode, and the store holds task environments.
    crate::files::create_private(&tmp).map_err(|source| StoreError::Io {
        action: "create",
        path: tmp.clone(),
        source,
    })?;
    let db = Builder::new().set_cache_size(CACHE_BYTES).create(&tmp).map_err(db_err(&tmp))?;
    let mut txn = db.begin_write().map_err(db_err(&tmp))?;
    txn.set_durability(Durability::Immediate).map_err(db_err(&tmp))?;
    {
        let mut meta = txn.open_table(META).map_err(db_err(&tmp))?;
        meta.insert(KEY_SCHEMA, u64::from(SCHEMA_VERSION)).map_err(db_err(&tmp))?;
        meta.insert(KEY_NEXT_SEQ, state.next_seq.max(1)).map_err(db_err(&tmp))?;
        let mut tasks = txn.open_table(TASKS).map_err(db_err(&tmp))?;
        for task in &state.tasks {
            let bytes = encode(&tmp, &format!("task {}", task.arn), task)?;
            tasks.insert(task.arn.as_str(), bytes.as_slice()).map_err(db_err(&tmp))?;
        }
        let mut changes = txn.open_table(CHANGES).map_err(db_err(&tmp))?;
        for change in &state.changes {
            let bytes = encode(&tmp, &format!("change {}", change.seq), change)?;
            changes.insert(change.seq, bytes.as_slice()).map_err(db_err(&tmp))?;
        }
    }
    txn.commit().map_err(db_err(&tmp))?;
    db.close().map_err(db_err(&tmp))?;
    fs::rename(&tmp, file).map_err(|source| StoreError::Io {
        action: "rename into place",
        path: file.to_path_buf(),
        source,
    })?;
    sync_dir(file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}
