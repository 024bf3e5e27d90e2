//! Fuzz target `store_loader`: any bytes as berth's saved state.
//!
//! Each input is read three ways:
//! 1. `berth_store::export::from_json` (what `unmarshal_json` reads);
//! 2. written as `state.redb` into a fresh data directory, opened with `DataDir::open`,
//!    `.store()`, `Saver::load` (what `berth run`/the daemon do at start);
//! 3. when it looks like JSON (first non-blank byte `{`), written as `state.json` (the
//!    schema-1 file) into a fresh data directory and imported the same way.
//!
//! Checked: no panic escapes; a refusal is an error with a non-empty message, and in a data
//! directory the message names the state file (its path appears in it). Also: a state that
//! loads survives the export round trip (`to_json` → `from_json`, lossless), and a
//! `state.json` that `from_json` accepts imports into the store losslessly. Every task of a
//! state that loads has its dependency graph built and is planned once, as the engine does
//! at start (a `known_time` near the end of time must not overflow).
//!
//! A panic inside redb that berth itself catches (the check of a file's in-memory copy runs
//! under `catch_unwind`, turning it into "unreadable") is counted and reported on stderr,
//! not treated as a crash. Every other panic aborts (a crash for libFuzzer).
//!
//! The data directories go under `$BERTH_FUZZ_TMPDIR`, else `/dev/shm` (tmpfs: no disk
//! I/O for the fsyncs), else the system temp dir, named `berth-fuzz-store-<pid>-<n>`, and
//! are removed after each input.
#![no_main]

use berth_store::export::{from_json, to_json};
use berth_store::{DataDir, Loaded, STATE_FILE, STATE_JSON_FILE, Saver};
use libfuzzer_sys::fuzz_target;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::{env, fs};

/// The last panic's message and place, recorded by our hook.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
/// Panics berth caught itself (reported, not crashes).
static CAUGHT: AtomicU64 = AtomicU64::new(0);
static HOOK: Once = Once::new();
static ROOT: OnceLock<PathBuf> = OnceLock::new();
static DIRS: AtomicU64 = AtomicU64::new(0);

/// libfuzzer-sys's hook aborts on every panic, even one berth catches on purpose; ours
/// records it, and `fuzz_target!` below decides.
fn install_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(info.to_string());
            }
        }));
    });
}

fn take_panic() -> Option<String> {
    LAST_PANIC.lock().ok().and_then(|mut last| last.take())
}

fn root() -> &'static Path {
    ROOT.get_or_init(|| {
        if let Some(dir) = env::var_os("BERTH_FUZZ_TMPDIR") {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        let writable = shm.is_dir() && fs::metadata(shm).map(|m| !m.permissions().readonly()).unwrap_or(false);
        if writable { shm.to_path_buf() } else { env::temp_dir() }
    })
}

/// A data directory path that does not exist yet (`DataDir::open` creates it).
fn fresh_dir() -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = root().join(format!("berth-fuzz-store-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// `data` as the file `name` of a fresh data directory, loaded as berth does at start.
/// On refusal, the error's message (checked to name the file).
fn load_from_dir(name: &str, data: &[u8]) -> Result<Loaded, String> {
    let dir = fresh_dir();
    fs::create_dir_all(&dir).expect("create the data directory");
    let file = dir.join(name);
    fs::write(&file, data).expect("write the state file");
    let result = DataDir::open(&dir).and_then(|dir| {
        let mut store = dir.store()?;
        store.load()
    });
    let _ = fs::remove_dir_all(&dir);
    result.map_err(|err| {
        let msg = err.to_string();
        let path = file.to_string_lossy();
        assert!(msg.contains(&*path), "a refusal of {name} that does not name {path}: {msg}");
        msg
    })
}

/// The export round trip is lossless for any state berth loaded.
fn round_trip(loaded: &Loaded, from: &str) {
    plan_each(loaded);
    let json = to_json(loaded).unwrap_or_else(|e| panic!("a state loaded from {from} does not export: {e}"));
    let back =
        from_json(json.as_bytes()).unwrap_or_else(|e| panic!("the export of a state from {from} is refused: {e}"));
    assert!(&back == loaded, "the export round trip changes a state loaded from {from}");
}

/// Build each task's graph and plan it once (a graph berth refuses is refused at start).
fn plan_each(loaded: &Loaded) {
    let now = chrono::Utc::now();
    let config = berth_model::plan::PlanConfig::default();
    for task in &loaded.tasks {
        if let Ok(graph) = berth_model::graph::DependencyGraph::build(task) {
            let _ = berth_model::plan::plan(task, &graph, now, &config);
        }
    }
}

fn run(data: &[u8]) {
    // 1. The JSON import (unmarshal_json).
    let exported = from_json(data);
    match &exported {
        Ok(loaded) => round_trip(loaded, "from_json"),
        Err(e) => assert!(!e.to_string().trim().is_empty(), "from_json refused with an empty message: {e:?}"),
    }

    // 2. The state file.
    if let Ok(loaded) = load_from_dir(STATE_FILE, data) {
        round_trip(&loaded, STATE_FILE);
    }

    // 3. The schema-1 state.json, imported.
    if data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        match (load_from_dir(STATE_JSON_FILE, data), exported) {
            (Ok(imported), Ok(mut expected)) => {
                // The store keeps tasks by arn, so they come back in arn order.
                expected.tasks.sort_by(|a, b| a.arn.cmp(&b.arn));
                assert!(imported == expected, "state.json imported into the store is not what from_json read");
            }
            (Ok(_), Err(e)) => panic!("state.json imported although from_json refuses it: {e}"),
            (Err(msg), Ok(_)) => panic!("state.json that from_json accepts is refused by the import: {msg}"),
            (Err(_), Err(_)) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    let _ = take_panic();
    if catch_unwind(AssertUnwindSafe(|| run(data))).is_err() {
        eprintln!("panic: {}", take_panic().unwrap_or_else(|| "(message not recorded)".into()));
        std::process::abort();
    }
    if let Some(msg) = take_panic() {
        let n = CAUGHT.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            eprintln!("store_loader: berth caught a panic inside the store ({n} so far), refused the file: {msg}");
        }
    }
});
