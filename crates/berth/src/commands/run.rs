//! `berth run FILE`: run one task in the foreground with an embedded engine (no daemon):
//! one line per state change, each container's output prefixed by its name (as compose
//! does), and at the end the task's containers and task volumes removed (unless `--keep`).
//!
//! ```text
//! berth | web PULLED
//! berth | web RUNNING 0.0.0.0:32768->8080/tcp
//! web   | listening
//! berth | web STOPPED exit 0 (task STOPPED)
//! ```
//!
//! Exit code (SPEC 9): the first non-zero exit code of an essential container that exited
//! on its own, else 0 — a 143 or 137 after berth sent the stop does not count;
//! `--exit-code-from NAME` takes that container's; 125 when berth could not run the task
//! (invalid file, no Docker, an essential container that never started), with the reason;
//! after Ctrl-C, SIGTERM or SIGHUP, which stop the task cleanly first, 128 + the signal's
//! number (130, 143, 129). A second signal exits at once, naming the data directory and
//! `berth run --cleanup --data-dir DIR`, which removes what the run left.

use crate::overrides::OverrideArgs;
use crate::progress::Console;
use crate::taskfile;
use anyhow::Context;
use berth_agent::config::state_home;
use berth_agent::metadata::{self, MetadataState, stats::NetworkRates};
use berth_docker::{BollardClient, DockerClient, labels};
use berth_engine::{Engine, EngineConfig, EngineHandle, LogItem, PullBehavior};
use berth_model::{ContainerStatus, StateChange, Task, TaskStatus};
use futures_util::{FutureExt, StreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};

/// Exit code when berth could not run the task.
const CANNOT_RUN: u8 = 125;
/// How long the end waits for the last container output.
const LOG_DRAIN: Duration = Duration::from_secs(5);
/// The longest piece of container output held before it is printed as a line of its own.
const PIECE: usize = 8 * 1024;

/// Arguments of `berth run`.
#[derive(Debug, clap::Args)]
pub struct Run {
    /// Task definition file (JSON, in any of the shapes berth reads).
    #[arg(value_name = "FILE", required_unless_present = "cleanup")]
    file: Option<PathBuf>,
    /// Family for a bare containerDefinitions array (default: the file's name).
    #[arg(long, value_name = "NAME")]
    family: Option<String>,
    /// Keep the task's containers and volumes at the end (and the data directory).
    #[arg(long)]
    keep: bool,
    /// Exit with this container's exit code.
    #[arg(long, value_name = "NAME")]
    exit_code_from: Option<String>,
    /// Where berth keeps its state (default: a fresh directory under the user's state
    /// directory). A directory berth makes is removed at a clean end.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Instead of running a task: remove every container and volume a `berth run` on
    /// `--data-dir` left (after it was stopped at once), then the directory.
    #[arg(long, requires = "data_dir", conflicts_with_all = ["file", "keep", "exit_code_from"])]
    cleanup: bool,
    /// Seconds between SIGTERM and SIGKILL for containers without their own stopTimeout.
    #[arg(long, value_name = "SECONDS", default_value_t = berth_docker::DEFAULT_TIMEOUT_SECONDS)]
    stop_timeout: u64,
    /// The local secret source: a JSON file mapping each secret's `valueFrom` (and each
    /// environment file's `value`) to its value.
    #[arg(long, value_name = "FILE")]
    secrets: Option<PathBuf>,
    /// How images are pulled: default (pull; if that fails, use the local image), always,
    /// once (the first time), prefer-cached (pull only what is missing); spelt as the
    /// daemon's pull_behavior.
    // Read by `PullBehavior`'s `FromStr`, the one parser the daemon's configuration uses too.
    #[arg(long, value_name = "BEHAVIOUR", default_value = "default")]
    pull: PullBehavior,
    /// The port of the task metadata endpoint the task's containers read (on the
    /// loopback and on Docker's bridge gateway; 0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    metadata_port: u16,
    #[command(flatten)]
    overrides: OverrideArgs,
}

impl Run {
    /// Run the task to its end.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
        let code = match (&self.data_dir, self.cleanup) {
            (Some(dir), true) => runtime.block_on(clean_up_dir(dir)),
            _ => runtime.block_on(self.run_task()),
        };
        Ok(ExitCode::from(code))
    }

    fn file(&self) -> &Path {
        self.file.as_deref().unwrap_or(Path::new(""))
    }

    async fn run_task(self) -> u8 {
        // A directory berth makes is berth's to remove; one that was there is kept.
        let (data_dir, owned) = match &self.data_dir {
            Some(dir) => (dir.clone(), std::fs::symlink_metadata(dir).is_err()),
            None => (default_data_dir(), true),
        };
        let console = Console::new(5);
        // From here on a signal stops the task (or, before it starts, the run); a second
        // one exits at once.
        let signals = match Signals::new() {
            Ok(signals) => signals,
            Err(e) => {
                eprintln!("berth: cannot watch for signals: {e}");
                return CANNOT_RUN;
            }
        };
        let (stop_tx, stop) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(signals.watch(stop_tx, console.clone(), data_dir.clone()));
        let code = match self.prepare(&data_dir, owned).await {
            Ok(prepared) => prepared.drive(&self, console, stop).await,
            Err(message) => {
                if owned {
                    let _ = std::fs::remove_dir_all(&data_dir);
                }
                console.note(&format!("berth: cannot run {}: {message}", self.file().display()));
                CANNOT_RUN
            }
        };
        watcher.abort();
        code
    }

    /// Everything that can fail before the task starts: the file, the secrets, Docker,
    /// the data directory.
    async fn prepare(&self, data_dir: &Path, owned: bool) -> Result<Prepared, String> {
        let bytes = taskfile::read(self.file())?;
        let opts = taskfile::options(self.file(), self.family.as_deref(), rand::random());
        let invalid = |rejected: berth_model::input::Rejected| {
            let lines: Vec<String> = rejected.errors.iter().map(|e| format!("\n  error: {e}")).collect();
            let more = match rejected.omitted_errors {
                0 => String::new(),
                n => format!("\n  ... and {n} more errors"),
            };
            format!("invalid task definition:{}{more}", lines.concat())
        };
        let mut accepted = berth_model::input::parse(&bytes, &opts).map_err(invalid)?;
        if let Some(overrides) = self.overrides.of(&accepted.task)? {
            accepted = berth_model::input::parse_with_overrides(&bytes, &opts, Some(&overrides)).map_err(invalid)?;
        }
        for w in &accepted.warnings {
            eprintln!("berth: warning: {w}");
        }
        if accepted.omitted_warnings > 0 {
            eprintln!("berth: warning: ... and {} more warnings", accepted.omitted_warnings);
        }
        if let Some(name) = &self.exit_code_from
            && accepted.task.container(name).is_none()
        {
            return Err(format!("--exit-code-from {name}: the task has no container of that name"));
        }
        let secrets = match &self.secrets {
            Some(path) => {
                let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                serde_json::from_slice::<BTreeMap<String, String>>(&text)
                    .map_err(|e| format!("{}: expected a JSON object of strings: {e}", path.display()))?
            }
            None => BTreeMap::new(),
        };
        // Bounded as the cleanup's connect: a Docker that accepts and never answers ends the
        // run (125) naming the call, instead of waiting bollard's own limit of hours.
        let docker = bounded(berth_engine::Timeouts::default().inspect, "connect to Docker", async {
            BollardClient::connect().await.map_err(|e| format!("cannot reach Docker: {e}"))
        })
        .await?;
        let metadata = metadata::bind(&docker, self.metadata_port).await.map_err(|e| e.to_string())?;
        let mut config = EngineConfig {
            data_dir: Some(data_dir.to_path_buf()),
            secrets: Arc::new(secrets),
            metadata_endpoint: metadata.endpoint.clone(),
            ..Default::default()
        };
        config.plan.default_stop_timeout_secs = self.stop_timeout;
        config.pull_behavior = self.pull;
        // The daemon's default capacity (the machine less its default reserve): a task that
        // could never fit on this machine is refused (125) rather than left waiting.
        config.capacity = Some(berth_agent::config::Resources::default().capacity().map_err(|e| e.to_string())?);
        // As `docker` does: the user's Docker configuration (`$DOCKER_CONFIG` or
        // `~/.docker/config.json`, with its credential helpers).
        config.auth = Arc::new(berth_docker::auth::DockerAuth::user_default());
        let engine = Engine::builder(config, Arc::new(docker.clone())).start().await.map_err(|e| e.to_string())?;
        // Served until the run ends (the sender, kept in `Prepared`, is dropped then).
        let (metadata_shutdown, shutdown) = watch::channel(false);
        let state = Arc::new(MetadataState {
            engine: engine.clone(),
            docker: Arc::new(docker.clone()),
            cluster: "default".into(),
            rates: NetworkRates::default(),
        });
        metadata::serve_on(metadata.listeners, state, Default::default(), shutdown);
        Ok(Prepared {
            engine,
            docker,
            task: accepted.task,
            data_dir: data_dir.to_path_buf(),
            owned_data_dir: owned,
            _metadata_shutdown: metadata_shutdown,
        })
    }
}

struct Prepared {
    engine: EngineHandle,
    docker: BollardClient,
    task: Task,
    data_dir: PathBuf,
    owned_data_dir: bool,
    /// The task metadata endpoint serves while this is held.
    _metadata_shutdown: watch::Sender<bool>,
}

impl Prepared {
    async fn drive(self, args: &Run, console: Console, mut stop: mpsc::UnboundedReceiver<Stop>) -> u8 {
        let arn = self.task.arn.clone();
        let visible: HashSet<String> =
            self.task.containers.iter().filter(|c| !c.spec.internal).map(|c| c.spec.name.clone()).collect();
        let width = visible.iter().map(String::len).max().unwrap_or(5).max(5);
        let console = console.with_width(width);
        let mut reader = self.engine.task_events();
        // A signal before the task was added: nothing to stop.
        if let Some(Some(signal)) = stop.recv().now_or_never() {
            console.note(&format!("berth: {}: not starting the task", signal.name));
            let _ = self.fail(&console, "interrupted", false).await;
            return signal.code;
        }
        // Pull progress: bars on a terminal, plain lines otherwise.
        let progress = crate::progress::show(self.engine.pull_progress(), console.clone());
        if let Err(e) = self.engine.add_task(self.task.clone()).await {
            // A task refused for its size never reached the engine's state.
            let added = !matches!(e, berth_engine::EngineError::NeverFits(_));
            return self.fail(&console, &e.to_string(), added).await;
        }
        let mut changes: Vec<StateChange> = Vec::new();
        let mut logs = Vec::new();
        let mut interrupted: Option<Stop> = None;
        // The run ends when the task is STOPPED: once every container of it (the hidden
        // awsvpc pause container included) has stopped.
        let mut task_stopped = false;
        while !task_stopped {
            tokio::select! {
                item = reader.next() => {
                    let change = match item {
                        Some(LogItem::Change(change)) => change,
                        Some(_) => continue,
                        // The change stream ended: the engine stopped (a store commit failed).
                        None => {
                            let why = reader.end().map_or_else(|| "the engine stopped".to_string(), |e| e.to_string());
                            return self.fail(&console, &why, true).await;
                        }
                    };
                    if change.task_arn != arn {
                        continue;
                    }
                    task_stopped = change.task_status == TaskStatus::Stopped;
                    // An internal container's change is made only to carry the task's status.
                    if !visible.contains(&change.container_name) {
                        if change.task_status != TaskStatus::None {
                            console.line("berth", &format!("task {}", change.task_status));
                        }
                        continue;
                    }
                    console.line("berth", &describe(&change));
                    if change.status == ContainerStatus::Running {
                        self.note_interactive(&arn, &change.container_name, &console).await;
                        if let Some(follow) = self.follow_logs(&arn, &change.container_name, &console).await {
                            logs.push(follow);
                        }
                    }
                    changes.push(change);
                }
                Some(signal) = stop.recv(), if interrupted.is_none() => {
                    console.note(&format!(
                        "berth: stopping the task ({}); a second signal exits at once, leaving it",
                        signal.name
                    ));
                    if let Err(e) = self.engine.stop_task(&arn).await {
                        console.note(&format!("berth: {e}"));
                    }
                    interrupted = Some(signal);
                }
            }
        }
        // The change carrying the task's STOPPED is the first of its round's STOPPED changes
        // (`take_changes`): containers that stopped in the same round come after it, already
        // in the log. Read them too, or their exit codes would be missed.
        while let Some(item) = reader.try_next() {
            if let LogItem::Change(change) = item
                && change.task_arn == arn
                && visible.contains(&change.container_name)
            {
                console.line("berth", &describe(&change));
                changes.push(change);
            }
        }
        // The containers' last output, then the cleanup.
        let _ = tokio::time::timeout(LOG_DRAIN, futures_util::future::join_all(logs)).await;
        let final_task = self.engine.task(&arn).await.ok().flatten();
        let cleaned = args.keep || self.clean_up(&arn, &console).await;
        let _ = self.engine.shutdown().await;
        progress.abort();
        if args.keep {
            console.note(&format!("berth: containers kept; state in {}", self.data_dir.display()));
        } else if !cleaned {
            console.note(&leftover_note(&self.data_dir));
        } else if self.owned_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        // A signal during the drain or the cleanup counts too.
        if let Some(signal) = interrupted.or_else(|| stop.try_recv().ok()) {
            return signal.code;
        }
        let (code, reason) = exit_code(&self.task, final_task.as_ref(), &changes, args.exit_code_from.as_deref());
        if let Some(reason) = reason {
            console.note(&format!("berth: could not run the task: {reason}"));
        }
        code
    }

    /// Remove the task's containers and volumes now, and wait until it has left the state;
    /// false when that did not finish.
    async fn clean_up(&self, arn: &str, console: &Console) -> bool {
        if let Err(e) = self.engine.clean_up_now(arn).await {
            console.note(&format!("berth: cleaning up: {e}"));
            return false;
        }
        for _ in 0..600 {
            match self.engine.list_tasks().await {
                Ok(tasks) if tasks.iter().all(|t| t.arn != arn) => return true,
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => {
                    console.note(&format!("berth: cleaning up: {e}"));
                    return false;
                }
            }
        }
        console.note("berth: the task's containers were not all removed in time");
        false
    }

    /// berth run attaches nothing to a container (`docs/terminal.md`): for an interactive
    /// one, say so and how to attach a terminal to it.
    async fn note_interactive(&self, arn: &str, container: &str, console: &Console) {
        let Some(task) = self.engine.task(arn).await.ok().flatten() else { return };
        if let Some(c) = task.container(container).filter(|c| c.spec.interactive)
            && let Some(docker_name) = &c.docker_name
        {
            console.note(&format!(
                "berth: \"{container}\" is interactive: its stdin stays open with nothing attached \
                 (`docker attach {docker_name}` attaches a terminal)"
            ));
        }
    }

    /// Print a running container's output, each line prefixed by its name.
    async fn follow_logs(&self, arn: &str, container: &str, console: &Console) -> Option<tokio::task::JoinHandle<()>> {
        let task = self.engine.task(arn).await.ok()??;
        let id = task.container(container)?.docker_id.clone()?;
        let docker = self.docker.clone();
        let name = container.to_string();
        let console = console.clone();
        Some(tokio::spawn(async move {
            let options =
                bollard::query_parameters::LogsOptionsBuilder::new().follow(true).stdout(true).stderr(true).build();
            let mut stream = docker.bollard().logs(&id, Some(options));
            // stdout and stderr each have their own unfinished line, and count what they read.
            let (mut out, mut err) = (Lines::default(), Lines::default());
            let (mut out_seen, mut err_seen) = (0usize, 0usize);
            let mut print = |line: &str| console.line(&name, line);
            while let Some(Ok(output)) = stream.next().await {
                match output {
                    bollard::container::LogOutput::StdErr { message } => {
                        err_seen += message.len();
                        err.push(&message, &mut print);
                    }
                    other => {
                        let bytes = other.into_bytes();
                        out_seen += bytes.len();
                        out.push(&bytes, &mut print);
                    }
                }
            }
            // Docker's follower can miss what a container wrote last (a final line without a
            // newline, seen on 20.10): read the stopped container's output once more and
            // print what comes after what was seen.
            let options = bollard::query_parameters::LogsOptionsBuilder::new().stdout(true).stderr(true).build();
            let mut rest = docker.bollard().logs(&id, Some(options));
            while let Some(Ok(output)) = rest.next().await {
                let (seen, lines, bytes) = match output {
                    bollard::container::LogOutput::StdErr { message } => (&mut err_seen, &mut err, message),
                    other => (&mut out_seen, &mut out, other.into_bytes()),
                };
                let skip = (*seen).min(bytes.len());
                *seen -= skip;
                lines.push(&bytes[skip..], &mut print);
            }
            out.finish(&mut print);
            err.finish(&mut print);
        }))
    }

    /// Stop here: `message` said, the engine shut down, and the data directory removed if
    /// berth made it and the task never reached the engine (else kept and named).
    async fn fail(self, console: &Console, message: &str, added: bool) -> u8 {
        console.note(&format!("berth: cannot run the task: {message}"));
        let _ = self.engine.shutdown().await;
        if added {
            console.note(&leftover_note(&self.data_dir));
        } else if self.owned_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        CANNOT_RUN
    }
}

/// A container's output cut into lines: at `\n`, at `\r` (progress redrawn in place; a
/// `\r\n` is one line end), and every [`PIECE`] bytes of a line that does not end, so that
/// what is held stays bounded.
#[derive(Debug, Default)]
struct Lines {
    /// The unfinished line, shorter than [`PIECE`].
    held: Vec<u8>,
    /// The last line ended with `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
}

impl Lines {
    fn push(&mut self, mut bytes: &[u8], print: &mut impl FnMut(&str)) {
        while !bytes.is_empty() {
            if std::mem::take(&mut self.after_cr)
                && let Some(rest) = bytes.strip_prefix(b"\n")
            {
                bytes = rest;
                continue;
            }
            let room = PIECE - self.held.len();
            match bytes.iter().take(room).position(|b| matches!(b, b'\n' | b'\r')) {
                Some(end) => {
                    self.held.extend_from_slice(&bytes[..end]);
                    self.after_cr = bytes[end] == b'\r';
                    bytes = &bytes[end + 1..];
                    print(&String::from_utf8_lossy(&self.held));
                    self.held.clear();
                }
                None if bytes.len() >= room => {
                    self.held.extend_from_slice(&bytes[..room]);
                    bytes = &bytes[room..];
                    self.piece(print);
                }
                None => {
                    self.held.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
        }
    }

    /// Print a full piece, keeping a character cut in two for the next one.
    fn piece(&mut self, print: &mut impl FnMut(&str)) {
        let cut = match std::str::from_utf8(&self.held) {
            Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
            _ => self.held.len(),
        };
        let rest = self.held.split_off(cut);
        print(&String::from_utf8_lossy(&self.held));
        self.held = rest;
    }

    /// The end of the output: what is held, if anything.
    fn finish(&mut self, print: &mut impl FnMut(&str)) {
        if !self.held.is_empty() {
            print(&String::from_utf8_lossy(&self.held));
            self.held.clear();
        }
    }
}

/// A signal that stops the run, and the exit code it gives (128 + its number, as a shell
/// reports a command it ended).
#[derive(Clone, Copy, Debug)]
struct Stop {
    name: &'static str,
    code: u8,
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP, watched from the start of the run.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Stop {
        tokio::select! {
            _ = self.int.recv() => Stop { name: "SIGINT", code: 130 },
            _ = self.term.recv() => Stop { name: "SIGTERM", code: 143 },
            _ = self.hup.recv() => Stop { name: "SIGHUP", code: 129 },
        }
    }

    /// The first signal goes to the run (which stops the task); the second exits at once,
    /// saying where the state is and how to remove what is left.
    async fn watch(mut self, first: mpsc::UnboundedSender<Stop>, console: Console, data_dir: PathBuf) {
        let _ = first.send(self.next().await);
        let second = self.next().await;
        console.note(&format!("berth: {}: exiting now, without waiting for the task's cleanup", second.name));
        console.note(&leftover_note(&data_dir));
        std::process::exit(i32::from(second.code));
    }
}

/// What to say when the run ends with the task possibly not cleaned up.
fn leftover_note(data_dir: &Path) -> String {
    let dir = shell_quoted(&data_dir.display().to_string());
    format!(
        "berth: state kept in {dir}; to remove the containers and volumes left and the directory: \
         berth run --cleanup --data-dir {dir}"
    )
}

/// `s` as one shell word.
fn shell_quoted(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `berth run --cleanup --data-dir DIR`: remove every container and volume labelled with
/// the directory's instance id, then the directory. 0 when done, 1 otherwise.
async fn clean_up_dir(dir: &Path) -> u8 {
    match remove_leftovers(dir).await {
        Ok((containers, volumes)) => {
            println!(
                "berth: removed {containers} container(s) and {volumes} volume(s) of {}, and the directory",
                dir.display()
            );
            0
        }
        Err(message) => {
            eprintln!("berth: cannot clean up {}: {message}", dir.display());
            1
        }
    }
}

/// What is left of the run in `dir`, removed: its containers, its volumes, its holder mark
/// and the directory. Each Docker call is bounded as the engine bounds it (connect and list
/// as an inspect, container removal as a removal, volume calls as a volume's), so that a
/// Docker that accepts and never answers ends the cleanup with the call that hung named.
async fn remove_leftovers(dir: &Path) -> Result<(usize, usize), String> {
    if !dir.join(berth_store::INSTANCE_ID_FILE).is_file() {
        return Err(format!("not a berth data directory (no {})", berth_store::INSTANCE_ID_FILE));
    }
    // The lock: refused while a berth still uses the directory.
    let data = berth_store::DataDir::open(dir).map_err(|e| e.to_string())?;
    let instance = data.instance_id().to_string();
    let limits = berth_engine::Timeouts::default();
    let docker = bounded(limits.inspect, "connect to Docker", async {
        BollardClient::connect().await.map_err(|e| format!("cannot reach Docker: {e}"))
    })
    .await?;
    let containers = bounded(limits.inspect, "list containers", async {
        docker.list_containers(&[(labels::INSTANCE, instance.as_str())]).await.map_err(|e| e.to_string())
    })
    .await?;
    for c in &containers {
        let what = format!("remove container {}", c.id);
        bounded(limits.remove, &what, async { docker.remove_container(&c.id).await.map_err(|e| e.to_string()) })
            .await?;
    }
    let filters = HashMap::from([("label".to_string(), vec![format!("{}={instance}", labels::INSTANCE)])]);
    let listed = bounded(limits.volume, "list volumes", async {
        docker
            .bollard()
            .list_volumes(Some(bollard::query_parameters::ListVolumesOptions { filters: Some(filters) }))
            .await
            .map_err(|e| format!("listing volumes: {e}"))
    })
    .await?;
    let volumes: Vec<String> = listed.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect();
    for v in &volumes {
        let what = format!("remove volume {v}");
        bounded(limits.volume, &what, async { docker.remove_volume(v).await.map_err(|e| e.to_string()) }).await?;
    }
    // The mark that the run held its instance, left by a run that exited at once.
    let holder = labels::holder_volume(&instance);
    let what = format!("remove volume {holder}");
    bounded(limits.volume, &what, async { docker.remove_volume(&holder).await.map_err(|e| e.to_string()) }).await?;
    drop(data);
    std::fs::remove_dir_all(dir).map_err(|e| format!("removing the directory: {e}"))?;
    Ok((containers.len(), volumes.len()))
}

/// `call`, or an error naming `what` once `limit` has passed without an answer.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(format!("{what}: Docker did not answer in {}s", limit.as_secs())))
}

/// One state change as a line.
fn describe(c: &StateChange) -> String {
    let mut line = format!("{} {}", c.container_name, c.status);
    for p in &c.port_bindings {
        let ip = if p.bind_ip.is_empty() { "0.0.0.0" } else { &p.bind_ip };
        line.push_str(&format!(" {ip}:{}->{}/{}", p.host_port, p.container_port, p.protocol.as_str()));
    }
    if let Some(code) = c.exit_code {
        line.push_str(&format!(" exit {code}"));
    }
    if let Some(reason) = &c.reason {
        line.push_str(&format!(": {reason}"));
    }
    // A task told to stop; said only while it is not STOPPED by this same change.
    if c.task_desired_status != TaskStatus::None && c.task_status != TaskStatus::Stopped {
        line.push_str(&format!(" (task desired {})", c.task_desired_status));
    }
    if c.task_status != TaskStatus::None {
        line.push_str(&format!(" (task {})", c.task_status));
    }
    line
}

/// The exit code of a run that was not interrupted, and the reason when berth could not run
/// the task.
fn exit_code(task: &Task, last: Option<&Task>, changes: &[StateChange], from: Option<&str>) -> (u8, Option<String>) {
    let ran = |name: &str| changes.iter().any(|c| c.container_name == name && c.status == ContainerStatus::Running);
    let stopped =
        |name: &str| changes.iter().find(|c| c.container_name == name && c.status == ContainerStatus::Stopped);
    let why_not = |name: &str| {
        stopped(name)
            .and_then(|c| c.reason.clone())
            .or_else(|| last.and_then(|t| t.stop_reason.clone()))
            .unwrap_or_else(|| "it never started".to_string())
    };
    if let Some(name) = from {
        if !ran(name) {
            return (CANNOT_RUN, Some(format!("container \"{name}\" never started: {}", why_not(name))));
        }
        return (low_byte(stopped(name).and_then(|c| c.exit_code).unwrap_or(0)), None);
    }
    let essentials: Vec<&str> =
        task.containers.iter().filter(|c| c.spec.essential && !c.spec.internal).map(|c| c.spec.name.as_str()).collect();
    // Exits after the change that told the task to stop (the essential exit that stopped
    // it carries the desired STOPPED), with the codes of berth's own stop, were caused by
    // berth; the others were the containers' own.
    let task_stopped_at = changes
        .iter()
        .find(|c| c.task_desired_status == TaskStatus::Stopped || c.task_status == TaskStatus::Stopped)
        .map(|c| c.seq);
    let own_exits: Vec<i64> = changes
        .iter()
        .filter(|c| {
            c.status == ContainerStatus::Stopped
                && essentials.contains(&c.container_name.as_str())
                && ran(&c.container_name)
        })
        .map(|c| c.exit_code.unwrap_or(0))
        .filter(|code| !(matches!(code, 137 | 143) && task_stopped_at.is_some()))
        .collect();
    // An essential container that never started is berth's failure, unless an essential
    // container that ran had already ended the task on its own (the others were then
    // stopped before they could start: a fast exit racing slower starts).
    if own_exits.is_empty()
        && let Some(name) = essentials.iter().find(|n| !ran(n))
    {
        return (CANNOT_RUN, Some(format!("essential container \"{name}\" never started: {}", why_not(name))));
    }
    for c in changes
        .iter()
        .filter(|c| c.status == ContainerStatus::Stopped && essentials.contains(&c.container_name.as_str()))
    {
        let code = c.exit_code.unwrap_or(0);
        let by_berth = task_stopped_at.is_some_and(|at| c.seq > at) && matches!(code, 137 | 143);
        if code != 0 && !by_berth {
            return (low_byte(code), None);
        }
    }
    (0, None)
}

/// What a shell would report of an exit code.
fn low_byte(code: i64) -> u8 {
    u8::try_from(code.rem_euclid(256)).unwrap_or(u8::MAX)
}

/// A fresh directory under the user's state directory (the daemon's rule,
/// [`state_home`]: an absolute `$XDG_STATE_HOME`, else `$HOME/.local/state`), else under
/// the temp directory: `berth/run-<pid>-<random>`.
fn default_data_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name);
    let base = state_home(var("XDG_STATE_HOME").as_deref(), var("HOME").as_deref()).unwrap_or_else(std::env::temp_dir);
    base.join("berth").join(format!("run-{}-{:08x}", std::process::id(), rand::random::<u32>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::input::{ParseOptions, parse};

    fn task() -> Task {
        let json = r#"{"family": "x", "containerDefinitions": [
            {"name": "main", "image": "busybox"}, {"name": "other", "image": "busybox"},
            {"name": "side", "image": "busybox", "essential": false}]}"#;
        parse(json.as_bytes(), &ParseOptions { family: None, arn_random: 1 })
            .map(|a| a.task)
            .unwrap_or_else(|r| panic!("{r}"))
    }

    fn change(seq: u64, name: &str, status: ContainerStatus, exit: Option<i64>, task: TaskStatus) -> StateChange {
        StateChange {
            seq,
            time: chrono::Utc::now(),
            task_arn: "t".into(),
            container_name: name.into(),
            status,
            reason: None,
            exit_code: exit,
            port_bindings: vec![],
            task_status: task,
            task_desired_status: TaskStatus::None,
        }
    }

    fn ran(seq: &mut u64) -> Vec<StateChange> {
        ["main", "other", "side"]
            .iter()
            .map(|n| {
                *seq += 1;
                change(*seq, n, ContainerStatus::Running, None, TaskStatus::None)
            })
            .collect()
    }

    /// `change` that also says the task was told to stop (desired STOPPED).
    fn told(mut change: StateChange) -> StateChange {
        change.task_desired_status = TaskStatus::Stopped;
        change
    }

    #[test]
    fn the_first_own_non_zero_exit_of_an_essential_container_counts() {
        let mut seq = 0;
        let mut changes = ran(&mut seq);
        changes.push(change(10, "side", ContainerStatus::Stopped, Some(3), TaskStatus::None));
        changes.push(told(change(11, "main", ContainerStatus::Stopped, Some(42), TaskStatus::None)));
        changes.push(change(12, "other", ContainerStatus::Stopped, Some(143), TaskStatus::Stopped));
        assert_eq!(
            exit_code(&task(), None, &changes, None),
            (42, None),
            "side is not essential; other was stopped by berth"
        );
        assert_eq!(exit_code(&task(), None, &changes, Some("side")), (3, None));
        assert_eq!(exit_code(&task(), None, &changes, Some("other")), (143, None));
    }

    #[test]
    fn an_essential_exit_zero_gives_zero() {
        let mut seq = 0;
        let mut changes = ran(&mut seq);
        changes.push(told(change(10, "main", ContainerStatus::Stopped, Some(0), TaskStatus::None)));
        changes.push(change(11, "other", ContainerStatus::Stopped, Some(137), TaskStatus::Stopped));
        assert_eq!(exit_code(&task(), None, &changes, None).0, 0);
    }

    #[test]
    fn an_essential_container_that_never_started_gives_125_with_the_reason() {
        let mut stopped = told(change(1, "main", ContainerStatus::Stopped, None, TaskStatus::None));
        stopped.reason = Some("pull image nope: pull access denied".into());
        let (code, reason) = exit_code(&task(), None, &[stopped], None);
        assert_eq!(code, 125);
        assert!(reason.unwrap_or_default().contains("pull access denied"));
    }

    #[test]
    fn an_essential_exit_that_stops_the_task_before_another_starts_gives_its_code() {
        // "main" ran and exited 42, which told the task to stop before "other" could start
        // ("other"'s STOPPED, without an exit code, is the last and carries the task's).
        let changes = [
            change(1, "main", ContainerStatus::Running, None, TaskStatus::Running),
            told(change(2, "main", ContainerStatus::Stopped, Some(42), TaskStatus::None)),
            change(3, "other", ContainerStatus::Stopped, None, TaskStatus::Stopped),
        ];
        assert_eq!(exit_code(&task(), None, &changes, None), (42, None));
        // Without an own exit, the container that never started is berth's failure.
        let changes = [
            change(1, "main", ContainerStatus::Running, None, TaskStatus::Running),
            told(change(2, "other", ContainerStatus::Stopped, None, TaskStatus::None)),
        ];
        assert_eq!(exit_code(&task(), None, &changes, None).0, 125);
    }

    #[test]
    fn pull_behaviours_are_named_as_in_the_spec() {
        // `--pull` is read by `PullBehavior`'s `FromStr` (the function this tested went).
        let parse_pull = |s: &str| s.parse::<PullBehavior>();
        assert_eq!(parse_pull("prefer-cached"), Ok(PullBehavior::PreferCached));
        assert_eq!(parse_pull("once"), Ok(PullBehavior::Once));
        assert_eq!(parse_pull("always"), Ok(PullBehavior::Always));
        assert_eq!(parse_pull("default"), Ok(PullBehavior::Default));
        assert!(parse_pull("never").is_err());
        // The daemon's spellings too (one parser for both).
        assert_eq!(parse_pull(" Prefer_Cached "), Ok(PullBehavior::PreferCached));
    }

    fn lines_of(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        let mut print = |l: &str| out.push(l.to_string());
        for chunk in chunks {
            lines.push(chunk, &mut print);
        }
        lines.finish(&mut print);
        out
    }

    #[test]
    fn output_lines_end_at_newlines_and_carriage_returns_across_chunks() {
        assert_eq!(lines_of(&[b"a\r", b"\nb\rc", b"\r\r\n", b"d"]), ["a", "b", "c", "", "d"]);
        assert_eq!(lines_of(&[b"one\n\ntwo\n"]), ["one", "", "two"]);
    }

    #[test]
    fn output_without_line_ends_comes_in_pieces_that_do_not_cut_characters() {
        let long = "é".repeat(PIECE); // two bytes each
        let out = lines_of(&[long.as_bytes()]);
        assert_eq!(out.len(), 2);
        assert!(
            out.iter().all(|l| l.len() <= PIECE && l.chars().all(|c| c == 'é')),
            "{:?}",
            out.iter().map(String::len).collect::<Vec<_>>()
        );
        // An odd cut: the piece ends before the character it would split.
        let odd = format!("x{}", "é".repeat(PIECE / 2));
        let out = lines_of(&[odd.as_bytes()]);
        assert_eq!(out.iter().map(String::len).collect::<Vec<_>>(), [PIECE - 1, 2]);
        assert!(!out.concat().contains('\u{fffd}'));
    }

    #[test]
    fn the_cleanup_command_quotes_the_directory_for_a_shell() {
        assert!(leftover_note(Path::new("/tmp/a b")).ends_with("berth run --cleanup --data-dir '/tmp/a b'"));
        assert_eq!(shell_quoted("/x/run-1_2.d"), "/x/run-1_2.d");
        assert_eq!(shell_quoted("it's"), r"'it'\''s'");
    }

    #[test]
    fn exit_codes_are_reported_as_a_shell_would() {
        assert_eq!(low_byte(42), 42);
        assert_eq!(low_byte(256 + 3), 3);
        assert_eq!(low_byte(-1), 255);
    }
}
