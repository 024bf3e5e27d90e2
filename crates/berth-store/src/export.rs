//! berth's state export: the whole state as one JSON document.
//!
//! ```json
//! {"SchemaVersion": 1, "Tasks": [...], "NextSeq": 42, "Changes": [...]}
//! ```
//!
//! This is the seed's way of keeping state (its statemanager wrote the whole state to one
//! JSON file; berth's was `state.json` in the data directory, schema 1 of the store, before
//! the redb store, [`crate::RedbStore`]). The same document is what the engine's
//! `marshal_json`/`unmarshal_json` produce and read; [`from_json`] refuses a newer version
//! and reads older ones, and the round trip [`to_json`] → [`from_json`] is lossless.
//!
//! Versions: 1 wrote every field of every task; 2 leaves out the fields at their default
//! (read back as the default), as the redb store's records do from its schema 3 on. A
//! version-1 document is a version-2 one with nothing left out, so reading it needs no
//! step of its own.

use crate::Loaded;
use berth_model::{StateChange, Task};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The version of the export document this berth writes, and the newest it reads.
pub const EXPORT_VERSION: u32 = 2;

/// The oldest export version this berth reads.
pub const OLDEST_EXPORT_VERSION: u32 = 1;

/// The export document, field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateExport {
    /// The document's version ([`EXPORT_VERSION`] when written by this berth).
    pub schema_version: u32,
    /// Every task in the state.
    pub tasks: Vec<Task>,
    /// The sequence number the next change gets.
    pub next_seq: u64,
    /// The retained state changes, oldest first, with their sequence numbers.
    pub changes: Vec<StateChange>,
}

/// Why an export document cannot be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// Not JSON, or not the export's shape, or inconsistent (the reason says where).
    #[error("not a valid berth state export: {0}")]
    Malformed(String),
    /// Written by a newer berth.
    #[error("berth state export has schema version {found}, newer than this berth's {supported}; run a newer berth")]
    Newer {
        /// Its version.
        found: u32,
        /// The newest this berth reads.
        supported: u32,
    },
    /// A version that never existed.
    #[error("berth state export has schema version {found}, which no berth wrote (the oldest is {oldest})")]
    Unknown {
        /// Its version.
        found: u32,
        /// The oldest version there is.
        oldest: u32,
    },
    /// The state could not be encoded.
    #[error("cannot encode the berth state: {0}")]
    Encode(String),
}

/// The state as an export document (compact JSON).
pub fn to_json(state: &Loaded) -> Result<String, ExportError> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Borrowed<'a> {
        schema_version: u32,
        tasks: &'a [Task],
        next_seq: u64,
        changes: &'a [StateChange],
    }
    serde_json::to_string(&Borrowed {
        schema_version: EXPORT_VERSION,
        tasks: &state.tasks,
        next_seq: state.next_seq,
        changes: &state.changes,
    })
    .map_err(|e| ExportError::Encode(e.to_string()))
}

/// Read an export document of any version this berth knows, migrating an older one, and
/// check that it is consistent (unique task arns; changes numbered from 1 up, strictly
/// increasing, all below `NextSeq`).
pub fn from_json(bytes: &[u8]) -> Result<Loaded, ExportError> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ExportError::Malformed(e.to_string()))?;
    let version = match doc.get("SchemaVersion") {
        None => return Err(ExportError::Malformed("no SchemaVersion".into())),
        Some(v) => v
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ExportError::Malformed(format!("SchemaVersion {v} is not a version number")))?,
    };
    if version > EXPORT_VERSION {
        return Err(ExportError::Newer { found: version, supported: EXPORT_VERSION });
    }
    if version < OLDEST_EXPORT_VERSION {
        return Err(ExportError::Unknown { found: version, oldest: OLDEST_EXPORT_VERSION });
    }
    let doc = migrate(doc, version);
    let export: StateExport = serde_json::from_value(doc).map_err(|e| ExportError::Malformed(e.to_string()))?;
    check(&export)?;
    Ok(Loaded { tasks: export.tasks, changes: export.changes, next_seq: export.next_seq })
}

/// Bring a document of `version` up to [`EXPORT_VERSION`], one version at a time. Each
/// future version that changes the shape adds its step here (`if version < 3 { doc =
/// v2_to_v3(doc) }`, ...); version 1 reads as version 2 (see the module's doc), so there is
/// none yet.
fn migrate(doc: serde_json::Value, version: u32) -> serde_json::Value {
    debug_assert!((OLDEST_EXPORT_VERSION..=EXPORT_VERSION).contains(&version));
    doc
}

fn check(export: &StateExport) -> Result<(), ExportError> {
    if export.next_seq == 0 {
        return Err(ExportError::Malformed("NextSeq is 0; sequence numbers start at 1".into()));
    }
    let mut arns = HashSet::new();
    for task in &export.tasks {
        if !arns.insert(task.arn.as_str()) {
            return Err(ExportError::Malformed(format!("task {} appears twice", task.arn)));
        }
    }
    let mut previous = 0;
    for change in &export.changes {
        if change.seq <= previous {
            return Err(ExportError::Malformed(format!(
                "change with Seq {} after Seq {previous}; changes must be numbered from 1 up, oldest first",
                change.seq
            )));
        }
        if change.seq >= export.next_seq {
            return Err(ExportError::Malformed(format!(
                "change with Seq {} is not below NextSeq {}",
                change.seq, export.next_seq
            )));
        }
        previous = change.seq;
    }
    Ok(())
}
