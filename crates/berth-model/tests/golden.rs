//! Golden tests: the planner's whole run over the corpus's multi-container task
//! definitions, on the simulated Docker host, rendered as text (each plan's operations, each
//! with the cause the planner gives after `#`, then the state changes they led to) and
//! compared with `tests/golden/<file>.txt`. A few task definitions of berth's own (restart
//! policy, startTimeout: no corpus file uses them) are rendered the same way.
//!
//! Each container's behaviour on the simulated host follows its command (what it would do
//! on real Docker), as EXPECTED.md describes. To accept a changed rendering after checking
//! it: `BERTH_UPDATE_GOLDEN=1 cargo test -p berth-model --test golden`.

mod support;

use berth_model::input::{ParseOptions, parse};
use chrono::Duration;
use std::collections::BTreeMap;
use std::path::PathBuf;
use support::{Behaviour, First, World, corpus_file, epoch};

fn b(list: &[(&str, Behaviour)]) -> BTreeMap<String, Behaviour> {
    list.iter().map(|(n, b)| (n.to_string(), *b)).collect()
}

/// Run corpus file `number` to its end (stopping it once it settles, if it does not stop by
/// itself) and compare the rendering with its golden file.
fn golden(number: &str, behaviour: BTreeMap<String, Behaviour>) {
    let (stem, bytes) = corpus_file(number);
    let accepted = parse(&bytes, &ParseOptions { family: Some(stem.clone()), arn_random: 1 })
        .unwrap_or_else(|r| panic!("{stem} is accepted: {r}"));
    let mut world = World::new(accepted.task, behaviour);
    assert!(world.run(&mut First, 10_000), "{stem} settles");
    if !world.forgotten {
        world.trace.push("-- the user stops the task".into());
        world.stop_task();
        assert!(world.run(&mut First, 10_000), "{stem} settles after stop");
    }
    compare(&stem, &world);
}

/// A task definition of these tests' own, `json`, run until the user stops it at
/// `stop_at` seconds, compared with `tests/golden/<stem>.txt`.
fn golden_own(stem: &str, json: &str, behaviour: BTreeMap<String, Behaviour>, stop_at: i64) {
    let accepted = parse(json.as_bytes(), &ParseOptions { family: Some(stem.into()), arn_random: 1 })
        .unwrap_or_else(|r| panic!("{stem} is accepted: {r}"));
    assert!(accepted.warnings.is_empty(), "{stem}: {:?}", accepted.warnings);
    let mut world = World::new(accepted.task, behaviour);
    world.stop_at = Some(epoch() + Duration::seconds(stop_at));
    assert!(world.run(&mut First, 10_000), "{stem} settles");
    compare(stem, &world);
}

/// The world's rendering against its golden file (or, with `BERTH_UPDATE_GOLDEN`, written).
fn compare(stem: &str, world: &World) {
    assert!(world.violations.is_empty(), "{stem}: {:?}", world.violations);
    assert!(world.forgotten, "{stem} ends cleaned up");
    let rendered = world.trace.join("\n") + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{stem}.txt"));
    if std::env::var_os("BERTH_UPDATE_GOLDEN").is_some() {
        // In CI a golden file is compared, never rewritten (a rewrite would pass anything).
        assert!(std::env::var_os("CI").is_none(), "BERTH_UPDATE_GOLDEN is refused when CI is set");
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
        std::fs::write(&path, &rendered).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BERTH_UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(rendered, want, "{stem}: rendering differs from {}", path.display());
}

#[test]
fn golden_01_php_app_with_volumes_from() {
    golden("01", b(&[]));
}

#[test]
fn golden_02_network_links_ordering() {
    // Five containers loop forever; `exit` exits 42 at once, which stops the task.
    golden("02", b(&[("exit", Behaviour::exits(0, 42))]));
}

#[test]
fn golden_03_data_volume_and_link() {
    // The data-only container has no command: it exits 0 at once. `a` serves one
    // connection and exits 0; `exit` reads 42 from it and exits 42.
    golden(
        "03",
        b(&[("datavolume", Behaviour::exits(0, 0)), ("a", Behaviour::exits(1, 0)), ("exit", Behaviour::exits(1, 42))]),
    );
}

#[test]
fn golden_04_wordpress_links_mysql() {
    golden("04", b(&[]));
}

#[test]
fn golden_09_container_ordering_depends_on() {
    golden(
        "09",
        b(&[
            ("success", Behaviour::exits(50, 0)),
            ("success-dependency", Behaviour::exits(1, 0)),
            ("complete", Behaviour::exits(1, 0)),
            ("complete-dependency", Behaviour::exits(1, 0)),
            ("healthy", Behaviour::exits(1, 0)),
            ("healthy-dependency", Behaviour { exits: Some((15, 0)), healthy_after: Some(5) }),
        ]),
    );
}

#[test]
fn golden_12_task_scoped_docker_volume() {
    golden("12", b(&[("exit", Behaviour::exits(0, 42))]));
}

#[test]
fn golden_14_awsvpc_pause_container() {
    golden("14", b(&[]));
}

#[test]
fn golden_15_appmesh_envoy_healthy() {
    golden("15", b(&[("envoy", Behaviour { exits: None, healthy_after: Some(5) })]));
}

#[test]
fn golden_29_depends_on_start_stop_timeouts() {
    golden(
        "29",
        b(&[
            ("parent", Behaviour::exits(10, 0)),
            ("dependency1", Behaviour::exits(30, 0)),
            ("dependency2", Behaviour::exits(30, 0)),
        ]),
    );
}

#[test]
fn golden_restart_policy() {
    // `web` exits 1 after 90 s every run: restarted each time (period 60); `once` exits 3
    // after 30 s, before its period: a normal stop (not essential); `ignored` exits 0 after
    // 100 s, an ignored code. The user stops the task at 250 s.
    golden_own(
        "restart-policy",
        r#"{"family": "restart-policy", "containerDefinitions": [
            {"name": "web", "image": "busybox",
             "restartPolicy": {"enabled": true, "restartAttemptPeriod": 60}},
            {"name": "once", "image": "busybox", "essential": false,
             "restartPolicy": {"enabled": true, "restartAttemptPeriod": 60}},
            {"name": "ignored", "image": "busybox", "essential": false,
             "restartPolicy": {"enabled": true, "ignoredExitCodes": [0], "restartAttemptPeriod": 60}}]}"#,
        b(&[
            ("web", Behaviour::exits(90, 1)),
            ("once", Behaviour::exits(30, 3)),
            ("ignored", Behaviour::exits(100, 0)),
        ]),
        250,
    );
}

#[test]
fn golden_start_timeout() {
    // `migrate` would exit 0 after 10 s, but its startTimeout is 2 s: `app`, which waits
    // for its SUCCESS, never starts and the task stops.
    golden_own(
        "start-timeout",
        r#"{"family": "start-timeout", "containerDefinitions": [
            {"name": "migrate", "image": "busybox", "essential": false, "startTimeout": 2},
            {"name": "app", "image": "busybox",
             "dependsOn": [{"containerName": "migrate", "condition": "SUCCESS"}]}]}"#,
        b(&[("migrate", Behaviour::exits(10, 0))]),
        1000,
    );
}
