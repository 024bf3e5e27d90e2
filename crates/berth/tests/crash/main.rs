//! The crash test of berth (issue "Crash safety"): the real `berth daemon` on the real
//! Docker daemon, killed again and again while it drives 30 tasks of mixed shapes, must
//! end with every task at its desired status, exactly one Docker container per task
//! container (never a duplicate, never one that ran twice), a store that loads, and a
//! change log a reader followed across every restart without a gap, a duplicate or a hole.
//!
//! The scenario (about 45 s on 2 cores):
//! - one data directory (its instance id written beforehand, so that Docker's own event
//!   record, `docker events` filtered on that instance, runs from the very start);
//!   `BERTH_ORPHAN_GRACE=1h`, so that a duplicate, if one were made, stays to be seen;
//! - 30 tasks in the seed payload shape, each with a fixed arn (a resubmit is an update of
//!   the same task; tagged with the run, so that runs side by side on one daemon never
//!   share a volume name), 16 MiB and a 1 s stop timeout per container: links,
//!   volumesFrom, a task-scoped empty volume, dependsOn START / COMPLETE / SUCCESS,
//!   essential containers exiting on their own (0 and 3), non-essential ones exiting, long
//!   runners, awsvpc (with berth's internal pause container);
//! - every daemon reaches Docker through a proxy (`berth-agent/tests/support/proxy.rs`);
//! - 32 rounds, each a daemon start ended by a kill: 16 with a crash point armed
//!   (`BERTH_CRASH_AT`, each of the 4 points 4 times, with n = 1, 2, 3 and one more from
//!   1–3), alternating with 16 ended by SIGKILL: 8 at a random moment 100 ms – 3 s after
//!   start, 8 the moment the daemon sent its first create or start, which the proxy holds
//!   back from Docker until the next daemon sends the same create or start (then the held
//!   one reaches Docker 5 ms before it: a name Docker has reserved but cannot yet show) or
//!   2 s passed (a call Docker does after the next daemon looked).
//!   Submits are spread over the crash rounds 0–28, two tasks each (so that every armed
//!   round has creates and starts to crash in), and stops of 7 tasks over rounds 13–21;
//!   anything not answered is sent again in the next round (at the latest at the final
//!   start);
//! - an event reader follows `GET /v1/events?since=<last seen>` whenever the daemon is up;
//! - a last normal start, where every task must reach its desired status (≤ 90 s).
//!
//! The checks, one function per property, all on the one run (`scenario.rs`): (1) every
//! task at its desired status, each container at its expected status and exit code;
//! (2) at most one Docker container per (task, container) label pair,
//! the one berth's DockerId names; (3) no container of the instance unaccounted for, no
//! pair ever created twice in Docker's record, nothing removed; (4) no container started
//! twice in Docker's record; (5) SIGTERM ends the daemon cleanly and it starts again on the
//! same state; (6) the reader saw no gap marker, Seq 1, 2, 3, ... across reconnections,
//! no (task, container, status) twice, exactly one STOPPED change per STOPPED container,
//! each container's last change equal to its final status, and the same changes as the
//! whole log read at the end; (7) nothing running in Docker that berth shows STOPPED or does
//! not know. Every crash point must have been reached at least once.
//!
//! `BERTH_CRASH_RUNS=N` makes N runs of the scenario in a row (each on a new data
//! directory), for a long run (BENCHMARKS.md).
//! Every property's findings are gathered, then reported together in one failure.
//!
//! Crash points exist only in this test build of the binary (the cargo feature
//! `crash-points`, turned on by this crate's dev-dependency on berth-store);
//! `crash_points_are_in_test_builds_only` checks that a normal build of berth has none.
//!
//! `BERTH_CRASH_SEED` replays a schedule (the seed is printed). On failure every finding is
//! listed, with Docker's record and the daemon's lines for each container in question, and
//! the directory with every round's daemon stderr is kept (its path printed). Needs
//! `scripts/test-env.sh` (Docker and `busybox:latest`); a missing piece fails, never skips.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

#[path = "../../../berth-agent/tests/support/proxy.rs"]
mod proxy;
mod restart;
mod scenario;
#[path = "../support/mod.rs"]
mod support;

use berth_docker::{ContainerSummary, labels};
use berth_store::crash::POINTS;
use scenario::{
    CONVERGE, Findings, Kind, Plan, Round, Run, STOP, Seen, TURNS, attr, converged, docker_ids, plain, round_of,
    sigterm, spawn_daemon, tail, views, wait_exit, wait_up,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant};

/// How many runs of the scenario one test makes: `BERTH_CRASH_RUNS`, 1 unless set (a long
/// run: BENCHMARKS.md).
fn runs() -> usize {
    std::env::var("BERTH_CRASH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_survives_being_killed_again_and_again() {
    let (runs, began) = (runs(), Instant::now());
    let mut kills = 0;
    for n in 1..=runs {
        kills += one_run().await;
        eprintln!("crash test: run {n} of {runs} passed; {kills} kills so far, {:.0} s", began.elapsed().as_secs_f64());
    }
}

/// One run of the scenario with every check; panics with every finding on failure, else
/// returns how many times the daemon was killed.
async fn one_run() -> usize {
    let mut run = Run::start().await;
    run.kill_loop().await;
    let end = run.final_start().await;
    let mut f = std::mem::take(&mut run.findings);

    every_task_at_its_desired_status(&end, &mut f);
    let (log, log_last) = run.whole_log_read().await;
    let listed = run.listed().await;
    one_docker_container_per_task_container(&run.plans, &end, &listed, &mut f);
    // Docker's listing lags its events (a container that just died may still be listed
    // running): a container must be listed running twice, 3 s apart, to count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = run.listed().await;
    nothing_running_that_berth_shows_stopped(&end, &listed, &later, &mut f);
    let seen = run.stop_reader();
    changes_read_without_gap_or_repeat(&seen, &log, log_last, &end, &mut f);
    the_store_loads_after_sigterm(&mut run, &end, &mut f).await;
    let record = run.docker_record().await;
    let counts = docker_created_and_started_each_container_once(&record, &run.rounds, &listed, &mut f);
    let details = suspect_details(&f, &end, &record, &run.rounds);
    let reached_by = every_crash_point_reached(&run.rounds, &mut f);

    // The summary.
    let rounds = &run.rounds;
    let sigkills = rounds.iter().filter(|r| r.killed).count();
    let held = rounds.iter().filter(|r| r.held).count();
    let armed_not_reached: Vec<String> = rounds
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.kind, Kind::Crash(..)) && r.reached.is_none())
        .map(|(i, r)| format!("{i}:{:?}", r.kind))
        .collect();
    let seed = run.seed;
    eprintln!(
        "crash test summary (seed {seed}): {} rounds, {} kills: {sigkills} by SIGKILL ({} in SIGKILL rounds, {} \
         armed rounds whose point was not reached), {} at a crash point {reached_by:?}; armed but not reached: \
         {armed_not_reached:?}; {held} killed with a create or start held back (proxy: {:?}); API up in {} rounds; submits sent {} (30 tasks), stops sent {} (7 tasks); reader: \
         {} connections, {} changes; Docker: {counts:?}; {} containers at the end; kill loop {:.1} s, convergence \
         {:.1} s, total {:.1} s",
        rounds.len(),
        rounds.iter().filter(|r| r.killed || r.reached.is_some()).count(),
        rounds.iter().filter(|r| r.killed && matches!(r.kind, Kind::Kill(_))).count(),
        rounds.iter().filter(|r| r.killed && matches!(r.kind, Kind::Crash(..))).count(),
        reached_by.values().sum::<usize>(),
        run.proxy.counts(),
        rounds.iter().filter(|r| r.up).count(),
        run.driver.submit_sends,
        run.driver.stop_sends,
        seen.connections,
        seen.changes.len(),
        listed.len(),
        run.loop_time.as_secs_f64(),
        end.converge_time.as_secs_f64(),
        run.began.elapsed().as_secs_f64(),
    );
    assert!(
        f.failures.is_empty(),
        "berth did not survive the crash test (seed {seed}):\n{}\n\n{details}",
        f.failures.join("\n")
    );
    rounds.iter().filter(|r| r.killed || r.reached.is_some()).count()
}

/// (1) Every task reached its desired status, each container its expected status and exit
/// code.
fn every_task_at_its_desired_status(end: &scenario::End, f: &mut Findings) {
    for (arn, why) in &end.pending {
        f.failures.push(format!("(1) task {arn} did not reach its desired status within {CONVERGE:?}: {why}"));
        if let Some(view) = end.views.get(arn) {
            for c in view["Containers"].as_array().cloned().unwrap_or_default() {
                f.suspects.insert((arn.clone(), c["Name"].as_str().unwrap_or("").to_owned()));
            }
        }
    }
}

/// (2) At most one Docker container per (task, container) label pair, the one berth's
/// DockerId names; (3) no container of the instance unaccounted for.
fn one_docker_container_per_task_container(
    plans: &[Plan],
    end: &scenario::End,
    listed: &[ContainerSummary],
    f: &mut Findings,
) {
    let ids = &end.ids;
    let mut by_pair: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for c in listed {
        let arn = c.labels.get(labels::TASK_ARN).cloned().unwrap_or_default();
        let name = c.labels.get(labels::CONTAINER_NAME).cloned().unwrap_or_default();
        by_pair.entry((arn, name)).or_default().push(c.id.clone());
    }
    let awsvpc: BTreeSet<&str> = plans.iter().filter(|p| p.shape == "awsvpc").map(|p| p.arn.as_str()).collect();
    for ((arn, name), found) in &by_pair {
        if found.len() > 1 {
            f.failures.push(format!("(2) task {arn} container {name}: {} Docker containers: {found:?}", found.len()));
            f.suspects.insert((arn.clone(), name.clone()));
        }
        let internal = name == "~pause" && awsvpc.contains(arn.as_str());
        match ids.get(&(arn.clone(), name.clone())) {
            Some(id) if found.contains(id) => {}
            Some(id) => {
                f.failures
                    .push(format!("(3) task {arn} container {name}: Docker holds {found:?}, berth's DockerId is {id}"));
                f.suspects.insert((arn.clone(), name.clone()));
            }
            None if internal => {}
            None => {
                f.failures.push(format!(
                    "(3) Docker container(s) {found:?} labelled task {arn} container {name}: no such task container \
                     with a DockerId in berth"
                ));
                f.suspects.insert((arn.clone(), name.clone()));
            }
        }
    }
    for ((arn, name), id) in ids {
        if !by_pair.contains_key(&(arn.clone(), name.clone())) {
            f.failures.push(format!("(2) task {arn} container {name}: berth's DockerId {id} is not in Docker"));
            f.suspects.insert((arn.clone(), name.clone()));
        }
    }
    for arn in &awsvpc {
        let pause = by_pair.get(&((*arn).to_owned(), "~pause".to_owned())).map_or(0, Vec::len);
        if pause > 1 {
            f.failures.push(format!("(2) awsvpc task {arn}: {pause} pause containers"));
        }
    }
}

/// (7) Nothing runs in Docker that berth shows STOPPED (or shows no container for): a late
/// create or start of a killed daemon, done by Docker after the next daemon looked, is
/// found and stopped. Running means listed running in both `listed` and `later`.
fn nothing_running_that_berth_shows_stopped(
    end: &scenario::End,
    listed: &[ContainerSummary],
    later: &[ContainerSummary],
    f: &mut Findings,
) {
    let still: BTreeSet<&str> = later.iter().filter(|c| c.state == "running").map(|c| c.id.as_str()).collect();
    for c in listed.iter().filter(|c| c.state == "running" && still.contains(c.id.as_str())) {
        let arn = c.labels.get(labels::TASK_ARN).cloned().unwrap_or_default();
        let name = c.labels.get(labels::CONTAINER_NAME).cloned().unwrap_or_default();
        let shown =
            end.views.get(&arn).and_then(|view| {
                view["Containers"].as_array()?.iter().find(|v| v["Name"].as_str() == Some(name.as_str())).map(|v| {
                    (v["KnownStatus"].as_str().unwrap_or("?").to_owned(), v["DockerId"].as_str() == Some(&c.id))
                })
            });
        // berth's own pause container of an awsvpc task is no visible container: it runs
        // while its task does.
        let pause_of_running =
            name == "~pause" && end.views.get(&arn).is_some_and(|v| v["KnownStatus"].as_str() == Some("RUNNING"));
        if !matches!(&shown, Some((status, true)) if status == "RUNNING") && !pause_of_running {
            f.failures.push(format!(
                "(7) Docker container {} (task {arn} container {name}) is running; berth shows {shown:?} (status, \
                 same id)",
                c.id
            ));
            f.suspects.insert((arn, name));
        }
    }
}

/// (6) The changes the reader saw across every reconnection: no gap marker, Seq 1, 2, 3,
/// ..., no (task, container, status) twice, the whole log's changes, in order, one STOPPED
/// change per STOPPED container, each container's last change its final status; a hidden
/// (pause) container named only by the STOPPED change that made its task STOPPED.
fn changes_read_without_gap_or_repeat(
    seen: &Seen,
    log: &[Value],
    log_last: u64,
    end: &scenario::End,
    f: &mut Findings,
) {
    for odd in &seen.odd {
        f.failures.push(format!("(6) the event stream sent a line that is not a change (a gap?): {odd}"));
    }
    let mut seqs = BTreeSet::new();
    let mut triples: BTreeMap<(String, String, String), Vec<u64>> = BTreeMap::new();
    let mut statuses: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    // Containers with a change that is not the one a hidden container may make: its STOPPED
    // when that alone makes the task STOPPED (docs/task-status.md).
    let mut not_task_stops: BTreeSet<(String, String)> = BTreeSet::new();
    for (k, c) in seen.changes.iter().enumerate() {
        let seq = c["Seq"].as_u64().unwrap_or(0);
        if seq != k as u64 + 1 {
            f.failures.push(format!("(6) change #{} seen has Seq {seq} (not consecutive): {c}", k + 1));
        }
        if !seqs.insert(seq) {
            f.failures.push(format!("(6) Seq {seq} seen twice: {c}"));
        }
        let arn = c["TaskArn"].as_str().unwrap_or("").to_owned();
        let name = c["ContainerName"].as_str().unwrap_or("").to_owned();
        let status = c["Status"].as_str().unwrap_or("").to_owned();
        if status != "STOPPED" || c["TaskStatus"] != "STOPPED" {
            not_task_stops.insert((arn.clone(), name.clone()));
        }
        triples.entry((arn.clone(), name.clone(), status.clone())).or_default().push(seq);
        statuses.entry((arn, name)).or_default().push(status);
    }
    for ((arn, name, status), at) in &triples {
        if at.len() > 1 {
            f.failures
                .push(format!("(6) task {arn} container {name}: {status} changed {} times (Seq {at:?})", at.len()));
            f.suspects.insert((arn.clone(), name.clone()));
        }
    }
    if seen.changes != log {
        f.failures.push(format!(
            "(6) the reader saw {} changes (last Seq {}), the whole log holds {} (last Seq {log_last}); first \
             difference at #{}",
            seen.changes.len(),
            seen.last,
            log.len(),
            seen.changes.iter().zip(log).position(|(a, b)| a != b).unwrap_or(seen.changes.len().min(log.len()))
        ));
    }
    let order = ["NONE", "PULLED", "CREATED", "RUNNING", "STOPPED"];
    let rank = |s: &str| order.iter().position(|o| *o == s);
    let mut visible = BTreeSet::new();
    for (arn, view) in &end.views {
        for c in view["Containers"].as_array().cloned().unwrap_or_default() {
            let name = c["Name"].as_str().unwrap_or("").to_owned();
            let known = c["KnownStatus"].as_str().unwrap_or("").to_owned();
            visible.insert((arn.clone(), name.clone()));
            let changes = statuses.get(&(arn.clone(), name.clone())).cloned().unwrap_or_default();
            let stopped_changes = changes.iter().filter(|s| *s == "STOPPED").count();
            let want = usize::from(known == "STOPPED");
            if stopped_changes != want {
                f.failures.push(format!(
                    "(6) task {arn} container {name} is {known} at the end but the reader saw {stopped_changes} \
                     STOPPED changes (its changes: {changes:?})"
                ));
                f.suspects.insert((arn.clone(), name.clone()));
            }
            if !changes.windows(2).all(|w| rank(&w[0]) < rank(&w[1])) {
                f.failures.push(format!("(6) task {arn} container {name}: changes out of order: {changes:?}"));
                f.suspects.insert((arn.clone(), name.clone()));
            }
            if known != "NONE" && changes.last() != Some(&known) {
                f.failures.push(format!(
                    "(6) task {arn} container {name} is {known} at the end, its last change says {:?} ({changes:?})",
                    changes.last()
                ));
                f.suspects.insert((arn.clone(), name.clone()));
            }
        }
    }
    for (arn, name) in statuses.keys() {
        let key = (arn.clone(), name.clone());
        if !visible.contains(&key) && not_task_stops.contains(&key) {
            f.failures.push(format!(
                "(6) a change names task {arn} container {name}, which is no visible container (and the change \
                 is not its STOPPED that makes the task STOPPED)"
            ));
        }
    }
}

/// (5) The store loads: SIGTERM ends the final daemon cleanly, a new one starts on the same
/// state (the same DockerIds, no task moved), and SIGTERM ends it cleanly too.
async fn the_store_loads_after_sigterm(run: &mut Run, end: &scenario::End, f: &mut Findings) {
    let mut first = run.guard.daemon.take().unwrap();
    sigterm(&first);
    match wait_exit(&mut first, STOP).await {
        Some(status) if status.success() => {}
        other => f.failures.push(format!(
            "(5) the final daemon did not end cleanly on SIGTERM ({other:?}); stderr:\n{}",
            tail(&run.final_log, 30)
        )),
    }
    let _ = first.kill();
    let _ = first.wait();
    let again_log = run.log_path("final-2.log");
    run.guard.daemon = Some(spawn_daemon(&run.data, &run.proxy, None, &again_log));
    let up = tokio::time::timeout(scenario::START, wait_up(&run.api, run.guard.daemon.as_mut().unwrap())).await;
    if matches!(up, Ok(true)) {
        match views(&run.api, &run.plans).await {
            Ok(again) => {
                if docker_ids(&again) != end.ids {
                    f.failures.push("(5) after a restart, berth's DockerIds differ".into());
                }
                for p in &run.plans {
                    if let (Ok(()), Err(why)) = (converged(p, &end.views[&p.arn]), converged(p, &again[&p.arn])) {
                        f.failures.push(format!("(5) after a restart, task {} moved: {why}", p.arn));
                    }
                }
            }
            Err(e) => f.failures.push(format!("(5) after a restart: {e}")),
        }
        let mut second = run.guard.daemon.take().unwrap();
        sigterm(&second);
        match wait_exit(&mut second, STOP).await {
            Some(status) if status.success() => {}
            other => f.failures.push(format!(
                "(5) the restarted daemon did not end cleanly on SIGTERM ({other:?}); stderr:\n{}",
                tail(&again_log, 30)
            )),
        }
        let _ = second.kill();
        let _ = second.wait();
    } else {
        f.failures.push(format!("(5) the daemon did not start again after SIGTERM; stderr:\n{}", tail(&again_log, 40)));
    }
}

/// Docker's own record: (3) no (task, container) created twice, nothing removed, every
/// container at the end created in the record; (4) no container started twice. Returns the
/// count of each action, for the summary.
fn docker_created_and_started_each_container_once(
    record: &[Value],
    rounds: &[Round],
    listed: &[ContainerSummary],
    f: &mut Findings,
) -> BTreeMap<String, usize> {
    let mut creates: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    let mut starts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in record {
        let action = e["Action"].as_str().unwrap_or("").to_owned();
        let id = e["Actor"]["ID"].as_str().unwrap_or("").to_owned();
        let at = round_of(rounds, e["timeNano"].as_i64().map(i128::from).unwrap_or(0));
        *counts.entry(action.clone()).or_default() += 1;
        match action.as_str() {
            "create" => creates
                .entry((attr(e, labels::TASK_ARN).to_owned(), attr(e, labels::CONTAINER_NAME).to_owned()))
                .or_default()
                .push((id, at)),
            "start" => starts.entry(id).or_default().push(at),
            "destroy" => f.failures.push(format!(
                "(3) Docker removed container {id} (task {} container {}) in {at}: nothing should have been removed",
                attr(e, labels::TASK_ARN),
                attr(e, labels::CONTAINER_NAME)
            )),
            _ => {}
        }
    }
    for ((arn, name), made) in &creates {
        if made.len() > 1 {
            f.failures.push(format!("(3) Docker created task {arn} container {name} {} times: {made:?}", made.len()));
            f.suspects.insert((arn.clone(), name.clone()));
        }
    }
    for (id, at) in &starts {
        if at.len() > 1 {
            f.failures.push(format!("(4) Docker started container {id} {} times: {at:?}", at.len()));
        }
    }
    for c in listed {
        let pair = (
            c.labels.get(labels::TASK_ARN).cloned().unwrap_or_default(),
            c.labels.get(labels::CONTAINER_NAME).cloned().unwrap_or_default(),
        );
        if !creates.get(&pair).is_some_and(|m| m.iter().any(|(id, _)| *id == c.id)) {
            f.failures.push(format!("the Docker event record misses the create of {} ({pair:?})", c.id));
        }
    }
    counts
}

/// Every crash point was reached at least once (else the scenario no longer crashes
/// there). Returns how many rounds reached each, for the summary.
fn every_crash_point_reached(rounds: &[Round], f: &mut Findings) -> BTreeMap<&'static str, usize> {
    let mut reached_by: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rounds {
        if let Some(p) = &r.reached {
            *reached_by.entry(POINTS.iter().find(|x| **x == p.as_str()).copied().unwrap_or("?")).or_default() += 1;
        }
    }
    for point in POINTS {
        if !reached_by.contains_key(point) {
            f.failures.push(format!(
                "crash point {point} was armed {TURNS} times and never reached: the scenario no longer crashes there"
            ));
        }
    }
    reached_by
}

/// Details for every (task, container) in question: Docker's record, berth's view and the
/// daemon's lines about the task.
fn suspect_details(f: &Findings, end: &scenario::End, record: &[Value], rounds: &[Round]) -> String {
    let mut details = String::new();
    for (arn, name) in &f.suspects {
        let _ = writeln!(details, "--- task {arn} container {name}");
        if let Some(view) = end.views.get(arn) {
            let _ = writeln!(details, "berth's view of the task: {view}");
        }
        for e in record {
            if attr(e, labels::TASK_ARN) == arn && attr(e, labels::CONTAINER_NAME) == name {
                let at = round_of(rounds, e["timeNano"].as_i64().map(i128::from).unwrap_or(0));
                let _ = writeln!(
                    details,
                    "docker: {at}: {} {} exitCode={}",
                    e["Action"].as_str().unwrap_or(""),
                    e["Actor"]["ID"].as_str().unwrap_or(""),
                    attr(e, "exitCode")
                );
            }
        }
        // The daemon's lines about the task: at most 3 a round, 40 in all.
        let short = arn.rsplit('/').next().unwrap_or(arn);
        let mut budget = 40usize;
        for (r, round) in rounds.iter().enumerate() {
            let text = plain(&fs::read_to_string(&round.log).unwrap_or_default());
            for line in text.lines().filter(|l| l.contains(short)).take(3.min(budget)) {
                let _ = writeln!(details, "round {r} stderr: {line}");
                budget -= 1;
            }
        }
    }
    details
}

/// Crash points are compiled into this test build of berth (the dev-dependency on
/// berth-store with `crash-points`), and into no normal build: cargo's feature resolution
/// for `berth` without its dev-dependencies (what `cargo build`, `cargo build --release` and
/// `cargo install` use) gives berth-store no `crash-points`, and with them it does.
#[test]
fn crash_points_are_in_test_builds_only() {
    // Checked when this test compiles: the berth test build has crash points.
    const { assert!(berth_store::crash::ENABLED, "the berth test build has crash points (crates/berth/Cargo.toml)") };
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let tree = |edges: &str| {
        let started = Instant::now();
        let out = std::process::Command::new(&cargo)
            .args(["tree", "--manifest-path", manifest, "-p", "berth", "--locked", "--offline"])
            .args(["-e", edges, "-i", "berth-store"])
            .output()
            .unwrap_or_else(|e| panic!("cargo tree: {e}"));
        assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(60));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let normal = tree("features,normal,build");
    assert!(
        normal.contains("berth-store feature \"default\"") && !normal.contains("crash-points"),
        "a normal build of berth must not have crash points:\n{normal}"
    );
    let test = tree("features,all");
    assert!(test.contains("berth-store feature \"crash-points\""), "the test build must have crash points:\n{test}");
}
