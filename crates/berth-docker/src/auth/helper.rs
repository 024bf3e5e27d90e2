//! Docker credential helpers: `docker-credential-<name> get`, the server URL on stdin,
//! `{"ServerURL", "Username", "Secret"}` on stdout. Run without a shell, within a time
//! limit, its output never quoted in errors when it could hold a secret.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::error::AuthError;
use super::secret::{RegistryAuth, Secret};
use super::source::{expect_object, parse_json, string_field};

/// The prefix of credential helper programs.
pub const HELPER_PREFIX: &str = "docker-credential-";

/// The user name with which a helper says its secret is an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// The most output kept from a helper; the rest is read and dropped.
const MAX_OUTPUT: usize = 64 * 1024;

/// The longest helper message quoted in an error.
const MAX_MESSAGE: usize = 200;

/// How to run a helper.
pub(crate) struct HelperCall<'a> {
    /// The helper's name (the part after `docker-credential-`).
    pub(crate) name: &'a str,
    /// The registry, for errors.
    pub(crate) registry: &'a str,
    /// The server URL written to its stdin.
    pub(crate) server_url: &'a str,
    /// The search path for the program, and the child's `PATH`; `None`: the process's.
    pub(crate) search_path: Option<&'a OsStr>,
    /// How long it may take.
    pub(crate) timeout: Duration,
}

/// Whether a helper name is a plain name (letters, digits, `-`, `_`, `.`), so that
/// `docker-credential-<name>` names a program on the search path and never a path.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The program on the search path, if there is one that is an executable file.
fn find_program(program: &str, search_path: Option<&OsStr>) -> Option<PathBuf> {
    let process_path;
    let search_path = match search_path {
        Some(path) => path,
        None => {
            process_path = std::env::var_os("PATH").unwrap_or_default();
            process_path.as_os_str()
        }
    };
    std::env::split_paths(search_path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &std::path::Path) -> bool {
    path.is_file()
}

/// Reads a pipe to its end in a thread, keeping the first [`MAX_OUTPUT`] bytes.
fn read_in_thread(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                }
            }
        }
        let _ = sender.send(kept);
    });
    receiver
}

/// Starts the program, retrying briefly while the file is busy (being written).
fn spawn(command: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 5 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Waits for the child until the deadline; kills it when the deadline passes.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// The first line of what a failed helper printed, shortened; empty when it looks
/// like JSON (a credential answer) so that no secret can be quoted.
fn failure_message(stdout: &[u8], stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(if stdout.iter().any(|b| !b.is_ascii_whitespace()) { stdout } else { stderr });
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    if line.contains(['{', '}', '"']) {
        return String::new();
    }
    let mut message: String = line.chars().take(MAX_MESSAGE).collect();
    if line.chars().count() > MAX_MESSAGE {
        message.push('…');
    }
    message
}

/// Asks a helper for credentials. `Ok(None)` when it has none for the server (it says
/// `credentials not found`, or answers without a user or secret).
pub(crate) fn get(call: &HelperCall<'_>) -> Result<Option<RegistryAuth>, AuthError> {
    if !is_plain_name(call.name) {
        return Err(AuthError::HelperName { helper: call.name.to_owned(), registry: call.registry.to_owned() });
    }
    let helper = format!("{HELPER_PREFIX}{}", call.name);
    let registry = call.registry.to_owned();
    let io_error = |error| AuthError::HelperIo { helper: helper.clone(), registry: registry.clone(), error };

    let program = find_program(&helper, call.search_path)
        .ok_or_else(|| AuthError::HelperNotFound { helper: helper.clone(), registry: registry.clone() })?;
    let mut command = Command::new(&program);
    command.arg("get").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(path) = call.search_path {
        command.env("PATH", path);
    }
    let deadline = Instant::now() + call.timeout;
    let mut child = spawn(&mut command).map_err(io_error)?;

    let stdout = child.stdout.take().map(read_in_thread);
    let stderr = child.stderr.take().map(read_in_thread);
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading; a broken pipe then is not our failure.
        match stdin.write_all(call.server_url.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io_error(e));
            }
            _ => {}
        }
    }

    let timed_out =
        || AuthError::HelperTimeout { helper: helper.clone(), registry: registry.clone(), timeout: call.timeout };
    let status = wait_until(&mut child, deadline).map_err(io_error)?.ok_or_else(timed_out)?;
    // Output ends when the helper's pipes close; a process it left behind could hold
    // them open, so this wait is bounded by the same deadline.
    let collect = |receiver: Option<mpsc::Receiver<Vec<u8>>>| -> Result<Vec<u8>, AuthError> {
        let Some(receiver) = receiver else { return Ok(Vec::new()) };
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        receiver.recv_timeout(left).map_err(|_| timed_out())
    };
    let out = collect(stdout)?;
    let err = collect(stderr)?;

    if !status.success() {
        let message = failure_message(&out, &err);
        if message.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        let status = match status.code() {
            Some(code) => format!("exit code {code}"),
            None => "killed by a signal".to_owned(),
        };
        return Err(AuthError::HelperFailed { helper, registry, status, message });
    }

    let origin = format!("answer of credential helper {helper} for {registry}");
    let text = String::from_utf8(out).map_err(|_| AuthError::Invalid {
        origin: origin.clone(),
        path: "$".into(),
        reason: "not UTF-8".into(),
    })?;
    let value = parse_json(&origin, &text)?;
    let answer = expect_object(&value, &origin, "$")?;
    let username = string_field(answer, "Username", &origin, "$")?;
    let secret = string_field(answer, "Secret", &origin, "$")?;
    if secret.is_empty() && (username.is_empty() || username == TOKEN_USERNAME) {
        return Ok(None);
    }
    let server_address = call.server_url.to_owned();
    if username == TOKEN_USERNAME {
        return Ok(Some(RegistryAuth {
            username: String::new(),
            password: Secret::default(),
            server_address,
            identity_token: Some(Secret::new(secret)),
        }));
    }
    Ok(Some(RegistryAuth::new(username, secret, server_address)))
}

/// The search path with `dir` first, then the process's `PATH`: for tests and callers
/// that ship their own helpers.
pub fn search_path_with(dir: &std::path::Path) -> OsString {
    let mut dirs = vec![dir.to_owned()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| dir.as_os_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        for name in ["desktop", "ecr-login", "osxkeychain", "gcloud", "pass", "a.b_c-1"] {
            assert!(is_plain_name(name), "{name}");
        }
        for name in ["", "../x", "/bin/sh", "a b", "a;b", "x/y", "$(id)"] {
            assert!(!is_plain_name(name), "{name}");
        }
    }

    #[test]
    fn failure_messages_never_quote_json() {
        assert_eq!(failure_message(b"boom\nmore", b""), "boom");
        assert_eq!(failure_message(b"  \n", b"from stderr\n"), "from stderr");
        assert_eq!(failure_message(br#"{"Username":"u","Secret":"s3cretvalue"}"#, b""), "");
        assert_eq!(failure_message(br#"oops "s3cretvalue""#, b""), "");
        let long = "x".repeat(500);
        assert_eq!(failure_message(long.as_bytes(), b"").chars().count(), MAX_MESSAGE + 1);
    }
}
