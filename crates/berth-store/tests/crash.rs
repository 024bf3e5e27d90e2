//! A torn last write loses at most the group being committed: a child process (this test
//! binary again, running only `crash_writer_child`) commits groups of [`GROUP`] changes in a
//! loop and is killed with SIGKILL at random moments; after each kill the store opens, its
//! log is consecutive from 1, holds whole groups only, and the task records are those of
//! the last whole group.
// Test code: a failed unwrap is a failed test (clippy.toml allows it in #[test] functions;
// this covers the helpers too).
#![allow(clippy::unwrap_used)]

mod common;

use berth_store::{DataDir, Group, Saver, StoreError};
use common::{change, task};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set for the child: the data directory it writes to.
const DIR_VAR: &str = "BERTH_STORE_CRASH_WRITER_DIR";
/// Changes per group.
const GROUP: u64 = 10;
/// The task whose record every group rewrites (its version is the group's number).
const MAIN: &str = "arn:crash";

/// The task records group `n` (numbered from 1) writes and deletes, besides [`MAIN`].
fn side_tasks(n: u64) -> [(String, bool); 2] {
    [(format!("arn:side{}", n % 7), true), (format!("arn:side{}", (n + 3) % 7), false)]
}

/// The tasks after groups 1..=n: arn → version.
fn expected_tasks(n: u64) -> BTreeMap<String, String> {
    let mut tasks = BTreeMap::new();
    for g in 1..=n {
        tasks.insert(MAIN.to_string(), g.to_string());
        for (arn, write) in side_tasks(g) {
            if write {
                tasks.insert(arn, g.to_string());
            } else {
                tasks.remove(&arn);
            }
        }
    }
    tasks
}

/// The writer, run in a child process by the test below; does nothing in a normal run.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else { return };
    let data = DataDir::open(&dir).expect("open the data directory");
    let mut store = data.store().expect("open the store");
    let mut next = store.load().expect("load").next_seq;
    // On a line of its own: the test harness has begun one ("test crash_writer_child ... ").
    let mut out = std::io::stdout();
    write!(out, "\nready {next}\n").and_then(|()| out.flush()).expect("write to stdout");
    // Bounded, should the parent be gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let n = (next - 1) / GROUP + 1;
        let mut tasks = vec![(MAIN.to_string(), Some(std::sync::Arc::new(task(MAIN, n))))];
        for (arn, write) in side_tasks(n) {
            let record = write.then(|| std::sync::Arc::new(task(&arn, n)));
            tasks.push((arn, record));
        }
        let changes = (next..next + GROUP).map(|seq| change(MAIN, &format!("c{seq}"))).collect();
        let saved = store.save(Group { tasks, changes }).expect("save");
        assert_eq!(saved.first().map(|c| c.seq), Some(next));
        next += GROUP;
        // Acknowledged: the parent checks that no acknowledged group is lost.
        writeln!(out, "committed {}", next - 1).and_then(|()| out.flush()).expect("write to stdout");
    }
}

#[test]
fn a_torn_last_write_loses_at_most_the_uncommitted_group() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut before = 0;
    for round in 0..8 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_writer_child", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Read what the child acknowledges: "ready", then "committed <last seq>" per group.
        let out = BufReader::new(child.stdout.take().unwrap());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let acks = std::thread::spawn(move || {
            let mut acked = None;
            for line in out.lines().map_while(Result::ok) {
                if line.starts_with("ready ") {
                    let _ = ready_tx.send(());
                } else if let Some(seq) = line.strip_prefix("committed ") {
                    acked = seq.parse::<u64>().ok();
                }
            }
            acked
        });
        if round % 4 == 3 {
            // Now and then a kill while the child is still opening (checking, repairing).
            std::thread::sleep(Duration::from_millis(rand::random_range(0..40)));
        } else {
            ready_rx.recv_timeout(Duration::from_secs(30)).expect("the writer did not start");
            // Another process holds the data directory.
            assert!(matches!(DataDir::open(dir.path()), Err(StoreError::Locked { .. })));
            std::thread::sleep(Duration::from_millis(rand::random_range(20..300)));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "the writer ended before it was killed: {status}");
        let acked = acks.join().unwrap().unwrap_or(before);

        let data = DataDir::open(dir.path()).unwrap();
        let mut store = data.store().unwrap();
        let loaded = store.load().unwrap();
        let n = loaded.changes.len() as u64;
        for (i, c) in loaded.changes.iter().enumerate() {
            let seq = i as u64 + 1;
            assert_eq!(c.seq, seq, "round {round}: the log is consecutive from 1");
            assert_eq!(c.container_name, format!("c{seq}"), "round {round}: change {seq}");
        }
        assert_eq!(n % GROUP, 0, "round {round}: whole groups only, found {n} changes");
        assert_eq!(loaded.next_seq, n + 1);
        assert!(n >= acked, "round {round}: acknowledged groups were lost ({acked} changes acknowledged, {n} kept)");
        assert!(
            n <= acked + GROUP,
            "round {round}: {n} changes kept, {acked} acknowledged, one group in flight at most"
        );
        let tasks: BTreeMap<String, String> = loaded.tasks.into_iter().map(|t| (t.arn, t.version)).collect();
        assert_eq!(tasks, expected_tasks(n / GROUP), "round {round}: the task records of group {}", n / GROUP);
        eprintln!("round {round}: {} whole groups ({} acknowledged)", n / GROUP, acked / GROUP);
        before = n;
    }
    assert!(before > 0, "the writer committed nothing");
}
