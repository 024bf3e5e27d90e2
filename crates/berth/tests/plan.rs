//! `berth plan` on the project's example task, as the README's first command runs it.

use std::path::Path;
use std::process::Command;

fn berth(args: &[&str]) -> (i32, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("running berth: {e}"));
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

#[test]
fn the_example_task_is_planned_in_dependency_order_and_cleaned_up() {
    let (code, out, err) = berth(&["plan", "examples/hello.json"]);
    assert_eq!(code, 0, "stderr: {err}");
    let pos = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("{needle:?} missing in\n{out}"));
    assert!(out.starts_with("hello: version 1, network bridge, 3 containers\nstart order: writer, web, check\n"));
    assert!(pos("create volume site") < pos("create writer"), "the volume comes before its users");
    assert!(pos("> writer STOPPED exit 0") < pos("start web"), "web waits for writer's success");
    assert!(pos("start web") < pos("start check"), "check waits for web to start");
    assert!(pos("stop check") < pos("stop web"), "stops in reverse order");
    assert!(pos("stop web (timeout 2s)") > 0, "web's own stop timeout");
    assert!(pos("remove volume site") < pos("forget task"));
}

#[test]
fn an_invalid_file_is_refused_with_its_errors() {
    let dir = std::env::temp_dir().join(format!("berth-plan-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("cycle.json");
    let json = r#"{"family": "cycle", "containerDefinitions": [
        {"name": "a", "image": "busybox", "links": ["b"]},
        {"name": "b", "image": "busybox", "links": ["a"]}]}"#;
    std::fs::write(&file, json).unwrap_or_else(|e| panic!("{e}"));
    let (code, out, err) = berth(&["plan", &file.to_string_lossy()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("error: dependency cycle: a -> b -> a"), "{err}");
}
