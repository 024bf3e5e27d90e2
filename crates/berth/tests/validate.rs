//! `berth validate` over the corpus of `shared/ecs-taskdefs/` (beside the checkout; a
//! missing corpus fails the test), run as the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ACCEPTED: [&str; 20] = [
    "01", "02", "03", "04", "05", "06", "07", "08", "09", "11", "12", "13", "14", "15", "16", "17", "20", "23", "26",
    "29",
];

fn corpus_files() -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir =
        here.ancestors().map(|a| a.join("shared").join("ecs-taskdefs")).find(|d| d.is_dir()).unwrap_or_else(|| {
            panic!("corpus not found: no shared/ecs-taskdefs beside any ancestor of {}", here.display())
        });
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 30, "the corpus has 30 files");
    files
}

fn number(file: &Path) -> String {
    file.file_name().and_then(|n| n.to_str()).and_then(|n| n.get(..2)).unwrap_or_default().to_string()
}

fn berth(args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("running berth: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lines printed for `file`: its verdict line and the indented lines after it.
fn section<'a>(text: &'a str, file: &Path) -> Vec<&'a str> {
    let head = format!("{}: ", file.display());
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&head));
    let mut out: Vec<&str> = lines.next().into_iter().collect();
    out.extend(lines.take_while(|l| l.starts_with("  ")));
    out
}

#[test]
fn whole_corpus_exits_1_and_names_each_rejected_file() {
    let files = corpus_files();
    let out = berth(&["validate"], &files);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    for file in &files {
        let lines = section(&text, file);
        let verdict = lines.first().copied().unwrap_or_else(|| panic!("no line for {}:\n{text}", file.display()));
        if ACCEPTED.contains(&number(file).as_str()) {
            assert_eq!(verdict, format!("{}: valid", file.display()));
            assert!(!lines.iter().any(|l| l.starts_with("  error: ")), "{lines:#?}");
        } else {
            assert_eq!(verdict, format!("{}: invalid", file.display()));
            assert!(lines.iter().any(|l| l.starts_with("  error: ")), "{lines:#?}");
        }
    }
    let file_18 = files.iter().find(|f| number(f) == "18").unwrap_or_else(|| panic!("no file 18"));
    assert!(section(&text, file_18).contains(&"  error: invalid JSON at line 34, column 20: expected `,` or `}`"));
    let file_25 = files.iter().find(|f| number(f) == "25").unwrap_or_else(|| panic!("no file 25"));
    assert!(section(&text, file_25).contains(
        &r#"  error: containerDefinitions[0].image: "<IMAGE1_NAME>" is not a valid image reference (invalid reference format)"#
    ));
}

#[test]
fn accepted_files_exit_0_with_their_warnings() {
    let files: Vec<PathBuf> = corpus_files().into_iter().filter(|f| ACCEPTED.contains(&number(f).as_str())).collect();
    assert_eq!(files.len(), 20);
    let out = berth(&["validate"], &files);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    let file_14 = files.iter().find(|f| number(f) == "14").unwrap_or_else(|| panic!("no file 14"));
    assert_eq!(
        section(&text, file_14),
        [
            format!("{}: valid", file_14.display()).as_str(),
            "  warning: containerDefinitions[0].portBindings: unknown key, ignored"
        ]
    );
    let file_02 = files.iter().find(|f| number(f) == "02").unwrap_or_else(|| panic!("no file 02"));
    assert_eq!(section(&text, file_02), [format!("{}: valid", file_02.display())]);
}

#[test]
fn unreadable_file_is_invalid_and_named() {
    let missing = PathBuf::from("/nonexistent/berth-test/missing.json");
    let out = berth(&["validate"], std::slice::from_ref(&missing));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "/nonexistent/berth-test/missing.json: invalid\n  error: cannot read /nonexistent/berth-test/missing.json: "
        ),
        "{text}"
    );
}

#[test]
fn bare_array_family_comes_from_the_flag() {
    let file_27 = corpus_files().into_iter().find(|f| number(f) == "27").unwrap_or_else(|| panic!("no file 27"));
    let out = berth(&["validate", "--family", "not valid!"], std::slice::from_ref(&file_27));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(r#"  error: "not valid!" is not a valid family (given by the caller)"#),
        "{}",
        stdout(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = berth(&["validate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = berth(&["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_file_with_50000_errors_lists_100_and_counts_the_rest() {
    let dir = tempfile::Builder::new().prefix("berth-validate-cap-").tempdir().unwrap_or_else(|e| panic!("{e}"));
    // 50 containers of 1,000 environment entries with an invalid name each.
    let env = vec![r#"{"name":"="}"#; 1000].join(",");
    let containers: Vec<String> =
        (0..50).map(|i| format!(r#"{{"name":"c{i}","image":"busybox","environment":[{env}]}}"#)).collect();
    let file = dir.path().join("many.json");
    std::fs::write(&file, format!(r#"{{"family":"many","containerDefinitions":[{}]}}"#, containers.join(",")))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = berth(&["validate"], std::slice::from_ref(&file));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines = section(&text, &file);
    assert_eq!(lines.iter().filter(|l| l.starts_with("  error: ")).count(), 100, "{text}");
    assert_eq!(lines.last().copied(), Some("  ... and 49900 more errors"), "{text}");
}
