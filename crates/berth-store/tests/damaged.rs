//! Damaged state (issue "crash safety", item 3): every kind of state berth cannot use is
//! refused at open with a message that names the file (full path), says what is wrong and
//! what to do; the file is left byte for byte as it was (contents, mtime, inode) and no file
//! appears in the data directory besides the lock and the instance id `DataDir::open`
//! makes. The explicit reset moves the state aside (never deletes it) and the next open
//! starts empty with the same instance id.
// Test code: a failed unwrap is a failed test (clippy.toml allows it in #[test] functions;
// this covers the helpers too).
#![allow(clippy::unwrap_used)]

mod common;

use berth_store::{
    DataDir, Group, INSTANCE_ID_FILE, LOCK_FILE, Loaded, RedbStore, SCHEMA_VERSION, STATE_FILE, STATE_JSON_FILE, Saver,
    StoreError,
};
use common::{change, task};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// What the directory holds, entry by entry: kind, contents, mtime, inode, mode.
#[derive(Clone, PartialEq)]
struct Entry {
    dir: bool,
    bytes: Option<Vec<u8>>,
    mtime: SystemTime,
    ino: u64,
    mode: u32,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes by length and a checksum: a whole state file would flood the output.
        let sum = self.bytes.as_ref().map(|b| {
            let hash =
                b.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3));
            (b.len(), format!("{hash:016x}"))
        });
        f.debug_struct("Entry")
            .field("dir", &self.dir)
            .field("bytes (len, fnv-1a)", &sum)
            .field("mtime", &self.mtime)
            .field("ino", &self.ino)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

fn snapshot(dir: &Path) -> BTreeMap<String, Entry> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            // Read as root would: mode 000 files are read through a copy of the mode.
            let bytes = meta.is_file().then(|| read_anyway(&e.path()));
            let entry = Entry {
                dir: meta.is_dir(),
                bytes,
                mtime: meta.modified().unwrap(),
                ino: meta.ino(),
                mode: meta.mode(),
            };
            (e.file_name().to_string_lossy().into_owned(), entry)
        })
        .collect()
}

/// The contents of `file`, even when its mode forbids reading (the mode is restored, and
/// the mtime does not change with a chmod).
fn read_anyway(file: &Path) -> Vec<u8> {
    match fs::read(file) {
        Ok(bytes) => bytes,
        Err(_) => {
            let mode = fs::metadata(file).unwrap().permissions().mode();
            fs::set_permissions(file, fs::Permissions::from_mode(0o600)).unwrap();
            let bytes = fs::read(file).unwrap();
            fs::set_permissions(file, fs::Permissions::from_mode(mode)).unwrap();
            bytes
        }
    }
}

/// Open the data directory at `dir` and its store, expecting a refusal: the error, its
/// message (also printed), and what the directory held before (the lock file is rewritten,
/// with this process's pid, by each open). Checks that every entry but the lock is unchanged.
fn open_refused(dir: &Path) -> (StoreError, String, BTreeMap<String, Entry>) {
    let before = snapshot(dir);
    let err = {
        let data = DataDir::open(dir).unwrap();
        data.store().expect_err("the store must be refused")
    };
    let message = err.to_string();
    eprintln!("{message}");
    let after = snapshot(dir);
    for (name, entry) in before.iter().filter(|(n, _)| n.as_str() != LOCK_FILE) {
        assert_eq!(after.get(name), Some(entry), "{name} changed");
    }
    (err, message, before)
}

/// Open the data directory at `dir` and its store, expecting the store refused because of
/// `file`: the message names `file` (its full path) and contains each of `says`; `file` and
/// every other entry is unchanged, and only the lock and the instance id may appear.
fn refused(dir: &Path, file: &Path, says: &[&str]) -> StoreError {
    let (err, message, before) = open_refused(dir);
    let path = file.display().to_string();
    assert!(path.starts_with('/'), "a full path: {path}");
    assert!(message.contains(&path), "the message names the file: {message}");
    assert!(message.contains("left untouched"), "{message}");
    assert!(message.contains("berth daemon --reset-state"), "the message says what to do: {message}");
    assert!(message.contains("move it aside"), "{message}");
    for s in says {
        assert!(message.contains(s), "the message says {s:?}: {message}");
    }
    let after = snapshot(dir);
    let new: Vec<_> = after.keys().filter(|n| !before.contains_key(*n)).cloned().collect();
    assert!(
        new.iter().all(|n| n == LOCK_FILE || n == INSTANCE_ID_FILE),
        "only the lock and the instance id may appear: {new:?}"
    );
    err
}

/// Open the data directory at `dir` and its store, expecting an I/O error on `file`
/// ([`StoreError::Io`]): the message names `file`, contains each of `says`, says to start
/// again and never to reset; every entry but the lock is unchanged.
fn refused_for_io(dir: &Path, file: &Path, says: &[&str]) -> StoreError {
    let (err, message, _) = open_refused(dir);
    assert!(matches!(&err, StoreError::Io { path, .. } if path == file), "an I/O error on {}: {err:?}", file.display());
    assert!(message.contains(&file.display().to_string()), "the message names the file: {message}");
    assert!(message.contains("start berth again"), "{message}");
    assert!(message.contains("not damage") || message.contains("no damage"), "{message}");
    assert!(!message.contains("--reset-state") && !message.contains("move it aside"), "no reset advice: {message}");
    for s in says {
        assert!(message.contains(s), "the message says {s:?}: {message}");
    }
    err
}

/// A tmpfs of `size` mounted at a new directory, unmounted when dropped (also when the
/// test fails). The tests run as root (CI does): a failed mount fails the test.
struct Tmpfs {
    top: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let top = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(top.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs (the tests need root): {status}");
        Tmpfs { top }
    }

    fn path(&self) -> &Path {
        self.top.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.top.path()).status();
    }
}

/// Fill the file system holding `dir` with a file `filler` until no byte is left.
fn fill(dir: &Path) {
    let mut f = fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                break;
            }
        }
    }
}

#[test]
fn a_full_disk_at_open_is_said_as_such_and_not_as_damage() {
    let fs_ = Tmpfs::mount("1m");
    let dir = fs_.path().join("data");
    // The lock and instance id first, then nothing left for the new state file.
    drop(DataDir::open(&dir).unwrap());
    fill(fs_.path());
    let err = {
        let data = DataDir::open(&dir).unwrap();
        data.store().expect_err("no space for a new store")
    };
    let message = err.to_string();
    eprintln!("{message}");
    assert!(
        matches!(&err, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{err:?}"
    );
    assert!(message.contains("No space left on device") && message.contains("free space"), "{message}");
    assert!(!message.contains("--reset-state"), "no reset advice: {message}");
    // Space freed: it opens.
    fs::remove_file(fs_.path().join("filler")).unwrap();
    let data = DataDir::open(&dir).unwrap();
    assert_eq!(data.store().unwrap().load().unwrap().next_seq, 1);
}

#[test]
fn a_state_file_on_a_read_only_mount_is_an_io_error_not_damage() {
    let (dir, file) = setup(STATE_FILE);
    let bytes = made_store(&file);
    // The state file alone bound read-only over itself: the directory (lock, instance id)
    // stays writable, opening the store for writing gets EROFS.
    let status = Command::new("mount").arg("--bind").arg(&file).arg(&file).status().unwrap();
    assert!(status.success(), "mount --bind (the tests need root): {status}");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(file.clone());
    let status = Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&file).status().unwrap();
    assert!(status.success(), "remount read-only: {status}");
    let err = refused_for_io(dir.path(), &file, &["Read-only file system", "fix the permissions"]);
    assert!(matches!(&err, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::ReadOnlyFilesystem));
    drop(_unmount);
    assert_eq!(fs::read(&file).unwrap(), bytes, "the file is untouched");
}

fn assert_unreadable(err: &StoreError, file: &Path) {
    match err {
        StoreError::Unreadable { file: f, .. } => assert_eq!(f, file),
        other => panic!("expected Unreadable, got {other:?}"),
    }
}

fn group(arns: &[&str], n: u64, changes: usize) -> Group {
    Group {
        tasks: arns.iter().map(|arn| ((*arn).to_string(), Some(std::sync::Arc::new(task(arn, n))))).collect(),
        changes: (0..changes).map(|i| change(arns[0], &format!("c{i}"))).collect(),
    }
}

/// A real store holding a few groups, closed; returns its bytes.
fn made_store(file: &Path) -> Vec<u8> {
    let mut store = RedbStore::open(file).unwrap();
    for n in 0..20 {
        store.save(group(&["arn:a", &format!("arn:t{n}")], n, 10)).unwrap();
    }
    drop(store);
    fs::read(file).unwrap()
}

/// A temporary directory and its state file.
fn setup(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    (dir, file)
}

#[test]
fn garbage_bytes_are_refused() {
    let (dir, file) = setup(STATE_FILE);
    let garbage: Vec<u8> = (0..64 * 1024).map(|_| rand::random::<u8>()).collect();
    fs::write(&file, &garbage).unwrap();
    let err = refused(dir.path(), &file, &["not a readable redb database"]);
    assert_unreadable(&err, &file);

    fs::write(&file, b"{\"not\": \"a redb file\"}").unwrap();
    assert_unreadable(&refused(dir.path(), &file, &["not a readable redb database"]), &file);
}

#[test]
fn a_truncated_state_file_is_refused() {
    let (dir, file) = setup(STATE_FILE);
    let whole = made_store(&file);
    assert!(whole.len() > 8192, "a store of some size: {} bytes", whole.len());
    for keep in [whole.len() / 2, whole.len() / 4, 4096, 1000, 100, 1] {
        fs::write(&file, &whole[..keep]).unwrap();
        assert_unreadable(&refused(dir.path(), &file, &[]), &file);
    }
    // The whole file still opens.
    fs::write(&file, &whole).unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    assert_eq!(data.store().unwrap().load().unwrap().next_seq, 201);
}

#[test]
fn a_zero_length_state_file_is_refused() {
    let (dir, file) = setup(STATE_FILE);
    fs::write(&file, b"").unwrap();
    assert_unreadable(&refused(dir.path(), &file, &["the file is empty"]), &file);
}

#[test]
fn a_redb_file_without_berth_tables_is_refused() {
    let (dir, file) = setup(STATE_FILE);
    {
        let db = redb::Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(redb::TableDefinition::<&str, &str>::new("other")).unwrap();
            t.insert("k", "v").unwrap();
        }
        txn.commit().unwrap();
    }
    assert_unreadable(&refused(dir.path(), &file, &["not a berth state file"]), &file);
}

/// Rewrite one meta value of a closed store, the way another berth would have.
fn set_meta(file: &Path, key: &str, value: u64) {
    let db = redb::Database::open(file).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(redb::TableDefinition::<&str, u64>::new("meta")).unwrap();
        meta.insert(key, value).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn a_newer_schema_version_is_refused() {
    let (dir, file) = setup(STATE_FILE);
    made_store(&file);
    set_meta(&file, "schema_version", u64::from(SCHEMA_VERSION) + 1);
    let newer = (SCHEMA_VERSION + 1).to_string();
    let err = refused(dir.path(), &file, &["schema version", &newer, "Run a newer berth"]);
    match &err {
        StoreError::NewerSchema { file: f, found, supported } => {
            assert_eq!((f.as_path(), *found, *supported), (file.as_path(), SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[test]
fn records_that_do_not_decode_are_refused() {
    let (dir, file) = setup(STATE_FILE);
    let whole = made_store(&file);
    {
        let db = redb::Database::open(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("tasks")).unwrap();
            t.insert("arn:a", b"{not json".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    assert_unreadable(&refused(dir.path(), &file, &["task record arn:a"]), &file);

    // A record that decodes, filed under a key that is not its task's arn.
    fs::write(&file, &whole).unwrap();
    {
        let db = redb::Database::open(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("tasks")).unwrap();
            let record = serde_json::to_vec(&task("arn:a", 1)).unwrap();
            t.insert("arn:elsewhere", record.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    assert_unreadable(&refused(dir.path(), &file, &["task record arn:elsewhere holds task arn:a"]), &file);

    // A change record, too.
    fs::write(&file, &whole).unwrap();
    {
        let db = redb::Database::open(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(redb::TableDefinition::<u64, &[u8]>::new("changes")).unwrap();
            t.insert(200, b"\xff\xfe".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    assert_unreadable(&refused(dir.path(), &file, &["change record 200"]), &file);
}

#[test]
fn a_damaged_page_anywhere_is_refused_untouched_or_harmless() {
    let (_dir, file) = setup(STATE_FILE);
    made_store(&file);
    let good = RedbStore::open(&file).unwrap().load().unwrap();
    let whole = fs::read(&file).unwrap();
    let mut refusals = 0;
    for page in 0..whole.len() / 4096 {
        let mut bytes = whole.clone();
        for b in &mut bytes[page * 4096 + 100..page * 4096 + 200] {
            *b ^= 0x5a;
        }
        fs::write(&file, &bytes).unwrap();
        match RedbStore::open(&file) {
            // A page not in use (free space): the state is whole.
            Ok(mut store) => assert_eq!(store.load().unwrap(), good, "page {page} damaged, state changed"),
            Err(err) => {
                assert_unreadable(&err, &file);
                assert_eq!(fs::read(&file).unwrap(), bytes, "page {page} damaged, the file was written");
                refusals += 1;
            }
        }
    }
    assert!(refusals > 0);
}

/// Set for the child: the data directory whose state file it may not read.
const UNREADABLE_VAR: &str = "BERTH_STORE_UNREADABLE_DIR";

/// The mode 000 case, as a user mode 000 stops; run in a child process (as `nobody` when
/// the tests run as root) by the test below, does nothing in a normal run.
#[test]
fn unreadable_child() {
    let Some(dir) = std::env::var_os(UNREADABLE_VAR) else { return };
    let dir = PathBuf::from(dir);
    let file = dir.join(STATE_FILE);
    assert!(fs::read(&file).is_err(), "this process can read {}", file.display());
    // Permissions are not damage: said as what it is, with no advice to reset.
    let err = refused_for_io(&dir, &file, &["Permission denied", "fix the permissions"]);
    assert!(matches!(&err, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied));
}

#[test]
fn an_unreadable_state_file_is_refused() {
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("data");
    fs::create_dir(&dir).unwrap();
    let file = dir.join(STATE_FILE);
    made_store(&file);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o000)).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    if fs::read(&file).is_ok() {
        // Running as root (or with CAP_DAC_OVERRIDE): mode 000 does not stop this process
        // reading the file, so the case is run as `nobody` in a child, the data directory
        // and the file given to it.
        let nobody = 65534;
        let setpriv = Path::new("/usr/bin/setpriv");
        // util-linux's setpriv is on every machine this project runs on (Debian's base
        // system); without it the case cannot be run, and that is a failure, never a pass.
        assert!(setpriv.exists(), "running as root: {} is needed to run this case as another user", setpriv.display());
        fs::set_permissions(top.path(), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&dir, Some(nobody), Some(nobody)).unwrap();
        std::os::unix::fs::chown(&file, Some(nobody), Some(nobody)).unwrap();
        child = Command::new(setpriv);
        child.args([&format!("--reuid={nobody}"), &format!("--regid={nobody}"), "--clear-groups"]);
        child.arg(std::env::current_exe().unwrap());
    }
    let before = snapshot(&dir);
    let status = child
        .args(["--exact", "unreadable_child", "--nocapture", "--test-threads=1"])
        .env(UNREADABLE_VAR, &dir)
        .status()
        .unwrap();
    assert!(status.success(), "the case failed in the child: {status}");
    assert_eq!(snapshot(&dir).get(STATE_FILE), before.get(STATE_FILE), "the file is untouched");
}

#[test]
fn a_directory_in_place_of_the_state_file_is_refused() {
    let (dir, file) = setup(STATE_FILE);
    fs::create_dir(&file).unwrap();
    fs::write(file.join("inside"), b"kept").unwrap();
    assert_unreadable(&refused(dir.path(), &file, &["it is a directory, not a file"]), &file);
    assert_eq!(fs::read(file.join("inside")).unwrap(), b"kept");

    // The same for state.json.
    let (dir, json) = setup(STATE_JSON_FILE);
    fs::create_dir(&json).unwrap();
    assert_unreadable(&refused(dir.path(), &json, &["it is a directory, not a file"]), &json);
}

#[test]
fn a_dangling_link_in_place_of_the_state_file_is_refused() {
    let (dir, file) = setup(STATE_FILE);
    std::os::unix::fs::symlink(dir.path().join("gone"), &file).unwrap();
    assert_unreadable(&refused(dir.path(), &file, &["symbolic link to nothing"]), &file);
    assert!(!dir.path().join("gone").exists(), "nothing made where the link points");
}

#[test]
fn a_state_json_that_is_not_json_is_refused() {
    let (dir, json) = setup(STATE_JSON_FILE);
    for bad in ["not json", "", r#"{"Tasks": []}"#, r#"{"SchemaVersion": 1, "Tasks": 3}"#] {
        fs::write(&json, bad).unwrap();
        assert_unreadable(&refused(dir.path(), &json, &["not a valid berth state export"]), &json);
    }
    fs::write(&json, r#"{"SchemaVersion": 0}"#).unwrap();
    assert_unreadable(&refused(dir.path(), &json, &["schema version 0, which no berth wrote"]), &json);
    assert!(!dir.path().join(STATE_FILE).exists(), "no store is made from a refused state.json");
}

#[test]
fn a_state_json_with_a_newer_schema_is_refused() {
    let (dir, json) = setup(STATE_JSON_FILE);
    fs::write(&json, r#"{"SchemaVersion": 7, "Tasks": [], "NextSeq": 1, "Changes": []}"#).unwrap();
    match refused(dir.path(), &json, &["schema version 7", "Run a newer berth"]) {
        StoreError::NewerSchema { file, found: 7, supported: berth_store::export::EXPORT_VERSION } => {
            assert_eq!(file, json)
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert!(!dir.path().join(STATE_FILE).exists(), "no store is made from a refused state.json");
}

/// Set for the child: the data directory it holds.
const HOLDER_VAR: &str = "BERTH_STORE_LOCK_HOLDER_DIR";

/// Holds a data directory until its stdin closes; run in a child process by the test
/// below, does nothing in a normal run.
#[test]
fn lock_holder_child() {
    let Some(dir) = std::env::var_os(HOLDER_VAR) else { return };
    let data = DataDir::open(&dir).expect("open the data directory");
    let _store = data.store().expect("open the store");
    let mut out = std::io::stdout();
    // On a line of its own: the test harness has begun one.
    write!(out, "\nholding {}\n", std::process::id()).and_then(|()| out.flush()).expect("write to stdout");
    // Bounded, should the parent be gone.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(Duration::from_secs(60));
}

#[test]
fn a_data_directory_held_by_another_process_is_refused_naming_the_lock_and_the_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    DataDir::open(&path).unwrap().store().unwrap();
    let state = path.join(STATE_FILE);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_holder_child", "--nocapture", "--test-threads=1"])
        .env(HOLDER_VAR, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        assert!(Instant::now() < deadline, "the child did not take the lock");
        let line = lines.next().expect("the child ended").unwrap();
        if let Some(pid) = line.strip_prefix("holding ") {
            break pid.parse::<u32>().unwrap();
        }
    };
    assert_eq!(pid, child.id());
    // As the holder left it (its open may write to the file, as redb's open does).
    let before = snapshot(&path);

    let err = DataDir::open(&path).expect_err("held by the child");
    let message = err.to_string();
    eprintln!("{message}");
    match &err {
        StoreError::Locked { dir, lock } => assert_eq!((dir, lock), (&path, &path.join(LOCK_FILE))),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(message.contains("in use by another berth"), "{message}");
    assert!(message.contains(&path.join(LOCK_FILE).display().to_string()), "names the lock: {message}");
    assert!(message.contains(&format!("(pid {pid})")), "names the other process: {message}");
    assert!(message.contains("--data-dir"), "says what to do: {message}");
    // A reset is refused the same way, and moves nothing.
    assert!(matches!(DataDir::reset(&path), Err(StoreError::Locked { .. })));
    assert_eq!(snapshot(&path).get(STATE_FILE), before.get(STATE_FILE), "{} changed", state.display());
    assert!(state.exists());

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // Gone: the directory opens again, and the lock file names this process.
    let data = DataDir::open(&path).unwrap();
    data.store().unwrap();
    assert_eq!(fs::read_to_string(path.join(LOCK_FILE)).unwrap(), format!("{}\n", std::process::id()));
    // Within one process, the message says so.
    let message = DataDir::open(&path).unwrap_err().to_string();
    assert!(message.contains(&format!("(this same process, pid {})", std::process::id())), "{message}");
}

/// The reset's name for `from`: `<name>.reset-YYYYMMDDTHHMMSSZ`, optionally `-<n>`.
fn assert_reset_name(from: &Path, to: &Path) {
    assert_eq!(from.parent(), to.parent(), "moved within the data directory");
    let name = to.file_name().unwrap().to_string_lossy().into_owned();
    let prefix = format!("{}.reset-", from.file_name().unwrap().to_string_lossy());
    let stamp = name.strip_prefix(&prefix).unwrap_or_else(|| panic!("{name}"));
    let stamp = stamp.split('-').next().unwrap();
    let when = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").unwrap_or_else(|e| panic!("{name}: {e}"));
    let age = chrono::Utc::now().naive_utc() - when;
    assert!(age >= chrono::TimeDelta::zero() && age < chrono::TimeDelta::minutes(5), "{name}: says when");
}

#[test]
fn reset_moves_damaged_state_aside_and_the_next_open_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let id = DataDir::open(dir.path()).unwrap().instance_id().to_string();
    let redb = dir.path().join(STATE_FILE);
    let json = dir.path().join(STATE_JSON_FILE);
    let garbage: Vec<u8> = (0..10_000).map(|_| rand::random::<u8>()).collect();
    fs::write(&redb, &garbage).unwrap();
    fs::write(&json, "not json").unwrap();
    let before = snapshot(dir.path());
    refused(dir.path(), &redb, &[]);

    let moved = DataDir::reset(dir.path()).unwrap();
    assert_eq!(moved.iter().map(|(from, _)| from.clone()).collect::<Vec<_>>(), [redb.clone(), json.clone()]);
    let after = snapshot(dir.path());
    for (from, to) in &moved {
        assert_reset_name(from, to);
        assert!(!from.exists());
        // The same file (inode, contents, mtime), under its new name.
        let name = from.file_name().unwrap().to_string_lossy().into_owned();
        let moved_name = to.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(after.get(&moved_name), before.get(&name), "{name} moved as it was");
    }
    assert_eq!(fs::read(&moved[0].1).unwrap(), garbage);

    let data = DataDir::open(dir.path()).unwrap();
    assert_eq!(data.instance_id(), id, "the instance id survives a reset");
    let mut store = data.store().unwrap();
    assert!(store.imported_from().is_none());
    assert_eq!(store.load().unwrap(), Loaded { next_seq: 1, ..Loaded::default() });
    store.save(group(&["arn:b"], 1, 1)).unwrap();
}

#[test]
fn reset_moves_a_directory_and_a_newer_store_aside() {
    let dir = tempfile::tempdir().unwrap();
    let redb = dir.path().join(STATE_FILE);
    fs::create_dir(&redb).unwrap();
    fs::write(redb.join("inside"), b"kept").unwrap();
    let moved = DataDir::reset(dir.path()).unwrap();
    assert_eq!(moved.len(), 1);
    assert_reset_name(&moved[0].0, &moved[0].1);
    assert_eq!(fs::read(moved[0].1.join("inside")).unwrap(), b"kept");
    DataDir::open(dir.path()).unwrap().store().unwrap().load().unwrap();

    // Now a good store made newer; a second reset in the same second keeps both.
    set_meta(&redb, "schema_version", u64::from(SCHEMA_VERSION) + 1);
    let newer = fs::read(&redb).unwrap();
    let again = DataDir::reset(dir.path()).unwrap();
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].1, moved[0].1);
    assert_reset_name(&again[0].0, &again[0].1);
    assert_eq!(fs::read(&again[0].1).unwrap(), newer);
    assert!(moved[0].1.join("inside").exists(), "an earlier reset's file is never replaced");
    assert_eq!(DataDir::open(dir.path()).unwrap().store().unwrap().load().unwrap().next_seq, 1);

    // Nothing to move: nothing moved; no data directory: none made.
    let fresh = tempfile::tempdir().unwrap();
    DataDir::open(fresh.path()).unwrap();
    assert_eq!(DataDir::reset(fresh.path()).unwrap(), vec![]);
    assert_eq!(DataDir::reset(dir.path().join("missing")).unwrap(), vec![]);
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn a_malformed_instance_id_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(INSTANCE_ID_FILE);
    fs::write(&file, "xyz\n").unwrap();
    let err = DataDir::open(dir.path()).expect_err("malformed id");
    let message = err.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("32 lowercase hexadecimal digits"), "{message}");
    assert!(message.contains("move it aside"), "{message}");
    assert!(!message.contains("--reset-state"), "a reset keeps the instance id, so it is no help: {message}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "xyz\n");
}
