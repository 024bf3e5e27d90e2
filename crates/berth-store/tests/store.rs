//! The redb store and the data directory: restart, retention and gaps, the lock, the
//! instance id, migration from state.json, reset (damaged state: `damaged.rs`).
// Test code: a failed unwrap is a failed test (clippy.toml allows it in #[test] functions;
// this covers the helpers too).
#![allow(clippy::unwrap_used)]

mod common;

use berth_store::export::{from_json, to_json};
use berth_store::{
    DataDir, Group, INSTANCE_ID_FILE, Loaded, RedbStore, STATE_FILE, STATE_JSON_FILE, Saver, StoreError,
};
use common::{change, rich_task, task};
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn group(tasks: &[(&str, Option<u64>)], changes: usize) -> Group {
    Group {
        tasks: tasks
            .iter()
            .map(|(arn, n)| ((*arn).to_string(), n.map(|n| std::sync::Arc::new(task(arn, n)))))
            .collect(),
        changes: (0..changes).map(|i| change(tasks.first().map_or("arn:x", |t| t.0), &format!("c{i}"))).collect(),
    }
}

fn seqs(changes: &[berth_model::StateChange]) -> Vec<u64> {
    changes.iter().map(|c| c.seq).collect()
}

#[test]
fn restart_keeps_tasks_and_changes_and_sequence_numbers_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let data = DataDir::open(dir.path()).unwrap();
        let mut store = data.store().unwrap();
        let empty = store.load().unwrap();
        assert_eq!(empty, Loaded { tasks: vec![], changes: vec![], next_seq: 1 });

        let saved = store.save(group(&[("arn:a", Some(1)), ("arn:b", Some(1))], 3)).unwrap();
        assert_eq!(seqs(&saved), [1, 2, 3]);
        let saved = store.save(group(&[("arn:a", Some(2)), ("arn:c", Some(1))], 2)).unwrap();
        assert_eq!(seqs(&saved), [4, 5]);
        let saved = store.save(group(&[("arn:b", None)], 1)).unwrap();
        assert_eq!(seqs(&saved), [6]);
        assert!(store.save(Group::default()).unwrap().is_empty(), "an empty group commits nothing");
        assert_eq!(store.next_seq(), 7);
        store.load().unwrap()
    };
    assert_eq!(
        before.tasks.iter().map(|t| (t.arn.as_str(), t.version.as_str())).collect::<Vec<_>>(),
        [("arn:a", "2"), ("arn:c", "1")]
    );
    assert_eq!(seqs(&before.changes), [1, 2, 3, 4, 5, 6]);
    assert_eq!(before.next_seq, 7);

    let data = DataDir::open(dir.path()).unwrap();
    let mut store = data.store().unwrap();
    assert!(store.imported_from().is_none());
    let after = store.load().unwrap();
    assert_eq!(after, before);
    assert_eq!(seqs(&store.save(group(&[("arn:a", Some(3))], 2)).unwrap()), [7, 8]);
    // A second load (no longer the one decoded at open) reads the same way.
    let again = store.load().unwrap();
    assert_eq!(seqs(&again.changes), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(again.tasks[0].version, "3");
    store.force_save().unwrap();
}

#[test]
fn retention_drops_the_oldest_and_readers_are_told_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(STATE_FILE);
    {
        let mut store = RedbStore::open(&file).unwrap();
        store.set_retention(25);
        for n in 0..10 {
            store.save(group(&[("arn:a", Some(n))], 5)).unwrap();
        }
        let loaded = store.load().unwrap();
        assert_eq!(seqs(&loaded.changes), (26..=50).collect::<Vec<_>>());
        assert_eq!(loaded.next_seq, 51);

        let since = store.changes_since(1, 100).unwrap();
        assert_eq!(since.gap, Some(1..26));
        assert_eq!(seqs(&since.changes), (26..=50).collect::<Vec<_>>());
        assert_eq!(since.resume_from(1), 51);

        let since = store.changes_since(0, 3).unwrap();
        assert_eq!(since.gap, Some(1..26), "position 0 reads as 1");
        assert_eq!(seqs(&since.changes), [26, 27, 28]);
        assert_eq!(since.resume_from(0), 29);

        let since = store.changes_since(30, 5).unwrap();
        assert_eq!(since.gap, None);
        assert_eq!(seqs(&since.changes), [30, 31, 32, 33, 34]);

        let since = store.changes_since(51, 5).unwrap();
        assert_eq!((since.gap.clone(), since.changes.len(), since.next_seq), (None, 0, 51));
        assert_eq!(since.resume_from(51), 51);

        let reader = store.reader();
        let from_thread = std::thread::spawn(move || reader.changes_since(49, 10).unwrap()).join().unwrap();
        assert_eq!(seqs(&from_thread.changes), [49, 50]);
    }
    // Reopened with the default retention: nothing more is dropped, the old ones stay gone.
    let mut store = RedbStore::open(&file).unwrap();
    assert_eq!(seqs(&store.load().unwrap().changes), (26..=50).collect::<Vec<_>>());
    assert_eq!(seqs(&store.save(group(&[("arn:a", None)], 1)).unwrap()), [51]);
    assert_eq!(store.changes_since(10, 1).unwrap().gap, Some(10..26));
    assert!(store.load().unwrap().tasks.is_empty());
}

#[test]
fn a_reader_sees_a_group_once_it_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(dir.path().join(STATE_FILE)).unwrap();
    let reader = store.reader();
    assert!(reader.changes_since(1, 10).unwrap().changes.is_empty());
    store.save(group(&[("arn:a", Some(1))], 4)).unwrap();
    let since = reader.changes_since(1, 10).unwrap();
    assert_eq!((seqs(&since.changes), since.next_seq, since.gap), (vec![1, 2, 3, 4], 5, None));
}

#[test]
fn the_data_directory_is_locked_while_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let first = DataDir::open(&path).unwrap();
    let err = DataDir::open(&path).expect_err("second open");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("in use by another berth"), "{message}");
    assert!(message.contains(&path.join("lock").display().to_string()), "{message}");
    assert!(matches!(DataDir::reset(&path), Err(StoreError::Locked { .. })));

    // The store keeps the directory locked after the DataDir is gone.
    let store = first.store().unwrap();
    drop(first);
    assert!(matches!(DataDir::open(&path), Err(StoreError::Locked { .. })));
    drop(store);
    let again = DataDir::open(&path).unwrap();
    again.store().unwrap();
}

#[test]
fn the_data_directory_is_private_and_the_instance_id_stable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("data");
    let id = DataDir::open(&path).unwrap().instance_id().to_string();
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
    assert_eq!(fs::read_to_string(path.join(INSTANCE_ID_FILE)).unwrap(), format!("{id}\n"));
    assert!(!path.join("instance-id.tmp").exists());
    for _ in 0..3 {
        let data = DataDir::open(&path).unwrap();
        assert_eq!(data.instance_id(), id);
        assert_eq!(data.path(), path);
    }
    let other = DataDir::open(dir.path().join("other")).unwrap();
    assert_ne!(other.instance_id(), id, "each data directory has its own instance id");
}

/// The mode of every file under `dir` (not following links).
fn modes(dir: &std::path::Path) -> Vec<(String, u32)> {
    let mut found: Vec<(String, u32)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().permissions().mode() & 0o777))
        .collect();
    found.sort();
    found
}

#[test]
fn every_file_of_the_data_directory_is_0600_after_a_store_was_opened_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    {
        let data = DataDir::open(&path).unwrap();
        let mut store = data.store().unwrap();
        store.save(group(&[("arn:a", Some(1)), ("arn:b", Some(2))], 3)).unwrap();
    }
    let found = modes(&path);
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["instance-id", "lock", "state.redb"]);
    assert!(found.iter().all(|(_, mode)| *mode == 0o600), "{found:?}");

    // Files an older berth left readable by others are narrowed when the store is opened.
    for (name, _) in &found {
        fs::set_permissions(path.join(name), fs::Permissions::from_mode(0o644)).unwrap();
    }
    {
        let data = DataDir::open(&path).unwrap();
        data.store().unwrap().save(group(&[("arn:c", Some(1))], 1)).unwrap();
    }
    let again = modes(&path);
    assert!(again.iter().all(|(_, mode)| *mode == 0o600), "{again:?}");
}

#[test]
fn an_unsafe_data_directory_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    DataDir::open(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let e = DataDir::open(&link).unwrap_err();
    assert!(matches!(e, StoreError::UnsafeDataDir(_)), "{e}");
    assert!(e.to_string().contains("symbolic link"), "{e}");

    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let e = DataDir::open(&open).unwrap_err();
    assert!(e.to_string().contains(&format!("chmod 700 {}", open.display())), "{e}");
    assert_eq!(fs::read_dir(&open).unwrap().count(), 0, "nothing was written in it");
}

#[test]
fn a_malformed_instance_id_is_unreadable_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(INSTANCE_ID_FILE);
    for bad in ["", "xyz\n", "0123456789ABCDEF0123456789ABCDEF\n", "0123456789abcdef0123456789abcdef0\n"] {
        fs::write(&file, bad).unwrap();
        let err = DataDir::open(dir.path()).expect_err("malformed id");
        match &err {
            StoreError::Unreadable { file: f, .. } => assert_eq!(f, &file),
            other => panic!("expected Unreadable, got {other:?}"),
        }
        assert!(err.to_string().contains(&file.display().to_string()), "{err}");
        assert_eq!(fs::read_to_string(&file).unwrap(), bad);
    }
    // Written by hand without the newline: read back as it is.
    fs::write(&file, "0123456789abcdef0123456789abcdef").unwrap();
    assert_eq!(DataDir::open(dir.path()).unwrap().instance_id(), "0123456789abcdef0123456789abcdef");
}

fn json_state() -> Loaded {
    let mut changes: Vec<_> = (1..=5).map(|i| change("arn:a", &format!("c{i}"))).collect();
    for (seq, c) in (3..).zip(changes.iter_mut()) {
        c.seq = seq; // older ones were dropped by retention
    }
    Loaded { tasks: vec![task("arn:a", 4), rich_task(7)], changes, next_seq: 8 }
}

#[test]
fn state_json_is_imported_into_a_new_store_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join(STATE_JSON_FILE);
    let state = json_state();
    let text = to_json(&state).unwrap();
    fs::write(&json, &text).unwrap();

    {
        let data = DataDir::open(dir.path()).unwrap();
        let mut store = data.store().unwrap();
        assert_eq!(store.imported_from(), Some(json.as_path()));
        let mut loaded = store.load().unwrap();
        let mut expected = state.clone();
        loaded.tasks.sort_by(|a, b| a.arn.cmp(&b.arn));
        expected.tasks.sort_by(|a, b| a.arn.cmp(&b.arn));
        assert_eq!(loaded, expected);
        assert_eq!(seqs(&store.save(group(&[("arn:a", Some(5))], 2)).unwrap()), [8, 9]);
        assert_eq!(store.changes_since(1, 10).unwrap().gap, Some(1..3));
    }
    assert_eq!(fs::read_to_string(&json).unwrap(), text, "the old file is kept as it was");
    assert!(dir.path().join(STATE_FILE).exists());
    assert!(!dir.path().join("state.redb.tmp").exists());

    // From now on the store is the state; state.json is not imported again.
    let data = DataDir::open(dir.path()).unwrap();
    let mut store = data.store().unwrap();
    assert!(store.imported_from().is_none());
    let loaded = store.load().unwrap();
    assert_eq!((loaded.next_seq, loaded.changes.len()), (10, 7));
}

#[test]
fn reset_moves_the_state_aside() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let data = DataDir::open(dir.path()).unwrap();
        data.store().unwrap().save(group(&[("arn:a", Some(1))], 3)).unwrap();
        data.instance_id().to_string()
    };
    fs::write(dir.path().join(STATE_JSON_FILE), "old").unwrap();
    let redb_bytes = fs::read(dir.path().join(STATE_FILE)).unwrap();

    let moved = DataDir::reset(dir.path()).unwrap();
    assert_eq!(moved.len(), 2);
    for (from, to) in &moved {
        assert!(!from.exists());
        let name = to.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("{}.reset-", from.file_name().unwrap().to_string_lossy())), "{name}");
    }
    assert_eq!(fs::read(&moved[0].1).unwrap(), redb_bytes);
    assert_eq!(fs::read_to_string(&moved[1].1).unwrap(), "old");

    let data = DataDir::open(dir.path()).unwrap();
    assert_eq!(data.instance_id(), id, "the instance id survives a reset");
    let mut store = data.store().unwrap();
    assert_eq!(store.load().unwrap(), Loaded { next_seq: 1, ..Loaded::default() });
    store.save(group(&[("arn:b", Some(1))], 1)).unwrap();
    drop(store);
    drop(data);

    // A second reset within the same second does not overwrite the first one's files.
    let again = DataDir::reset(dir.path()).unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].1.exists());
    assert!(moved[0].1.exists());
    assert_eq!(DataDir::reset(dir.path().join("missing")).unwrap(), vec![]);
}

#[test]
fn the_export_round_trip_is_lossless() {
    let state = Loaded {
        tasks: vec![rich_task(1), task("arn:b", 2), rich_task(3)],
        changes: {
            let mut cs = vec![change("arn:b", "web"), change("arn:b", "db")];
            cs[0].seq = 41;
            cs[1].seq = 42;
            cs[1].reason = Some("exited \u{1F4A5}".into());
            cs[1].exit_code = Some(137);
            cs[1].status = berth_model::ContainerStatus::Stopped;
            cs[1].task_status = berth_model::TaskStatus::Stopped;
            cs
        },
        next_seq: 43,
    };
    let text = to_json(&state).unwrap();
    assert!(text.starts_with(r#"{"SchemaVersion":2,"Tasks":["#), "{}", &text[..40]);
    assert!(text.contains(r#""NextSeq":43"#) && text.contains(r#""Changes":["#));
    let back = from_json(text.as_bytes()).unwrap();
    assert_eq!(back, state);
    assert_eq!(to_json(&back).unwrap(), text);
    // Pretty or compact, the same state.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(from_json(serde_json::to_string_pretty(&value).unwrap().as_bytes()).unwrap(), state);
}

#[test]
fn the_export_refuses_newer_versions_and_inconsistent_logs() {
    let err = from_json(br#"{"SchemaVersion": 3, "Tasks": [], "NextSeq": 1, "Changes": []}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "berth state export has schema version 3, newer than this berth's 2; run a newer berth"
    );
    assert!(from_json(br#"{"SchemaVersion": 0}"#).unwrap_err().to_string().contains("which no berth wrote"));
    assert!(from_json(br#"{"SchemaVersion": "1"}"#).unwrap_err().to_string().contains("not a version number"));
    assert!(from_json(br#"[1]"#).unwrap_err().to_string().contains("no SchemaVersion"));

    let mut state = Loaded { tasks: vec![task("arn:a", 1), task("arn:a", 2)], changes: vec![], next_seq: 1 };
    let dup = to_json(&state).unwrap();
    assert!(from_json(dup.as_bytes()).unwrap_err().to_string().contains("task arn:a appears twice"));
    state.tasks.pop();
    state.changes = vec![change("arn:a", "x"), change("arn:a", "y")];
    state.changes[0].seq = 2;
    state.changes[1].seq = 2;
    state.next_seq = 3;
    let repeated = to_json(&state).unwrap();
    assert!(from_json(repeated.as_bytes()).unwrap_err().to_string().contains("after Seq 2"));
    state.changes[1].seq = 3;
    let beyond = to_json(&state).unwrap();
    assert!(from_json(beyond.as_bytes()).unwrap_err().to_string().contains("not below NextSeq 3"));
    state.changes.clear();
    state.next_seq = 0;
    assert!(from_json(to_json(&state).unwrap().as_bytes()).unwrap_err().to_string().contains("NextSeq is 0"));
}

/// A task record as schema 2 of the store (and version 1 of the export) wrote it: every
/// field, those at their default included (one container, `busybox`, `httpd -f`).
const FULL_RECORD: &str = r#"{"arn":"arn:berth:task/00000000000000000000000000000001","family":"web","version":"1","network_mode":"bridge","containers":[{"spec":{"name":"web","image":"busybox","command":["httpd","-f"],"entry_point":[],"cpu":0,"memory":null,"memory_reservation":null,"essential":true,"environment":{},"environment_files":[],"secrets":[],"links":[],"volumes_from":[],"mount_points":[],"port_mappings":[],"docker_labels":{},"working_directory":null,"user":null,"stop_timeout":null,"health_check":null,"depends_on":[],"ulimits":[],"readonly_root_filesystem":false,"extra_hosts":[],"hostname":null,"dns_servers":[],"dns_search_domains":[],"linux_parameters":{"capabilities_add":[],"capabilities_drop":[],"init_process_enabled":false,"tmpfs":[],"devices":[],"shared_memory_size":null},"privileged":false,"docker_security_options":[],"system_controls":{},"log_configuration":null,"internal":false},"desired_status":"RUNNING","known_status":"NONE","applied_status":"NONE","applying_error":null,"reason":null,"known_exit_code":null,"known_port_bindings":[],"health":"UNKNOWN","docker_id":null,"docker_name":null,"sent_status":"NONE","has_run":false,"in_flight":false,"needs_inspect":false,"failures":0,"retry_at":null,"removed":false}],"volumes":[],"desired_status":"RUNNING","known_status":"NONE","known_time":null,"sent_status":"NONE","stop_reason":null}"#;

/// That task as berth parses it today.
fn plain_task() -> berth_model::Task {
    let json = r#"{"family": "web", "containerDefinitions": [
        {"name": "web", "image": "busybox", "command": ["httpd", "-f"]}]}"#;
    let opts = berth_model::input::ParseOptions { family: None, arn_random: 1 };
    berth_model::input::parse(json.as_bytes(), &opts).unwrap().task
}

#[test]
fn records_leave_out_fields_at_their_default_and_full_records_read_the_same() {
    let task = plain_task();
    let compact = serde_json::to_string(&task).unwrap();
    assert!(compact.len() < 400, "{} bytes: {compact}", compact.len());
    for empty in ["null", "[]", "{}", "false", ":0"] {
        assert!(!compact.contains(empty), "{empty} in {compact}");
    }
    assert_eq!(serde_json::from_str::<berth_model::Task>(&compact).unwrap(), task);
    assert_eq!(serde_json::from_str::<berth_model::Task>(FULL_RECORD).unwrap(), task);
}

#[test]
fn a_schema_2_store_is_read_as_it_is_and_marked_schema_3() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(STATE_FILE);
    drop(RedbStore::open(&file).unwrap());
    {
        let db = redb::Database::open(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(redb::TableDefinition::<&str, u64>::new("meta")).unwrap();
            meta.insert("schema_version", 2).unwrap();
            let mut tasks = txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("tasks")).unwrap();
            tasks.insert("arn:berth:task/00000000000000000000000000000001", FULL_RECORD.as_bytes()).unwrap();
        }
        txn.commit().unwrap();
    }
    let mut store = RedbStore::open(&file).unwrap();
    assert_eq!(store.load().unwrap().tasks, vec![plain_task()]);
    drop(store);
    let db = redb::Database::open(&file).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = txn.open_table(redb::TableDefinition::<&str, u64>::new("meta")).unwrap();
    assert_eq!(meta.get("schema_version").unwrap().map(|v| v.value()), Some(u64::from(berth_store::SCHEMA_VERSION)));
    assert_eq!(berth_store::SCHEMA_VERSION, 3);
}

#[test]
fn a_version_1_export_with_every_field_reads_as_version_2() {
    let doc = format!(r#"{{"SchemaVersion":1,"Tasks":[{FULL_RECORD}],"NextSeq":1,"Changes":[]}}"#);
    let loaded = from_json(doc.as_bytes()).unwrap();
    assert_eq!(loaded.tasks, vec![plain_task()]);
    let again = to_json(&loaded).unwrap();
    assert!(again.starts_with(r#"{"SchemaVersion":2,"#) && again.len() < doc.len(), "{again}");
}
