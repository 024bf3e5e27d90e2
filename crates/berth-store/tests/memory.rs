//! The in-memory saver: the store's semantics without the disk.

// Test code: a failed unwrap is a failed test (clippy.toml allows it in #[test] functions;
// this covers the helpers too).
#![allow(clippy::unwrap_used)]

mod common;

use berth_store::{Group, Loaded, MemorySaver, RedbStore, STATE_FILE, Saver};
use common::{change, task};

fn random_group(round: u64) -> Group {
    let tasks = (0..rand::random_range(0..4))
        .map(|_| {
            let arn = format!("arn:t{}", rand::random_range(0..6));
            let record = rand::random_bool(0.7).then(|| std::sync::Arc::new(task(&arn, round)));
            (arn, record)
        })
        .collect();
    let changes = (0..rand::random_range(0..6)).map(|i| change("arn:t0", &format!("c{round}-{i}"))).collect();
    Group { tasks, changes }
}

#[test]
fn the_memory_saver_behaves_as_the_store_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(dir.path().join(STATE_FILE)).unwrap();
    store.set_retention(30);
    let mut memory = MemorySaver::with_retention(30);
    for round in 0..150 {
        let group = random_group(round);
        assert_eq!(memory.save(group.clone()).unwrap(), store.save(group).unwrap(), "round {round}");
        assert_eq!(memory.load().unwrap(), store.load().unwrap(), "round {round}");
        let from = rand::random_range(0..store.next_seq() + 2);
        let max = rand::random_range(0..40);
        assert_eq!(memory.changes_since(from, max).unwrap(), store.changes_since(from, max).unwrap(), "round {round}");
    }
    assert!(store.next_seq() > 60, "retention was exercised");
}

#[test]
fn clones_share_the_state_and_count_saves() {
    let mut saver = MemorySaver::new();
    let watcher = saver.clone();
    assert!(saver.save(Group::default()).unwrap().is_empty());
    assert_eq!(watcher.saves(), 0, "an empty group is no commit");
    let saved = saver.save(Group {
        tasks: vec![("arn:a".into(), Some(std::sync::Arc::new(task("arn:a", 1))))],
        changes: vec![change("arn:a", "x")],
    });
    assert_eq!(saved.unwrap()[0].seq, 1);
    saver.force_save().unwrap();
    assert_eq!((watcher.saves(), watcher.force_saves()), (1, 1));
    assert_eq!(watcher.snapshot().tasks.len(), 1);

    watcher.set_failing(true);
    let err = saver.save(Group { tasks: vec![], changes: vec![change("arn:a", "y")] }).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(saver.force_save().is_err());
    assert_eq!(watcher.snapshot().next_seq, 2, "a failed save changes nothing");
    watcher.set_failing(false);
    assert_eq!(saver.save(Group { tasks: vec![], changes: vec![change("arn:a", "y")] }).unwrap()[0].seq, 2);

    // A "restart" from what was loaded goes on with the same numbers.
    let mut again = MemorySaver::from_loaded(watcher.snapshot());
    assert_eq!(again.load().unwrap(), watcher.snapshot());
    assert_eq!(again.save(Group { tasks: vec![], changes: vec![change("arn:a", "z")] }).unwrap()[0].seq, 3);
    assert_eq!(MemorySaver::from_loaded(Loaded::default()).snapshot().next_seq, 1);
}
