//! Reading task definitions: the four JSON shapes people already have, turned into a
//! validated [`Task`], with a warning for each field berth does not act on.
//!
//! Shapes:
//! 1. ECS `register-task-definition --cli-input-json` (`family`, `containerDefinitions`, ...);
//! 2. `describe-task-definition` output, `{"taskDefinition": {...}}`;
//! 3. a bare `containerDefinitions` array (family from [`ParseOptions::family`]);
//! 4. the seed's task payload (`arn`, `family`, `version`, `desiredStatus`, `containers`).
//!
//! Everything is checked before anything starts; an invalid task yields every error found,
//! each naming its JSON path, and nothing else. `null` means absent.

use crate::task::Task;
use std::fmt;

/// Largest input accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;
/// Most containers in one task.
pub const MAX_CONTAINERS: usize = 100;
/// Longest container (and family) name.
pub const MAX_NAME_LEN: usize = 255;
/// Most environment entries in one container.
pub const MAX_ENVIRONMENT: usize = 1000;

/// What the caller knows beside the JSON itself.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// Family for a bare `containerDefinitions` array (from the file name or a flag); also
    /// overrides nothing when the input names its own family.
    pub family: Option<String>,
    /// 128 random bits for the arn of a task that comes without one (the model does no I/O).
    pub arn_random: u128,
}

/// A problem at a place in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// JSON path such as `containerDefinitions[1].memory`; empty for the whole input.
    pub path: String,
    /// What is wrong (or, for a warning, what berth does not act on).
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// A task definition berth accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The task, desired RUNNING unless the input says otherwise.
    pub task: Task,
    /// Fields berth does not act on, unknown keys, log drivers it replaces.
    pub warnings: Vec<Issue>,
}

/// A task definition berth refused: every error found, plus the warnings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Rejected {
    /// What is wrong, each naming its path (invalid JSON: line and column).
    pub errors: Vec<Issue>,
    /// What berth would not have acted on.
    pub warnings: Vec<Issue>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, "invalid task definition: {}", all.join("; "))
    }
}
