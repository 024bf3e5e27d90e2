//! The listeners: the unix socket `<data dir>/berth.sock` (mode 0600) and, when
//! configured, TCP (loopback by default). Each serves the same router until shutdown.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::{TcpListener, TcpSocket, UnixListener};

/// The longest path a unix socket can have (`sun_path` is 108 bytes, with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The socket path is longer than unix sockets allow.
    #[error(
        "the API socket path {path} is {len} bytes long, but unix sockets allow at most {MAX_SOCKET_PATH}: choose a \
         shorter data directory (data_dir / BERTH_DATA_DIR / --data-dir)"
    )]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// Something else is at the socket path.
    #[error("{0} exists and is not a socket; berth will not remove it")]
    NotASocket(PathBuf),
    /// Binding failed.
    #[error("cannot listen on {what}: {source}")]
    Bind {
        /// The address or path.
        what: String,
        /// Why.
        source: io::Error,
    },
}

/// Listen on the unix socket at `path`, mode 0600. A socket left there by an earlier berth
/// is replaced (the data directory's lock makes sure no other berth serves it).
pub fn bind_unix(path: &Path) -> Result<UnixListener, ListenError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ListenError::PathTooLong { path: path.to_path_buf(), len });
    }
    let bind_error = |source| ListenError::Bind { what: path.display().to_string(), source };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path).map_err(bind_error)?,
        Ok(_) => return Err(ListenError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_error(e)),
    }
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    Ok(listener)
}

/// The TCP listen backlog asked for (the kernel caps it at `net.core.somaxconn`): where
/// connections beyond `tcp_max_connections` wait to be accepted.
pub const TCP_BACKLOG: u32 = 2048;

/// Listen on TCP at `addr`, with a backlog of [`TCP_BACKLOG`].
pub async fn bind_tcp(addr: std::net::SocketAddr) -> Result<TcpListener, ListenError> {
    let bind = || {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(TCP_BACKLOG)
    };
    bind().map_err(|source| ListenError::Bind { what: addr.to_string(), source })
}

/// The bearer token in `path`, made when absent (32 random bytes in hex, written
/// atomically with mode 0600). An existing file must be a regular file of this user that
/// group and others cannot read; otherwise it is refused with what to fix.
pub fn token(path: &Path) -> Result<String, io::Error> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let refuse = |what: String| Err(io::Error::new(io::ErrorKind::PermissionDenied, what));
            if !meta.is_file() {
                return refuse(
                    "the token file is not a regular file (a symbolic link or other); replace it with \
                               a file or remove it to get a new token"
                        .to_string(),
                );
            }
            let me = berth_store::files::current_uid();
            if meta.uid() != me {
                return refuse(format!(
                    "the token file is owned by uid {}, not by this user (uid {me}); remove it (a new token is \
                     made) or chown it",
                    meta.uid()
                ));
            }
            let mode = meta.mode() & 0o777;
            if mode & 0o077 != 0 {
                return refuse(format!(
                    "group or others may read or write the token file (mode {mode:04o}); run `chmod 600 {}` (and \
                     consider the token seen: remove the file to get a new one)",
                    path.display()
                ));
            }
            let text = std::fs::read_to_string(path)?;
            if !text.trim().is_empty() {
                return Ok(text.trim().to_string());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
    berth_store::files::write_atomically(path, token.as_bytes())?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deep_socket_path_is_refused_with_its_length() {
        let deep = PathBuf::from(format!("/tmp/{}/berth.sock", "d".repeat(120)));
        let e = bind_unix(&deep).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("at most 107"), "{text}");
        assert!(text.contains(&deep.as_os_str().len().to_string()), "{text}");
    }

    #[test]
    fn the_socket_is_0600_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.sock");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            drop(bind_unix(&path).unwrap());
            let again = bind_unix(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            drop(again);
        });
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "not a socket").unwrap();
        assert!(matches!(bind_unix(&path), Err(ListenError::NotASocket(_))));
    }

    #[test]
    fn the_token_is_made_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let first = token(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(token(&path).unwrap(), first);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!berth_store::files::temporary_path(&path).exists(), "written through a temporary file");
    }

    #[test]
    fn a_token_file_others_can_read_is_refused_with_the_chmod_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let first = token(&path).unwrap();
        for mode in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = token(&path).unwrap_err();
            assert!(e.to_string().contains(&format!("chmod 600 {}", path.display())), "{mode:o}: {e}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), first, "left as it was");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(token(&path).unwrap(), first, "0400 is fine");
    }

    #[test]
    fn a_token_file_of_another_user_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        token(&path).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(token(&link).unwrap_err().to_string().contains("not a regular file"));
        // Another user's file: as root, give it to `nobody`; otherwise /etc/hostname is root's.
        let (foreign, owner) = if berth_store::files::current_uid() == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            (path.clone(), 65534)
        } else {
            (PathBuf::from("/etc/hostname"), 0)
        };
        let e = token(&foreign).unwrap_err();
        assert!(e.to_string().contains(&format!("owned by uid {owner}")), "{e}");
    }
}
