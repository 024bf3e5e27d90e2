//! `berth validate FILE...`: read each task definition, check it as `berth run` would,
//! and print the outcome:
//!
//! ```text
//! FILE: valid
//!   warning: containerDefinitions[0].portBindings: unknown key, ignored
//! FILE: invalid
//!   error: containerDefinitions[1].memory: expected an integer, found the string "${MEM}"
//! ```
//!
//! At most 100 errors and 100 warnings are listed per file, then `... and N more errors`
//! (or warnings). A file that cannot be read is invalid, with an error naming it. The family of a bare
//! `containerDefinitions` array (and of any definition without one) is `--family`, else
//! the file's name without its extension.

use crate::taskfile;
use anyhow::Context;
use berth_model::input::{self, Issue};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `berth validate`.
#[derive(Debug, clap::Args)]
pub struct Validate {
    /// Task definition files (JSON, in any of the shapes berth reads).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Family for a bare containerDefinitions array (default: the file's name without
    /// its extension).
    #[arg(long, value_name = "NAME")]
    family: Option<String>,
}

/// What became of one file.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    /// Empty when the file is valid.
    errors: Vec<String>,
    /// Errors found beyond those listed.
    omitted_errors: usize,
    /// Fields berth does not act on, unknown keys.
    warnings: Vec<String>,
    /// Warnings found beyond those listed.
    omitted_warnings: usize,
}

impl Validate {
    /// Check every file, print each outcome; exit 0 if all are valid, 1 otherwise.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let mut out = BufWriter::new(std::io::stdout().lock());
        let mut all_valid = true;
        for file in &self.files {
            let outcome = check_file(file, self.family.as_deref());
            all_valid &= outcome.errors.is_empty();
            out.write_all(render(file, &outcome).as_bytes()).context("writing to standard output")?;
        }
        out.flush().context("writing to standard output")?;
        Ok(if all_valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}

/// Read and check one file.
fn check_file(file: &Path, family: Option<&str>) -> Outcome {
    let bytes = match taskfile::read(file) {
        Ok(bytes) => bytes,
        Err(message) => return Outcome { errors: vec![message], ..Outcome::default() },
    };
    // The arn is never shown: no need for real randomness here.
    let opts = taskfile::options(file, family, 0);
    let text = |issues: Vec<Issue>| issues.iter().map(ToString::to_string).collect();
    match input::parse(&bytes, &opts) {
        Ok(accepted) => Outcome {
            warnings: text(accepted.warnings),
            omitted_warnings: accepted.omitted_warnings,
            ..Outcome::default()
        },
        Err(rejected) => Outcome {
            errors: text(rejected.errors),
            omitted_errors: rejected.omitted_errors,
            warnings: text(rejected.warnings),
            omitted_warnings: rejected.omitted_warnings,
        },
    }
}

/// The lines printed for one file.
fn render(file: &Path, outcome: &Outcome) -> String {
    let verdict = if outcome.errors.is_empty() { "valid" } else { "invalid" };
    let mut text = format!("{}: {verdict}\n", file.display());
    for e in &outcome.errors {
        text.push_str(&format!("  error: {e}\n"));
    }
    if outcome.omitted_errors > 0 {
        text.push_str(&format!("  ... and {} more errors\n", outcome.omitted_errors));
    }
    for w in &outcome.warnings {
        text.push_str(&format!("  warning: {w}\n"));
    }
    if outcome.omitted_warnings > 0 {
        text.push_str(&format!("  ... and {} more warnings\n", outcome.omitted_warnings));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_errors_then_warnings() {
        let outcome =
            Outcome { errors: vec!["a: bad".into()], warnings: vec!["b: ignored".into()], ..Outcome::default() };
        assert_eq!(render(Path::new("t.json"), &outcome), "t.json: invalid\n  error: a: bad\n  warning: b: ignored\n");
        assert_eq!(render(Path::new("t.json"), &Outcome::default()), "t.json: valid\n");
        let capped = Outcome {
            errors: vec!["a: bad".into()],
            omitted_errors: 7,
            warnings: vec!["b: ignored".into()],
            omitted_warnings: 3,
        };
        assert_eq!(
            render(Path::new("t.json"), &capped),
            "t.json: invalid\n  error: a: bad\n  ... and 7 more errors\n  warning: b: ignored\n  ... and 3 more warnings\n"
        );
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let outcome = check_file(Path::new("/nonexistent/berth/x.json"), None);
        assert_eq!(outcome.errors.len(), 1);
        assert!(outcome.errors[0].starts_with("cannot read /nonexistent/berth/x.json: "), "{:?}", outcome.errors);
    }

    #[test]
    fn bare_array_takes_family_from_file_stem_or_flag() {
        let dir = std::env::temp_dir().join(format!("berth-validate-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("my-app.json");
        std::fs::write(&file, br#"[{"name": "a", "image": "busybox"}]"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check_file(&file, None), Outcome::default());
        let bad = check_file(&file, Some("bad family"));
        assert_eq!(bad.errors.len(), 1, "{bad:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
