//! Reading a task definition file, as every command that takes one does.

use berth_model::input::{MAX_INPUT_BYTES, ParseOptions};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The file's bytes, reading no more than one byte over the input limit; the error names
/// the file.
pub fn read(file: &Path) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
    let limit = u64::try_from(MAX_INPUT_BYTES).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    File::open(file).and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut bytes)).map_err(cannot)?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(format!("{} is larger than the limit of {MAX_INPUT_BYTES} bytes", file.display()));
    }
    Ok(bytes)
}

/// Parse options for `file`: the family of a definition without one is `family`, else the
/// file's name without its extension.
pub fn options(file: &Path, family: Option<&str>, arn_random: u128) -> ParseOptions {
    let family = family.map(str::to_string).or_else(|| file.file_stem().map(|s| s.to_string_lossy().into_owned()));
    ParseOptions { family, arn_random }
}
