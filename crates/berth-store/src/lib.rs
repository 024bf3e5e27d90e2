//! berth's durable state (the seed's `statemanager`): the [`Saver`] trait the engine saves
//! through, and its implementations.
//!
//! The engine gathers what changed (task records and state changes) and hands it to
//! [`Saver::save`] as one [`Group`]: one group, one fsync ("group commit"). State changes
//! get their sequence numbers at commit, from a counter that survives restarts, so a
//! change is visible to readers only once it is durable.
//!
//! - [`RedbStore`]: the default store, one redb file (`state.redb`, schema version
//!   [`SCHEMA_VERSION`]) with per-task records and the change log;
//! - [`DataDir`]: the data directory: its lock, the instance id, opening (and migrating)
//!   the store, and the explicit reset;
//! - [`export`]: the whole state as one JSON document (schema 1, the old `state.json`),
//!   for `marshal_json`/`unmarshal_json` and for migration;
//! - [`MemorySaver`]: the same semantics in memory, for tests and benchmarks;
//! - [`files`]: the data directory's checks (no symbolic link, this user's, closed to
//!   others' writes) and its files' mode (0600, written atomically).
//!
//! Decisions:
//! - one [`Saver::save`] is one redb write transaction with `Durability::Immediate` (redb's
//!   one-phase commit with checksums: one fsync); an empty group commits nothing. After a
//!   crash the store holds every group whose save returned, and the one in flight either
//!   whole or not at all.
//! - a state file is checked on a copy of its bytes in memory before it is opened for
//!   writing, so a file refused as unreadable or newer is never written to (not even by
//!   redb's crash repair); opening costs one read of the file (about 0.3 s for 10,000
//!   tasks and a full log of 100,000 changes).
//! - retention is exact: after a save the log holds the last `retention` changes (fewer
//!   when fewer were ever made); older ones are deleted in the same transaction.
//! - [`Loaded::tasks`] come in arn order; a task record is kept under the arn its group
//!   gives.
//! - damaged state (a file that is not a redb file, truncated, empty, not berth's, with
//!   records that do not decode, newer, unreadable, a directory or a dangling link in its
//!   place; the same for `state.json`) is refused with a message naming the file, what is
//!   wrong and what to do, and is never written, moved or deleted by an open; only the
//!   explicit [`DataDir::reset`] moves it aside (docs/damaged-state.md).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod crash;
mod datadir;
pub mod export;
pub mod files;
mod memory;
mod redb_store;

pub use datadir::{DataDir, INSTANCE_ID_FILE, LOCK_FILE, STATE_FILE, STATE_JSON_FILE};
pub use memory::MemorySaver;
pub use redb_store::{RedbReader, RedbStore, SCHEMA_VERSION};

use berth_model::{StateChange, Task};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How many state changes the log keeps at least (SPEC 1).
pub const DEFAULT_RETAINED_CHANGES: u64 = 100_000;

/// What one group commit makes durable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Task records to write: the whole task, or `None` when the task left the state.
    /// Shared with the engine, which copies a task it changes only while a save holds it.
    pub tasks: Vec<(String, Option<std::sync::Arc<Task>>)>,
    /// State changes to append, in order; their `seq` is given at commit.
    pub changes: Vec<StateChange>,
}

impl Group {
    /// Nothing to save.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.changes.is_empty()
    }
}

/// Everything a store holds, as loaded at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// Every task in the state.
    pub tasks: Vec<Task>,
    /// The retained state changes, oldest first.
    pub changes: Vec<StateChange>,
    /// The sequence number the next change gets (1 for an empty log).
    pub next_seq: u64,
}

/// What a reader of the change log gets from a position on (`changes_since` of
/// [`RedbStore`], [`RedbReader`] and [`MemorySaver`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangesSince {
    /// Positions asked for that the log no longer holds (dropped by retention), when any:
    /// the reader missed these changes and should be told so before the rest.
    pub gap: Option<Range<u64>>,
    /// The retained changes from the asked position on (or from the oldest retained one,
    /// after a gap), oldest first, at most as many as asked.
    pub changes: Vec<StateChange>,
    /// The sequence number the next committed change will get.
    pub next_seq: u64,
}

impl ChangesSince {
    /// Where the reader goes on from: after the last change returned, else after the gap,
    /// else where it asked (positions start at 1).
    pub fn resume_from(&self, asked: u64) -> u64 {
        match (self.changes.last(), &self.gap) {
            (Some(last), _) => last.seq + 1,
            (None, Some(gap)) => gap.end,
            (None, None) => asked.max(1),
        }
    }
}

/// The positions from `from` on that a log no longer holds, given its oldest retained change
/// (`None` when it holds none) and its next sequence number.
pub(crate) fn gap_before(from: u64, oldest_retained: Option<u64>, next_seq: u64) -> Option<Range<u64>> {
    let from = from.max(1);
    let oldest = oldest_retained.unwrap_or(next_seq);
    (from < oldest).then_some(from..oldest)
}

/// Reads a store's committed changes from any thread while the store saves (the engine's
/// change log reads positions older than what it keeps in memory from here).
pub trait ChangeSource: Send + Sync + 'static {
    /// The committed changes with `seq >= from`, at most `max`, and the gap when some of
    /// the asked positions were dropped by retention.
    fn changes_since(&self, from: u64, max: usize) -> Result<ChangesSince, StoreError>;
}

/// Where the engine's state goes (the seed's `statemanager.Saver`).
pub trait Saver: Send + Sync + 'static {
    /// Everything saved so far.
    fn load(&mut self) -> Result<Loaded, StoreError>;

    /// Make `group` durable as a unit: after a crash, either all of it is there or none.
    /// Returns its changes with their sequence numbers.
    fn save(&mut self, group: Group) -> Result<Vec<StateChange>, StoreError>;

    /// Make everything saved so far durable now (a saver that buffers flushes here; the
    /// default store's `save` is already durable).
    fn force_save(&mut self) -> Result<(), StoreError>;

    /// A reader of the committed changes that works while this saver saves, when the saver
    /// keeps its change log where it can be read back (`None`: the engine keeps the whole
    /// retention in memory itself).
    fn change_source(&self) -> Option<std::sync::Arc<dyn ChangeSource>> {
        None
    }
}

/// Why the state could not be read or written. Messages name the file, say what is wrong
/// and what to do.
///
/// A refused state file ([`StoreError::Unreadable`], [`StoreError::NewerSchema`]) is left
/// exactly as it was: berth neither writes to it nor moves it. The way out is to move it
/// aside by hand, or to start with the explicit reset ([`DataDir::reset`], `berth daemon
/// --reset-state`), which renames it `<name>.reset-<UTC time>` and starts empty.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another berth holds the data directory. The message names the process holding the
    /// lock when its lock file says (read when the message is made).
    #[error("{}", locked_message(.dir, .lock))]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// A state file cannot be read; it is left untouched.
    #[error("cannot read berth state in {file}: {reason}; berth will not touch it (the file is left untouched). {}", advice(.file, "To start empty"))]
    Unreadable {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A state file written by a newer berth; it is left untouched.
    #[error(
        "berth state in {file} has schema version {found}, newer than this berth's {supported}; berth will not touch it (the file is left untouched). Run a newer berth; or, {}",
        advice(.file, "to start empty (forgetting the tasks it holds)")
    )]
    NewerSchema {
        /// The file.
        file: PathBuf,
        /// Its version.
        found: u32,
        /// The newest this berth reads.
        supported: u32,
    },
    /// Reading or writing failed (no space left, an I/O error, permissions, a read-only
    /// file system, a file another process has locked): not damage in the state, so the
    /// message says to fix the cause and start again, never to reset.
    #[error("{action} {path}: {source}; {}", io_advice(.source))]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The data directory is not safe to use (a symbolic link, another user's, writable by
    /// others).
    #[error(transparent)]
    UnsafeDataDir(#[from] files::UnsafeDataDir),
    /// The embedded database failed.
    #[error("berth state in {file}: {reason}")]
    Database {
        /// The file.
        file: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// What to do about an I/O error on a state file: its cause, not the state, is the problem.
fn io_advice(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
            "the file system is full: free space on it and start berth again (this is not damage in the state; \
             do not reset it)"
        }
        K::PermissionDenied | K::ReadOnlyFilesystem => {
            "fix the permissions (berth must be able to read and write its data directory and state files) or \
             remount the file system read-write, and start berth again (this is not damage in the state; do not \
             reset it)"
        }
        K::WouldBlock => {
            "another process has the file open and locked: stop it and start berth again (this is not damage in \
             the state; do not reset it)"
        }
        _ => {
            "an I/O error: check the disk and the kernel log (dmesg), then start berth again (berth found no damage \
             in the state; do not reset it)"
        }
    }
}

/// What to do about a refused `file`: `lead` says what moving it aside gives ("To start
/// empty").
fn advice(file: &Path, lead: &str) -> String {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name == INSTANCE_ID_FILE {
        "Write this berth's instance id into it again (32 lowercase hexadecimal digits), or move it aside to get \
         a new instance id (containers labelled with the old one are then never touched)"
            .to_string()
    } else if name == STATE_FILE || name == STATE_JSON_FILE {
        format!(
            "{lead}, move it aside, or run `berth daemon --reset-state`, which moves it aside as \
             {name}.reset-<UTC time> (nothing is deleted)"
        )
    } else {
        format!("{lead}, move it aside")
    }
}

/// The message of [`StoreError::Locked`], with the holder's pid when the lock file says.
fn locked_message(dir: &Path, lock: &Path) -> String {
    let holder = match datadir::lock_holder(lock) {
        Some(pid) if pid == std::process::id() => format!(" (this same process, pid {pid})"),
        Some(pid) => format!(" (pid {pid})"),
        None => String::new(),
    };
    format!(
        "data directory {} is in use by another berth{holder}: it holds the lock {}. Stop that berth first, or give \
         this one another data directory (--data-dir)",
        dir.display(),
        lock.display()
    )
}
