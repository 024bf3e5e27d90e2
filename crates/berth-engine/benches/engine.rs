//! The engine over the fake Docker (issue "The engine over a fake Docker"): 10,000 tasks of
//! 3 containers each, from NONE to RUNNING and back to STOPPED,
//!
//! - (a) `memory`: state in a [`MemorySaver`] (no durability);
//! - (b) `durable`: the durable store, a redb file in a data directory on disk (under the
//!   target directory, not a tmpfs), each group commit one write transaction made durable
//!   with one fsync (redb's one-phase commit);
//! - and for reference, `fake`: no engine at all, only the Docker calls the engine makes
//!   (pull, create, start and inspect; stop and inspect) and the reading of the event
//!   stream, straight on the fake: what the fake itself costs, a floor under (a) and (b).
//!
//! For each: wall time up (all adds to the last RUNNING) and down (all stops to the last
//! STOPPED), container transitions (PULLED, CREATED, RUNNING, STOPPED: 4 per container, as
//! read from `task_events()`) per second, peak RSS (VmHWM of the process: engine, fake Docker
//! and this driver together), the engine's own memory (that peak minus the peak of `fake`,
//! which holds the same containers without an engine), and group commits (saves of a
//! non-empty group, counted by a saver that wraps the real one).
//!
//! Each configuration runs in its own child process (this binary again, with `--child`), so
//! its peak RSS is its own. `fake` always runs, first, since the engine's own memory is
//! measured against it.
//!
//! `cargo bench -p berth-engine --bench engine` (well under a minute on 2 cores). Options
//! after `--`: `--quick` (1,000 tasks), `--tasks N` (or `BERTH_BENCH_TASKS=N`),
//! `--only fake|memory|durable`, `--distinct` (every task's containers differ from every
//! other task's, so the engine shares no spec; the default is 10,000 copies of one task
//! definition, as a service's replicas are). One configuration in this process, e.g. under
//! `perf`: `<bench binary> --child durable --tasks 10000`.
//!
//! The tasks are parsed from JSON as they are added (within the timed run), as a daemon
//! receives them, so the driver holds no parsed tasks of its own.

/// The allocator the `berth` binary uses (mimalloc): the engine's work is mostly small
/// allocations, and glibc's malloc was half the CPU of this benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use berth_docker::events::{EventKind, container_event_with_labels};
use berth_docker::{DockerClient, labels};
use berth_engine::bench_support::{container_config, docker_name};
use berth_engine::{ChangeReader, DockerTaskEngine, EngineConfig, LogItem, TaskEngine};
use berth_model::input::{ParseOptions, parse};
use berth_model::task::generated_arn;
use berth_model::{ContainerStatus, Task, TaskStatus};
use berth_store::{Group, Loaded, MemorySaver, RedbStore, STATE_FILE, Saver, StoreError};
use berth_testutils::{Behaviour, FakeDocker, Op, RunState};
use futures_util::{StreamExt, TryStreamExt, stream};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const DEFAULT_TASKS: usize = 10_000;
const QUICK_TASKS: usize = 1_000;
const CONTAINERS_PER_TASK: usize = 3;
/// Task `i`'s arn is made from `ARN_BASE + i`.
const ARN_BASE: u128 = 0xbe47_0000_0000;
/// Transitions a container makes: PULLED, CREATED, RUNNING, STOPPED.
const TRANSITIONS_PER_CONTAINER: usize = 4;
/// `add_task` and `stop_task` calls in flight at once (each is answered once the group
/// commit holding it is durable).
const IN_FLIGHT: usize = 1_024;
/// No state change for this long: the run has stalled.
const STALL: Duration = Duration::from_secs(60);
/// Target of the engine's own peak memory (the run's peak RSS minus the fake's alone), both
/// configurations.
const OWN_TARGET_MB: f64 = 110.0;
/// What a child prints before each result line.
const RESULT: &str = "berth-bench";

/// Three independent containers that run until stopped (the fake is told so as well), no
/// port mappings.
const TASK_JSON: &str = r#"{"family": "bench", "containerDefinitions": [
    {"name": "web", "image": "busybox", "command": ["httpd", "-f"]},
    {"name": "db", "image": "busybox", "command": ["httpd", "-f"]},
    {"name": "cache", "image": "busybox", "command": ["httpd", "-f"]}]}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fake,
    Memory,
    Durable,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Fake, Mode::Memory, Mode::Durable];

    fn name(self) -> &'static str {
        match self {
            Mode::Fake => "fake",
            Mode::Memory => "memory",
            Mode::Durable => "durable",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Transitions per second asked for (none for the reference).
    fn target(self) -> Option<f64> {
        match self {
            Mode::Fake => None,
            Mode::Memory => Some(100_000.0),
            Mode::Durable => Some(20_000.0),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Mode::Fake => "(reference) the fake Docker alone: the engine's Docker calls and event reading, no engine",
            Mode::Memory => "(a) the engine with MemorySaver, no durability",
            Mode::Durable => "(b) the engine with the durable store: redb in a data directory on disk",
        }
    }
}

struct Args {
    tasks: usize,
    only: Option<Mode>,
    child: Option<Mode>,
    /// Every task's containers differ from every other's (see [`task`]).
    distinct: bool,
}

fn args() -> Result<Args, String> {
    let mut tasks = match std::env::var("BERTH_BENCH_TASKS") {
        Ok(v) => Some(v.parse::<usize>().map_err(|e| format!("BERTH_BENCH_TASKS={v}: {e}"))?),
        Err(_) => None,
    };
    let (mut only, mut child, mut distinct) = (None, None, false);
    let mut it = std::env::args().skip(1);
    let mode = |v: Option<String>| {
        let v = v.unwrap_or_default();
        Mode::parse(&v).ok_or_else(|| format!("unknown configuration {v:?} (fake, memory or durable)"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            // cargo bench passes `--bench` to a harness-less bench.
            "--bench" => {}
            "--quick" => tasks = Some(QUICK_TASKS),
            "--tasks" => {
                let v = it.next().unwrap_or_default();
                tasks = Some(v.parse().map_err(|e| format!("--tasks {v}: {e}"))?);
            }
            "--only" => only = Some(mode(it.next())?),
            "--child" => child = Some(mode(it.next())?),
            "--distinct" => distinct = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (--quick, --tasks N, --only fake|memory|durable, --distinct)"
                ));
            }
        }
    }
    let tasks = tasks.unwrap_or(DEFAULT_TASKS);
    if tasks == 0 {
        return Err("--tasks must be at least 1".into());
    }
    Ok(Args { tasks, only, child, distinct })
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("engine bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.child {
        Some(mode) => child(mode, args.tasks, args.distinct),
        None => parent(&args),
    }
}

// --- the parent: one child per configuration, then the table ------------------------------

fn parent(args: &Args) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("engine bench: cannot find this binary to run the configurations: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "berth-engine bench: {} tasks × {CONTAINERS_PER_TASK} containers, NONE → RUNNING → STOPPED on the fake Docker",
        args.tasks
    );
    println!("{cpus} CPUs; tokio multi-thread runtime with {cpus} workers; each configuration in its own process");
    if args.distinct {
        println!("--distinct: every task's containers have their own command, so no two tasks share a spec");
    }
    let mut results = Vec::new();
    let mut failed = false;
    // The fake alone always runs: the engine's own memory is measured against it.
    for mode in Mode::ALL.into_iter().filter(|m| args.only.is_none_or(|o| o == *m || *m == Mode::Fake)) {
        eprintln!("running {} ...", mode.describe());
        let mut command = Command::new(&exe);
        command.args(["--child", mode.name(), "--tasks", &args.tasks.to_string()]);
        if args.distinct {
            command.arg("--distinct");
        }
        let output = command.stdin(Stdio::null()).stderr(Stdio::inherit()).output();
        let output = match output {
            Ok(output) => output,
            Err(e) => {
                eprintln!("engine bench: cannot run {}: {e}", exe.display());
                return ExitCode::FAILURE;
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let values: BTreeMap<String, String> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix(RESULT))
            .filter_map(|l| l.trim().split_once(' '))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        if !output.status.success() || values.is_empty() {
            eprintln!("engine bench: the {} run failed ({}):\n{stdout}", mode.name(), output.status);
            failed = true;
            continue;
        }
        results.push((mode, Results(values)));
    }
    table(&results);
    if failed || results.iter().any(|(_, r)| r.get("ok") != "true") { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// A child's results by key.
struct Results(BTreeMap<String, String>);

impl Results {
    fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("?", String::as_str)
    }

    fn num(&self, key: &str) -> f64 {
        self.0.get(key).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
    }
}

fn table(results: &[(Mode, Results)]) {
    println!();
    println!(
        "| configuration | up (s) | down (s) | up + down (s) | transitions | transitions/s | target | peak RSS (MB) | engine's own (MB) | group commits | fsyncs | met |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    let fake_rss = results.iter().find(|(m, _)| *m == Mode::Fake).map_or(f64::NAN, |(_, r)| r.num("peak_rss_mb"));
    for (mode, r) in results {
        let rate = r.num("transitions_per_s");
        let rss = r.num("peak_rss_mb");
        let (target, own, commits, fsyncs, met) = match mode.target() {
            None => ("—".to_string(), "—".to_string(), "—", "—", "—"),
            Some(target) => {
                let own = rss - fake_rss;
                let met = if rate >= target && own < OWN_TARGET_MB { "yes" } else { "NO" };
                let fsyncs = if *mode == Mode::Durable { r.get("group_commits") } else { "0" };
                (format!("≥ {target:.0}"), format!("{own:.1}"), r.get("group_commits"), fsyncs, met)
            }
        };
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {} | {:.0} | {target} | {rss:.1} | {own} | {commits} | {fsyncs} | {met} |",
            mode.name(),
            r.num("up_s"),
            r.num("down_s"),
            r.num("total_s"),
            r.get("transitions"),
            rate,
        );
    }
    println!();
    println!("transitions: state changes read from task_events() (PULLED, CREATED, RUNNING, STOPPED per container);");
    println!(
        "transitions/s = transitions / (up + down). Targets: memory ≥ 100,000/s, durable ≥ 20,000/s, engine's own < {OWN_TARGET_MB:.0} MB."
    );
    println!("group commits: saves of a non-empty group. The durable store commits each group as one redb write");
    println!("transaction with Durability::Immediate: one fsync (fdatasync) per group commit, which is the fsyncs");
    println!("column (redb also syncs the file once each time it grows it, and a few times when it creates it: not");
    println!("counted here); MemorySaver makes none.");
    println!("peak RSS: VmHWM of the child process (the engine, the fake Docker and this driver together).");
    println!(
        "engine's own: the run's peak RSS minus the fake's alone ({fake_rss:.1} MB: the same containers' Docker calls"
    );
    println!("and events, the process's runtime and a driver; no engine).");
    println!(
        "fake: the same Docker calls and event reading without an engine (4 calls' worth of transitions per container)."
    );
    for (mode, r) in results {
        println!();
        println!("{}:", mode.describe());
        println!(
            "  up:   {:.3} s ({} transitions, {:.0}/s){}",
            r.num("up_s"),
            r.get("up_transitions"),
            r.num("up_per_s"),
            match mode {
                Mode::Fake => String::new(),
                _ => format!("; every add_task answered at {:.3} s", r.num("adds_answered_s")),
            }
        );
        println!(
            "  down: {:.3} s ({} transitions, {:.0}/s){}",
            r.num("down_s"),
            r.get("down_transitions"),
            r.num("down_per_s"),
            match mode {
                Mode::Fake => String::new(),
                _ => format!("; every stop_task answered at {:.3} s", r.num("stops_answered_s")),
            }
        );
        if *mode != Mode::Fake {
            println!(
                "  group commits: {} in all ({} while going up, {} while going down, the rest between and after), \
                 {:.1} changes and {:.1} task records each on average; time in save {:.3} s ({:.0}% of up + down), \
                 longest save {:.1} ms",
                r.get("group_commits"),
                r.get("up_commits"),
                r.get("down_commits"),
                r.num("changes_per_commit"),
                r.num("tasks_per_commit"),
                r.num("save_s"),
                100.0 * r.num("save_s") / r.num("total_s"),
                r.num("max_save_ms"),
            );
        }
        match mode {
            Mode::Fake => {}
            Mode::Memory => println!("  MemorySaver::saves(): {} (fsyncs: none)", r.get("memory_saves")),
            Mode::Durable => {
                println!(
                    "  store: {} bytes of {STATE_FILE} on {} ({})",
                    r.get("store_bytes"),
                    r.get("fs"),
                    r.get("dir")
                )
            }
        }
        println!(
            "  memory: RSS {:.1} MB before the run, {:.1} MB when all RUNNING, peak {:.1} MB \
             (highest sample at {}); at most {} tokio tasks alive at once",
            r.num("rss_start_mb"),
            r.num("rss_up_mb"),
            r.num("peak_rss_mb"),
            r.get("max_rss_at"),
            r.get("max_tasks"),
        );
        println!(
            "  CPU: {:.2} s user + {:.2} s system for up + down ({:.2} cores busy on average); load average {} before, {} after",
            r.num("cpu_user_s"),
            r.num("cpu_sys_s"),
            (r.num("cpu_user_s") + r.num("cpu_sys_s")) / r.num("total_s"),
            r.get("load_before"),
            r.get("load_after"),
        );
        println!(
            "  fake Docker: {} containers; calls: {} pulls, {} creates, {} starts, {} stops, {} inspects, {} removes; \
             each container created and started exactly once: {}; restarts of exited: {}; events: {}",
            r.get("fake_containers"),
            r.get("fake_pulls"),
            r.get("fake_creates"),
            r.get("fake_starts"),
            r.get("fake_stops"),
            r.get("fake_inspects"),
            r.get("fake_removes"),
            r.get("fake_once"),
            r.get("fake_restarts_of_exited"),
            r.get("events"),
        );
        if *mode != Mode::Fake {
            println!(
                "  changes: {} PULLED, {} CREATED, {} RUNNING, {} STOPPED, {} other, {} gaps, {} after the run; \
                 task changes: {} RUNNING, {} STOPPED",
                r.get("pulled"),
                r.get("created"),
                r.get("running"),
                r.get("stopped"),
                r.get("other"),
                r.get("gaps"),
                r.get("extra"),
                r.get("task_running"),
                r.get("task_stopped"),
            );
        }
        if r.get("ok") != "true" {
            println!("  CHECK FAILED: {}", r.get("problems"));
        }
    }
}

// --- a child: one configuration ---------------------------------------------------------------

fn child(mode: Mode, tasks: usize, distinct: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("engine bench: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match mode {
        Mode::Fake => runtime.block_on(run_fake(tasks)),
        Mode::Memory | Mode::Durable => runtime.block_on(run_engine(mode, tasks, distinct)),
    };
    match result {
        Ok(report) => {
            for (key, value) in &report {
                println!("{RESULT} {key} {value}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("engine bench ({}): {e}", mode.name());
            ExitCode::FAILURE
        }
    }
}

/// What the counting saver saw.
#[derive(Debug, Default)]
struct SaveStats {
    /// Saves of a non-empty group: group commits.
    commits: AtomicU64,
    /// Saves of an empty group (the store commits nothing for them).
    empty: AtomicU64,
    task_records: AtomicU64,
    changes: AtomicU64,
    nanos: AtomicU64,
    max_nanos: AtomicU64,
}

/// Forwards to the real saver, counting group commits and the time spent in them.
struct Counting {
    inner: Box<dyn Saver>,
    stats: Arc<SaveStats>,
}

impl Saver for Counting {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        self.inner.load()
    }

    fn save(&mut self, group: Group) -> Result<Vec<berth_model::StateChange>, StoreError> {
        if group.is_empty() {
            self.stats.empty.fetch_add(1, Ordering::Relaxed);
            return self.inner.save(group);
        }
        let (tasks, changes) = (group.tasks.len() as u64, group.changes.len() as u64);
        let started = Instant::now();
        let result = self.inner.save(group);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let s = &self.stats;
        s.commits.fetch_add(1, Ordering::Relaxed);
        s.task_records.fetch_add(tasks, Ordering::Relaxed);
        s.changes.fetch_add(changes, Ordering::Relaxed);
        s.nanos.fetch_add(nanos, Ordering::Relaxed);
        s.max_nanos.fetch_max(nanos, Ordering::Relaxed);
        result
    }

    fn force_save(&mut self) -> Result<(), StoreError> {
        self.inner.force_save()
    }

    fn change_source(&self) -> Option<Arc<dyn berth_store::ChangeSource>> {
        self.inner.change_source()
    }
}

/// The state changes read so far.
#[derive(Debug, Default)]
struct Tally {
    pulled: usize,
    created: usize,
    running: usize,
    stopped: usize,
    other: usize,
    gaps: u64,
    task_running: usize,
    task_stopped: usize,
}

impl Tally {
    fn transitions(&self) -> usize {
        self.pulled + self.created + self.running + self.stopped + self.other
    }

    fn count(&mut self, item: LogItem) {
        match item {
            LogItem::Change(c) => {
                match c.status {
                    ContainerStatus::Pulled => self.pulled += 1,
                    ContainerStatus::Created => self.created += 1,
                    ContainerStatus::Running => self.running += 1,
                    ContainerStatus::Stopped => self.stopped += 1,
                    _ => self.other += 1,
                }
                match c.task_status {
                    TaskStatus::Running => self.task_running += 1,
                    TaskStatus::Stopped => self.task_stopped += 1,
                    _ => {}
                }
            }
            LogItem::Gap { from, to } => self.gaps += to - from,
        }
    }
}

/// Read changes until `done` holds; an error after [`STALL`] without a change.
async fn read_until(reader: &mut ChangeReader, tally: &mut Tally, done: impl Fn(&Tally) -> bool) -> Result<(), String> {
    while !done(tally) {
        match tokio::time::timeout(STALL, reader.next()).await {
            Ok(Some(item)) => tally.count(item),
            Ok(None) => return Err(format!("the engine went away; read so far: {tally:?}")),
            Err(_) => return Err(format!("no state change for {}s; read so far: {tally:?}", STALL.as_secs())),
        }
    }
    Ok(())
}

/// A field of `/proc/self/status` in MB (`VmHWM`, `VmRSS`).
fn vm_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User and system CPU seconds of this process so far (`/proc/self/stat`, in USER_HZ = 100
/// ticks per second, which Linux fixes for this interface).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name's closing parenthesis, from field 3 (state) on.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).map_or(f64::NAN, |t| t / 100.0);
    (ticks(11), ticks(12))
}

/// The type of the filesystem holding `path` (the longest mount point that contains it).
fn filesystem(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point).then(|| (point.len(), format!("{kind} mounted at {point}")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "an unknown filesystem".into(), |(_, what)| what)
}

fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().next().unwrap_or("?").to_string()
}

/// An empty fake with busybox present and pullable, whose containers run until stopped.
fn fake() -> FakeDocker {
    let fake = FakeDocker::new();
    fake.add_registry_image("busybox:latest");
    fake.add_image("busybox:latest");
    fake.set_behaviour(|_| Behaviour::forever());
    fake
}

/// Task `i`, parsed from [`TASK_JSON`]. `distinct`: with `-p <i>` added to each command,
/// so that no two tasks have equal container specs (the engine shares equal ones).
fn task(i: usize, distinct: bool) -> Result<Task, String> {
    let opts = ParseOptions { family: None, arn_random: ARN_BASE + i as u128 };
    let json =
        if distinct { TASK_JSON.replace(r#""-f"]"#, &format!(r#""-f", "-p", "{i}"]"#)) } else { TASK_JSON.to_string() };
    parse(json.as_bytes(), &opts).map(|a| a.task).map_err(|r| r.to_string())
}

/// Results, in order, as `key value` lines.
#[derive(Default)]
struct Report(Vec<(String, String)>);

impl Report {
    fn put(&mut self, key: &str, value: impl ToString) {
        self.0.push((key.to_string(), value.to_string()));
    }
}

impl<'a> IntoIterator for &'a Report {
    type Item = &'a (String, String);
    type IntoIter = std::slice::Iter<'a, (String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// What both kinds of run report: times, rates, memory, CPU.
struct Timing {
    up: Duration,
    down: Duration,
    up_transitions: usize,
    transitions: usize,
    cpu: ((f64, f64), (f64, f64)),
}

fn put_timing(report: &mut Report, t: &Timing) {
    let secs = |d: Duration| format!("{:.3}", d.as_secs_f64());
    let total = t.up + t.down;
    let down_transitions = t.transitions - t.up_transitions;
    report.put("up_s", secs(t.up));
    report.put("down_s", secs(t.down));
    report.put("total_s", secs(total));
    report.put("transitions", t.transitions);
    report.put("up_transitions", t.up_transitions);
    report.put("down_transitions", down_transitions);
    report.put("transitions_per_s", format!("{:.0}", t.transitions as f64 / total.as_secs_f64()));
    report.put("up_per_s", format!("{:.0}", t.up_transitions as f64 / t.up.as_secs_f64()));
    report.put("down_per_s", format!("{:.0}", down_transitions as f64 / t.down.as_secs_f64()));
    let ((user0, sys0), (user1, sys1)) = t.cpu;
    report.put("cpu_user_s", format!("{:.2}", user1 - user0));
    report.put("cpu_sys_s", format!("{:.2}", sys1 - sys0));
}

/// The fake's totals; whether every one of `containers` containers was created and started
/// exactly once and has exited.
fn put_fake_totals(report: &mut Report, fake: &FakeDocker, containers: usize) -> bool {
    let snapshots = fake.containers();
    let count = snapshots.len();
    let once = count == containers
        && snapshots.iter().all(|c| c.times_started == 1 && c.state == RunState::Exited)
        && fake.calls(Op::CreateContainer) == containers as u64
        && fake.calls(Op::StartContainer) == containers as u64
        && fake.restarts_of_exited() == 0;
    drop(snapshots);
    report.put("fake_containers", count);
    report.put("fake_pulls", fake.calls(Op::PullImage));
    report.put("fake_creates", fake.calls(Op::CreateContainer));
    report.put("fake_starts", fake.calls(Op::StartContainer));
    report.put("fake_stops", fake.calls(Op::StopContainer));
    report.put("fake_inspects", fake.calls(Op::InspectContainer));
    report.put("fake_removes", fake.calls(Op::RemoveContainer));
    report.put("fake_once", if once { "yes" } else { "NO" });
    report.put("fake_restarts_of_exited", fake.restarts_of_exited());
    once
}

fn put_verdict(report: &mut Report, problems: &[String]) {
    report.put("ok", problems.is_empty());
    report.put("problems", if problems.is_empty() { "none".to_string() } else { problems.join("; ") });
}

/// What the sampler saw: the most tokio tasks alive at once, and the highest RSS with when
/// it was seen (seconds from the start of the run).
#[derive(Debug, Default, Clone, Copy)]
struct Sampled {
    max_tasks: usize,
    max_rss_mb: f64,
    max_rss_at: f64,
}

/// Every 5 ms until `stop`: the runtime's alive tasks and this process's RSS.
fn sampler(start: Instant, stop: Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<Sampled> {
    let metrics = tokio::runtime::Handle::current().metrics();
    tokio::spawn(async move {
        let mut seen = Sampled::default();
        while !stop.load(Ordering::Relaxed) {
            seen.max_tasks = seen.max_tasks.max(metrics.num_alive_tasks());
            let rss = vm_mb("VmRSS");
            if rss > seen.max_rss_mb {
                seen.max_rss_mb = rss;
                seen.max_rss_at = start.elapsed().as_secs_f64();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen
    })
}

fn put_sampled(report: &mut Report, seen: Sampled, up: Duration) {
    let phase = if seen.max_rss_at <= up.as_secs_f64() { "going up" } else { "going down" };
    report.put("max_tasks", seen.max_tasks);
    report.put("max_rss_at", format!("{:.2} s ({phase})", seen.max_rss_at));
}

/// (a) and (b): the engine.
async fn run_engine(mode: Mode, n: usize, distinct: bool) -> Result<Report, String> {
    let mut report = Report::default();
    let fake = fake();
    // Tasks are parsed from their JSON as they are added, IN_FLIGHT at a time, as a daemon
    // receives them: the driver holds no 10,000 parsed tasks of its own. Their arns are
    // known in advance.
    task(0, distinct)?;
    let arns: Vec<String> = (0..n).map(|i| generated_arn(ARN_BASE + i as u128)).collect();
    let containers = n * CONTAINERS_PER_TASK;

    let stats = Arc::new(SaveStats::default());
    let mut config = EngineConfig::default();
    let mut dir: Option<(tempfile::TempDir, PathBuf)> = None;
    let mut memory: Option<MemorySaver> = None;
    let inner: Box<dyn Saver> = match mode {
        Mode::Durable => {
            // On the disk the build uses (target/tmp), not a tmpfs /tmp.
            let root = tempfile::Builder::new()
                .prefix("engine-bench-")
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .map_err(|e| format!("temporary directory in {}: {e}", env!("CARGO_TARGET_TMPDIR")))?;
            let data = root.path().join("data");
            std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
            // The store DataDir::store opens, opened here to be wrapped; the engine still
            // opens (and locks) the data directory for its instance id.
            let store = RedbStore::open(data.join(STATE_FILE)).map_err(|e| e.to_string())?;
            config.data_dir = Some(data.clone());
            dir = Some((root, data));
            Box::new(store)
        }
        Mode::Memory | Mode::Fake => {
            let saver = MemorySaver::new();
            memory = Some(saver.clone());
            Box::new(saver)
        }
    };
    let mut engine = DockerTaskEngine::new(config, Arc::new(fake.clone()));
    engine.set_saver(Box::new(Counting { inner, stats: Arc::clone(&stats) })).map_err(|e| e.to_string())?;
    engine.init().await.map_err(|e| format!("init: {e}"))?;
    let engine = Arc::new(engine);
    let mut reader = engine.task_events().map_err(|e| e.to_string())?;
    let mut tally = Tally::default();
    report.put("rss_start_mb", format!("{:.1}", vm_mb("VmRSS")));
    report.put("load_before", load_average());

    // Up: every task added (IN_FLIGHT calls at a time), until every container is RUNNING.
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let stop_sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampling = sampler(start, Arc::clone(&stop_sampling));
    let e = Arc::clone(&engine);
    let adds = tokio::spawn(async move {
        stream::iter((0..n).map(Ok))
            .try_for_each_concurrent(IN_FLIGHT, |i| {
                let e = &e;
                async move { e.add_task(task(i, distinct)?).await.map_err(|e| e.to_string()) }
            })
            .await
            .map(|()| Instant::now())
    });
    read_until(&mut reader, &mut tally, |t| t.running >= containers).await?;
    let up = start.elapsed();
    let up_transitions = tally.transitions();
    let up_commits = stats.commits.load(Ordering::Relaxed);
    let adds_answered = adds.await.map_err(|e| e.to_string())?.map_err(|e| format!("add_task: {e}"))?;
    report.put("rss_up_mb", format!("{:.1}", vm_mb("VmRSS")));

    // Down: every task stopped, until every container is STOPPED.
    let commits_before_down = stats.commits.load(Ordering::Relaxed);
    let down_start = Instant::now();
    let e = Arc::clone(&engine);
    let stop_arns = arns.clone();
    let stops = tokio::spawn(async move {
        stream::iter(stop_arns.into_iter().map(Ok))
            .try_for_each_concurrent(IN_FLIGHT, |arn: String| {
                let e = &e;
                async move { e.stop_task(&arn).await }
            })
            .await
            .map(|()| Instant::now())
    });
    read_until(&mut reader, &mut tally, |t| t.stopped >= containers).await?;
    let down = down_start.elapsed();
    // Before anything below allocates (the fake's snapshots are large).
    let peak_rss = vm_mb("VmHWM");
    let cpu_end = cpu_seconds();
    report.put("load_after", load_average());
    stop_sampling.store(true, Ordering::Relaxed);
    put_sampled(&mut report, sampling.await.map_err(|e| e.to_string())?, up);
    let down_commits = stats.commits.load(Ordering::Relaxed) - commits_before_down;
    let stops_answered = stops.await.map_err(|e| e.to_string())?.map_err(|e| format!("stop_task: {e}"))?;

    // Nothing more is to come (cleanup waits 3 hours): anything read now is a repeat.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_extra = tally.transitions();
    while let Some(item) = reader.try_next() {
        tally.count(item);
    }
    let extra = tally.transitions() - before_extra;
    let transitions = tally.transitions() - extra;

    report.put("tasks", n);
    report.put("containers", containers);
    put_timing(&mut report, &Timing { up, down, up_transitions, transitions, cpu: (cpu_start, cpu_end) });
    report.put("adds_answered_s", format!("{:.3}", (adds_answered - start).as_secs_f64()));
    report.put("stops_answered_s", format!("{:.3}", (stops_answered - down_start).as_secs_f64()));
    report.put("peak_rss_mb", format!("{peak_rss:.1}"));
    let commits = stats.commits.load(Ordering::Relaxed);
    report.put("group_commits", commits);
    report.put("up_commits", up_commits);
    report.put("down_commits", down_commits);
    report.put("empty_saves", stats.empty.load(Ordering::Relaxed));
    let per_commit = |v: u64| format!("{:.1}", v as f64 / commits.max(1) as f64);
    report.put("changes_per_commit", per_commit(stats.changes.load(Ordering::Relaxed)));
    report.put("tasks_per_commit", per_commit(stats.task_records.load(Ordering::Relaxed)));
    report.put("save_s", format!("{:.3}", stats.nanos.load(Ordering::Relaxed) as f64 / 1e9));
    report.put("max_save_ms", format!("{:.1}", stats.max_nanos.load(Ordering::Relaxed) as f64 / 1e6));
    if let Some(memory) = &memory {
        report.put("memory_saves", memory.saves());
    }
    report.put("pulled", tally.pulled);
    report.put("created", tally.created);
    report.put("running", tally.running);
    report.put("stopped", tally.stopped);
    report.put("other", tally.other);
    report.put("gaps", tally.gaps);
    report.put("extra", extra);
    report.put("task_running", tally.task_running);
    report.put("task_stopped", tally.task_stopped);
    report.put("events", "(read by the engine)");
    let once = put_fake_totals(&mut report, &fake, containers);

    let mut engine = Arc::into_inner(engine).ok_or("the engine is still shared")?;
    let shutdown = engine.shutdown().await;
    if let Some((_root, data)) = &dir {
        let bytes = std::fs::metadata(data.join(STATE_FILE)).map(|m| m.len()).unwrap_or(0);
        report.put("store_bytes", bytes);
        report.put("fs", filesystem(data));
        report.put("dir", data.display());
    }

    let mut problems = Vec::new();
    let expected = containers * TRANSITIONS_PER_CONTAINER;
    if transitions != expected {
        problems.push(format!("{transitions} transitions, expected {expected}"));
    }
    let statuses =
        [("PULLED", tally.pulled), ("CREATED", tally.created), ("RUNNING", tally.running), ("STOPPED", tally.stopped)];
    for (what, got) in statuses {
        if got != containers {
            problems.push(format!("{got} {what} changes, expected {containers}"));
        }
    }
    if tally.other > 0 || tally.gaps > 0 || extra > 0 {
        problems.push(format!("{} other changes, {} gaps, {extra} changes after the run", tally.other, tally.gaps));
    }
    if tally.task_running != n || tally.task_stopped != n {
        problems.push(format!("task changes: {} RUNNING, {} STOPPED", tally.task_running, tally.task_stopped));
    }
    if !once {
        problems.push("the fake's containers were not each created and started exactly once".into());
    }
    if let Err(e) = shutdown {
        problems.push(format!("shutdown: {e}"));
    }
    put_verdict(&mut report, &problems);
    Ok(report)
}

/// Events of this instance's containers seen by the reference run's reader.
#[derive(Debug, Default)]
struct Seen {
    events: AtomicU64,
    started: AtomicU64,
    died: AtomicU64,
}

/// Wait until `done` holds (polling each millisecond); an error after [`STALL`].
async fn wait_for(what: &str, done: impl Fn() -> bool) -> Result<(), String> {
    let give_up = Instant::now() + STALL;
    while !done() {
        if Instant::now() > give_up {
            return Err(format!("{what}: not after {}s", STALL.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// The reference: the Docker calls the engine makes for each container, with the create
/// requests it would send, and a reader of the event stream that maps each event as the
/// engine's watcher does; no engine, no state, no store.
async fn run_fake(n: usize) -> Result<Report, String> {
    const INSTANCE: &str = "0123456789abcdef0123456789abcdef";
    let mut report = Report::default();
    let fake = fake();
    let containers = n * CONTAINERS_PER_TASK;
    let seen = Arc::new(Seen::default());
    let mut events = fake.container_events(None).await.map_err(|e| e.to_string())?;
    let counter = Arc::clone(&seen);
    let reader = tokio::spawn(async move {
        while let Some(Ok(event)) = events.next().await {
            if event.attributes.get(labels::INSTANCE).map(String::as_str) != Some(INSTANCE) {
                continue;
            }
            let two_labels = |key: &str| key == labels::TASK_ARN || key == labels::CONTAINER_NAME;
            let Some(ce) = container_event_with_labels(&event, two_labels) else { continue };
            counter.events.fetch_add(1, Ordering::Relaxed);
            match ce.kind {
                EventKind::Started => counter.started.fetch_add(1, Ordering::Relaxed),
                EventKind::Stopped { exit_code: Some(_) } => counter.died.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
    });
    // Tasks are made from one parsed task (parsing each would cost more than the fake).
    let template = task(0, false)?;
    let template = &template;
    let no_secrets = BTreeMap::new();
    let no_secrets = &no_secrets;
    report.put("rss_start_mb", format!("{:.1}", vm_mb("VmRSS")));
    report.put("load_before", load_average());

    // Up: for each task (IN_FLIGHT at a time) its create requests, then for each container
    // pull, create, start and inspect, as the engine's jobs do.
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let stop_sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampling = sampler(start, Arc::clone(&stop_sampling));
    let docker = &fake;
    let ids: Vec<Vec<String>> = stream::iter((0..n).map(Ok))
        .map_ok(|i| async move {
            let mut task = template.clone();
            task.arn = generated_arn(ARN_BASE + i as u128);
            for k in 0..task.containers.len() {
                let name = docker_name(&task, &task.containers[k], (i * CONTAINERS_PER_TASK + k) as u64);
                task.containers[k].docker_name = Some(name);
            }
            let mut ids = Vec::with_capacity(CONTAINERS_PER_TASK);
            for c in &task.containers {
                let config = container_config(&task, c, INSTANCE, no_secrets, &Default::default(), &Default::default())
                    .map_err(|e| e.0)?;
                docker.pull_image(&config.image, None, &|_| {}).await.map_err(|e| e.to_string())?;
                let id = docker.create_container(&config).await.map_err(|e| e.to_string())?;
                docker.start_container(&id).await.map_err(|e| e.to_string())?;
                docker.inspect_container(&id).await.map_err(|e| e.to_string())?;
                ids.push(id);
            }
            Ok::<_, String>(ids)
        })
        .try_buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    wait_for("every start event read", || seen.started.load(Ordering::Relaxed) >= containers as u64).await?;
    let up = start.elapsed();
    report.put("rss_up_mb", format!("{:.1}", vm_mb("VmRSS")));

    // Down: stop and inspect each container.
    let down_start = Instant::now();
    stream::iter(ids.iter().map(Ok))
        .try_for_each_concurrent(IN_FLIGHT, |task_ids| async move {
            for id in task_ids {
                docker.stop_container(id, Duration::from_secs(30)).await.map_err(|e| e.to_string())?;
                docker.inspect_container(id).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        })
        .await?;
    wait_for("every die event read", || seen.died.load(Ordering::Relaxed) >= containers as u64).await?;
    let down = down_start.elapsed();
    let peak_rss = vm_mb("VmHWM");
    let cpu_end = cpu_seconds();
    report.put("load_after", load_average());
    stop_sampling.store(true, Ordering::Relaxed);
    put_sampled(&mut report, sampling.await.map_err(|e| e.to_string())?, up);
    reader.abort();

    report.put("tasks", n);
    report.put("containers", containers);
    let (up_transitions, transitions) = (containers * 3, containers * TRANSITIONS_PER_CONTAINER);
    put_timing(&mut report, &Timing { up, down, up_transitions, transitions, cpu: (cpu_start, cpu_end) });
    report.put("peak_rss_mb", format!("{peak_rss:.1}"));
    report.put("events", seen.events.load(Ordering::Relaxed));
    let once = put_fake_totals(&mut report, &fake, containers);
    let problems = if once { vec![] } else { vec!["the fake's containers were not each created once".to_string()] };
    put_verdict(&mut report, &problems);
    Ok(report)
}
