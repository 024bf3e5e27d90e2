//! The data directory's safety and its files' modes: the directory must be this user's and
//! closed to others (it holds the API socket, the token and `state.redb`, which holds task
//! environments), and every file berth writes in it is mode 0600.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of every file berth writes in its data directory.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// The mode a data directory berth creates gets.
pub const DATA_DIR_MODE: u32 = 0o700;

/// Why a data directory is refused.
#[derive(Debug, thiserror::Error)]
#[error("refusing data directory {}: {reason}", dir.display())]
pub struct UnsafeDataDir {
    /// The directory.
    pub dir: PathBuf,
    /// What is wrong and what to do.
    pub reason: String,
}

/// The user berth runs as (its effective uid).
pub fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Check the data directory at `dir` before anything else touches it: it must not be a
/// symbolic link (looked at with `symlink_metadata`, so the link is not followed), must
/// be a directory owned by this user, and group and others may not write it. An absent
/// one is fine (it is made, 0700, by [`prepare_data_dir`]).
pub fn check_data_dir(dir: &Path) -> Result<(), UnsafeDataDir> {
    let refuse = |reason: String| UnsafeDataDir { dir: dir.to_path_buf(), reason };
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(refuse(format!("it cannot be looked at ({e})"))),
    };
    if meta.file_type().is_symlink() {
        let target = fs::read_link(dir).map(|t| format!(" (to {})", t.display())).unwrap_or_default();
        return Err(refuse(format!(
            "it is a symbolic link{target}; give the real directory's path (a link could be pointed elsewhere \
             behind berth's back)"
        )));
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a directory".to_string()));
    }
    let me = current_uid();
    if meta.uid() != me {
        return Err(refuse(format!(
            "it is owned by uid {}, not by this user (uid {me}); use a directory of your own, or chown it",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refuse(format!(
            "group or others may write it (mode {mode:04o}); run `chmod 700 {}`",
            dir.display()
        )));
    }
    Ok(())
}

/// [`check_data_dir`], then create `dir` (and its missing parents) mode 0700 when absent.
pub fn prepare_data_dir(dir: &Path) -> Result<(), io::Error> {
    check_data_dir(dir).map_err(io::Error::other)?;
    fs::DirBuilder::new().recursive(true).mode(DATA_DIR_MODE).create(dir)
}

/// `OpenOptions` that create a file mode 0600 (before the umask, which can only narrow it).
pub fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(PRIVATE_FILE_MODE);
    options
}

/// Narrow an existing file berth wrote (perhaps an older berth, with a wider mode) to
/// 0600. A missing file is fine.
pub fn make_private(path: &Path) -> Result<(), io::Error> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() && meta.mode() & 0o777 != PRIVATE_FILE_MODE => {
            fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_FILE_MODE))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Create `path` anew, mode 0600 (a leftover of an interrupted write is removed first, so
/// that it does not keep a wider mode).
pub fn create_private(path: &Path) -> Result<File, io::Error> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    private_options().write(true).read(true).create_new(true).open(path)
}

/// The temporary name [`write_atomically`] writes `path` under: `<name>.tmp` beside it.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Write `path` so that it is either absent (or as it was) or whole, mode 0600: a
/// temporary file beside it, fsync, rename over it, fsync of the directory.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), io::Error> {
    let tmp = temporary_path(path);
    let written = (|| {
        let mut out = create_private(&tmp)?;
        out.write_all(contents)?;
        out.sync_all()?;
        drop(out);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).expect("metadata").mode() & 0o777
    }

    #[test]
    fn a_symlink_is_refused_before_it_is_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        fs::DirBuilder::new().mode(0o700).create(&real).expect("mkdir");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let e = check_data_dir(&link).expect_err("a link is refused");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(e.to_string().contains(&real.display().to_string()), "{e}");
        check_data_dir(&real).expect("the real one is fine");
    }

    #[test]
    fn a_directory_others_may_write_is_refused_with_the_chmod_to_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (mode, ok) in [(0o700, true), (0o755, true), (0o750, true), (0o770, false), (0o702, false), (0o777, false)]
        {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).expect("chmod");
            let checked = check_data_dir(dir.path());
            assert_eq!(checked.is_ok(), ok, "mode {mode:o}: {checked:?}");
            if let Err(e) = checked {
                assert!(e.to_string().contains(&format!("chmod 700 {}", dir.path().display())), "{e}");
            }
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod back");
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        // As root, a directory given to `nobody`; otherwise `/`, which is root's.
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, owner) = if current_uid() == 0 {
            std::os::unix::fs::chown(dir.path(), Some(65534), None).expect("chown");
            (dir.path(), 65534)
        } else {
            (Path::new("/"), 0)
        };
        let e = check_data_dir(path).expect_err("another user's directory");
        assert!(e.to_string().contains(&format!("owned by uid {owner}")), "{e}");
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_refused_and_an_absent_one_is_made_0700() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        fs::write(&file, "x").expect("write");
        assert!(check_data_dir(&file).expect_err("a file").to_string().contains("not a directory"));
        let fresh = dir.path().join("a").join("b");
        prepare_data_dir(&fresh).expect("made");
        assert_eq!(mode(&fresh), 0o700);
    }

    #[test]
    fn atomic_writes_are_0600_even_over_a_wider_leftover() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        fs::write(temporary_path(&path), "stale").expect("leftover");
        fs::set_permissions(temporary_path(&path), fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomically(&path, b"secret").expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"secret");
        assert_eq!(mode(&path), 0o600);
        assert!(!temporary_path(&path).exists());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        make_private(&path).expect("narrowed");
        assert_eq!(mode(&path), 0o600);
    }
}
