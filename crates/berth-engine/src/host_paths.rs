//! Host-path bind mounts, judged again when their container is created: the path is
//! resolved as the kernel would (symlinks followed), must then lie under one of the allowed
//! prefixes (themselves resolved), and is bound by its resolved path. The host policy
//! judged the path as text at submit; between then and the create a task (or anything
//! else) may have planted a symlink under an allowed prefix that leads outside it.
//!
//! What remains: a symlink swapped in between this check and Docker's mount (a window of
//! one create call) is not caught; binding the resolved path leaves only components that
//! were real directories at check time.

use std::io;
use std::path::{Path, PathBuf};

/// Resolve every host-path bind of `binds` (`source:target[:options]` with an absolute
/// source; named volumes are left alone) against `allowed`, replacing each source by its
/// resolved path. An error says which path led where.
pub async fn resolve_binds(binds: &mut [String], allowed: &[PathBuf]) -> Result<(), String> {
    let mut prefixes = Vec::with_capacity(allowed.len());
    for prefix in allowed {
        prefixes.push(resolve(prefix).await.unwrap_or_else(|_| prefix.clone()));
    }
    for bind in binds.iter_mut() {
        if !bind.starts_with('/') {
            continue;
        }
        let (source, rest) = bind.split_once(':').unwrap_or((bind.as_str(), ""));
        let resolved =
            resolve(Path::new(source)).await.map_err(|e| format!("host path {source} cannot be resolved: {e}"))?;
        if !prefixes.iter().any(|p| resolved.starts_with(p)) {
            return Err(format!(
                "host path {source} resolves to {}, outside the allowed prefixes of this berth's configuration \
                 (host.allowed_host_paths)",
                resolved.display()
            ));
        }
        let resolved = resolved.to_str().ok_or_else(|| format!("host path {source} resolves to a non-UTF-8 path"))?;
        *bind = if rest.is_empty() { resolved.to_string() } else { format!("{resolved}:{rest}") };
    }
    Ok(())
}

/// `path` with every symlink of its existing part followed; the part that does not exist
/// yet (Docker makes it) is appended as given (a `..` there cannot be resolved: an error).
async fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut existing = path;
    let mut missing = Vec::new();
    loop {
        match tokio::fs::canonicalize(existing).await {
            Ok(mut real) => {
                for part in missing.iter().rev() {
                    real.push(part);
                }
                return Ok(real);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else { return Err(e) };
                missing.push(name.to_owned());
                existing = parent;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binds(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn a_symlink_out_of_an_allowed_prefix_is_refused_and_a_real_path_bound_resolved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("real tempdir");
        let allowed = root.join("allowed");
        let outside = root.join("outside");
        std::fs::create_dir_all(allowed.join("real")).expect("dirs");
        std::fs::create_dir_all(&outside).expect("dirs");
        std::os::unix::fs::symlink(&outside, allowed.join("escape")).expect("symlink");
        std::os::unix::fs::symlink(allowed.join("real"), allowed.join("inside")).expect("symlink");

        let mut escape = binds(&[&format!("{}:/x:ro", allowed.join("escape").display())]);
        let e = resolve_binds(&mut escape, std::slice::from_ref(&allowed)).await.expect_err("escape refused");
        assert!(e.contains(&format!("resolves to {}", outside.display())), "{e}");
        assert!(e.contains("host.allowed_host_paths"), "{e}");

        let mut fine = binds(&[
            &format!("{}:/a:ro", allowed.join("inside").display()),
            &format!("{}:/b", allowed.join("not-yet/deeper").display()),
            "berth-volume:/c",
        ]);
        resolve_binds(&mut fine, std::slice::from_ref(&allowed)).await.expect("allowed");
        assert_eq!(
            fine,
            [
                format!("{}:/a:ro", allowed.join("real").display()),
                format!("{}:/b", allowed.join("not-yet/deeper").display()),
                "berth-volume:/c".to_string(),
            ]
        );
    }

    #[tokio::test]
    async fn an_allowed_prefix_that_is_itself_a_symlink_is_resolved_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("real tempdir");
        std::fs::create_dir_all(root.join("data/x")).expect("dirs");
        std::os::unix::fs::symlink(root.join("data"), root.join("srv")).expect("symlink");
        let mut b = binds(&[&format!("{}:/x", root.join("srv/x").display())]);
        resolve_binds(&mut b, &[root.join("srv")]).await.expect("allowed through the prefix's own link");
        assert_eq!(b, [format!("{}:/x", root.join("data/x").display())]);
    }
}
