//! The multi-host environment itself (`scripts/multihost-env.sh`): hosts with a dockerd of
//! their own reach the etcd members through the switch, a cut host reaches nothing while the
//! others still do, a heal brings it back, and nothing is left in the root namespace.
#![allow(clippy::unwrap_used)]

use berth_testutils::multihost::MultiHost;
use std::process::Command;

/// Runs busybox `wget` of etcd's `/version` from `node`'s namespace (a few seconds at most:
/// busybox's own `-T` crashes in Debian's static build, so `timeout` bounds it).
fn reaches(mh: &MultiHost, node: &str, url: &str) -> bool {
    let mut cmd = mh.command(node, "timeout");
    cmd.args(["3", "busybox", "wget", "-q", "-O", "-", url]);
    let out = cmd.output().unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("etcdserver")
}

/// Whether `node` reaches `url` within 20 s (after a heal, the first tries can be lost while
/// the neighbour entries are learned again).
fn comes_to_reach(mh: &MultiHost, node: &str, url: &str) -> bool {
    (0..20).any(|_| {
        reaches(mh, node, url) || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            false
        }
    })
}

fn root_namespace_addresses() -> String {
    let out = Command::new("ip").args(["-o", "addr"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hosts_reach_etcd_through_the_switch_until_cut_off() {
    let mh = MultiHost::up("tmh1", 2, 1).unwrap();
    let etcd = format!("{}/version", mh.etcd_endpoints().unwrap());

    // Each host has its own dockerd with busybox loaded, and a container on it reaches etcd.
    let out = Command::new("docker")
        .args(["-H", mh.docker_host(1).unwrap(), "run", "--rm", "busybox:latest", "wget", "-q", "-O", "-"])
        .arg(&etcd)
        .output()
        .unwrap();
    assert!(out.status.success(), "container on h1: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("etcdserver"));
    assert_ne!(mh.docker_host(1).unwrap(), mh.docker_host(2).unwrap());

    assert!(reaches(&mh, "h1", &etcd));
    mh.cut("h1").unwrap();
    assert!(!reaches(&mh, "h1", &etcd), "h1 reached etcd while cut off");
    assert!(reaches(&mh, "h2", &etcd), "h2 lost etcd when h1 was cut off");
    mh.heal("h1").unwrap();
    assert!(comes_to_reach(&mh, "h1", &etcd), "h1 did not reach etcd after the heal");

    // Addresses live only inside the environment's namespaces.
    assert!(!root_namespace_addresses().contains(mh.host_addr(1).unwrap()));
}

#[test]
fn down_leaves_nothing_behind() {
    let mh = MultiHost::up("tmh2", 1, 1).unwrap();
    let sock = mh.docker_host(1).unwrap().trim_start_matches("unix://").to_string();
    let started = Command::new("docker")
        .args(["-H", mh.docker_host(1).unwrap(), "run", "-d", "busybox:latest", "sleep", "600"])
        .output()
        .unwrap();
    assert!(started.status.success());
    drop(mh);
    let namespaces =
        String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    assert!(!namespaces.contains("bmh-tmh2-"), "namespaces left: {namespaces}");
    assert!(!std::path::Path::new(&sock).exists(), "dockerd's socket left at {sock}");
    assert!(!std::path::Path::new("/var/lib/berth-mh/tmh2").exists());
}
