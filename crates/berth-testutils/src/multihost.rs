//! Several hosts on this machine, for the cluster tests: a handle on an environment made by
//! `scripts/multihost-env.sh` (a network namespace per host with its own dockerd, etcd
//! members in namespaces of their own, a switch joining them). Made by [`MultiHost::up`],
//! torn down when dropped, also when the test fails. Needs root, dockerd, etcd and the
//! system Docker's `busybox:latest`.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Output};

/// One environment: its hosts (`h1`..), etcd members (`e1`..) and their addresses.
#[derive(Debug)]
pub struct MultiHost {
    name: String,
    env: BTreeMap<String, String>,
}

/// The project's script (tests run with the crate's directory as working directory).
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/multihost-env.sh")
}

fn run_script(args: &[&str]) -> io::Result<Output> {
    let out = Command::new("bash").arg(script()).args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "multihost-env.sh {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

impl MultiHost {
    /// Brings up environment `name` (1 to 6 lower-case letters or digits, unique to the
    /// test) with `hosts` hosts and `members` etcd members.
    pub fn up(name: &str, hosts: usize, members: usize) -> io::Result<MultiHost> {
        let out = run_script(&["up", name, &hosts.to_string(), &members.to_string()])?;
        let env_file = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // From here on, Drop tears it down whatever happens.
        let mut mh = MultiHost { name: name.to_string(), env: BTreeMap::new() };
        let text = std::fs::read_to_string(&env_file)?;
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                mh.env.insert(k.to_string(), v.to_string());
            }
        }
        Ok(mh)
    }

    fn value(&self, key: &str) -> io::Result<&str> {
        self.env
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| io::Error::other(format!("environment {} has no {key}", self.name)))
    }

    /// Host `i`'s (1-based) dockerd, as a `DOCKER_HOST` value.
    pub fn docker_host(&self, i: usize) -> io::Result<&str> {
        self.value(&format!("H{i}_SOCK"))
    }

    /// Host `i`'s address on the switch.
    pub fn host_addr(&self, i: usize) -> io::Result<&str> {
        self.value(&format!("H{i}_ADDR"))
    }

    /// The etcd members' client URLs, comma-separated.
    pub fn etcd_endpoints(&self) -> io::Result<&str> {
        self.value("ETCD_ENDPOINTS")
    }

    /// Cuts `node` (`h1`.. or `e1`..) off the switch: its packets are silently lost.
    pub fn cut(&self, node: &str) -> io::Result<()> {
        run_script(&["cut", &self.name, node]).map(drop)
    }

    /// Joins `node` to the switch again.
    pub fn heal(&self, node: &str) -> io::Result<()> {
        run_script(&["heal", &self.name, node]).map(drop)
    }

    /// A command that runs `program` in `node`'s network namespace (the test adds arguments,
    /// environment, and spawns or runs it).
    pub fn command(&self, node: &str, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/bmh-{}-{node}", self.name)).arg(program);
        cmd
    }
}

impl Drop for MultiHost {
    fn drop(&mut self) {
        if let Err(e) = run_script(&["down", &self.name]) {
            eprintln!("tearing down multi-host environment {}: {e}", self.name);
        }
    }
}
