//! The client commands (`submit`, `ps`, `inspect`, `stop`, `events`, `logs`, `images`)
//! against a real `berth daemon` on the real Docker daemon. Each test starts its own
//! daemon on a data directory of its own (so its containers carry an instance id of their
//! own), and a guard stops it and removes its containers and volumes however the test
//! ends. Needs `scripts/test-env.sh` (Docker and `busybox:latest`); a missing piece fails,
//! never skips.

mod support;

use assert_cmd::Command;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a client command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the daemon may take to answer, and a task to get somewhere.
const WAIT: Duration = Duration::from_secs(60);

/// A name no other test (of this process or another) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{}-{}", std::process::id(), nanos % 1_000_000_000, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A directory under /tmp (short, so the socket path in it fits).
fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("bcl-").tempdir_in("/tmp").unwrap_or_else(|e| panic!("tempdir: {e}"))
}

/// [`support::berth`] for assert_cmd, with a timeout.
fn berth_cmd() -> Command {
    let mut cmd = Command::from_std(support::berth());
    cmd.timeout(COMMAND_TIMEOUT);
    cmd
}

/// A running `berth daemon` with a data directory of its own; stopped on drop, its task
/// containers and volumes removed.
struct Daemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
    tcp: Option<u16>,
}

impl Daemon {
    /// Starts a daemon (also on TCP 127.0.0.1:`tcp` when given) and waits until its
    /// `/healthz` answers 200.
    fn start(tcp: Option<u16>) -> Daemon {
        Daemon::start_with(tcp, &[])
    }

    /// [`Daemon::start`] with these settings in its environment.
    fn start_with(tcp: Option<u16>, settings: &[(&str, &str)]) -> Daemon {
        support::require_busybox();
        let dir = short_tempdir();
        let mut cmd = support::daemon(&dir.path().join("data"), &dir.path().join("daemon.log"));
        cmd.envs(settings.iter().copied());
        // busybox:latest is local and never pulled.
        cmd.env("BERTH_PULL_BEHAVIOR", "prefer-cached").env("BERTH_DEFAULT_STOP_TIMEOUT", "2s");
        if let Some(port) = tcp {
            cmd.arg("--tcp").arg(format!("127.0.0.1:{port}"));
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting berth daemon: {e}"));
        let mut daemon = Daemon { dir, child: Some(child), tcp };
        daemon.wait_healthy();
        daemon
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket(&self) -> PathBuf {
        self.data_dir().join("berth.sock")
    }

    /// `BERTH_HOST` for the unix socket.
    fn unix_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `BERTH_HOST` for TCP.
    fn tcp_host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.tcp.unwrap_or_else(|| panic!("this daemon does not listen on TCP")))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn instance(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("instance-id")).map(|s| s.trim().to_owned()).unwrap_or_default()
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("berth daemon exited ({status}) before answering; its log:\n{}", self.log());
            }
            if healthz(&self.socket()) && self.tcp.is_none_or(tcp_answers) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "berth daemon did not answer /healthz in {WAIT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A client command on the unix socket (through `BERTH_HOST`).
    fn berth(&self, args: &[&str]) -> Command {
        let mut cmd = berth_cmd();
        cmd.env("BERTH_HOST", self.unix_host()).args(args);
        cmd
    }

    /// Runs a client command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args).output().unwrap_or_else(|e| panic!("berth {args:?}: {e}"));
        self.expect_success(args, &out)
    }

    fn expect_success(&self, args: &[&str], out: &Output) -> String {
        assert!(
            out.status.success(),
            "berth {args:?}: {}\nstdout:\n{}\nstderr:\n{}\ndaemon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `check` gives something, running it every 200 ms.
    fn eventually<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}; daemon log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).output();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let instance = self.instance();
        if instance.is_empty() {
            return;
        }
        let filter = format!("label=berth.instance={instance}");
        let list = |args: &[&str]| -> Vec<String> {
            std::process::Command::new("docker")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        for c in list(&["ps", "-aq", "--filter", &filter]) {
            let _ = std::process::Command::new("docker").args(["rm", "-f", &c]).output();
        }
        for v in list(&["volume", "ls", "-q", "--filter", &filter]) {
            let _ = std::process::Command::new("docker").args(["volume", "rm", "-f", &v]).output();
        }
    }
}

/// Whether `GET /healthz` on the socket answers 200.
fn healthz(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().is_some_and(|status| status.contains(" 200 "))
}

fn tcp_answers(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A TCP port nothing listens on now (bound on 127.0.0.1:0, then closed).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding 127.0.0.1:0: {e}"));
    listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
}

/// A one-container busybox task that says hello and sleeps, in a file of `dir`.
fn hello_task(dir: &Path, family: &str) -> PathBuf {
    let file = dir.join(format!("{family}.json"));
    let json = serde_json::json!({
        "family": family,
        "containerDefinitions": [{
            "name": "main",
            "image": "busybox:latest",
            "command": ["sh", "-c", "echo hello; sleep 30"],
            "memory": 32,
            "stopTimeout": 2
        }]
    });
    std::fs::write(&file, json.to_string()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    file
}

/// The `ps` line of the task whose arn ends with `short`, split in columns.
fn ps_row(table: &str, short: &str) -> Option<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cols| cols.first().map(String::as_str) == Some(short))
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn a_task_goes_through_every_command() {
    let daemon = Daemon::start(None);
    let family = unique("client");
    let file = hello_task(daemon.dir.path(), &family);

    // submit: the arn on standard output.
    let arn = daemon.ok(&["submit", file.to_str().unwrap_or_default(), "--client-token", &family]).trim().to_owned();
    assert!(arn.starts_with("arn:berth:task/"), "{arn}");
    // The same submit with its client token again: the same task, not a second one.
    let again = daemon.ok(&["submit", file.to_str().unwrap_or_default(), "--client-token", &family]);
    assert_eq!(again.trim(), arn);
    let short = arn.rsplit('/').next().unwrap_or_default().to_owned();

    // ps: RUNNING, with its definition and container (by -H too).
    let row = daemon.eventually("ps shows the task RUNNING", || {
        let table = daemon.ok(&["ps"]);
        assert!(table.starts_with("TASK"), "{table}");
        ps_row(&table, &short).filter(|r| r.get(3).map(String::as_str) == Some("RUNNING"))
    });
    assert_eq!(
        row,
        vec![short.clone(), format!("{family}:1"), "RUNNING".into(), "RUNNING".into(), "-".into(), "main".into()]
    );
    let out = berth_cmd().args(["ps", "-H", &daemon.unix_host()]).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(ps_row(&daemon.expect_success(&["ps", "-H"], &out), &short).is_some());

    // inspect: berth's view, as JSON, by the whole arn and by its last part.
    for name in [arn.as_str(), short.as_str()] {
        let json: serde_json::Value =
            serde_json::from_str(&daemon.ok(&["inspect", name])).unwrap_or_else(|e| panic!("inspect JSON: {e}"));
        assert_eq!(json["Arn"], arn.as_str());
        assert_eq!(json["Family"], family.as_str());
        assert_eq!(json["KnownStatus"], "RUNNING");
        assert_eq!(json["Containers"][0]["Name"], "main");
        assert_eq!(json["Containers"][0]["Image"], "busybox:latest");
        assert!(json["Containers"][0]["DockerId"].as_str().is_some_and(|id| !id.is_empty()), "{json}");
    }

    // logs: the container's output, with or without its name.
    daemon.eventually("logs show hello", || daemon.ok(&["logs", &short]).contains("hello").then_some(()));
    assert_eq!(daemon.ok(&["logs", &arn, "main"]), "hello\n");
    assert_eq!(daemon.ok(&["logs", &arn, "main", "--tail", "0"]), "");
    assert_eq!(daemon.ok(&["logs", &arn, "--since", "2020-01-01T00:00:00Z", "--tail", "all"]), "hello\n");
    assert_eq!(daemon.ok(&["logs", &arn, "--since", "4102444800"]), "", "nothing since 2100");
    let out = daemon.berth(&["logs", &short, "nope"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no container nope"), "{}", text(&out.stderr));

    // events: the RUNNING change, as a line and as JSON.
    let events = daemon.ok(&["events", "--since", "0", "--no-follow"]);
    let running = events
        .lines()
        .find(|l| l.contains(&format!(" {short} main RUNNING")))
        .unwrap_or_else(|| panic!("no RUNNING line for {short}:\n{events}"));
    assert!(running.contains("(task RUNNING)"), "{running}");
    let running_seq: u64 =
        running.split(' ').next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{running}"));
    let json_lines = daemon.ok(&["events", "--since", "0", "--no-follow", "--json"]);
    let changes: Vec<serde_json::Value> =
        json_lines.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    assert!(
        changes.iter().any(|c| c["TaskArn"] == arn.as_str() && c["Status"] == "RUNNING" && c["Seq"] == running_seq)
    );
    // Resuming after the RUNNING change leaves it out.
    let after = daemon.ok(&["events", "--since", &running_seq.to_string(), "--no-follow"]);
    assert!(!after.contains(&format!("{running_seq} ")), "{after}");

    // images: busybox is there.
    let images = daemon.ok(&["images"]);
    assert!(images.starts_with("IMAGE"), "{images}");
    assert!(images.lines().any(|l| l.starts_with("busybox:latest ")), "{images}");

    // Following readers, started before the stop, see it.
    let events_reader = Reader::start(&daemon, "events", &["events", "--since", &running_seq.to_string()]);
    let logs_reader = Reader::start(&daemon, "logs", &["logs", &short, "--follow"]);

    // stop: the arn; the task ends STOPPED, shown with --all only.
    assert_eq!(daemon.ok(&["stop", &short]).trim(), arn);
    let row = daemon.eventually("ps --all shows the task STOPPED", || {
        ps_row(&daemon.ok(&["ps", "--all"]), &short).filter(|r| r.get(3).map(String::as_str) == Some("STOPPED"))
    });
    assert_eq!(row.get(2).map(String::as_str), Some("STOPPED"));
    assert!(ps_row(&daemon.ok(&["ps"]), &short).is_none(), "a STOPPED task is hidden without --all");

    let (status, stdout, stderr) = logs_reader.finish(Duration::from_secs(30));
    assert_eq!(stdout, "hello\n", "logs --follow gives the output and ends when the container stops: {stderr}");
    assert!(status.success(), "{stderr}");
    let stopped = format!(" {short} main STOPPED exit ");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events_reader.stdout().contains(&stopped) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, seen, stderr) = events_reader.finish(Duration::ZERO);
    assert!(seen.contains(&stopped), "events --since {running_seq}:\n{seen}\n{stderr}");
    assert!(seen.contains("(task STOPPED)"), "{seen}");
    let first: u64 = seen.split(' ').next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{seen}"));
    assert!(first > running_seq, "--since {running_seq} starts after it:\n{seen}");
}

/// A one-container busybox task reserving `memory` MiB that sleeps, in a file of `dir`.
fn sized_task(dir: &Path, family: &str, memory: u64) -> PathBuf {
    let file = dir.join(format!("{family}.json"));
    let json = serde_json::json!({
        "family": family,
        "containerDefinitions": [{
            "name": "main", "image": "busybox:latest", "command": ["sleep", "600"], "memory": memory, "stopTimeout": 1
        }]
    });
    std::fs::write(&file, json.to_string()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    file
}

/// The Docker ids of the containers of task `arn` on the real daemon.
fn containers_of(arn: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=berth.task-arn={arn}")])
        .output()
        .unwrap_or_else(|e| panic!("docker ps: {e}"));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// A time `docker inspect` gives for `container` (`{{.Created}}`, `{{.State.FinishedAt}}`).
fn docker_time(container: &str, format: &str) -> chrono::DateTime<chrono::Utc> {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", format, container])
        .output()
        .unwrap_or_else(|e| panic!("docker inspect: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    text.parse().unwrap_or_else(|e| panic!("{format} of {container}: {text:?}: {e}"))
}

#[test]
fn a_task_that_does_not_fit_waits_with_its_reason_and_starts_once_the_first_stops() {
    // 100 MiB for tasks: two of 60 MiB do not fit together.
    let daemon =
        Daemon::start_with(None, &[("BERTH_RESOURCES_MEMORY", "100"), ("BERTH_RESOURCES_RESERVED_MEMORY", "0")]);
    let dir = daemon.dir.path();
    let first = daemon.ok(&["submit", sized_task(dir, &unique("fit-a"), 60).to_str().unwrap_or_default()]);
    let first = first.trim().to_owned();
    daemon.eventually("the first task runs", || {
        let view: serde_json::Value = serde_json::from_str(&daemon.ok(&["inspect", &first])).ok()?;
        (view["KnownStatus"] == "RUNNING").then_some(())
    });

    let out = daemon
        .berth(&["submit", sized_task(dir, &unique("fit-b"), 60).to_str().unwrap_or_default()])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let reason = "waiting for 60 MiB of memory: 40 free of 100";
    let second = daemon.expect_success(&["submit"], &out).trim().to_owned();
    assert_eq!(text(&out.stderr).trim(), format!("note: the task is {reason}"));
    let short = second.rsplit('/').next().unwrap_or_default().to_owned();
    // ps shows why it waits; inspect too; nothing of it exists on Docker.
    let row = ps_row(&daemon.ok(&["ps"]), &short).unwrap_or_else(|| panic!("no ps row for {short}"));
    // TASK DEFINITION DESIRED KNOWN RESTARTS CONTAINERS WAITING
    assert_eq!(row[6..].join(" "), reason, "{row:?}");
    let view: serde_json::Value =
        serde_json::from_str(&daemon.ok(&["inspect", &second])).unwrap_or_else(|e| panic!("inspect JSON: {e}"));
    assert_eq!(view["WaitingReason"], reason);
    assert_eq!(containers_of(&second), Vec::<String>::new(), "nothing created while it waits");

    // One that could never fit is refused at submit, naming the excess.
    let out = daemon
        .berth(&["submit", sized_task(dir, &unique("fit-c"), 101).to_str().unwrap_or_default()])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("the task can never fit on this host: it reserves 101 MiB of memory and the host has 100 MiB"),
        "{}",
        text(&out.stderr)
    );

    // Once the first stops, the second starts: created only after the first had exited.
    daemon.ok(&["stop", &first]);
    daemon.eventually("the second task runs", || {
        let view: serde_json::Value = serde_json::from_str(&daemon.ok(&["inspect", &second])).ok()?;
        (view["KnownStatus"] == "RUNNING" && view.get("WaitingReason").is_none()).then_some(())
    });
    let (a, b) = (containers_of(&first), containers_of(&second));
    assert_eq!((a.len(), b.len()), (1, 1), "{a:?} {b:?}");
    let finished = docker_time(&a[0], "{{.State.FinishedAt}}");
    let created = docker_time(&b[0], "{{.Created}}");
    assert!(finished <= created, "the first exited at {finished}, the second was created at {created}");
    let table = daemon.ok(&["ps"]);
    assert!(!table.contains("WAITING"), "no task waits any more:\n{table}");
}

#[test]
fn an_invalid_file_is_refused_naming_the_field() {
    let daemon = Daemon::start(None);
    let file = daemon.dir.path().join("bad.json");
    let json = serde_json::json!({
        "family": unique("client-bad"),
        "containerDefinitions": [{"name": "main", "image": "busybox:latest", "memory": "lots"}]
    });
    std::fs::write(&file, json.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let out = daemon.berth(&["submit", file.to_str().unwrap_or_default()]).output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        stderr.lines().any(|l| l.trim_start().starts_with("containerDefinitions[0].memory: ")),
        "each error as `path: message`:\n{stderr}"
    );
    assert_eq!(daemon.ok(&["ps", "--all"]).lines().count(), 1, "nothing was added");

    // An unknown task is an error with the daemon's message.
    let out = daemon.berth(&["inspect", "no-such-task"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no task no-such-task"), "{}", text(&out.stderr));
}

#[test]
fn without_a_daemon_the_message_says_where_and_how_to_start_one() {
    let dir = short_tempdir();
    let socket = dir.path().join("berth.sock");
    let check = |out: Output, place: &str| {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(place), "names {place}: {stderr}");
        assert!(stderr.contains("berth daemon") && stderr.contains("BERTH_HOST"), "says what to do: {stderr}");
    };
    for args in [&["ps"][..], &["submit", "/dev/null"], &["events"], &["logs", "x"], &["images"]] {
        let out = berth_cmd()
            .env("BERTH_HOST", format!("unix://{}", socket.display()))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        check(out, &socket.display().to_string());
    }
    // A bare path, and TCP.
    let out = berth_cmd().env("BERTH_HOST", &socket).arg("ps").output().unwrap_or_else(|e| panic!("{e}"));
    check(out, &socket.display().to_string());
    let port = free_port();
    let out = berth_cmd()
        .env("BERTH_HOST", format!("tcp://127.0.0.1:{port}"))
        .arg("ps")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    check(out, &format!("127.0.0.1:{port}"));
    // No BERTH_HOST: the socket in the daemon's default data directory.
    let out = berth_cmd()
        .env("HOME", dir.path())
        .env_remove("XDG_STATE_HOME")
        .arg("ps")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    check(out, &dir.path().join(".local/state/berth/daemon/berth.sock").display().to_string());
}

#[test]
fn over_tcp_every_call_needs_the_token() {
    let daemon = Daemon::start(Some(free_port()));
    let file = hello_task(daemon.dir.path(), &unique("client-tcp"));
    let file = file.to_str().unwrap_or_default();
    let over_tcp = |args: &[&str], env: &[(&str, String)]| {
        let mut cmd = berth_cmd();
        cmd.env("BERTH_HOST", daemon.tcp_host()).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap_or_else(|e| panic!("{e}"))
    };

    let token_file = daemon.data_dir().join("token").display().to_string();
    // Reads need the token too: they show task contents.
    let out = over_tcp(&["ps"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Bearer") && stderr.contains("BERTH_TOKEN"), "{stderr}");
    let out = over_tcp(&["ps"], &[("BERTH_TOKEN_FILE", token_file.clone())]);
    daemon.expect_success(&["ps"], &out);

    let out = over_tcp(&["submit", file], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Bearer") && stderr.contains("BERTH_TOKEN"), "{stderr}");
    let out = over_tcp(&["submit", file], &[("BERTH_TOKEN", "wrong".into())]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("token is wrong"), "{}", text(&out.stderr));
    assert_eq!(daemon.ok(&["ps", "--all"]).lines().count(), 1, "nothing was added");

    let out = over_tcp(&["submit", file], &[("BERTH_TOKEN_FILE", token_file.clone())]);
    let arn = daemon.expect_success(&["submit"], &out).trim().to_owned();
    assert!(arn.starts_with("arn:berth:task/"), "{arn}");
    let out = over_tcp(&["inspect", &arn], &[("BERTH_TOKEN_FILE", token_file.clone())]);
    assert!(daemon.expect_success(&["inspect"], &out).contains(&arn));
    let token = std::fs::read_to_string(&token_file).unwrap_or_default();
    let out = over_tcp(&["images"], &[("BERTH_TOKEN", token)]);
    assert!(daemon.expect_success(&["images"], &out).contains("busybox"));
    let out = over_tcp(&["stop", &arn], &[("BERTH_TOKEN_FILE", token_file)]);
    assert_eq!(daemon.expect_success(&["stop"], &out).trim(), arn);
}

/// A following client command whose output goes to files, read at any time; killed
/// when it has not ended by itself.
struct Reader {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Reader {
    fn start(daemon: &Daemon, name: &str, args: &[&str]) -> Reader {
        let stdout = daemon.dir.path().join(format!("{name}.out"));
        let stderr = daemon.dir.path().join(format!("{name}.err"));
        let file = |p: &Path| File::create(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let mut cmd = support::berth();
        let child = cmd
            .env("BERTH_HOST", daemon.unix_host())
            .args(args)
            .stdin(Stdio::null())
            .stdout(file(&stdout))
            .stderr(file(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("berth {args:?}: {e}"));
        Reader { child, stdout, stderr }
    }

    /// What it has written so far.
    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Waits up to `wait` for it to end, kills it if it has not; its exit status, output
    /// and error output.
    fn finish(mut self, wait: Duration) -> (std::process::ExitStatus, String, String) {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let status = self.child.wait().unwrap_or_else(|e| panic!("{e}"));
        (status, self.stdout(), std::fs::read_to_string(&self.stderr).unwrap_or_default())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn submit_env_and_command_are_sent_as_overrides_and_reach_the_container() {
    let daemon = Daemon::start(None);
    let family = unique("client-ov");
    let file = hello_task(daemon.dir.path(), &family);
    let arn = daemon
        .ok(&[
            "submit",
            file.to_str().unwrap_or_default(),
            "--env",
            "WHO=overrides",
            "--command",
            "sh",
            "-c",
            "echo hello-$WHO; sleep 60",
        ])
        .trim()
        .to_owned();
    daemon.eventually("logs show the overridden command and environment", || {
        let out = daemon.berth(&["logs", &arn, "main"]).output().ok()?;
        text(&out.stdout).contains("hello-overrides").then_some(())
    });
    let out = daemon
        .berth(&["submit", file.to_str().unwrap_or_default(), "--container", "nope", "--env", "A=b"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--container nope: the task has no container"), "{}", text(&out.stderr));
    daemon.ok(&["stop", &arn]);
}
