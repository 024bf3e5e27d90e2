//! The daemon's configuration: layers, parsing, errors naming their source, secrets kept
//! out of messages, and the engine's part.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_agent::config::{
    AgentConfig, ConfigError, HostPolicy, ImageCleanup, LogFormat, Origin, Overrides, env_var, parse_tcp, setting_keys,
};
use berth_docker::auth::AuthSource;
use berth_engine::{PullBehavior, Timeouts};
use tempfile::TempDir;

/// A password no message may ever hold.
const PASSWORD: &str = "Zq9-very-SECRET-pw-7731";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// A config file with this text in a fresh directory.
fn file(text: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("berth.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

fn load(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<AgentConfig, ConfigError> {
    AgentConfig::load(path, env, &Overrides::default())
}

fn load_text(text: &str) -> Result<AgentConfig, ConfigError> {
    let (_dir, path) = file(text);
    load(Some(&path), &no_env())
}

fn err_text(text: &str) -> (String, PathBuf) {
    let (dir, path) = file(text);
    let message = load(Some(&path), &no_env()).expect_err("refused").to_string();
    drop(dir);
    (message, path)
}

fn env_err(pairs: &[(&str, &str)]) -> String {
    load(None, &env(pairs)).expect_err("refused").to_string()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn defaults() {
    let c = load(None, &no_env()).expect("defaults load");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/berth"));
    assert_eq!(c.cluster, "default");
    assert_eq!(c.tcp, None);
    assert_eq!(c.body_limit, 1 << 20);
    assert_eq!(c.log_format, LogFormat::Human);
    assert_eq!(c.log_level, "info");
    assert_eq!(c.timeouts, Timeouts::default());
    assert_eq!(c.default_stop_timeout, secs(30));
    assert_eq!(c.task_cleanup_wait, secs(3 * 3600));
    assert_eq!(c.pull_behavior, PullBehavior::Default);
    assert_eq!(c.auth_type, "none");
    assert!(c.auth_data.is_empty());
    assert_eq!(c.auth_data_file, None);
    assert_eq!(c.secrets_file, None);
    assert_eq!(c.host, HostPolicy::default());
    assert!(!c.host.allow_privileged && !c.host.allow_host_network && !c.host.allow_devices);
    assert!(c.host.allowed_host_paths.is_empty());
    assert_eq!(
        c.image_cleanup,
        ImageCleanup { enabled: true, interval: secs(30 * 60), min_age: secs(3600), per_cycle: 5 }
    );
    assert_eq!(c.orphan_grace, secs(60));
    assert_eq!(c.steady_state_check, secs(60));
    assert_eq!(c.token_file, Some(PathBuf::from("/var/lib/berth/token")));
    assert_eq!(c.token_path(), PathBuf::from("/var/lib/berth/token"));
    assert!(!c.tcp_allow_remote && !c.tcp_open_introspection);
    assert!(c.tcp_allowed_hosts.is_empty());
    assert_eq!(c.tcp_max_connections, 256);
    assert_eq!(c.max_log_followers, 32);
    assert_eq!(c.request_timeout, secs(30));
    assert_eq!(c.tcp_header_timeout, secs(10));
    assert_eq!(c.tcp_idle_timeout, secs(60));

    // The struct's own default agrees (with the system data directory, token unresolved).
    let d = AgentConfig::default();
    assert_eq!(d.data_dir, c.data_dir);
    assert_eq!(d.token_file, None);
    assert_eq!(d.token_path(), PathBuf::from("/var/lib/berth/token"));
}

#[test]
fn default_data_dir_follows_the_given_environment() {
    let home = load(None, &env(&[("HOME", "/home/u")])).expect("load");
    assert_eq!(home.data_dir, PathBuf::from("/home/u/.local/state/berth/daemon"));
    assert_eq!(home.token_file, Some(PathBuf::from("/home/u/.local/state/berth/daemon/token")));

    let xdg = load(None, &env(&[("HOME", "/home/u"), ("XDG_STATE_HOME", "/st")])).expect("load");
    assert_eq!(xdg.data_dir, PathBuf::from("/st/berth/daemon"));

    // Empty or relative values do not count.
    let relative = load(None, &env(&[("HOME", ""), ("XDG_STATE_HOME", "rel")])).expect("load");
    assert_eq!(relative.data_dir, PathBuf::from("/var/lib/berth"));
}

const FULL_FILE: &str = r#"
data_dir = "/srv/berth"
cluster = "prod"
tcp = 9000
body_limit = "2MiB"
log_format = "json"
log_level = "debug"
default_stop_timeout = "45s"
task_cleanup_wait = "10m"
pull_behavior = "prefer-cached"
auth_type = "docker"
auth_data = '{"registry.example.com": {"username": "alice", "password": "Zq9-very-SECRET-pw-7731"}}'
secrets_file = "/etc/berth/secrets.json"
orphan_grace = "2m"
steady_state_check = "15s"
token_file = "/etc/berth/token"

[timeouts]
pull = "1h"
create = "2m"
start = "90s"
stop_extra = "30s"
remove = "3m"
inspect = "10s"
volume = "20s"

[host]
allow_privileged = true
allow_host_network = true
allow_devices = true
allowed_host_paths = ["/srv/data", "/mnt"]

[image_cleanup]
enabled = false
interval = "1h"
min_age = "6h"
per_cycle = 2
"#;

#[test]
fn file_only() {
    let c = load_text(FULL_FILE).expect("full file loads");
    assert_eq!(c.data_dir, PathBuf::from("/srv/berth"));
    assert_eq!(c.cluster, "prod");
    assert_eq!(c.tcp, Some("127.0.0.1:9000".parse().expect("addr")));
    assert_eq!(c.body_limit, 2 << 20);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.default_stop_timeout, secs(45));
    assert_eq!(c.task_cleanup_wait, secs(600));
    assert_eq!(c.pull_behavior, PullBehavior::PreferCached);
    assert_eq!(c.auth_type, "docker");
    assert_eq!(
        c.auth_data.expose(),
        format!(r#"{{"registry.example.com": {{"username": "alice", "password": "{PASSWORD}"}}}}"#)
    );
    assert_eq!(c.secrets_file, Some(PathBuf::from("/etc/berth/secrets.json")));
    assert_eq!(c.orphan_grace, secs(120));
    assert_eq!(c.steady_state_check, secs(15));
    assert_eq!(c.token_file, Some(PathBuf::from("/etc/berth/token")));
    assert_eq!(
        c.timeouts,
        Timeouts {
            pull: secs(3600),
            create: secs(120),
            start: secs(90),
            stop_extra: secs(30),
            remove: secs(180),
            inspect: secs(10),
            volume: secs(20),
        }
    );
    assert_eq!(
        c.host,
        HostPolicy {
            allow_privileged: true,
            allow_host_network: true,
            allow_devices: true,
            allowed_host_paths: vec![PathBuf::from("/srv/data"), PathBuf::from("/mnt")],
            ..HostPolicy::default()
        }
    );
    assert_eq!(
        c.image_cleanup,
        ImageCleanup { enabled: false, interval: secs(3600), min_age: secs(6 * 3600), per_cycle: 2 }
    );
}

#[test]
fn dotted_keys_and_an_empty_file() {
    let c = load_text("timeouts.pull = \"5m\"\nhost.allow_devices = true\n").expect("dotted keys");
    assert_eq!(c.timeouts.pull, secs(300));
    assert!(c.host.allow_devices);
    let empty = load_text("").expect("an empty file is all defaults");
    assert_eq!(empty.cluster, "default");
}

#[test]
fn env_overrides_file() {
    let (_dir, path) = file(FULL_FILE);
    let vars = env(&[
        ("BERTH_DATA_DIR", "/env/dir"),
        ("BERTH_CLUSTER", "from-env"),
        ("BERTH_TCP", "off"),
        ("BERTH_BODY_LIMIT", "4096"),
        ("BERTH_LOG_FORMAT", "human"),
        ("BERTH_TIMEOUTS_PULL", "7m"),
        ("BERTH_HOST_ALLOW_PRIVILEGED", "false"),
        ("BERTH_HOST_ALLOWED_HOST_PATHS", "/a:/b/c"),
        ("BERTH_IMAGE_CLEANUP_ENABLED", "on"),
        ("BERTH_IMAGE_CLEANUP_PER_CYCLE", "9"),
        ("BERTH_AUTH_TYPE", "none"),
        ("BERTH_TOKEN_FILE", "/env/token"),
        // Empty variables count as unset; clients' and unknown variables are ignored.
        ("BERTH_LOG_LEVEL", ""),
        ("BERTH_HOST", "unix:///x.sock"),
        ("BERTH_NOT_A_SETTING", "whatever"),
    ]);
    let c = load(Some(&path), &vars).expect("load");
    assert_eq!(c.data_dir, PathBuf::from("/env/dir"));
    assert_eq!(c.cluster, "from-env");
    assert_eq!(c.tcp, None);
    assert_eq!(c.body_limit, 4096);
    assert_eq!(c.log_format, LogFormat::Human);
    assert_eq!(c.log_level, "debug", "empty variable leaves the file's value");
    assert_eq!(c.timeouts.pull, secs(420));
    assert_eq!(c.timeouts.create, secs(120), "the file's value where the environment says nothing");
    assert!(!c.host.allow_privileged);
    assert!(c.host.allow_devices);
    assert_eq!(c.host.allowed_host_paths, vec![PathBuf::from("/a"), PathBuf::from("/b/c")]);
    assert!(c.image_cleanup.enabled);
    assert_eq!(c.image_cleanup.per_cycle, 9);
    assert_eq!(c.auth_type, "none");
    assert_eq!(c.token_file, Some(PathBuf::from("/env/token")));

    assert_eq!(AgentConfig::unrecognized_env(&vars), vec!["BERTH_NOT_A_SETTING".to_owned()]);
}

#[test]
fn token_file_follows_the_final_data_dir() {
    let (_dir, path) = file("data_dir = \"/from/file\"\n");
    let flags = Overrides { data_dir: Some(PathBuf::from("/from/flag")), ..Overrides::default() };
    let c = AgentConfig::load(Some(&path), &no_env(), &flags).expect("load");
    assert_eq!(c.token_file, Some(PathBuf::from("/from/flag/token")));
}

#[test]
fn flags_override_env() {
    let (_dir, path) = file("data_dir = \"/f\"\ntcp = true\nlog_format = \"json\"\nlog_level = \"warn\"\n");
    let vars = env(&[
        ("BERTH_DATA_DIR", "/e"),
        ("BERTH_TCP", "7000"),
        ("BERTH_LOG_FORMAT", "json"),
        ("BERTH_LOG_LEVEL", "debug"),
    ]);
    let flags = Overrides {
        data_dir: Some(PathBuf::from("/flag")),
        tcp: Some("0.0.0.0:8000".into()),
        log_format: Some(LogFormat::Human),
        log_level: Some("trace".into()),
        ..Overrides::default()
    };
    let remote = env(&[
        ("BERTH_DATA_DIR", "/e"),
        ("BERTH_TCP", "7000"),
        ("BERTH_LOG_FORMAT", "json"),
        ("BERTH_LOG_LEVEL", "debug"),
        ("BERTH_TCP_ALLOW_REMOTE", "true"),
    ]);
    let c = AgentConfig::load(Some(&path), &remote, &flags).expect("load");
    assert_eq!(c.data_dir, PathBuf::from("/flag"));
    assert_eq!(c.tcp, Some("0.0.0.0:8000".parse().expect("addr")));
    assert_eq!(c.log_format, LogFormat::Human);
    assert_eq!(c.log_level, "trace");

    // Without flags, the environment wins over the file.
    let c = load(Some(&path), &vars).expect("load");
    assert_eq!(c.data_dir, PathBuf::from("/e"));
    assert_eq!(c.tcp, Some("127.0.0.1:7000".parse().expect("addr")));
    assert_eq!(c.log_level, "debug");

    // `--tcp off` switches off what the file switched on.
    let off = Overrides { tcp: Some("off".into()), ..Overrides::default() };
    assert_eq!(AgentConfig::load(Some(&path), &no_env(), &off).expect("load").tcp, None);
}

#[test]
fn every_duration_parsed_from_file_and_env() {
    type Get = fn(&AgentConfig) -> Duration;
    let cases: &[(&str, Get)] = &[
        ("timeouts.pull", |c| c.timeouts.pull),
        ("timeouts.create", |c| c.timeouts.create),
        ("timeouts.start", |c| c.timeouts.start),
        ("timeouts.stop_extra", |c| c.timeouts.stop_extra),
        ("timeouts.remove", |c| c.timeouts.remove),
        ("timeouts.inspect", |c| c.timeouts.inspect),
        ("timeouts.volume", |c| c.timeouts.volume),
        ("default_stop_timeout", |c| c.default_stop_timeout),
        ("task_cleanup_wait", |c| c.task_cleanup_wait),
        ("image_cleanup.interval", |c| c.image_cleanup.interval),
        ("image_cleanup.min_age", |c| c.image_cleanup.min_age),
        ("orphan_grace", |c| c.orphan_grace),
        ("steady_state_check", |c| c.steady_state_check),
    ];
    for (key, get) in cases {
        for (text, want) in [("30s", secs(30)), ("5m", secs(300)), ("3h", secs(3 * 3600)), ("1h 30m", secs(5400))] {
            let c = load_text(&format!("{key} = \"{text}\"\n")).unwrap_or_else(|e| panic!("{key} = {text}: {e}"));
            assert_eq!(get(&c), want, "{key} = {text} in the file");
            let c = load(None, &env(&[(&env_var(key), text)])).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(get(&c), want, "{} = {text}", env_var(key));
        }
    }
    // Sub-second values where they make sense.
    let c = load_text("timeouts.inspect = \"500ms\"\norphan_grace = \"0s\"\n").expect("load");
    assert_eq!(c.timeouts.inspect, Duration::from_millis(500));
    assert_eq!(c.orphan_grace, Duration::ZERO);
}

#[test]
fn enums_parsed() {
    for (text, want) in [
        ("default", PullBehavior::Default),
        ("always", PullBehavior::Always),
        ("once", PullBehavior::Once),
        ("prefer-cached", PullBehavior::PreferCached),
        ("PREFER_CACHED", PullBehavior::PreferCached),
    ] {
        assert_eq!(load_text(&format!("pull_behavior = \"{text}\"")).expect("file").pull_behavior, want);
        assert_eq!(load(None, &env(&[("BERTH_PULL_BEHAVIOR", text)])).expect("env").pull_behavior, want);
    }
    for (text, want) in [("human", LogFormat::Human), ("json", LogFormat::Json), ("JSON", LogFormat::Json)] {
        assert_eq!(load_text(&format!("log_format = \"{text}\"")).expect("file").log_format, want);
        assert_eq!(load(None, &env(&[("BERTH_LOG_FORMAT", text)])).expect("env").log_format, want);
        assert_eq!(text.parse::<LogFormat>(), Ok(want));
    }
    for (text, want) in [("none", "none"), ("", "none"), ("Docker", "docker"), ("docker-config", "docker-config")] {
        let vars = env(&[("BERTH_AUTH_TYPE", text), ("BERTH_AUTH_DATA", "{}"), ("DOCKER_CONFIG", "/d")]);
        assert_eq!(load(None, &vars).expect("auth type").auth_type, want, "{text:?}");
    }
    for (text, want) in [("true", true), ("off", false), ("yes", true), ("0", false), ("FALSE", false)] {
        let c = load(None, &env(&[("BERTH_IMAGE_CLEANUP_ENABLED", text)])).expect("bool");
        assert_eq!(c.image_cleanup.enabled, want, "{text}");
    }
    for (text, want) in [("1048576", 1 << 20), ("64KiB", 64 << 10), ("3 mib", 3 << 20), ("1GiB", 1 << 30)] {
        assert_eq!(load(None, &env(&[("BERTH_BODY_LIMIT", text)])).expect("size").body_limit, want, "{text}");
    }
    assert_eq!(load_text("body_limit = 2048").expect("int").body_limit, 2048);
}

#[test]
fn bad_values_name_file_and_key() {
    let (message, path) = err_text("[timeouts]\npull = \"5x\"\n");
    let prefix = format!("{}: key timeouts.pull: invalid duration \"5x\": ", path.display());
    assert!(message.starts_with(&prefix), "{message}");

    for (text, key, words) in [
        ("task_cleanup_wait = 30", "task_cleanup_wait", "expected a duration"),
        ("pull_behavior = \"sometimes\"", "pull_behavior", "invalid pull behavior \"sometimes\""),
        ("log_format = \"xml\"", "log_format", "invalid log format \"xml\""),
        ("tcp = \"nowhere\"", "tcp", "invalid TCP address \"nowhere\""),
        ("tcp = 70000", "tcp", "invalid TCP port 70000"),
        ("body_limit = 0", "body_limit", "must be more than 0"),
        ("body_limit = \"12 bananas\"", "body_limit", "invalid size"),
        ("host.allow_privileged = \"yes\"", "host.allow_privileged", "expected a boolean, found a string"),
        ("host.allowed_host_paths = [\"rel/path\"]", "host.allowed_host_paths", "not absolute"),
        ("host.allowed_host_paths = \"/srv\"", "host.allowed_host_paths", "expected an array"),
        ("host.allowed_capabilities = \"SYS_ADMIN\"", "host.allowed_capabilities", "expected an array of strings"),
        ("host.allowed_tmpfs_options = [\"noexec\"]", "host.allowed_tmpfs_options", "expected exec, suid or dev"),
        ("host.ulimit_max = { bogus = 1 }", "host.ulimit_max", "unknown ulimit \"bogus\""),
        ("host.ulimit_max = { nofile = -5 }", "host.ulimit_max", "is not a limit"),
        ("host.log_max_size = \"ten\"", "host.log_max_size", "invalid size \"ten\""),
        ("host.log_max_file = 0", "host.log_max_file", "at least 1"),
        ("host.pids_limit = -1", "host.pids_limit", "must not be negative"),
        ("image_cleanup.per_cycle = -1", "image_cleanup.per_cycle", "must not be negative"),
        ("image_cleanup.per_cycle = 0", "image_cleanup.per_cycle", "at least 1"),
        ("timeouts.create = \"0s\"", "timeouts.create", "must be more than 0"),
        ("steady_state_check = \"100ms\"", "steady_state_check", "at least 1s"),
        ("default_stop_timeout = \"1500ms\"", "default_stop_timeout", "whole number of seconds"),
        ("orphan_grace = \"1000 years\"", "orphan_grace", "too long"),
        ("cluster = \"\"", "cluster", "must not be empty"),
        ("data_dir = \"\"", "data_dir", "empty path"),
        ("auth_type = \"ecr\"", "auth_type", "unknown registry auth type \"ecr\""),
        ("timeouts = 5", "timeouts", "expected a table, found an integer"),
    ] {
        let (message, path) = err_text(text);
        let prefix = format!("{}: key {key}: ", path.display());
        assert!(message.starts_with(&prefix) && message.contains(words), "{text}: {message}");
    }
}

#[test]
fn bad_values_name_the_variable() {
    let message = env_err(&[("BERTH_TIMEOUTS_PULL", "5x")]);
    assert!(message.starts_with("BERTH_TIMEOUTS_PULL: invalid duration \"5x\": "), "{message}");
    for (var, value, words) in [
        ("BERTH_TCP", "maybe", "invalid TCP address \"maybe\""),
        ("BERTH_BODY_LIMIT", "-3", "invalid size"),
        ("BERTH_IMAGE_CLEANUP_ENABLED", "perhaps", "invalid boolean \"perhaps\""),
        ("BERTH_IMAGE_CLEANUP_PER_CYCLE", "many", "invalid number \"many\""),
        ("BERTH_HOST_ALLOWED_HOST_PATHS", "/ok:rel", "\"rel\" is not absolute"),
        ("BERTH_PULL_BEHAVIOR", "never", "invalid pull behavior"),
        ("BERTH_AUTH_TYPE", "ecr", "unknown registry auth type"),
        ("BERTH_STEADY_STATE_CHECK", "0s", "at least 1s"),
    ] {
        let message = env_err(&[(var, value)]);
        assert!(message.starts_with(&format!("{var}: ")) && message.contains(words), "{var}: {message}");
    }
    // A bad flag names the flag.
    let flags = Overrides { tcp: Some("nope".into()), ..Overrides::default() };
    let message = AgentConfig::load(None, &no_env(), &flags).expect_err("bad flag").to_string();
    assert!(message.starts_with("--tcp: invalid TCP address \"nope\""), "{message}");
    let flags = Overrides { log_level: Some(" ".into()), ..Overrides::default() };
    let message = AgentConfig::load(None, &no_env(), &flags).expect_err("bad flag").to_string();
    assert!(message.starts_with("--log-level: "), "{message}");
}

#[test]
fn error_origins_are_structured() {
    let err = load(None, &env(&[("BERTH_TIMEOUTS_PULL", "5x")])).expect_err("refused");
    assert!(
        matches!(&err, ConfigError::Invalid { origin: Origin::Env { var }, .. } if var == "BERTH_TIMEOUTS_PULL"),
        "{err:?}"
    );
    let (_dir, path) = file("timeouts.pull = \"5x\"");
    let err = load(Some(&path), &no_env()).expect_err("refused");
    assert!(
        matches!(&err, ConfigError::Invalid { origin: Origin::File { path: p, key }, .. } if p == &path && key == "timeouts.pull"),
        "{err:?}"
    );
}

#[test]
fn unknown_file_key_refused() {
    for (text, key) in [
        ("colour = \"blue\"", "colour"),
        ("[timeouts]\npul = \"5m\"", "timeouts.pul"),
        ("[host]\nallow_everything = true", "host.allow_everything"),
        ("[api]\ntcp = true", "api"),
        ("pull = \"5m\"", "pull"),
    ] {
        let (message, path) = err_text(text);
        assert_eq!(message, format!("{}: unknown key {key}", path.display()), "{text}");
    }
}

#[test]
fn missing_or_broken_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("absent.toml");
    let message = load(Some(&missing), &no_env()).expect_err("missing").to_string();
    assert!(message.starts_with(&format!("cannot read config file {}", missing.display())), "{message}");

    let (message, path) = err_text("cluster = \"a\"\ntcp = \n");
    assert!(message.starts_with(&format!("{}: not valid TOML (line 2, column ", path.display())), "{message}");
}

#[test]
fn cleanup_wait_under_one_second_refused() {
    let (message, path) = err_text("task_cleanup_wait = \"999ms\"");
    assert!(
        message.starts_with(&format!("{}: key task_cleanup_wait: must be at least 1s", path.display())),
        "{message}"
    );
    let message = env_err(&[("BERTH_TASK_CLEANUP_WAIT", "0s")]);
    assert!(message.starts_with("BERTH_TASK_CLEANUP_WAIT: must be at least 1s"), "{message}");
    assert_eq!(load_text("task_cleanup_wait = \"1s\"").expect("1s is fine").task_cleanup_wait, secs(1));

    // A configuration built in code is checked too.
    let config = AgentConfig { task_cleanup_wait: Duration::from_millis(10), ..AgentConfig::default() };
    let message = config.engine_config().expect_err("refused").to_string();
    assert!(message.starts_with("task_cleanup_wait: must be at least 1s"), "{message}");
}

#[test]
fn tcp_forms() {
    let addr = |s: &str| Some(s.parse::<SocketAddr>().expect("addr"));
    for (text, want) in [
        ("true", addr("127.0.0.1:51678")),
        ("on", addr("127.0.0.1:51678")),
        ("ON", addr("127.0.0.1:51678")),
        ("off", None),
        ("false", None),
        ("", None),
        ("8080", addr("127.0.0.1:8080")),
        ("0", addr("127.0.0.1:0")),
        ("0.0.0.0:51678", addr("0.0.0.0:51678")),
        ("[::1]:9000", addr("[::1]:9000")),
    ] {
        assert_eq!(parse_tcp(text), Ok(want), "{text:?}");
    }
    for bad in ["localhost:80", "65536", "yes please", "::1"] {
        assert!(parse_tcp(bad).is_err(), "{bad:?}");
    }
    // In the file: booleans, integers and strings.
    assert_eq!(load_text("tcp = true").expect("load").tcp, addr("127.0.0.1:51678"));
    assert_eq!(load_text("tcp = false").expect("load").tcp, None);
    assert_eq!(load_text("tcp = 1234").expect("load").tcp, addr("127.0.0.1:1234"));
    assert_eq!(load_text("tcp = \"on\"").expect("load").tcp, addr("127.0.0.1:51678"));
    let remote = load_text("tcp = \"10.0.0.1:80\"\ntcp_allow_remote = true");
    assert_eq!(remote.expect("load").tcp, addr("10.0.0.1:80"));
    // In the environment and flags.
    assert_eq!(load(None, &env(&[("BERTH_TCP", "on")])).expect("load").tcp, addr("127.0.0.1:51678"));
    let flags = Overrides { tcp: Some("5555".into()), ..Overrides::default() };
    assert_eq!(AgentConfig::load(None, &no_env(), &flags).expect("load").tcp, addr("127.0.0.1:5555"));
}

fn docker_data() -> String {
    format!(r#"{{"registry.example.com": {{"username": "alice", "password": "{PASSWORD}"}}}}"#)
}

#[test]
fn auth_data_never_in_debug() {
    let c = load(None, &env(&[("BERTH_AUTH_TYPE", "docker"), ("BERTH_AUTH_DATA", &docker_data())])).expect("load");
    assert_eq!(c.auth_data.expose(), docker_data());
    for shown in [format!("{c:?}"), format!("{c:#?}")] {
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(!shown.contains("alice"), "the whole data is redacted: {shown}");
    }
    let engine = c.engine_config().expect("engine config");
    for shown in [format!("{engine:?}"), format!("{:?}", engine.auth)] {
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
    let c = load_text(FULL_FILE).expect("file");
    assert!(!format!("{c:?}").contains(PASSWORD));
}

#[test]
fn auth_data_never_in_errors() {
    let mut messages = Vec::new();
    // Broken JSON, wrong shapes, bad base64: from the environment and the file.
    let bad_data = [
        format!(r#"{{"r.io": {{"username": "u", "password": "{PASSWORD}""#),
        format!(r#"["{PASSWORD}"]"#),
        format!(r#"{{"r.io": {{"username": "u", "password": {PASSWORD}}}}}"#),
        format!(r#"{{"r.io": "{PASSWORD}"}}"#),
    ];
    for data in &bad_data {
        for kind in ["docker", "dockercfg"] {
            messages.push(env_err(&[("BERTH_AUTH_TYPE", kind), ("BERTH_AUTH_DATA", data)]));
            let (message, path) = err_text(&format!("auth_type = \"{kind}\"\nauth_data = '{data}'\n"));
            assert!(message.starts_with(&format!("{}: key auth_data: ", path.display())), "{message}");
            messages.push(message);
        }
    }
    let dockercfg = format!(r#"{{"r.io": {{"auth": "{PASSWORD}"}}}}"#);
    let message = env_err(&[("BERTH_AUTH_TYPE", "dockercfg"), ("BERTH_AUTH_DATA", &dockercfg)]);
    assert!(message.starts_with("BERTH_AUTH_DATA: dockercfg auth data: "), "{message}");
    messages.push(message);
    // The TOML itself broken on the credential's line.
    messages.push(err_text(&format!("auth_type = \"docker\"\nauth_data = '{PASSWORD}\n")).0);
    messages.push(err_text(&format!("auth_data = \"{PASSWORD}\" x\n")).0);
    messages.push(err_text(&format!("auth_data = {PASSWORD}\n")).0);
    messages.push(err_text(&format!("auth_data = [\"{PASSWORD}\"]\n")).0);
    // The credential put under another key by mistake is quoted no more than the type.
    messages.push(env_err(&[("BERTH_AUTH_TYPE", "docker"), ("BERTH_AUTH_DATA", " ")]));
    // From an auth data file, through engine_config.
    let dir = tempfile::tempdir().expect("temp dir");
    let data_file = dir.path().join("auth.json");
    std::fs::write(&data_file, format!(r#"{{"r.io": {{"password": {PASSWORD}}}}}"#)).expect("write");
    let c = load(
        None,
        &env(&[("BERTH_AUTH_TYPE", "docker"), ("BERTH_AUTH_DATA_FILE", data_file.to_str().expect("utf-8"))]),
    )
    .expect("the file is read by engine_config");
    let message = c.engine_config().expect_err("bad data file").to_string();
    assert!(message.starts_with(&format!("auth data file {}: ", data_file.display())), "{message}");
    messages.push(message);

    assert!(messages.len() > 15);
    for message in &messages {
        assert!(!message.contains(PASSWORD), "{message}");
        assert!(!message.contains("Zq9"), "{message}");
    }
}

#[test]
fn auth_data_and_its_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_file = dir.path().join("auth.json");
    std::fs::write(&data_file, docker_data()).expect("write");
    let data_file_str = data_file.to_str().expect("utf-8");

    // Both in one layer: refused, naming both.
    let message = env_err(&[("BERTH_AUTH_DATA", "{}"), ("BERTH_AUTH_DATA_FILE", data_file_str)]);
    assert_eq!(message, "BERTH_AUTH_DATA and BERTH_AUTH_DATA_FILE are both set; give one or the other");

    // A later layer's spelling replaces the earlier one.
    let (_d, path) = file("auth_type = \"docker\"\nauth_data = '{}'\n");
    let c = load(Some(&path), &env(&[("BERTH_AUTH_DATA_FILE", data_file_str)])).expect("load");
    assert_eq!(c.auth_data_file, Some(data_file.clone()));
    assert!(c.auth_data.is_empty());
    match c.auth_source().expect("source") {
        AuthSource::Docker(entries) => {
            assert_eq!(entries["registry.example.com"].username, "alice");
            assert_eq!(entries["registry.example.com"].password.expose(), PASSWORD);
        }
        other => panic!("{other:?}"),
    }

    let (_d, path) = file(&format!("auth_type = \"docker\"\nauth_data_file = \"{data_file_str}\"\n"));
    let c = load(Some(&path), &env(&[("BERTH_AUTH_DATA", "{}")])).expect("load");
    assert_eq!(c.auth_data_file, None);
    assert_eq!(c.auth_source().expect("source"), AuthSource::Docker(BTreeMap::new()));

    // A type that needs data, without any.
    let message = env_err(&[("BERTH_AUTH_TYPE", "docker")]);
    assert_eq!(message, "BERTH_AUTH_TYPE: auth type docker needs auth_data or auth_data_file");
}

#[test]
fn docker_config_type_uses_the_given_environment() {
    let c = load(None, &env(&[("BERTH_AUTH_TYPE", "docker-config"), ("DOCKER_CONFIG", "/etc/dock")])).expect("load");
    assert_eq!(c.auth_source().expect("source"), AuthSource::DockerConfig { path: "/etc/dock/config.json".into() });

    let c = load(None, &env(&[("BERTH_AUTH_TYPE", "docker-config"), ("HOME", "/home/u")])).expect("load");
    assert_eq!(
        c.auth_source().expect("source"),
        AuthSource::DockerConfig { path: "/home/u/.docker/config.json".into() }
    );

    let vars = env(&[("BERTH_AUTH_TYPE", "docker-config"), ("BERTH_AUTH_DATA", "/x/config.json"), ("HOME", "/h")]);
    let c = load(None, &vars).expect("load");
    assert_eq!(c.auth_source().expect("source"), AuthSource::DockerConfig { path: "/x/config.json".into() });

    // Nowhere to look: no credentials, whatever the process's own environment says.
    let c = load(None, &env(&[("BERTH_AUTH_TYPE", "docker-config")])).expect("load");
    assert_eq!(c.auth_source().expect("source"), AuthSource::None);
}

#[test]
fn engine_config_maps_every_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets = dir.path().join("secrets.json");
    std::fs::write(&secrets, r#"{"arn:aws:ssm:db-password": "hunter2", "other": ""}"#).expect("write");
    let text = FULL_FILE.replace("/etc/berth/secrets.json", secrets.to_str().expect("utf-8"));
    let c = load_text(&text).expect("load");
    let e = c.engine_config().expect("engine config");

    assert_eq!(e.data_dir, Some(PathBuf::from("/srv/berth")));
    assert_eq!(e.plan.cleanup_wait, chrono::Duration::minutes(10));
    assert_eq!(e.plan.default_stop_timeout_secs, 45);
    assert_eq!(e.plan.retry, berth_model::plan::RetryPolicy::default());
    assert_eq!(e.timeouts, c.timeouts);
    assert_eq!(e.timeouts.pull, secs(3600));
    assert_eq!(e.timeouts.volume, secs(20));
    assert_eq!(e.pull_behavior, PullBehavior::PreferCached);
    assert_eq!(e.steady_state_check, secs(15));
    match e.auth.source() {
        AuthSource::Docker(entries) => assert_eq!(entries["registry.example.com"].password.expose(), PASSWORD),
        other => panic!("{other:?}"),
    }
    let auth = e.auth.lookup("registry.example.com/app:1").expect("lookup").expect("credentials");
    assert_eq!(auth.username, "alice");
    assert_eq!(e.secrets.get("arn:aws:ssm:db-password").map(String::as_str), Some("hunter2"));
    assert_eq!(e.secrets.get("other").map(String::as_str), Some(""));
    assert_eq!(e.secrets.len(), 2);

    // The defaults map to the engine's defaults.
    let d = load(None, &no_env()).expect("defaults").engine_config().expect("engine config");
    let engine_default = berth_engine::EngineConfig::default();
    assert_eq!(d.data_dir, Some(PathBuf::from("/var/lib/berth")));
    assert_eq!(d.plan, engine_default.plan);
    assert_eq!(d.timeouts, engine_default.timeouts);
    assert_eq!(d.pull_behavior, engine_default.pull_behavior);
    assert_eq!(d.steady_state_check, engine_default.steady_state_check);
    assert_eq!(d.retained_changes, engine_default.retained_changes);
    assert_eq!(d.auth.source(), &AuthSource::None);
    assert!(d.secrets.is_empty());
}

#[test]
fn secrets_file_errors_name_the_file_not_the_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("secrets.json");
    let config = AgentConfig { secrets_file: Some(path.clone()), ..AgentConfig::default() };

    let message = config.engine_config().expect_err("missing").to_string();
    assert!(message.starts_with(&format!("cannot read secrets file {}", path.display())), "{message}");

    for (text, words) in [
        (r#"{"db": 73317731}"#.to_owned(), "secret \"db\": expected a string"),
        (r#"["73317731"]"#.to_owned(), "expected a JSON object of strings"),
        (r#"{"db": "73317731""#.to_owned(), "not valid JSON"),
    ] {
        std::fs::write(&path, &text).expect("write");
        let message = config.engine_config().expect_err("bad secrets").to_string();
        assert!(message.starts_with(&format!("secrets file {}: ", path.display())), "{message}");
        assert!(message.contains(words), "{message}");
        assert!(!message.contains("73317731"), "{message}");
    }
}

#[test]
fn the_tcp_boundary_settings_load_from_file_and_env() {
    let c = load_text(
        "tcp_allowed_hosts = [\"Berth.Example.com.\", \"box\"]\ntcp_open_introspection = true\n\
         tcp_max_connections = 8\nmax_log_followers = 2\nrequest_timeout = \"5s\"\n\
         tcp_header_timeout = \"2s\"\ntcp_idle_timeout = \"3s\"\n",
    )
    .expect("load");
    assert_eq!(c.tcp_allowed_hosts, ["berth.example.com", "box"]);
    assert!(c.tcp_open_introspection);
    assert_eq!((c.tcp_max_connections, c.max_log_followers), (8, 2));
    assert_eq!((c.request_timeout, c.tcp_header_timeout, c.tcp_idle_timeout), (secs(5), secs(2), secs(3)));
    let e = load(None, &env(&[("BERTH_TCP_ALLOWED_HOSTS", "a.example, b")])).expect("load");
    assert_eq!(e.tcp_allowed_hosts, ["a.example", "b"]);
    let bad = load(None, &env(&[("BERTH_TCP_ALLOWED_HOSTS", "a b")])).expect_err("a space");
    assert!(bad.to_string().starts_with("BERTH_TCP_ALLOWED_HOSTS: invalid host name"), "{bad}");
    let zero = load_text("tcp_max_connections = 0").expect_err("0");
    assert!(zero.to_string().contains("key tcp_max_connections: must be at least 1"), "{zero}");
}

#[test]
fn a_tcp_address_that_is_not_loopback_needs_tcp_allow_remote() {
    for (text, origin) in [("tcp = \"0.0.0.0:51678\"", "key tcp"), ("tcp = \"[::]:9000\"", "key tcp")] {
        let e = load_text(text).expect_err("not loopback");
        let message = e.to_string();
        assert!(message.contains(origin), "{message}");
        assert!(message.contains("tcp_allow_remote = true"), "{message}");
        assert!(message.contains("clear text"), "{message}");
    }
    let flags = Overrides { tcp: Some("10.1.2.3:80".into()), ..Overrides::default() };
    let e = AgentConfig::load(None, &no_env(), &flags).expect_err("not loopback");
    assert!(e.to_string().starts_with("--tcp: "), "{e}");
    let allowed = AgentConfig::load(None, &env(&[("BERTH_TCP_ALLOW_REMOTE", "yes")]), &flags).expect("allowed");
    assert_eq!(allowed.tcp, Some("10.1.2.3:80".parse().expect("addr")));
    assert!(load_text("tcp = \"[::1]:9000\"").is_ok(), "IPv6 loopback is loopback");
    // A configuration built in code is checked the same way.
    let code = AgentConfig { tcp: Some("0.0.0.0:1".parse().expect("addr")), ..AgentConfig::default() };
    assert!(code.check_tcp().expect_err("refused").to_string().starts_with("tcp: "));
}

#[test]
fn every_setting_has_its_variable() {
    let keys: Vec<&str> = setting_keys().collect();
    assert!(keys.contains(&"timeouts.pull") && keys.contains(&"image_cleanup.enabled"));
    assert_eq!(env_var("timeouts.pull"), "BERTH_TIMEOUTS_PULL");
    assert_eq!(env_var("image_cleanup.enabled"), "BERTH_IMAGE_CLEANUP_ENABLED");
    assert_eq!(env_var("host.allowed_host_paths"), "BERTH_HOST_ALLOWED_HOST_PATHS");
    assert_eq!(env_var("data_dir"), "BERTH_DATA_DIR");
    // The documentation names every setting and its variable.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/daemon-config.md"))
        .expect("docs/daemon-config.md");
    for key in keys {
        let leaf = key.rsplit('.').next().expect("leaf");
        assert!(doc.contains(&format!("`{leaf}`")), "the doc lacks the key {key}");
        assert!(doc.contains(&env_var(key)), "the doc lacks {}", env_var(key));
    }
}

#[test]
fn host_policy_lists_bounds_and_limits_load_from_the_file_and_the_environment() {
    let c = load_text(
        "[host]\nallowed_capabilities = [\"SYS_ADMIN\", \"cap_net_admin\"]\nallowed_tmpfs_options = [\"EXEC\"]\n\
         pids_limit = 0\nlog_max_size = \"\"\n[host.ulimit_max]\nmemlock = -1\nnofile = 4096\n",
    )
    .expect("host settings");
    assert_eq!(c.host.allowed_capabilities, ["SYS_ADMIN", "cap_net_admin"]);
    assert_eq!(c.host.allowed_tmpfs_options, ["exec"]);
    assert_eq!(c.host.ulimit_max.get("memlock"), Some(&-1));
    assert_eq!(c.host.ulimit_max.get("nofile"), Some(&4096));
    assert_eq!(c.host.ulimit_max.get("rtprio"), Some(&0), "defaults not named stay");
    let limits = c.host.container_limits();
    assert_eq!((limits.pids_limit, limits.log_rotation), (None, None), "0 and empty switch them off");
    let defaults = HostPolicy::default().container_limits();
    assert_eq!(defaults.pids_limit, Some(4096));
    assert_eq!(defaults.log_rotation.map(|r| (r.max_size, r.max_file)), Some(("10m".to_string(), 5)));

    let c = load(
        None,
        &env(&[
            ("BERTH_HOST_ALLOWED_SHARED_VOLUMES", "pgdata, cache"),
            ("BERTH_HOST_ULIMIT_MAX", "rtprio=10,nice=-1"),
            ("BERTH_HOST_REQUIRE_MEMORY", "yes"),
        ]),
    )
    .expect("environment");
    assert_eq!(c.host.allowed_shared_volumes, ["pgdata", "cache"]);
    assert_eq!((c.host.ulimit_max.get("rtprio"), c.host.ulimit_max.get("nice")), (Some(&10), Some(&-1)));
    assert!(c.host.require_memory);
}

#[test]
fn the_host_capacity_is_the_machine_or_the_settings_less_the_reserve() {
    use berth_model::admission::{HostCapacity, HostPort, Reserve};
    use berth_model::container::Protocol;
    let tcp = |port| HostPort { port, protocol: Protocol::Tcp };
    // Defaults: the machine, less 256 MiB and ECS's ports.
    let defaults = AgentConfig::default().resources;
    assert_eq!((defaults.cpu, defaults.memory, defaults.reserved_cpu, defaults.reserved_memory), (None, None, 0, 256));
    assert_eq!(defaults.reserved_ports, [22, 2375, 2376, 51678, 51679].map(tcp));
    let machine = defaults.capacity().expect("the machine's capacity");
    assert!(machine.cpu >= 1024 && machine.memory_mib > 0, "{machine:?}");
    assert_eq!(machine.cpu % 1024, 0, "1,024 units a CPU");

    let c = load_text(
        "[resources]\ncpu = 2048\nmemory = 4096\nreserved_cpu = 512\nreserved_memory = 1024\n\
         reserved_ports = [22, \"53/udp\", \"8080/TCP\"]\n",
    )
    .expect("resources");
    let reserve = Reserve {
        cpu: 512,
        memory_mib: 1024,
        ports: vec![tcp(22), HostPort { port: 53, protocol: Protocol::Udp }, tcp(8080)],
    };
    assert_eq!(c.resources.capacity().expect("set"), HostCapacity::new(2048, 4096, &reserve));
    assert_eq!(c.engine_config().expect("engine config").capacity, Some(HostCapacity::new(2048, 4096, &reserve)));

    let c = load(None, &env(&[("BERTH_RESOURCES_MEMORY", "300"), ("BERTH_RESOURCES_RESERVED_PORTS", "22, 53/udp")]))
        .expect("environment");
    assert_eq!(c.resources.memory, Some(300));
    assert_eq!(c.resources.reserved_ports, [tcp(22), HostPort { port: 53, protocol: Protocol::Udp }]);
    assert_eq!(c.resources.capacity().expect("set").memory_mib, 44, "300 less the default 256");
    let none = load(None, &env(&[("BERTH_RESOURCES_RESERVED_PORTS", "")])).expect("empty counts as unset");
    assert_eq!(none.resources.reserved_ports.len(), 5);

    assert_eq!(
        env_err(&[("BERTH_RESOURCES_RESERVED_PORTS", "22,0")]),
        "BERTH_RESOURCES_RESERVED_PORTS: invalid host port \"0\": expected 1 to 65535, optionally with /tcp or /udp"
    );
    assert_eq!(
        env_err(&[("BERTH_RESOURCES_RESERVED_PORTS", "53/sctp")]),
        "BERTH_RESOURCES_RESERVED_PORTS: invalid protocol in \"53/sctp\": expected tcp or udp"
    );
    assert!(env_err(&[("BERTH_RESOURCES_MEMORY", "-1")]).starts_with("BERTH_RESOURCES_MEMORY: "));
    let message = load_text("[resources]\nreserved_ports = 22\n").expect_err("not a list").to_string();
    assert!(
        message.ends_with("key resources.reserved_ports: expected an array of ports, found an integer"),
        "{message}"
    );
}

#[test]
fn cluster_mode_settings_load_from_every_layer_and_need_a_node_name() {
    let c = load_text("").expect("defaults");
    assert!(c.cluster_store.is_empty() && c.node.is_none(), "one host by default");
    let c = load_text(
        "cluster = \"prod\"\ncluster_store = \"etcd://127.0.0.1:2001,127.0.0.1:2002\"\nnode = \"n1\"\n\
         node_lease_ttl = \"6s\"\n[node_attributes]\nzone = \"a\"\n",
    )
    .expect("cluster settings");
    assert_eq!(c.cluster_store, ["http://127.0.0.1:2001", "http://127.0.0.1:2002"]);
    assert_eq!((c.cluster.as_str(), c.node.as_deref()), ("prod", Some("n1")));
    assert_eq!(c.node_attributes.get("zone").map(String::as_str), Some("a"));
    assert_eq!(c.node_lease_ttl, std::time::Duration::from_secs(6));

    let c = load(
        None,
        &env(&[
            ("BERTH_CLUSTER_STORE", "127.0.0.1:3000"),
            ("BERTH_NODE", "n2"),
            ("BERTH_NODE_ATTRIBUTES", "zone=b, rack=1"),
        ]),
    )
    .expect("environment");
    assert_eq!(c.cluster_store, ["http://127.0.0.1:3000"]);
    assert_eq!(c.node_attributes.len(), 2);

    let flags = Overrides {
        cluster_store: Some("etcd://localhost:4000".into()),
        cluster_name: Some("c2".into()),
        node: Some("n3".into()),
        ..Overrides::default()
    };
    let c = AgentConfig::load(None, &env(&[("BERTH_NODE", "n2")]), &flags).expect("flags");
    assert_eq!(
        (c.cluster_store[0].as_str(), c.cluster.as_str(), c.node.as_deref()),
        ("http://localhost:4000", "c2", Some("n3"))
    );

    let no_node = load(None, &env(&[("BERTH_CLUSTER_STORE", "etcd://127.0.0.1:3000")])).expect_err("no node");
    assert!(no_node.to_string().contains("node name"), "{no_node}");
    let bad_node =
        Overrides { cluster_store: Some("etcd://h:1".into()), node: Some("a/b".into()), ..Overrides::default() };
    assert!(AgentConfig::load(None, &env(&[]), &bad_node).expect_err("bad node").to_string().starts_with("--node"));
    for bad in ["etcd://nohost", "etcd://h:0", "http://h:1", "etcd://h:1/x"] {
        let flags = Overrides { cluster_store: Some(bad.into()), node: Some("n".into()), ..Overrides::default() };
        let e = AgentConfig::load(None, &env(&[]), &flags).expect_err(bad);
        assert!(e.to_string().starts_with("--cluster"), "{bad}: {e}");
    }
    assert!(load_text("node_lease_ttl = \"1s\"").is_err(), "a lease under 2 s is refused");
}
