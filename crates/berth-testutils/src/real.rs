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
