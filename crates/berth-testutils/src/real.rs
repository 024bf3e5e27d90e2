//! For tests against the real Docker daemon: removing what one berth instance left behind.

use berth_docker::{BollardClient, DockerClient, labels};
use std::process::Command;

/// How many empty listings in a row end [`remove_instance`]'s search.
pub const QUIET_LISTINGS: u32 = 2;
/// The pause between two of its listings.
pub const LISTING_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
/// Its listings at the most (a container that keeps coming back is left to the next run).
const MAX_LISTINGS: u32 = 20;

/// Remove every container (in any state) and every volume labelled with berth instance
/// `instance` on the Docker daemon at the default endpoint. Best effort: no Docker, or
/// nothing to remove, is no error. Blocking, and safe to call from `Drop`, also inside a
/// test's runtime: the work runs on a thread of its own, with a runtime of its own.
///
/// A create the berth under test sent just before the test ended may still be in flight
/// in Docker: its container appears after a first listing. So the listing is repeated
/// until it has come back empty [`QUIET_LISTINGS`] times in a row, [`LISTING_PAUSE`] apart
/// (a few seconds at most).
pub fn remove_instance(instance: &str) {
    let instance = instance.to_string();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            let Ok(docker) = BollardClient::connect().await else { return };
            let (mut quiet, mut rounds) = (0, 0);
            while quiet < QUIET_LISTINGS && rounds < MAX_LISTINGS {
                rounds += 1;
                let ours = docker.list_containers(&[(labels::INSTANCE, instance.as_str())]).await.unwrap_or_default();
                quiet = if ours.is_empty() { quiet + 1 } else { 0 };
                for c in ours {
                    let _ = docker.remove_container(&c.id).await;
                }
                tokio::time::sleep(LISTING_PAUSE).await;
            }
        });
        for volume in volumes_of(&instance).into_iter().chain([labels::holder_volume(&instance)]) {
            let _ = Command::new("docker").args(["volume", "rm", "-f", &volume]).output();
        }
    })
    .join();
}

/// The Docker volumes labelled with berth instance `instance`.
pub fn volumes_of(instance: &str) -> Vec<String> {
    Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", &format!("label={}={instance}", labels::INSTANCE)])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Docker's `start` events of one berth instance's containers, followed from the moment
/// the record is made (`docker events` with a second of look-back): asked afterwards, Docker
/// keeps too few past events on a busy daemon. Stops following when dropped.
pub struct StartRecord {
    child: std::process::Child,
    names: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StartRecord {
    /// Follow the starts of the containers labelled with berth instance `instance`.
    /// Panics when `docker events` cannot be run (a test without Docker fails).
    pub fn follow(instance: &str) -> StartRecord {
        use std::io::BufRead;
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().saturating_sub(1))
            .unwrap_or(0);
        let mut child = Command::new("docker")
            .args(["events", "--since", &since.to_string(), "--filter", "type=container", "--filter", "event=start"])
            .args(["--filter", &format!("label={}={instance}", labels::INSTANCE)])
            .args(["--format", &format!("{{{{index .Actor.Attributes \"{}\"}}}}", labels::CONTAINER_NAME)])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("docker events: {e}"));
        let names = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let seen = std::sync::Arc::clone(&names);
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                    seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
                }
            });
        }
        // `docker events` subscribes as it starts; the look-back covers that moment.
        std::thread::sleep(std::time::Duration::from_millis(300));
        StartRecord { child, names }
    }

    /// How many times Docker has started the instance's container named `container` in
    /// its task (as its `berth.container-name` label says) so far.
    pub fn starts(&self, container: &str) -> usize {
        self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().filter(|n| *n == container).count()
    }
}

impl StartRecord {
    /// The starts of `container` once they reach `at_least`, or after `limit` (Docker's
    /// events arrive a moment after the call that made them); then, a second later, again,
    /// so that a start too many shows too.
    pub fn settled_starts(&self, container: &str, at_least: usize, limit: std::time::Duration) -> usize {
        let deadline = std::time::Instant::now() + limit;
        while self.starts(container) < at_least && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        self.starts(container)
    }
}

impl Drop for StartRecord {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
