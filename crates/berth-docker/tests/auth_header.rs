//! The `X-Registry-Auth` fix against a real daemon and a real registry: the registry with
//! basic auth that scripts/test-env.sh runs on 127.0.0.1:51671, and its test users (read
//! from /var/lib/berth-test/registry-51671/users.json). bollard 0.21 writes the header in
//! standard base64, Docker reads base64url: for `berth-plus` and `berth-slash`, whose
//! header has a `+` or a `/`, a pull with bollard alone goes out without credentials and
//! fails; with `with_auth_header_fix` it succeeds.
//!
//! Each pull is of a tag of its own (`127.0.0.1:51671/berth-auth-test:<user>-<pid>-<time>`),
//! pushed with the docker CLI (logged in as `berth` in a DOCKER_CONFIG of its own) and
//! then removed locally, so that the pull has to fetch it from the registry and tests
//! running at the same time do not meet. The tags stay in the registry (Distribution
//! deletes manifests, not tags, and the manifest is busybox:latest's own).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_docker::auth_header::{REGISTRY_AUTH_HEADER, fix_registry_auth_header, with_auth_header_fix};
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptionsBuilder, RemoveImageOptionsBuilder};
use futures_util::StreamExt;

const REGISTRY: &str = "127.0.0.1:51671";
const USERS_FILE: &str = "/var/lib/berth-test/registry-51671/users.json";
const REPOSITORY: &str = "berth-auth-test";
const SETUP: &str = "run scripts/test-env.sh (as root) to start it";

/// The password of a test user of the registry; fails when the registry is not there.
fn password_of(username: &str) -> String {
    registry_asks_for_credentials();
    let text = std::fs::read_to_string(USERS_FILE)
        .unwrap_or_else(|error| panic!("cannot read {USERS_FILE} ({error}): {SETUP}"));
    let users: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{USERS_FILE} is not JSON ({error}): {SETUP}"));
    assert_eq!(users["serveraddress"], REGISTRY, "{USERS_FILE}: {SETUP}");
    let users = users["users"].as_array().unwrap_or_else(|| panic!("{USERS_FILE} has no users: {SETUP}"));
    let user = users
        .iter()
        .find(|user| user["username"] == username)
        .unwrap_or_else(|| panic!("{USERS_FILE} has no user {username}: {SETUP}"));
    user["password"].as_str().unwrap_or_else(|| panic!("{USERS_FILE}: no password for {username}")).to_string()
}

/// Fails unless GET /v2/ on the registry answers 401 (a registry that wants credentials).
fn registry_asks_for_credentials() {
    let status = (|| -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&REGISTRY.parse().expect("address"), Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "GET /v2/ HTTP/1.0\r\nHost: {REGISTRY}\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer.lines().next().unwrap_or_default().to_string())
    })()
    .unwrap_or_else(|error| panic!("no registry answers on {REGISTRY} ({error}): {SETUP}"));
    assert!(
        status.split_whitespace().nth(1) == Some("401"),
        "GET /v2/ on {REGISTRY} answered {status:?}, not 401: not the registry with basic auth; {SETUP}"
    );
}

/// Runs the docker CLI; fails with its output unless it succeeds.
fn docker_cli(args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new("docker")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run docker {args:?}: {error}"));
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or_default().as_bytes()).expect("docker's stdin");
    drop(input);
    let output = child.wait_with_output().expect("docker runs");
    assert!(
        output.status.success(),
        "docker {} failed: {}{}",
        args.first().unwrap_or(&""),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A tag of one test in the registry, absent locally; its local tag is removed on drop.
struct OwnTag {
    tag: String,
    reference: String,
}

impl OwnTag {
    /// Pushes busybox:latest to the registry as a new tag named after `name`, with the
    /// docker CLI logged in as `berth`, then removes the local tag.
    fn push(name: &str) -> OwnTag {
        let password = password_of("berth");
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
        let tag = format!("{name}-{}-{nanos}", std::process::id());
        let reference = format!("{REGISTRY}/{REPOSITORY}:{tag}");
        let config = TempDir::new(&tag);
        let config_dir = config.0.to_str().expect("utf-8 path");
        docker_cli(&["--config", config_dir, "login", "-u", "berth", "--password-stdin", REGISTRY], Some(&password));
        docker_cli(&["tag", "busybox:latest", &reference], None);
        docker_cli(&["--config", config_dir, "push", &reference], None);
        docker_cli(&["rmi", &reference], None);
        OwnTag { tag, reference }
    }
}

impl Drop for OwnTag {
    fn drop(&mut self) {
        let _ =
            Command::new("docker").args(["rmi", &self.reference]).stderr(Stdio::null()).stdout(Stdio::null()).status();
    }
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("berth-auth-test-{name}"));
        std::fs::create_dir(&path).unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .expect("a Docker client")
        .negotiate_version()
        .await
        .expect("the Docker daemon answers (run scripts/test-env.sh)")
}

/// `docker` with a request modifier that records every X-Registry-Auth value it sends.
fn recording(docker: Docker) -> (Docker, Arc<Mutex<Vec<String>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&sent);
    let docker = docker.with_request_modifier(move |request| {
        if let Some(value) = request.headers().get(REGISTRY_AUTH_HEADER) {
            record.lock().expect("lock").push(value.to_str().expect("ascii").to_string());
        }
        request
    });
    (docker, sent)
}

/// Pulls the tag with these credentials, as berth does: `create_image` with
/// `DockerCredentials { username, password, serveraddress }`.
async fn pull(docker: &Docker, tag: &OwnTag, username: &str, password: &str) -> Result<(), bollard::errors::Error> {
    let options =
        CreateImageOptionsBuilder::default().from_image(&format!("{REGISTRY}/{REPOSITORY}")).tag(&tag.tag).build();
    let credentials = DockerCredentials {
        username: Some(username.to_string()),
        password: Some(password.to_string()),
        serveraddress: Some(REGISTRY.to_string()),
        ..Default::default()
    };
    let mut progress = docker.create_image(Some(options), None, Some(credentials));
    while let Some(item) = progress.next().await {
        item?;
    }
    Ok(())
}

async fn present(docker: &Docker, tag: &OwnTag) -> bool {
    docker.inspect_image(&tag.reference).await.is_ok()
}

async fn remove_local(docker: &Docker, tag: &OwnTag) {
    let options = RemoveImageOptionsBuilder::default().noprune(true).build();
    let _ = docker.remove_image(&tag.reference, Some(options), None).await;
}

/// Docker's error for a pull from a registry that wants credentials when it has none
/// (a wrong password gives "unauthorized: authentication required" instead).
fn is_missing_credentials(message: &str) -> bool {
    message.contains("no basic auth credentials")
}

/// Without the fix, the credentials of a user whose header has `+` (`berth-plus`) or `/`
/// (`berth-slash`) do not reach the registry: the pull fails as one without credentials.
#[tokio::test]
async fn without_the_fix_a_header_with_plus_or_slash_loses_the_credentials() {
    for (username, character) in [("berth-plus", '+'), ("berth-slash", '/')] {
        let password = password_of(username);
        let tag = OwnTag::push(&format!("nofix-{username}"));
        let (docker, sent) = recording(docker().await);
        assert!(!present(&docker, &tag).await, "{} is still there locally", tag.reference);

        let error = pull(&docker, &tag, username, &password)
            .await
            .expect_err("without the fix, the pull should go out without credentials and fail");
        let message = error.to_string();
        assert!(is_missing_credentials(&message), "{username}: unexpected error: {message}");
        assert!(!present(&docker, &tag).await, "{} was pulled", tag.reference);

        let sent = sent.lock().expect("lock").clone();
        assert_eq!(sent.len(), 1, "one X-Registry-Auth header: {sent:?}");
        assert!(sent[0].contains(character), "{username}: bollard's header {} has no {character}", sent[0]);
        eprintln!("{username}: header with {character}, pull failed: {message}");
    }
}

/// With the fix, the same users pull, and the header Docker gets is base64url.
#[tokio::test]
async fn with_the_fix_a_header_with_plus_or_slash_keeps_the_credentials() {
    for username in ["berth-plus", "berth-slash"] {
        let password = password_of(username);
        let tag = OwnTag::push(&format!("fix-{username}"));
        let docker = with_auth_header_fix(docker().await);
        assert!(!present(&docker, &tag).await, "{} is still there locally", tag.reference);

        pull(&docker, &tag, username, &password)
            .await
            .unwrap_or_else(|error| panic!("{username}: the pull with the fix failed: {error}"));
        assert!(present(&docker, &tag).await, "{} was not pulled", tag.reference);
        remove_local(&docker, &tag).await;
    }
}

/// The control: a user whose header has neither `+` nor `/` pulls with bollard alone, so
/// the failures above come from the encoding, not from the registry or the users.
#[tokio::test]
async fn without_the_fix_a_header_without_plus_or_slash_pulls() {
    let password = password_of("berth");
    let tag = OwnTag::push("nofix-berth");
    let (docker, sent) = recording(docker().await);
    pull(&docker, &tag, "berth", &password)
        .await
        .unwrap_or_else(|error| panic!("berth: the pull without the fix failed: {error}"));
    assert!(present(&docker, &tag).await, "{} was not pulled", tag.reference);
    remove_local(&docker, &tag).await;
    let sent = sent.lock().expect("lock").clone();
    assert!(sent.len() == 1 && !sent[0].contains(['+', '/']), "{sent:?}");
}

/// With the fix, a wrong password reaches the registry and is refused there.
#[tokio::test]
async fn with_the_fix_a_wrong_password_is_refused() {
    for username in ["berth-plus", "berth"] {
        let wrong = format!("{}-wrong", password_of(username));
        let tag = OwnTag::push(&format!("wrong-{username}"));
        let docker = with_auth_header_fix(docker().await);
        let error = pull(&docker, &tag, username, &wrong).await.expect_err("a wrong password should be refused");
        let message = error.to_string();
        assert!(message.to_lowercase().contains("unauthorized"), "{username}: unexpected error: {message}");
        assert!(
            !message.contains("no basic auth credentials"),
            "{username}: the credentials did not reach the registry: {message}"
        );
        assert!(!present(&docker, &tag).await, "{} was pulled", tag.reference);
        eprintln!("{username} with a wrong password: {message}");
    }
}

/// Docker 20.10 decodes the header with Go's `base64.URLEncoding`, which wants the `=`
/// padding: base64url without it loses the credentials as well, hence the fix keeps it.
#[tokio::test]
async fn base64url_without_padding_loses_the_credentials_too() {
    let username = "berth-plus";
    let password = password_of(username);
    let tag = OwnTag::push("nopad-berth-plus");
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&sent);
    let docker = docker().await.with_request_modifier(move |request| {
        let mut request = fix_registry_auth_header(request);
        if let Some(value) = request.headers().get(REGISTRY_AUTH_HEADER) {
            let padded = value.to_str().expect("ascii").to_string();
            let unpadded = padded.trim_end_matches('=').to_string();
            record.lock().expect("lock").push((padded, unpadded.clone()));
            request.headers_mut().insert(REGISTRY_AUTH_HEADER, unpadded.parse().expect("a header value"));
        }
        request
    });
    let error = pull(&docker, &tag, username, &password).await.expect_err("without padding, the pull should fail");
    let message = error.to_string();
    assert!(is_missing_credentials(&message), "unexpected error: {message}");
    let sent = sent.lock().expect("lock").clone();
    assert!(
        sent.len() == 1 && sent[0].0.ends_with('=') && sent[0].0 != sent[0].1,
        "the header had no padding to drop: {sent:?}"
    );
    assert!(!present(&docker, &tag).await, "{} was pulled", tag.reference);
}
