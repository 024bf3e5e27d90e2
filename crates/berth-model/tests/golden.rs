//! Golden tests: the planner's whole run over the corpus's multi-container task
//! definitions, on the simulated Docker host, rendered as text (each plan's operations, each
//! with the cause the planner gives after `#`, then the state changes they led to) and
//! compared with `tests/golden/<file>.txt`.
//!
//! Each container's behaviour on the simulated host follows its command (what it would do
//! on real Docker), as EXPECTED.md describes. To accept a changed rendering after checking
//! it: `BERTH_UPDATE_GOLDEN=1 cargo test -p berth-model --test golden`.

mod support;

use berth_model::input::{ParseOptions, parse};
use std::collections::BTreeMap;
use std::path::PathBuf;
use support::{Behaviour, First, World, corpus_file};

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
