//! [`FakeDocker`]: the in-memory daemon, its test controls and its `DockerClient` face.

use crate::behaviour::{Behaviour, has_health_check};
use crate::fault::{Fault, FaultMode, Op};
use crate::snapshot::ContainerSnapshot;
use crate::state::{Started, State};
use async_trait::async_trait;
use berth_docker::auth::RegistryAuth;
use berth_docker::{
    ContainerConfig, ContainerInfo, ContainerSummary, DockerClient, DockerError, DockerEvent, ErrorKind, EventStream,
    ImageSummary, LogOptions, LogSource, LogStream, VolumeConfig,
};
use berth_docker::{ProgressSink, PullProgress};
use berth_model::HealthStatus;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

/// An in-memory Docker daemon behind [`DockerClient`], behaving as berth sees the real
/// one through bollard, with controls for tests: container behaviour, outside kills and
/// exits, health, images, fault injection, and counters.
///
/// Cheap to clone (clones share one daemon) and safe to use from many tasks at once. Its
/// clock is `tokio::time` mapped onto the wall clock at construction, so under a paused
/// test runtime event times and `started_at` advance with `tokio::time::advance`.
/// Timed behaviour (exits, health) runs in tasks spawned on the current tokio runtime
/// by `start_container`.
#[derive(Clone)]
pub struct FakeDocker {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    wall: DateTime<Utc>,
    base: tokio::time::Instant,
}

/// How a call that passed its faults proceeds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Do the work, then fail with this kind.
    AfterWork(ErrorKind),
}

/// A call that entered the pipeline: how it proceeds, and its place among the calls in
/// flight (given back when the call answers or is dropped).
struct Entered {
    mode: Mode,
    _in_flight: InFlight,
}

/// One call in flight, counted in [`State::in_flight`] until dropped.
struct InFlight {
    inner: Arc<Inner>,
    op: Op,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = state.in_flight.get_mut(&self.op) {
            *n = n.saturating_sub(1);
        }
    }
}

/// A timed step of one run.
#[derive(Clone, Copy)]
enum Step {
    Exit(i64),
    Healthy,
}

impl Default for FakeDocker {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FakeDocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeDocker")
            .field("containers", &state.containers().count())
            .field("images", &state.list_images().len())
            .field("unreachable", &state.unreachable)
            .finish_non_exhaustive()
    }
}

impl FakeDocker {
    /// An empty daemon: no images, containers or volumes, no faults, default behaviour.
    pub fn new() -> Self {
        FakeDocker {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new()),
                wall: Utc::now(),
                base: tokio::time::Instant::now(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fake's clock: the wall clock at construction plus `tokio::time` elapsed since.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.inner.base);
        self.inner.wall + chrono::TimeDelta::from_std(elapsed).unwrap_or(chrono::TimeDelta::MAX)
    }

    // --- behaviour ------------------------------------------------------------------

    /// What each started container does from now on (decided at every start).
    pub fn set_behaviour(&self, f: impl Fn(&ContainerConfig) -> Behaviour + Send + Sync + 'static) {
        self.lock().behaviour = Arc::new(f);
    }

    /// Back to [`crate::default_behaviour`].
    pub fn reset_behaviour(&self) {
        self.lock().behaviour = Arc::new(crate::default_behaviour);
    }

    /// Act out `behaviour` for run `run` of container `seq`: each step happens only if
    /// the container is still running in that run.
    fn schedule(&self, seq: u64, run: u64, behaviour: Behaviour, health_check: bool) {
        let mut steps: Vec<(Duration, Step)> = Vec::with_capacity(2);
        if let Some((after, code)) = behaviour.exit_after {
            steps.push((after, Step::Exit(code)));
        }
        if let Some(after) = behaviour.healthy_after.filter(|_| health_check) {
            steps.push((after, Step::Healthy));
        }
        if steps.is_empty() {
            return;
        }
        // Exit first when both fall due together.
        steps.sort_by_key(|(after, step)| (*after, matches!(step, Step::Healthy)));
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            for (after, step) in steps {
                tokio::time::sleep_until(started + after).await;
                let Some(inner) = weak.upgrade() else { return };
                let fake = FakeDocker { inner };
                let now = fake.now();
                let mut state = fake.lock();
                if !state.in_run(seq, run) {
                    return;
                }
                match step {
                    Step::Exit(code) => {
                        state.exit(seq, code, now);
                    }
                    Step::Healthy => {
                        state.set_health(seq, HealthStatus::Healthy, now);
                    }
                }
            }
        });
    }

    // --- outside events -------------------------------------------------------------

    /// The container dies as if killed from outside: events `kill` (signal `code - 128`
    /// when above 128, else 9) and `die` with `code`. False if it was not running.
    pub fn kill(&self, id_or_name: &str, exit_code: i64) -> bool {
        let now = self.now();
        let mut state = self.lock();
        let signal = if exit_code > 128 { exit_code - 128 } else { 9 };
        state.resolve(id_or_name).is_some_and(|seq| state.kill(seq, signal, exit_code, now))
    }

    /// The container exits on its own with `code`: event `die`. False if it was not running.
    pub fn exit(&self, id_or_name: &str, code: i64) -> bool {
        let now = self.now();
        let mut state = self.lock();
        state.resolve(id_or_name).is_some_and(|seq| state.exit(seq, code, now))
    }

    /// The running container's health check reports `status`: event
    /// `health_status: healthy|unhealthy|starting` and inspect shows it. False if it is
    /// not running or has no health check.
    pub fn set_health(&self, id_or_name: &str, status: HealthStatus) -> bool {
        let now = self.now();
        let mut state = self.lock();
        state.resolve(id_or_name).is_some_and(|seq| state.set_health(seq, status, now))
    }

    // --- output ---------------------------------------------------------------------

    /// The container (by id or name, in any state) writes `bytes` to `source`: kept for
    /// `container_logs`, and delivered at once to the streams following it. Nothing
    /// happens when there is no such container.
    pub fn write_output(&self, target: &str, source: LogSource, bytes: &[u8]) {
        let now = self.now();
        self.lock().write_output(target, source, bytes, now);
    }

    // --- images and volumes -----------------------------------------------------------

    /// Make `reference` present locally (`busybox` and `busybox:latest` are one image).
    pub fn add_image(&self, reference: &str) {
        let now = self.now();
        self.lock().add_image(reference, now);
    }

    /// Make `reference` pullable: a pull makes it present.
    pub fn add_registry_image(&self, reference: &str) {
        self.lock().add_registry_image(reference);
    }

    /// Drop the local copy of `reference` (or id) as if deleted behind berth's back, even
    /// while containers use it (no call counted, no checks); false if it was not present.
    /// The trait's [`DockerClient::remove_image`] is Docker's own, checked removal.
    pub fn forget_image(&self, reference: &str) -> bool {
        self.lock().forget_image(reference)
    }

    /// Whether `reference` is present locally.
    pub fn has_image(&self, reference: &str) -> bool {
        self.lock().has_image(reference)
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> Vec<VolumeConfig> {
        self.lock().volumes()
    }

    /// Whether the volume exists.
    pub fn has_volume(&self, name: &str) -> bool {
        self.lock().has_volume(name)
    }

    // --- snapshots and counters -------------------------------------------------------

    /// Every container, in creation order.
    pub fn containers(&self) -> Vec<ContainerSnapshot> {
        self.lock().containers().map(|c| c.snapshot()).collect()
    }

    /// One container, by id or name.
    pub fn container(&self, id_or_name: &str) -> Option<ContainerSnapshot> {
        self.lock().container(id_or_name).map(|c| c.snapshot())
    }

    /// The retained event history (the last 256 events), oldest first.
    pub fn events(&self) -> Vec<DockerEvent> {
        self.lock().events.history()
    }

    /// How many event streams are open.
    pub fn open_event_streams(&self) -> usize {
        self.lock().events.subscribers()
    }

    /// How many calls of `op` were made (failed ones included).
    pub fn calls(&self, op: Op) -> u64 {
        self.lock().calls(op)
    }

    /// How many calls of `op` were made on `target` (failed ones included). A container
    /// call is counted under the container's name whether it named it by id or name; an
    /// image call under the normalized reference (the image's when it named one by id).
    pub fn calls_on(&self, op: Op, target: &str) -> u64 {
        self.lock().counted_on(op, target)
    }

    /// Creates asked for the container `name`.
    pub fn creates(&self, name: &str) -> u64 {
        self.calls_on(Op::CreateContainer, name)
    }

    /// Starts asked for the container `name` (by id or name).
    pub fn starts(&self, name: &str) -> u64 {
        self.calls_on(Op::StartContainer, name)
    }

    /// Stops asked for the container `name` (by id or name).
    pub fn stops(&self, name: &str) -> u64 {
        self.calls_on(Op::StopContainer, name)
    }

    /// Removals asked for the container `name` (by id or name).
    pub fn removes(&self, name: &str) -> u64 {
        self.calls_on(Op::RemoveContainer, name)
    }

    /// Pulls asked for `image`.
    pub fn pulls(&self, image: &str) -> u64 {
        self.calls_on(Op::PullImage, image)
    }

    /// How many starts ran an exited container again, over all containers (berth must
    /// never cause one).
    pub fn restarts_of_exited(&self) -> u64 {
        self.lock().exited_restarts
    }

    // --- faults -----------------------------------------------------------------------

    /// The next `times` calls of `op` whose target contains `target` (any target when
    /// `None`) fail with `kind` without doing anything; the error names the target. For
    /// container calls the target is matched against the id or name given and against the
    /// container's name. `ping`, `container_events` and `list_images` have the empty
    /// target; `list_containers` has its `key=value` pairs joined with commas.
    pub fn fail_next(&self, op: Op, target: Option<&str>, times: usize, kind: ErrorKind) {
        self.push_fault(op, target, times, FaultMode::Fail(kind));
    }

    /// The next `times` calls of `op` on a matching target (as [`Self::fail_next`]) do
    /// their work and then answer `ErrorKind::Timeout`: Docker did it, berth cannot know.
    pub fn time_out_next(&self, op: Op, target: Option<&str>, times: usize) {
        self.push_fault(op, target, times, FaultMode::AfterWork(ErrorKind::Timeout));
    }

    /// The next `times` calls of `op` on a matching target do their work and then answer
    /// `ErrorKind::Lost`: the connection broke after the request reached Docker.
    pub fn lose_answer_next(&self, op: Op, target: Option<&str>, times: usize) {
        self.push_fault(op, target, times, FaultMode::AfterWork(ErrorKind::Lost));
    }

    fn push_fault(&self, op: Op, target: Option<&str>, times: usize, mode: FaultMode) {
        if times > 0 {
            self.lock().faults.push(Fault { op, filter: target.map(String::from), remaining: times, mode });
        }
    }

    /// Forget every pending fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every call of `op` waits `delay` (in `tokio::time`) before doing anything;
    /// `Duration::ZERO` removes the delay.
    pub fn delay(&self, op: Op, delay: Duration) {
        let mut state = self.lock();
        if delay.is_zero() {
            state.delays.remove(&op);
        } else {
            state.delays.insert(op, delay);
        }
    }

    /// Every call of `op` from now on waits, in flight, until [`Self::release_held`] or
    /// [`Self::stop_holding`] lets it go.
    pub fn hold(&self, op: Op) {
        self.lock().holds.entry(op).or_insert_with(|| tokio::sync::watch::channel(()).0);
    }

    /// The calls of `op` waiting now go on; later ones are still held.
    pub fn release_held(&self, op: Op) {
        if let Some(hold) = self.lock().holds.get(&op) {
            hold.send_replace(());
        }
    }

    /// Calls of `op` are no longer held; those waiting go on.
    pub fn stop_holding(&self, op: Op) {
        self.lock().holds.remove(&op);
    }

    /// How many calls of `op` are in flight now: entered (counted, reachable) and not yet
    /// answered, whether held, delayed or working.
    pub fn in_flight(&self, op: Op) -> usize {
        self.lock().in_flight.get(&op).copied().unwrap_or(0)
    }

    /// From now on, count the calls of `ops` in flight together: [`Self::max_in_flight`]
    /// is the most of them seen in flight at once (starting from those in flight now).
    pub fn track_in_flight(&self, ops: &[Op]) {
        let mut state = self.lock();
        state.tracked = ops.iter().copied().collect();
        state.max_tracked = state.tracked_in_flight();
    }

    /// The most calls of the operations given to [`Self::track_in_flight`] that were in
    /// flight at once since it was called (0 before).
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_tracked
    }

    /// The next `n` events reach no subscriber; they stay in the history, like events a
    /// stream missed.
    pub fn drop_events(&self, n: usize) {
        self.lock().events.drop_next(n);
    }

    /// Every open event stream ends with a `Transient` error.
    pub fn cut_event_streams(&self) {
        self.lock().events.cut("unexpected EOF");
    }

    /// The gateway `network_gateway("bridge")` gives (none by default).
    pub fn set_bridge_gateway(&self, gateway: Option<std::net::Ipv4Addr>) {
        self.lock().bridge_gateway = gateway;
    }

    /// While unreachable, every call (`container_events` included) fails `Unreachable`
    /// "connection refused" (the call reaches nothing and does nothing); becoming unreachable also ends every open event stream with a
    /// `Transient` error, as a daemon going away does. Containers keep running.
    pub fn set_unreachable(&self, unreachable: bool) {
        let mut state = self.lock();
        if unreachable && !state.unreachable {
            state.events.cut("connection reset by peer");
        }
        state.unreachable = unreachable;
    }

    // --- the call pipeline ------------------------------------------------------------

    /// Count the call, then fail it if unreachable; else it is in flight (until the
    /// returned [`Entered`] is dropped, answered or cancelled): wait while its operation is
    /// held, wait its delay, and apply the first pending fault it meets.
    async fn enter(&self, op: Op, target: &str) -> Result<Entered, DockerError> {
        let (in_flight, hold, delay) = {
            let mut state = self.lock();
            state.count(op, target);
            if state.unreachable {
                return Err(DockerError::new(ErrorKind::Unreachable, op.name(), target, "connection refused"));
            }
            *state.in_flight.entry(op).or_default() += 1;
            if state.tracked.contains(&op) {
                state.max_tracked = state.max_tracked.max(state.tracked_in_flight());
            }
            let in_flight = InFlight { inner: Arc::clone(&self.inner), op };
            // Subscribed under the lock: a release sent after this point reaches this call.
            let hold = state.holds.get(&op).map(tokio::sync::watch::Sender::subscribe);
            (in_flight, hold, state.delays.get(&op).copied())
        };
        if let Some(mut hold) = hold {
            // A release changes the value; an end of holding drops the sender: either way, go.
            let _ = hold.changed().await;
        }
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        // The lock is let go before `in_flight` may drop (its drop takes the lock).
        let fault = Self::fault(&mut self.lock(), op, target);
        Ok(Entered { mode: fault?, _in_flight: in_flight })
    }

    /// Apply the first pending fault the call meets.
    fn fault(state: &mut State, op: Op, target: &str) -> Result<Mode, DockerError> {
        if state.faults.is_empty() {
            return Ok(Mode::Normal);
        }
        let name = state.target_name(op, target);
        let Some(fault) = state.faults.iter_mut().find(|f| f.hits(op, target, name.as_deref())) else {
            return Ok(Mode::Normal);
        };
        fault.remaining -= 1;
        let mode = fault.mode;
        state.faults.retain(|f| f.remaining > 0);
        match mode {
            FaultMode::Fail(kind) => Err(DockerError::new(
                kind,
                op.name(),
                target,
                format!("fake docker: injected {kind:?} failure of {} on {target}", op.name()),
            )),
            FaultMode::AfterWork(kind) => Ok(Mode::AfterWork(kind)),
        }
    }

    fn finish<T>(entered: Entered, op: Op, target: &str, result: Result<T, DockerError>) -> Result<T, DockerError> {
        match entered.mode {
            Mode::Normal => result,
            Mode::AfterWork(kind) => Err(DockerError::new(
                kind,
                op.name(),
                target,
                format!("fake docker: {} on {target}: injected {kind:?} after the daemon did the work", op.name()),
            )),
        }
    }

    fn start_now(&self, target: &str) -> Result<(), DockerError> {
        let now = self.now();
        let started = self.lock().start(target, now)?;
        if let Some(Started { seq, run, config, behaviour }) = started {
            // Called without the lock: a behaviour may look at the fake.
            let b = behaviour(&config);
            self.schedule(seq, run, b, has_health_check(&config));
        }
        Ok(())
    }
}

#[async_trait]
impl DockerClient for FakeDocker {
    async fn ping(&self) -> Result<(), DockerError> {
        let mode = self.enter(Op::Ping, "").await?;
        Self::finish(mode, Op::Ping, "", Ok(()))
    }

    async fn container_events(&self, since: Option<DateTime<Utc>>) -> Result<EventStream, DockerError> {
        let op = Op::ContainerEvents;
        let mode = self.enter(op, "").await?;
        let stream = self.lock().events.subscribe(since);
        Self::finish(mode, op, "", Ok(stream))
    }

    async fn pull_image(
        &self,
        image: &str,
        _auth: Option<&RegistryAuth>,
        progress: &ProgressSink,
    ) -> Result<(), DockerError> {
        progress(PullProgress { image: image.to_string(), status: "Pulling".into(), ..PullProgress::default() });
        let op = Op::PullImage;
        let mode = self.enter(op, image).await?;
        let now = self.now();
        let result = self.lock().pull(image, now);
        Self::finish(mode, op, image, result)
    }

    async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        let op = Op::ImageExists;
        let mode = self.enter(op, image).await?;
        let result = Ok(self.lock().has_image(image));
        Self::finish(mode, op, image, result)
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String, DockerError> {
        let op = Op::CreateContainer;
        let mode = self.enter(op, &config.name).await?;
        let now = self.now();
        let result = self.lock().create(config, now);
        Self::finish(mode, op, &config.name, result)
    }

    async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        let op = Op::StartContainer;
        let mode = self.enter(op, id).await?;
        let result = self.start_now(id);
        Self::finish(mode, op, id, result)
    }

    async fn stop_container(&self, id: &str, _timeout: Duration) -> Result<(), DockerError> {
        let op = Op::StopContainer;
        let mode = self.enter(op, id).await?;
        let now = self.now();
        let result = self.lock().stop(id, now);
        Self::finish(mode, op, id, result)
    }

    async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        let op = Op::RemoveContainer;
        let mode = self.enter(op, id).await?;
        let now = self.now();
        let result = self.lock().remove(id, now);
        Self::finish(mode, op, id, result)
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, DockerError> {
        let op = Op::InspectContainer;
        let mode = self.enter(op, id).await?;
        let result = self.lock().inspect(id);
        Self::finish(mode, op, id, result)
    }

    async fn container_logs(&self, id: &str, options: LogOptions) -> Result<LogStream, DockerError> {
        let op = Op::ContainerLogs;
        let mode = self.enter(op, id).await?;
        let result = self.lock().logs(id, options);
        Self::finish(mode, op, id, result)
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, DockerError> {
        let op = Op::ListContainers;
        let target = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let mode = self.enter(op, &target).await?;
        let result = Ok(self.lock().list(labels));
        Self::finish(mode, op, &target, result)
    }

    async fn create_volume(&self, config: &VolumeConfig) -> Result<(), DockerError> {
        let op = Op::CreateVolume;
        let mode = self.enter(op, &config.name).await?;
        let result = self.lock().create_volume(config);
        Self::finish(mode, op, &config.name, result)
    }

    async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        let op = Op::RemoveVolume;
        let mode = self.enter(op, name).await?;
        let result = self.lock().remove_volume(name);
        Self::finish(mode, op, name, result)
    }

    async fn volume_labels(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, DockerError> {
        let op = Op::InspectVolume;
        let mode = self.enter(op, name).await?;
        let result = Ok(self.lock().volumes().into_iter().find(|v| v.name == name).map(|v| v.labels));
        Self::finish(mode, op, name, result)
    }

    async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        let op = Op::RemoveImage;
        let mode = self.enter(op, image).await?;
        let result = self.lock().remove_image(image);
        Self::finish(mode, op, image, result)
    }

    async fn container_stats(&self, id: &str) -> Result<serde_json::Value, DockerError> {
        let op = Op::ContainerStats;
        let mode = self.enter(op, id).await?;
        let now = self.now();
        let result = self.lock().stats(id, now);
        Self::finish(mode, op, id, result)
    }

    async fn network_gateway(&self, network: &str) -> Result<Option<std::net::Ipv4Addr>, DockerError> {
        let op = Op::InspectNetwork;
        let mode = self.enter(op, network).await?;
        let result = self.lock().network_gateway(network);
        Self::finish(mode, op, network, result)
    }

    async fn list_images(&self) -> Result<Vec<ImageSummary>, DockerError> {
        let op = Op::ListImages;
        let mode = self.enter(op, "").await?;
        let result = Ok(self.lock().list_images());
        Self::finish(mode, op, "", result)
    }
}
