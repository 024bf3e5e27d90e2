//! One berth per instance id on a Docker daemon. A data directory restored onto a second
//! berth (a backup, a copied VM) carries the first one's instance id; the second would take
//! the first's containers for orphans of its own and remove them. So before it reconciles,
//! a berth claims its instance on the Docker side: a volume `berth-holder-<instance>`
//! labelled with who holds it (host, boot, process id and the process's start time). A
//! claim held by a live process refuses the start; one whose process is gone (a crash, a
//! reboot) is taken over. The claim is let go at a clean shutdown.

use crate::error::EngineError;
use berth_docker::{DockerClient, VolumeConfig, labels};
use std::collections::BTreeMap;

/// Who holds an instance: `host=<name>;boot=<boot id>;pid=<pid>;start=<clock ticks after boot>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    host: String,
    boot: String,
    pid: u32,
    start: String,
}

impl Holder {
    /// This process.
    pub fn this_process() -> Holder {
        let pid = std::process::id();
        Holder { host: hostname(), boot: boot_id(), pid, start: process_start(pid).unwrap_or_default() }
    }

    fn label(&self) -> String {
        format!("host={};boot={};pid={};start={}", self.host, self.boot, self.pid, self.start)
    }

    fn parse(label: &str) -> Option<Holder> {
        let fields: BTreeMap<&str, &str> = label.split(';').filter_map(|f| f.split_once('=')).collect();
        Some(Holder {
            host: fields.get("host")?.to_string(),
            boot: fields.get("boot")?.to_string(),
            pid: fields.get("pid")?.parse().ok()?,
            start: fields.get("start")?.to_string(),
        })
    }

    /// Whether this holder's process still runs: on this host since this boot, a process of
    /// that id started at that time. A holder on another host cannot be looked at: it counts
    /// as alive.
    fn alive(&self, me: &Holder) -> bool {
        if self.host != me.host {
            return true;
        }
        self.boot == me.boot && process_start(self.pid).is_some_and(|start| start == self.start)
    }
}

/// Claim `instance` for this process, or say which live process holds it.
pub async fn claim(docker: &dyn DockerClient, instance: &str) -> Result<(), EngineError> {
    let me = Holder::this_process();
    let name = labels::holder_volume(instance);
    let labels_of_marker = BTreeMap::from([(labels::HOLDER.to_string(), me.label())]);
    // Twice at most: a stale marker is removed, then made again.
    for _ in 0..2 {
        let found = match docker.volume_labels(&name).await? {
            Some(found) => found,
            None => {
                let config =
                    VolumeConfig { name: name.clone(), labels: labels_of_marker.clone(), ..VolumeConfig::default() };
                docker.create_volume(&config).await?;
                // Creating one that exists succeeds and keeps the other's labels: read back.
                docker.volume_labels(&name).await?.unwrap_or_default()
            }
        };
        let holder = found.get(labels::HOLDER).and_then(|l| Holder::parse(l));
        match holder {
            Some(h) if h == me => return Ok(()),
            Some(h) if h.alive(&me) => {
                return Err(EngineError::InstanceHeld { instance: instance.to_string(), holder: h.label() });
            }
            // Gone (or unreadable): taken over.
            _ => docker.remove_volume(&name).await?,
        }
    }
    Err(EngineError::InstanceHeld { instance: instance.to_string(), holder: "another berth, again".into() })
}

/// Let go of `instance` if this process holds it (a clean shutdown).
pub async fn release(docker: &dyn DockerClient, instance: &str) {
    let name = labels::holder_volume(instance);
    let mine = Holder::this_process().label();
    if let Ok(Some(found)) = docker.volume_labels(&name).await
        && found.get(labels::HOLDER) == Some(&mine)
    {
        let _ = docker.remove_volume(&name).await;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// A process's start time (field 22 of `/proc/<pid>/stat`, clock ticks after boot): with
/// the boot id it names one process for good, however pids are reused.
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_testutils::FakeDocker;

    #[test]
    fn a_holder_reads_back_and_this_process_is_alive() {
        let me = Holder::this_process();
        assert!(!me.start.is_empty(), "this process has a start time");
        assert_eq!(Holder::parse(&me.label()), Some(me.clone()));
        assert!(me.alive(&me));
        let gone = Holder { pid: u32::MAX, ..me.clone() };
        assert!(!gone.alive(&me), "no such process");
        let reused = Holder { start: "1".into(), ..me.clone() };
        assert!(!reused.alive(&me), "the pid of another process");
        let rebooted = Holder { boot: "another-boot".into(), ..me.clone() };
        assert!(!rebooted.alive(&me));
        let elsewhere = Holder { host: "elsewhere".into(), pid: u32::MAX, ..me.clone() };
        assert!(elsewhere.alive(&me), "another host cannot be looked at");
    }

    #[tokio::test]
    async fn a_live_holder_refuses_a_gone_one_is_taken_over_and_release_lets_go() {
        let fake = FakeDocker::new();
        claim(&fake, "i1").await.expect("free: claimed");
        claim(&fake, "i1").await.expect("ours: claimed again");
        // Another live process of this host holds i2: our parent (pid 1 would be too).
        let me = Holder::this_process();
        let parent = std::os::unix::process::parent_id();
        let other = Holder { pid: parent, start: process_start(parent).unwrap_or_default(), ..me.clone() };
        let config = |holder: &Holder| VolumeConfig {
            name: labels::holder_volume("i2"),
            labels: BTreeMap::from([(labels::HOLDER.to_string(), holder.label())]),
            ..VolumeConfig::default()
        };
        fake.create_volume(&config(&other)).await.expect("marker");
        let e = claim(&fake, "i2").await.expect_err("held by a live process");
        assert!(e.to_string().contains(&format!("pid={parent}")), "{e}");
        // A crashed holder's marker is taken over.
        fake.remove_volume(&labels::holder_volume("i2")).await.expect("remove");
        fake.create_volume(&config(&Holder { pid: u32::MAX, ..me.clone() })).await.expect("stale marker");
        claim(&fake, "i2").await.expect("stale: taken over");
        release(&fake, "i2").await;
        assert_eq!(fake.volume_labels(&labels::holder_volume("i2")).await.expect("labels"), None, "let go");
    }
}
