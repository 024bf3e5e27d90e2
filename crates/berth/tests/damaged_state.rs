//! Damaged state through the binary (issue "crash safety", item 3): `berth daemon` on a data
//! directory whose state it cannot use stops at once with a message naming the file and what
//! to do, and leaves the file as it was; `--reset-state` moves it aside and starts empty; a
//! second daemon on a data directory in use is refused, naming the lock and the first one's
//! pid. Needs Docker (the daemon connects before it opens its state); a missing Docker fails,
//! never skips.
// Test code: a failed unwrap is a failed test (clippy.toml allows it in #[test] functions;
// this covers the helpers too).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant, SystemTime};

/// How long a refused start may take (Docker answers at once; the state is refused before
/// anything else happens).
const REFUSAL: Duration = Duration::from_secs(20);
/// How long a good start may take.
const START: Duration = Duration::from_secs(60);

/// A directory under /tmp (short, so the socket path in it fits) and its data directory.
fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let top = tempfile::Builder::new().prefix("bds-").tempdir_in("/tmp").unwrap();
    let data = top.path().join("data");
    fs::create_dir(&data).unwrap();
    (top, data)
}

/// A running (or ended) `berth daemon`, killed on drop; its stderr goes to a file.
struct Daemon {
    child: Child,
    stderr: PathBuf,
}

impl Daemon {
    /// `berth daemon --data-dir <data> <extra>` ([`support::daemon`]). Docker must answer:
    /// the daemon connects to it before it opens its state.
    fn spawn(data: &Path, extra: &[&str], log: &Path) -> Daemon {
        support::require_docker();
        let child = support::daemon(data, log).args(extra).spawn().unwrap();
        Daemon { child, stderr: log.to_path_buf() }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap()
    }

    /// Its exit status, once it ends within `limit`.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "berth daemon still running after {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for `<data>/berth.sock`: the daemon has started.
    fn wait_started(&mut self, data: &Path) {
        let socket = data.join("berth.sock");
        let deadline = Instant::now() + START;
        while !socket.exists() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("berth daemon ended ({status}) before it started; stderr:\n{}", self.stderr());
            }
            assert!(Instant::now() < deadline, "no {} after {START:?}; stderr:\n{}", socket.display(), self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then its exit status.
    fn terminate(&mut self) -> ExitStatus {
        let kill = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(kill.success(), "kill -TERM: {kill}");
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a file is: contents, mtime, inode.
fn identity(file: &Path) -> (Vec<u8>, SystemTime, u64) {
    let meta = fs::metadata(file).unwrap();
    (fs::read(file).unwrap(), meta.modified().unwrap(), meta.ino())
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

fn garbage() -> Vec<u8> {
    (0..32 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

#[test]
fn a_garbage_state_file_stops_the_daemon_and_is_left_untouched() {
    let (top, data) = data_dir();
    let state = data.join("state.redb");
    fs::write(&state, garbage()).unwrap();
    let before = identity(&state);

    let started = Instant::now();
    let mut daemon = Daemon::spawn(&data, &[], &top.path().join("daemon.log"));
    let status = daemon.wait_exit(REFUSAL);
    let stderr = daemon.stderr();
    eprintln!("refused after {:?} with {status}; stderr:\n{stderr}", started.elapsed());
    assert!(!status.success(), "{status}");
    assert!(stderr.contains(&state.display().to_string()), "stderr names the file: {stderr}");
    assert!(stderr.contains("left untouched"), "{stderr}");
    assert!(stderr.contains("berth daemon --reset-state"), "stderr says what to do: {stderr}");
    assert_eq!(identity(&state), before, "the state file is left as it was");
    // The lock and the instance id are the data directory's own; images.json is the image
    // ledger the agent opens (making it empty the first time) before the engine's state.
    let expected: BTreeSet<String> =
        ["state.redb", "lock", "instance-id", "images.json"].iter().map(|s| (*s).to_string()).collect();
    let found = names(&data);
    assert!(found.is_subset(&expected), "nothing else appears in the data directory: {found:?}");
}

#[test]
fn reset_state_moves_the_damaged_file_aside_and_starts_empty() {
    let (top, data) = data_dir();
    let state = data.join("state.redb");
    fs::write(&state, garbage()).unwrap();
    let before = identity(&state);

    let mut daemon = Daemon::spawn(&data, &["--reset-state"], &top.path().join("daemon.log"));
    daemon.wait_started(&data);
    let status = daemon.terminate();
    let stderr = daemon.stderr();
    assert!(status.success(), "SIGTERM: a clean stop ({status}); stderr:\n{stderr}");

    let moved: Vec<_> = names(&data).into_iter().filter(|n| n.starts_with("state.redb.reset-")).collect();
    assert_eq!(moved.len(), 1, "the damaged file is kept under a new name: {:?}", names(&data));
    let moved = data.join(&moved[0]);
    assert_eq!(identity(&moved), before, "moved as it was (same contents, mtime and inode)");
    assert!(stderr.contains(&state.display().to_string()) && stderr.contains(&moved.display().to_string()), "{stderr}");
    assert!(stderr.contains("moved aside"), "the move is logged: {stderr}");
    assert!(stderr.contains("WARN"), "at warn level: {stderr}");
    // It says plainly what becomes of the old state's containers, and how to keep them.
    assert!(stderr.contains("removed as orphans") && stderr.contains("1m after berth reaches Docker"), "{stderr}");
    assert!(stderr.contains("To keep them") && stderr.contains("BERTH_ORPHAN_GRACE"), "{stderr}");
    assert!(stderr.contains(&data.join("instance-id").display().to_string()), "{stderr}");
    // The new state is a good one: a plain start opens it.
    assert_ne!(fs::read(&state).unwrap(), before.0);
    let mut again = Daemon::spawn(&data, &[], &top.path().join("again.log"));
    again.wait_started(&data);
    assert!(again.terminate().success(), "{}", again.stderr());
    assert!(moved.exists());
}

#[test]
fn a_second_daemon_on_the_same_data_directory_is_refused_naming_the_lock_and_the_pid() {
    let (top, data) = data_dir();
    let mut first = Daemon::spawn(&data, &[], &top.path().join("first.log"));
    first.wait_started(&data);
    let state = data.join("state.redb");
    let before = identity(&state);
    let lock = data.join("lock").display().to_string();
    let pid = format!("(pid {})", first.child.id());

    for (extra, log) in [(&[][..], "second.log"), (&["--reset-state"][..], "reset.log")] {
        let mut second = Daemon::spawn(&data, extra, &top.path().join(log));
        let status = second.wait_exit(REFUSAL);
        let stderr = second.stderr();
        eprintln!("{extra:?}: {status}; stderr:\n{stderr}");
        assert!(!status.success(), "{status}");
        assert!(stderr.contains("in use by another berth"), "{stderr}");
        assert!(stderr.contains(&lock), "stderr names the lock: {stderr}");
        assert!(stderr.contains(&pid), "stderr names the first daemon's pid: {stderr}");
        assert!(stderr.contains("--data-dir"), "stderr says what to do: {stderr}");
    }
    assert_eq!(identity(&state), before, "the state file is left as it was");
    assert!(!names(&data).iter().any(|n| n.contains(".reset-")), "nothing moved aside");
    assert!(data.join("berth.sock").exists(), "the first daemon's socket is left alone");
    assert!(first.child.try_wait().unwrap().is_none(), "the first daemon still runs");
    assert!(first.terminate().success(), "{}", first.stderr());
}
