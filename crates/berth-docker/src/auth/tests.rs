//! Lookups through every source, credential helpers included.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

fn user_of(auth: &DockerAuth, image: &str) -> Option<(String, String, String)> {
    auth.lookup(image).unwrap().map(|a| (a.username.clone(), a.password.expose().to_owned(), a.server_address.clone()))
}

fn triple(user: &str, password: &str, server: &str) -> Option<(String, String, String)> {
    Some((user.to_owned(), password.to_owned(), server.to_owned()))
}

#[test]
fn no_source_no_credentials() {
    let auth = DockerAuth::new(AuthSource::None);
    assert!(auth.lookup("busybox").unwrap().is_none());
    assert!(auth.lookup("gcr.io/p/i").unwrap().is_none());
}

#[test]
fn docker_source_resolves_registries_as_docker_does() {
    let source = AuthSource::parse_docker(
        r#"{"https://index.docker.io/v1/": {"username": "hub", "password": "hub-pw", "email": "h@example.com"},
            "https://gcr.io": {"username": "g", "password": "g-pw"},
            "localhost:5000": {"username": "l", "password": "l-pw"},
            "http://127.0.0.1:51671/v2/": {"username": "t", "password": "t-pw"}}"#,
    )
    .unwrap();
    let auth = DockerAuth::new(source);
    for image in ["busybox", "busybox:latest", "library/busybox", "user/repo", "docker.io/library/busybox"] {
        assert_eq!(user_of(&auth, image), triple("hub", "hub-pw", DOCKER_HUB_SERVER), "{image}");
    }
    assert_eq!(user_of(&auth, "gcr.io/p/i"), triple("g", "g-pw", "gcr.io"));
    assert_eq!(user_of(&auth, "localhost:5000/x"), triple("l", "l-pw", "localhost:5000"));
    assert_eq!(user_of(&auth, "127.0.0.1:51671/busybox:latest"), triple("t", "t-pw", "127.0.0.1:51671"));
    assert_eq!(user_of(&auth, "localhost/x"), None);
    assert_eq!(user_of(&auth, "localhost:5001/x"), None);
    assert_eq!(user_of(&auth, "quay.io/x/y"), None);
    assert_eq!(user_of(&auth, "eu.gcr.io/p/i"), None);
}

#[test]
fn hub_credentials_under_any_alias() {
    for key in
        ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/", "https://docker.io"]
    {
        let json = format!(r#"{{"{key}": {{"username": "hub", "password": "pw"}}}}"#);
        let auth = DockerAuth::new(AuthSource::parse_docker(&json).unwrap());
        assert_eq!(user_of(&auth, "busybox"), triple("hub", "pw", DOCKER_HUB_SERVER), "{key}");
        assert_eq!(
            user_of(&auth, "registry-1.docker.io/library/busybox"),
            triple("hub", "pw", DOCKER_HUB_SERVER),
            "{key}"
        );
    }
}

#[test]
fn exact_key_wins_over_a_stripped_one() {
    let source = AuthSource::parse_docker(
        r#"{"https://gcr.io/v1/": {"username": "stripped", "password": "a"},
            "gcr.io": {"username": "exact", "password": "b"},
            "index.docker.io": {"username": "alias", "password": "c"},
            "https://index.docker.io/v1/": {"username": "canonical", "password": "d"}}"#,
    )
    .unwrap();
    let auth = DockerAuth::new(source);
    assert_eq!(user_of(&auth, "gcr.io/p/i"), triple("exact", "b", "gcr.io"));
    assert_eq!(user_of(&auth, "busybox"), triple("canonical", "d", DOCKER_HUB_SERVER));
    // A registry given as a key is resolved like an image's.
    assert_eq!(auth.lookup_registry("https://GCR.io/").unwrap().map(|a| a.username), Some("exact".to_owned()));
}

#[test]
fn dockercfg_sources_both_shapes() {
    let legacy = format!(r#"{{"https://quay.io": {{"auth": "{}", "email": "q@example.com"}}}}"#, b64("quser:qpw"));
    let auth = DockerAuth::new(AuthSource::parse_dockercfg(&legacy).unwrap());
    assert_eq!(user_of(&auth, "quay.io/team/app:1"), triple("quser", "qpw", "quay.io"));
    assert_eq!(user_of(&auth, "busybox"), None);

    let auths = format!(r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}}}}}"#, b64("huser:h:pw"));
    let auth = DockerAuth::new(AuthSource::parse_dockercfg(&auths).unwrap());
    assert_eq!(user_of(&auth, "user/repo"), triple("huser", "h:pw", DOCKER_HUB_SERVER));
}

/// A temp dir holding a Docker `config.json` and the test's credential helpers.
struct Fixture {
    dir: tempfile::TempDir,
}

/// `docker-credential-berthtest`: answers by the server URL read from stdin.
const BERTHTEST: &str = r#"#!/bin/sh
[ "$1" = get ] || { echo "unsupported: $1"; exit 2; }
url=$(cat)
case "$url" in
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hubuser","Secret":"hub-S3CRET"}' "$url" ;;
  localhost:5000) printf '{"ServerURL":"%s","Username":"<token>","Secret":"tok-S3CRET"}' "$url" ;;
  broken.example) printf '{"ServerURL":"%s","Username":"u","Secret":"broken-S3CRET' "$url" ;;
  leaky.example) printf '{"Username":"u","Secret":"leaky-S3CRET"}'; exit 1 ;;
  quay.io) echo "credentials not found in native keychain"; exit 1 ;;
  empty.example) printf '{"ServerURL":"","Username":"","Secret":""}' ;;
  slow.example) exec sleep 20 ;;
  fail.example) echo "keychain is locked" >&2; exit 3 ;;
  *) echo "unexpected server url"; exit 4 ;;
esac
"#;

/// `docker-credential-berthother`: always the same user.
const BERTHOTHER: &str = r#"#!/bin/sh
url=$(cat)
printf '{"ServerURL":"%s","Username":"other","Secret":"other-S3CRET"}' "$url"
"#;

impl Fixture {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_script(&dir.path().join("docker-credential-berthtest"), BERTHTEST);
        write_script(&dir.path().join("docker-credential-berthother"), BERTHOTHER);
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        Fixture { dir }
    }

    fn auth(&self) -> DockerAuth {
        DockerAuth::new(AuthSource::DockerConfig { path: self.dir.path().join("config.json") })
            .with_helper_path(search_path_with(self.dir.path()))
    }
}

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn docker_config_auths() {
    let fixture = Fixture::new(&format!(
        r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}},
                        "localhost:5000": {{"username": "l", "password": "l-pw"}},
                        "https://tok.example/v2/": {{"identitytoken": "tok-S3CRET"}},
                        "gcr.io": {{}}}}}}"#,
        b64("hub:hub-pw")
    ));
    let auth = fixture.auth();
    assert_eq!(user_of(&auth, "busybox"), triple("hub", "hub-pw", DOCKER_HUB_SERVER));
    assert_eq!(user_of(&auth, "localhost:5000/x"), triple("l", "l-pw", "localhost:5000"));
    // A `{}` placeholder holds nothing.
    assert_eq!(user_of(&auth, "gcr.io/p/i"), None);
    let token = auth.lookup("tok.example/app").unwrap().unwrap();
    assert_eq!(token.identity_token.as_ref().map(Secret::expose), Some("tok-S3CRET"));
    assert!(token.username.is_empty());
}

#[test]
fn docker_config_missing_file_means_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let auth = DockerAuth::new(AuthSource::DockerConfig { path: dir.path().join("nope/config.json") });
    assert!(auth.lookup("busybox").unwrap().is_none());
}

#[test]
fn docker_config_read_at_each_lookup() {
    let fixture = Fixture::new("{}");
    let auth = fixture.auth();
    assert!(auth.lookup("gcr.io/p/i").unwrap().is_none());
    std::fs::write(
        fixture.dir.path().join("config.json"),
        format!(r#"{{"auths": {{"gcr.io": {{"auth": "{}"}}}}}}"#, b64("g:pw")),
    )
    .unwrap();
    assert_eq!(user_of(&auth, "gcr.io/p/i"), triple("g", "pw", "gcr.io"));
}

#[test]
fn docker_config_errors_name_the_file_and_path_not_the_secret() {
    let fixture = Fixture::new(r#"{"auths": {"gcr.io": {"auth": "@@not-base64-S3CRET@@"}}}"#);
    let message = fixture.auth().lookup("gcr.io/p/i").unwrap_err().to_string();
    let file = fixture.dir.path().join("config.json").display().to_string();
    assert!(message.starts_with(&file), "{message}");
    assert!(message.contains(r#"$.auths["gcr.io"].auth: not valid base64"#), "{message}");
    assert!(!message.contains("S3CRET"), "{message}");

    let fixture = Fixture::new(r#"{"auths": {"gcr.io": {"password": "S3CRET" "#);
    let message = fixture.auth().lookup("gcr.io/p/i").unwrap_err().to_string();
    assert!(message.contains("not valid JSON") && !message.contains("S3CRET"), "{message}");
}

#[test]
fn creds_store_helper() {
    let fixture = Fixture::new(r#"{"credsStore": "berthtest", "auths": {"https://index.docker.io/v1/": {}}}"#);
    let auth = fixture.auth();
    // Docker Hub is asked for under Docker's key.
    assert_eq!(user_of(&auth, "busybox"), triple("hubuser", "hub-S3CRET", DOCKER_HUB_SERVER));
    assert_eq!(user_of(&auth, "index.docker.io/library/busybox"), triple("hubuser", "hub-S3CRET", DOCKER_HUB_SERVER));
    // `<token>` means an identity token.
    let token = auth.lookup("localhost:5000/x").unwrap().unwrap();
    assert_eq!(token.identity_token.as_ref().map(Secret::expose), Some("tok-S3CRET"));
    assert!(token.username.is_empty() && token.password.is_empty());
    assert_eq!(token.server_address, "localhost:5000");
    // Nothing stored: no credentials, no error.
    assert!(auth.lookup("quay.io/x/y").unwrap().is_none());
    assert!(auth.lookup("empty.example/x").unwrap().is_none());
}

#[test]
fn cred_helpers_win_over_creds_store_and_inline_auths() {
    let fixture = Fixture::new(&format!(
        r#"{{"credsStore": "berthtest",
             "credHelpers": {{"https://gcr.io": "berthother", "localhost:5000": ""}},
             "auths": {{"gcr.io": {{"auth": "{0}"}}, "quay.io": {{"auth": "{0}"}}}}}}"#,
        b64("inline:pw")
    ));
    let auth = fixture.auth();
    assert_eq!(user_of(&auth, "gcr.io/p/i"), triple("other", "other-S3CRET", "gcr.io"));
    // An empty credHelpers entry is no helper: the store answers.
    assert!(auth.lookup("localhost:5000/x").unwrap().unwrap().identity_token.is_some());
    // With a store configured, Docker asks the store, not the inline entry.
    assert!(auth.lookup("quay.io/x").unwrap().is_none());
}

#[test]
fn helper_failures_name_helper_and_registry_never_the_secret() {
    let fixture = Fixture::new(r#"{"credsStore": "berthtest"}"#);
    let auth = fixture.auth();

    let error = auth.lookup("fail.example/x").unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, AuthError::HelperFailed { .. }), "{message}");
    assert_eq!(
        message,
        "credential helper docker-credential-berthtest for fail.example failed (exit code 3): keychain is locked"
    );

    let message = auth.lookup("leaky.example/x").unwrap_err().to_string();
    assert!(message.contains("docker-credential-berthtest") && message.contains("leaky.example"), "{message}");
    assert!(!message.contains("S3CRET"), "{message}");

    let error = auth.lookup("broken.example/x").unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, AuthError::Json { .. }), "{message}");
    assert!(message.contains("docker-credential-berthtest") && message.contains("broken.example"), "{message}");
    assert!(!message.contains("S3CRET"), "{message}");

    let message = auth.lookup("unknown.example/x").unwrap_err().to_string();
    assert!(message.contains("exit code 4"), "{message}");
}

#[test]
fn missing_helper() {
    let fixture = Fixture::new(r#"{"credHelpers": {"gcr.io": "berth-absent"}}"#);
    let error = fixture.auth().lookup("gcr.io/p/i").unwrap_err();
    assert!(error.is_helper_not_found());
    assert_eq!(error.to_string(), "credential helper docker-credential-berth-absent for gcr.io not found on PATH");
    // Registries without a helper are not affected.
    assert!(fixture.auth().lookup("busybox").unwrap().is_none());
}

#[test]
fn helper_names_that_are_paths_are_refused() {
    let fixture = Fixture::new(r#"{"credsStore": "../../bin/sh"}"#);
    let error = fixture.auth().lookup("busybox").unwrap_err();
    assert!(matches!(error, AuthError::HelperName { .. }), "{error}");
}

#[test]
fn slow_helper_is_killed_at_the_timeout() {
    let fixture = Fixture::new(r#"{"credsStore": "berthtest"}"#);
    let auth = fixture.auth().with_helper_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let error = auth.lookup("slow.example/x").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(matches!(error, AuthError::HelperTimeout { .. }), "{error}");
    assert!(error.to_string().contains("docker-credential-berthtest for slow.example did not answer"), "{error}");
}

#[test]
fn the_helper_search_path_is_the_childs_only() {
    // The process's own PATH does not hold the test's helpers.
    let fixture = Fixture::new(r#"{"credsStore": "berthtest"}"#);
    let auth = DockerAuth::new(AuthSource::DockerConfig { path: fixture.dir.path().join("config.json") });
    assert!(auth.lookup("busybox").unwrap_err().is_helper_not_found());
}

#[test]
fn nothing_that_holds_a_secret_prints_it() {
    let docker = DockerAuth::new(
        AuthSource::parse_docker(r#"{"a.io": {"username": "u", "password": "S3CRET-docker"}}"#).unwrap(),
    );
    let dockercfg = DockerAuth::new(
        AuthSource::parse_dockercfg(&format!(r#"{{"auths": {{"a.io": {{"auth": "{}"}}}}}}"#, b64("u:S3CRET-cfg")))
            .unwrap(),
    );
    let found = docker.lookup("a.io/x").unwrap().unwrap();
    let entry = AuthEntry { identity_token: Some(Secret::new("S3CRET-token")), ..AuthEntry::new("u", "S3CRET-entry") };
    let shown = [
        format!("{docker:?}"),
        format!("{dockercfg:#?}"),
        format!("{found:?}"),
        format!("{found}"),
        format!("{entry:?}"),
        format!("{:?}", found.password),
        format!("{}", found.password),
    ];
    for text in shown {
        assert!(!text.contains("S3CRET"), "{text}");
    }
    assert_eq!(found.password.expose(), "S3CRET-docker");
}
