//! Performing one planned operation against Docker, with its timeout, and turning the
//! answer into the model's [`Outcome`]. The actor prepares a [`Job`] with everything the
//! call needs, so this runs concurrently with the actor and touches no state.

use crate::config::Timeouts;
use crate::settings::SettingsError;
use berth_docker::PullProgress;
use berth_docker::auth::{DockerAuth, RegistryAuth};
use berth_docker::{
    ContainerConfig, ContainerInfo, DockerClient, DockerError, ErrorKind, VolumeConfig, labels, status_of,
};
use berth_model::ApplyError;
use berth_model::ContainerStatus;
use berth_model::plan::{Observation, Outcome};
use berth_store::crash;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::broadcast;

/// One Docker call to make, with what it needs.
#[derive(Debug, Clone)]
pub enum Job {
    /// Make an image present. Under the default pull behaviour a failed pull of an image
    /// present locally proceeds with the local one at once.
    Pull {
        /// The image.
        image: String,
        /// berth's own pause image: never pulled, only looked for.
        local_only: bool,
    },
    /// Create a container.
    Create {
        /// The request, or why there can be none.
        config: Box<Result<ContainerConfig, SettingsError>>,
        /// This berth's instance id (a name conflict with its own container is adopted).
        instance: String,
        /// When set, host-path binds are resolved and checked against these prefixes first.
        host_paths: Option<Arc<[PathBuf]>>,
    },
    /// Start, then inspect (for the port bindings).
    Start {
        /// Id or Docker name.
        target: String,
    },
    /// Stop, then inspect (for the exit code).
    Stop {
        /// Id or Docker name.
        target: String,
        /// Seconds between SIGTERM and SIGKILL.
        timeout_secs: u64,
    },
    /// Remove a container.
    Remove {
        /// Id or Docker name.
        target: String,
    },
    /// Look at a container.
    Inspect {
        /// Id or Docker name; `None` when a create was never issued.
        target: Option<String>,
        /// berth had its id: not finding it means it vanished.
        known: bool,
    },
    /// Create a volume.
    CreateVolume(VolumeConfig),
    /// Remove a volume (unless another berth's or another task's).
    RemoveVolume {
        /// The volume.
        name: String,
        /// This berth's instance id.
        instance: String,
        /// The task whose volume it is.
        arn: String,
    },
}

/// Perform `job`.
///
/// Pulls, creates and volume calls run boxed: their futures are the largest (a pull's
/// alone made this function's future 3.5 KB), and every Docker call is a task of its own,
/// moved and allocated at that size when spawned. Boxed, a call's task is a few hundred
/// bytes, and only a pull allocates a pull's size.
pub async fn perform(docker: &dyn DockerClient, job: Job, timeouts: &Timeouts, pulls: &Pulls) -> Outcome {
    match job {
        Job::Pull { image, local_only } => Box::pin(pull(docker, &image, local_only, timeouts, pulls)).await,
        Job::Create { config, instance, host_paths } => {
            Box::pin(create(docker, *config, &instance, host_paths.as_deref(), timeouts)).await
        }
        Job::CreateVolume(config) => Box::pin(create_volume(docker, config, timeouts)).await,
        Job::RemoveVolume { name, instance, arn } => {
            Box::pin(remove_volume(docker, name, Owner { instance: &instance, arn: &arn }, timeouts)).await
        }
        Job::Start { target } => {
            match timed(timeouts.start, "start container", &target, docker.start_container(&target)).await {
                // Started: an inspect that fails does not undo that (a start is never
                // retried for a container that may have run); the next inspect fills in.
                Ok(()) => {
                    crash::point("after-start");
                    after_done(inspect(docker, Some(target), true, timeouts).await)
                }
                // Gone: the inspect says so (and why), rather than a failure to retry.
                Err(e) if e.is_not_found() => inspect(docker, Some(target), true, timeouts).await,
                Err(e) => failed(e),
            }
        }
        Job::Stop { target, timeout_secs } => {
            let limit = Duration::from_secs(timeout_secs) + timeouts.stop_extra;
            let stop = docker.stop_container(&target, Duration::from_secs(timeout_secs));
            match timed(limit, "stop container", &target, stop).await {
                Ok(()) => after_done(inspect(docker, Some(target), true, timeouts).await),
                Err(e) if e.is_not_found() => inspect(docker, Some(target), true, timeouts).await,
                Err(e) => failed(e),
            }
        }
        Job::Remove { target } => {
            match timed(timeouts.remove, "remove container", &target, docker.remove_container(&target)).await {
                Ok(()) => Outcome::Ok,
                Err(e) if e.is_not_found() => Outcome::Ok,
                Err(e) => failed(e),
            }
        }
        Job::Inspect { target, known } => inspect(docker, target, known, timeouts).await,
    }
}

async fn create_volume(docker: &dyn DockerClient, config: VolumeConfig, timeouts: &Timeouts) -> Outcome {
    let label = |key: &str| config.labels.get(key).map(String::as_str).unwrap_or_default();
    let owner = Owner { instance: label(labels::INSTANCE), arn: label(labels::TASK_ARN) };
    // A volume of that name made by another berth (the same task arn run by two berths) or
    // for another task is not this task's: refused, never shared.
    match other_owner(docker, &config.name, owner, timeouts).await {
        Ok(Some(other)) => {
            return Outcome::Failed(ApplyError {
                message: format!("volume {} belongs to {other}", config.name),
                permanent: true,
            });
        }
        Ok(None) => {}
        Err(e) => return failed(e),
    }
    match timed(timeouts.volume, "create volume", &config.name, docker.create_volume(&config)).await {
        Ok(()) => Outcome::Ok,
        Err(e) => failed(e),
    }
}

async fn remove_volume(docker: &dyn DockerClient, name: String, owner: Owner<'_>, timeouts: &Timeouts) -> Outcome {
    match other_owner(docker, &name, owner, timeouts).await {
        // Another berth's or another task's: not this task's to remove.
        Ok(Some(_)) => return Outcome::Ok,
        Ok(None) => {}
        Err(e) => return failed(e),
    }
    match timed(timeouts.volume, "remove volume", &name, docker.remove_volume(&name)).await {
        Ok(()) => Outcome::Ok,
        Err(e) if e.is_not_found() => Outcome::Ok,
        Err(e) => failed(e),
    }
}

/// Whose task volume this is: a berth instance and a task arn.
#[derive(Clone, Copy)]
struct Owner<'a> {
    instance: &'a str,
    arn: &'a str,
}

/// The outcome of a start or stop that Docker did, from the inspect that followed: what it
/// saw, or plain success when it could not look (the step is done either way).
fn after_done(inspected: Outcome) -> Outcome {
    match inspected {
        Outcome::Inspected(observation) => Outcome::Inspected(observation),
        _ => Outcome::Ok,
    }
}

/// Who else made volume `name`, when its labels name another berth instance or another
/// task than `owner` (`another berth (instance X)`, `task Y`); `None` when it is missing or
/// `owner`'s (or carries no berth labels, as a volume made before them).
async fn other_owner(
    docker: &dyn DockerClient,
    name: &str,
    owner: Owner<'_>,
    timeouts: &Timeouts,
) -> Result<Option<String>, DockerError> {
    let Some(found) = timed(timeouts.inspect, "inspect volume", name, docker.volume_labels(name)).await? else {
        return Ok(None);
    };
    if let Some(instance) = found.get(labels::INSTANCE).filter(|i| *i != owner.instance) {
        return Ok(Some(format!("another berth (instance {instance})")));
    }
    Ok(found.get(labels::TASK_ARN).filter(|a| *a != owner.arn).map(|arn| format!("another task ({arn})")))
}

async fn pull(docker: &dyn DockerClient, image: &str, local_only: bool, timeouts: &Timeouts, pulls: &Pulls) -> Outcome {
    let present = || async { timed(timeouts.inspect, "inspect image", image, docker.image_exists(image)).await };
    if local_only {
        return match timed(timeouts.pull, "make pause image", image, docker.ensure_pause_image()).await {
            Ok(()) => Outcome::Ok,
            Err(e) => failed(e),
        };
    }
    let behaviour = pulls.behaviour;
    if matches!(behaviour, PullBehavior::PreferCached)
        || (behaviour == PullBehavior::Once && pulls.pulled_before(image))
    {
        match present().await {
            Ok(true) => return Outcome::Ok,
            Ok(false) => {}
            Err(e) => return failed(e),
        }
    }
    match pulls.pull(docker, image, timeouts).await {
        Ok(()) => Outcome::Ok,
        // Under the default behaviour (and once, prefer-cached), a pull that fails for any
        // reason while the image is present proceeds with the local image at once; under
        // `always` the pull must succeed.
        Err(e) if behaviour != PullBehavior::Always => match present().await {
            Ok(true) => Outcome::Ok,
            _ => failed(e),
        },
        Err(e) => failed(e),
    }
}

/// How images are pulled (SPEC 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullBehavior {
    /// Pull every time; if the pull fails and the image is present, use it.
    #[default]
    Default,
    /// Pull every time; a failed pull fails the container.
    Always,
    /// Pull the first time this berth needs the image; later, use the local one.
    Once,
    /// Use the local image when there is one; pull only when it is missing.
    PreferCached,
}

/// A pull behaviour's name that is none of `default`, `always`, `once`, `prefer-cached`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pull behavior {0:?}: expected default, always, once or prefer-cached")]
pub struct InvalidPullBehavior(pub String);

impl std::str::FromStr for PullBehavior {
    type Err = InvalidPullBehavior;

    /// The one reading of a pull behaviour, for the daemon's configuration and for
    /// `berth run --pull`: `default`, `always`, `once` or `prefer-cached` (also
    /// `prefer_cached`), in any case, around white space.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" => Ok(PullBehavior::Default),
            "always" => Ok(PullBehavior::Always),
            "once" => Ok(PullBehavior::Once),
            "prefer-cached" | "prefer_cached" => Ok(PullBehavior::PreferCached),
            _ => Err(InvalidPullBehavior(s.to_owned())),
        }
    }
}

/// Takes a pull out of the map of pulls in flight when it ends.
struct Leave<'a> {
    pulls: &'a Pulls,
    image: &'a str,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.pulls.in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(self.image);
    }
}

/// The outcome of a pull under way, as its joiners see it: `None` until it ends.
type PullResult = tokio::sync::watch::Receiver<Option<Result<(), DockerError>>>;

/// The pulls in flight, shared: concurrent pulls of one image make one pull (there is no
/// global pull lock: pulls of different images go on side by side).
pub struct Pulls {
    /// The behaviour.
    pub behaviour: PullBehavior,
    auth: Arc<DockerAuth>,
    progress: broadcast::Sender<PullProgress>,
    in_flight: Mutex<HashMap<String, PullResult>>,
    pulled: Mutex<HashSet<String>>,
}

impl Pulls {
    /// Pulls with this behaviour, credentials from `auth`, progress told to `progress`.
    pub fn new(behaviour: PullBehavior, auth: Arc<DockerAuth>, progress: broadcast::Sender<PullProgress>) -> Pulls {
        Pulls { behaviour, auth, progress, in_flight: Mutex::default(), pulled: Mutex::default() }
    }

    /// The credentials for `image` (a credential helper may run: off the async threads).
    /// A failure names the source and the registry, never a secret.
    async fn credentials(&self, image: &str) -> Result<Option<RegistryAuth>, DockerError> {
        let auth = Arc::clone(&self.auth);
        let owned = image.to_string();
        match tokio::task::spawn_blocking(move || auth.lookup(&owned)).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => {
                Err(DockerError::new(ErrorKind::Permanent, "find registry credentials", image, e.to_string()))
            }
            Err(e) => Err(DockerError::new(ErrorKind::Transient, "find registry credentials", image, e.to_string())),
        }
    }

    fn pulled_before(&self, image: &str) -> bool {
        self.pulled.lock().unwrap_or_else(PoisonError::into_inner).contains(image)
    }

    /// Join the pull of `image` under way, or lead a new one (atomically, so two callers
    /// never both lead).
    fn join_or_lead(&self, image: &str) -> Result<PullResult, PullLeader> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(result) = in_flight.get(image) {
            return Ok(result.clone());
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        in_flight.insert(image.to_string(), rx);
        Err(tx)
    }

    /// Pull `image`, or join the pull of it already under way and share its outcome.
    async fn pull(&self, docker: &dyn DockerClient, image: &str, timeouts: &Timeouts) -> Result<(), DockerError> {
        match self.join_or_lead(image) {
            Ok(mut result) => match result.wait_for(Option::is_some).await {
                Ok(done) => done.clone().unwrap_or(Ok(())),
                Err(_) => {
                    Err(DockerError::new(ErrorKind::Transient, "pull image", image, "the shared pull was abandoned"))
                }
            },
            Err(leader) => {
                // Out of the map however this ends, even if the pull is abandoned.
                let _leave = Leave { pulls: self, image };
                let result = match self.credentials(image).await {
                    Ok(auth) => {
                        // Lagging or absent listeners lose progress; the pull never waits.
                        let progress = self.progress.clone();
                        let report = move |p: PullProgress| {
                            let _ = progress.send(p);
                        };
                        timed(timeouts.pull, "pull image", image, docker.pull_image(image, auth.as_ref(), &report))
                            .await
                    }
                    Err(e) => Err(e),
                };
                if result.is_ok() {
                    self.pulled.lock().unwrap_or_else(PoisonError::into_inner).insert(image.to_string());
                }
                leader.send_replace(Some(result.clone()));
                result
            }
        }
    }
}

/// The sending side of a pull's outcome, held by the one call that makes the pull.
type PullLeader = tokio::sync::watch::Sender<Option<Result<(), DockerError>>>;

async fn create(
    docker: &dyn DockerClient,
    config: Result<ContainerConfig, SettingsError>,
    instance: &str,
    host_paths: Option<&[PathBuf]>,
    timeouts: &Timeouts,
) -> Outcome {
    let mut config = match config {
        Ok(config) => config,
        Err(SettingsError(message)) => return Outcome::Failed(ApplyError { message, permanent: true }),
    };
    if let Some(allowed) = host_paths
        && let Err(message) = crate::host_paths::resolve_binds(&mut config.host.binds, allowed).await
    {
        return Outcome::Failed(ApplyError { message, permanent: true });
    }
    crash::point("before-create");
    let mut wait = crate::clock::Backoff::new(NAME_WAIT_FIRST, NAME_WAIT_MAX);
    for _ in 0..NAME_ATTEMPTS {
        match timed(timeouts.create, "create container", &config.name, docker.create_container(&config)).await {
            Ok(id) => {
                crash::point("after-create");
                return Outcome::Created(id);
            }
            Err(e) if e.kind == ErrorKind::Conflict => {}
            Err(e) => return failed(e),
        }
        // The name is taken. Docker reserves a name before the container can be inspected,
        // so a create still in flight (of a berth killed a moment ago, or whose answer was
        // lost) shows as a conflict with nothing there yet: look again until the container
        // shows (this berth's own is the one asked for) or the name is free (create again).
        match timed(timeouts.inspect, "inspect container", &config.name, docker.inspect_container(&config.name)).await {
            Ok(info) if info.labels.get(labels::INSTANCE).map(String::as_str) == Some(instance) => {
                return Outcome::Created(info.id);
            }
            Ok(info) => {
                let owner = info.labels.get(labels::INSTANCE).map_or("no berth", String::as_str);
                return Outcome::Failed(ApplyError {
                    message: format!("create container {}: the name is taken by a container of {owner}", config.name),
                    permanent: true,
                });
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return failed(e),
        }
        tokio::time::sleep(wait.next_wait()).await;
    }
    // Still taken and still not there: Docker may yet finish a create of that name, so the
    // outcome is unknown (the planner looks before anything else), never a failure.
    Outcome::Unknown(format!("create container {}: the name is in use but no container of it shows yet", config.name))
}

/// How often a create meets its name taken by a container that does not show yet before
/// the outcome counts as unknown, and the waits between (doubling).
const NAME_ATTEMPTS: u32 = 8;
const NAME_WAIT_FIRST: Duration = Duration::from_millis(50);
const NAME_WAIT_MAX: Duration = Duration::from_secs(1);

async fn inspect(docker: &dyn DockerClient, target: Option<String>, known: bool, timeouts: &Timeouts) -> Outcome {
    let Some(target) = target else {
        return Outcome::Inspected(Observation::default());
    };
    match timed(timeouts.inspect, "inspect container", &target, docker.inspect_container(&target)).await {
        Ok(info) => Outcome::Inspected(observation(&info)),
        Err(e) if e.is_not_found() && known => Outcome::Inspected(Observation {
            status: ContainerStatus::Stopped,
            removed: true,
            reason: Some("container vanished".into()),
            ..Observation::default()
        }),
        Err(e) if e.is_not_found() => Outcome::Inspected(Observation::default()),
        Err(e) => failed(e),
    }
}

/// What an inspect says, as the model reads it.
pub fn observation(info: &ContainerInfo) -> Observation {
    let status = status_of(info);
    Observation {
        status,
        exit_code: (status == ContainerStatus::Stopped).then_some(info.state.exit_code),
        health: info.state.health,
        port_bindings: (status == ContainerStatus::Running).then(|| info.port_bindings.clone()),
        has_run: info.has_run(),
        docker_id: Some(info.id.clone()),
        reason: info.state.oom_killed.then(|| "out of memory (OOM killed)".to_string()),
        removed: false,
        inspected: true,
    }
}

/// A call with its timeout; a timeout is an error of kind `Timeout`.
async fn timed<T>(
    limit: Duration,
    operation: &str,
    target: &str,
    call: impl Future<Output = Result<T, DockerError>>,
) -> Result<T, DockerError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => {
            Err(DockerError::new(ErrorKind::Timeout, operation, target, format!("no answer in {}s", limit.as_secs())))
        }
    }
}

fn failed(e: DockerError) -> Outcome {
    match e.kind {
        // Docker may have done it: look before anything else (never a blind retry).
        ErrorKind::Timeout | ErrorKind::Lost => Outcome::Unknown(e.to_string()),
        ErrorKind::Unreachable => Outcome::NotDone(e.to_string()),
        _ => Outcome::Failed(ApplyError { permanent: e.is_permanent(), message: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use berth_docker::{ContainerConfig, DockerClient, ErrorKind, labels};
    use berth_model::plan::Outcome;
    use berth_testutils::{FakeDocker, Op};

    fn config(name: &str, instance: &str) -> ContainerConfig {
        let mut c = ContainerConfig { name: name.into(), image: "busybox".into(), ..ContainerConfig::default() };
        c.labels.insert(labels::INSTANCE.into(), instance.into());
        c
    }

    async fn create(fake: &FakeDocker, name: &str) -> Outcome {
        let timeouts = crate::config::EngineConfig::default().timeouts;
        super::create(fake, Ok(config(name, "me")), "me", None, &timeouts).await
    }

    /// Issue 14 item 0: Docker reserves a name before the container can be inspected. A
    /// create that meets its own name taken by a create still in flight waits for that
    /// container to show and adopts it.
    #[tokio::test(start_paused = true)]
    async fn a_conflict_with_a_create_still_in_flight_adopts_the_container_once_it_shows() {
        let fake = FakeDocker::new();
        fake.add_image("busybox");
        let id = fake.create_container(&config("c1", "me")).await.expect("the other create");
        // Not inspectable for a while, as a create Docker has not finished.
        fake.fail_next(Op::InspectContainer, Some("c1"), 3, ErrorKind::NotFound);
        assert_eq!(create(&fake, "c1").await, Outcome::Created(id));
        assert_eq!(fake.containers().len(), 1, "no second container");
    }

    /// The name was taken, then freed (the other create failed): create again.
    #[tokio::test(start_paused = true)]
    async fn a_conflict_whose_name_frees_up_creates_again() {
        let fake = FakeDocker::new();
        fake.add_image("busybox");
        fake.fail_next(Op::CreateContainer, Some("c2"), 2, ErrorKind::Conflict);
        assert!(matches!(create(&fake, "c2").await, Outcome::Created(_)));
        assert_eq!(fake.containers().len(), 1);
    }

    /// Taken by a container of someone else: a failure naming whose, never an adoption.
    #[tokio::test(start_paused = true)]
    async fn a_name_taken_by_another_berths_container_is_a_failure() {
        let fake = FakeDocker::new();
        fake.add_image("busybox");
        fake.create_container(&config("c3", "other")).await.expect("theirs");
        match create(&fake, "c3").await {
            Outcome::Failed(e) => assert!(e.permanent && e.message.contains("container of other"), "{e:?}"),
            other => panic!("{other:?}"),
        }
    }

    /// Taken and never showing: unknown (look again later), not a failure of the task.
    #[tokio::test(start_paused = true)]
    async fn a_name_taken_that_never_shows_is_an_unknown_outcome() {
        let fake = FakeDocker::new();
        fake.add_image("busybox");
        fake.fail_next(Op::CreateContainer, Some("c4"), 100, ErrorKind::Conflict);
        assert!(matches!(create(&fake, "c4").await, Outcome::Unknown(_)));
    }

    /// Every Docker call is a task of its own: its future is what each spawn allocates and
    /// moves (it was 3.5 KB before the largest calls were boxed).
    #[test]
    fn a_docker_call_future_stays_small() {
        let fake = berth_testutils::FakeDocker::new();
        let (progress, _) = tokio::sync::broadcast::channel(1);
        let pulls = super::Pulls::new(Default::default(), Default::default(), progress);
        let timeouts = crate::config::EngineConfig::default().timeouts;
        let call = super::perform(&fake, super::Job::Remove { target: String::new() }, &timeouts, &pulls);
        let size = std::mem::size_of_val(&call);
        assert!(size <= 1024, "perform's future is {size} bytes");
    }
}
