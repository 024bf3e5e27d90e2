//! The listeners: the unix socket `<data dir>/berth.sock` (mode 0600) and, when
//! configured, TCP (loopback by default). Each serves the same router until shutdown.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::{TcpListener, UnixListener};

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

/// Listen on TCP at `addr`.
pub async fn bind_tcp(addr: std::net::SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr).await.map_err(|source| ListenError::Bind { what: addr.to_string(), source })
}

/// The bearer token in `path`, made (32 random bytes, hex, mode 0600) when absent.
pub fn token(path: &Path) -> Result<String, io::Error> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    use std::io::Write;
    let token = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode_0600().open(path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// `OpenOptions` with mode 0600 for files it creates.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
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
    }
}
