//! Crash points: a test hook that aborts the process at a named point, so that crash tests
//! can stop berth exactly where a crash would hurt most. Compiled in only with the cargo
//! feature `crash-points` (which only the `berth` binary's test build turns on, through
//! its dev-dependency on this crate): without it [`point`] does nothing and the
//! environment is never read, so a process embedding the store or the engine cannot be
//! made to abort by an environment variable. With it, a point is off unless the
//! environment variable `BERTH_CRASH_AT` names it (`<point>` or `<point>:<n>`, aborting at
//! its n-th passage, the first by default); read once per process.
//!
//! The points, in the order a container meets them:
//! - `before-create`: a container's Docker name is durable; the create call is not made;
//! - `after-create`: Docker created the container; its id is not yet durable;
//! - `after-start`: Docker started the container; its RUNNING change is not yet logged;
//! - `in-commit`: inside a group commit, after its writes and before it is durable.
//!
//! They live here, in the lowest crate that does I/O, because the deepest one is inside the
//! store's commit.

#[cfg(feature = "crash-points")]
use std::sync::OnceLock;
#[cfg(feature = "crash-points")]
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether crash points are compiled in (the cargo feature `crash-points`).
pub const ENABLED: bool = cfg!(feature = "crash-points");

/// The environment variable that arms a crash point.
pub const CRASH_AT_ENV: &str = "BERTH_CRASH_AT";

/// Every crash point.
pub const POINTS: [&str; 4] = ["before-create", "after-create", "after-start", "in-commit"];

#[cfg(feature = "crash-points")]
static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
#[cfg(feature = "crash-points")]
static PASSED: AtomicU64 = AtomicU64::new(0);

#[cfg(feature = "crash-points")]
fn armed() -> Option<&'static (String, u64)> {
    ARMED
        .get_or_init(|| {
            let value = std::env::var(CRASH_AT_ENV).ok()?;
            let (point, nth) = match value.split_once(':') {
                Some((point, n)) => (point.to_string(), n.parse::<u64>().ok().filter(|n| *n > 0)?),
                None => (value, 1),
            };
            POINTS.contains(&point.as_str()).then_some((point, nth))
        })
        .as_ref()
}

/// Pass crash point `name`: abort the process if it is the armed one and this is the
/// passage asked for; otherwise nothing (one atomic load when unarmed).
#[cfg(feature = "crash-points")]
pub fn point(name: &str) {
    let Some((at, nth)) = armed() else { return };
    if at == name && PASSED.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        eprintln!("berth: crash point {name} reached ({CRASH_AT_ENV}); aborting");
        std::process::abort();
    }
}

/// Pass crash point `name`: without the feature `crash-points`, nothing.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn point(_name: &str) {}
