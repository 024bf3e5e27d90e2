use super::*;
use proptest::prelude::*;
use std::path::PathBuf;

fn parse(json: &str) -> berth_model::input::Accepted {
    let opts = berth_model::input::ParseOptions { family: None, arn_random: 7 };
    berth_model::input::parse(json.as_bytes(), &opts).unwrap_or_else(|rejected| panic!("{rejected}"))
}

/// The paths refused for `json` under `policy`.
fn refused(json: &str, policy: &HostPolicy) -> Vec<String> {
    let accepted = parse(json);
    refusals(&accepted.task, &accepted.paths, policy).into_iter().map(|i| i.path).collect()
}

/// A register-shape task with one container carrying `extra` fields.
fn one(extra: &str) -> String {
    format!(r#"{{"family":"f","containerDefinitions":[{{"name":"a","image":"busybox","memory":8{extra}}}]}}"#)
}

#[test]
fn a_plain_task_passes_the_strictest_policy() {
    assert!(refused(&one(""), &HostPolicy::default()).is_empty());
}

#[test]
fn each_power_is_refused_by_default_and_named() {
    let t = r#"{"family":"f","networkMode":"host",
            "volumes":[{"name":"etc","host":{"sourcePath":"/etc"}},{"name":"data","host":{"sourcePath":"/srv/data"}}],
            "containerDefinitions":[
              {"name":"a","image":"busybox","memory":8},
              {"name":"b","image":"busybox","memory":8,"privileged":true,
               "linuxParameters":{"devices":[{"hostPath":"/dev/fuse"}]},
               "mountPoints":[{"sourceVolume":"etc","containerPath":"/x"}]}]}"#;
    assert_eq!(
        refused(t, &HostPolicy::default()),
        [
            "networkMode",
            "containerDefinitions[1].privileged",
            "containerDefinitions[1].linuxParameters.devices[0]",
            "volumes[0].host.sourcePath",
            "volumes[1].host.sourcePath",
        ]
    );
    let allowed = HostPolicy {
        allow_privileged: true,
        allow_host_network: true,
        allow_devices: true,
        allowed_host_paths: vec![PathBuf::from("/srv")],
        ..HostPolicy::default()
    };
    assert_eq!(refused(t, &allowed), ["volumes[0].host.sourcePath"]);
}

#[test]
fn paths_follow_the_input_shape_and_skip_the_pause_container() {
    let awsvpc = r#"{"family":"f","networkMode":"awsvpc","containerDefinitions":[
        {"name":"a","image":"busybox","memory":8},{"name":"b","image":"busybox","memory":8,"privileged":true}]}"#;
    assert_eq!(refused(awsvpc, &HostPolicy::default()), ["containerDefinitions[1].privileged"]);
    let describe = r#"{"taskDefinition":{"family":"f","containerDefinitions":[{"name":"a","image":"busybox","privileged":true}]}}"#;
    assert_eq!(refused(describe, &HostPolicy::default()), ["taskDefinition.containerDefinitions[0].privileged"]);
    let seed = r#"{"arn":"arn:x:task/1","family":"f","containers":[{"name":"a","image":"busybox","privileged":true}]}"#;
    assert_eq!(refused(seed, &HostPolicy::default()), ["containers[0].privileged"]);
}

#[test]
fn capabilities_beyond_dockers_defaults_are_refused_in_every_spelling() {
    for cap in ["SYS_ADMIN", "CAP_SYS_ADMIN", "cap_sys_admin", "Sys_Admin", " SYS_ADMIN ", "ALL", "all", "NET_ADMIN"] {
        let t = one(&format!(r#","linuxParameters":{{"capabilities":{{"add":[{cap:?}]}}}}"#));
        assert_eq!(
            refused(&t, &HostPolicy::default()),
            ["containerDefinitions[0].linuxParameters.capabilities.add[0]"],
            "{cap}"
        );
    }
    // Docker's defaults and drops are always fine.
    let t = one(r#","linuxParameters":{"capabilities":{"add":["CHOWN","cap_kill"],"drop":["ALL","SYS_ADMIN"]}}"#);
    assert!(refused(&t, &HostPolicy::default()).is_empty());
    let sys_admin = one(r#","linuxParameters":{"capabilities":{"add":["cap_sys_admin","NET_ADMIN"]}}"#);
    let policy = HostPolicy { allowed_capabilities: vec!["SYS_ADMIN".into()], ..HostPolicy::default() };
    assert_eq!(refused(&sys_admin, &policy), ["containerDefinitions[0].linuxParameters.capabilities.add[1]"]);
    let policy = HostPolicy { allowed_capabilities: vec!["all".into()], ..HostPolicy::default() };
    assert!(refused(&sys_admin, &policy).is_empty());
}

#[test]
fn security_options_other_than_no_new_privileges_are_refused() {
    for option in [
        "seccomp=unconfined",
        "seccomp:unconfined",
        "apparmor=unconfined",
        "apparmor:unconfined",
        "label=disable",
        "label:disable",
        "label=type:spc_t",
        "systempaths=unconfined",
        "seccomp=/etc/profile.json",
    ] {
        let t = one(&format!(r#","dockerSecurityOptions":[{option:?}]"#));
        assert_eq!(
            refused(&t, &HostPolicy::default()),
            ["containerDefinitions[0].dockerSecurityOptions[0]"],
            "{option}"
        );
    }
    let fine =
        one(r#","dockerSecurityOptions":["no-new-privileges","no-new-privileges:true","no-new-privileges=true"]"#);
    assert!(refused(&fine, &HostPolicy::default()).is_empty());
    let policy = HostPolicy { allowed_security_options: vec!["apparmor=my-profile".into()], ..HostPolicy::default() };
    assert!(refused(&one(r#","dockerSecurityOptions":["apparmor:my-profile"]"#), &policy).is_empty());
    assert_eq!(refused(&one(r#","dockerSecurityOptions":["apparmor=unconfined"]"#), &policy).len(), 1);
}

fn with_volume(volume: &str) -> String {
    format!(
        r#"{{"family":"f","volumes":[{volume}],"containerDefinitions":[{{"name":"a","image":"busybox","memory":8,
            "mountPoints":[{{"sourceVolume":"v","containerPath":"/v"}}]}}]}}"#
    )
}

#[test]
fn docker_volumes_only_local_without_options_and_shared_only_by_listed_names() {
    let plain = with_volume(r#"{"name":"v","dockerVolumeConfiguration":{"scope":"task","driver":"local"}}"#);
    assert!(refused(&plain, &HostPolicy::default()).is_empty());
    let bind = with_volume(
        r#"{"name":"v","dockerVolumeConfiguration":{"scope":"task","driver":"local",
            "driverOpts":{"type":"none","o":"bind","device":"/etc"}}}"#,
    );
    assert_eq!(refused(&bind, &HostPolicy::default()), ["volumes[0].dockerVolumeConfiguration.driverOpts"]);
    let nfs = with_volume(r#"{"name":"v","dockerVolumeConfiguration":{"scope":"task","driver":"rexray/ebs"}}"#);
    assert_eq!(refused(&nfs, &HostPolicy::default()), ["volumes[0].dockerVolumeConfiguration.driver"]);
    let policy = HostPolicy { allowed_volume_drivers: vec!["local".into()], ..HostPolicy::default() };
    assert!(refused(&bind, &policy).is_empty());
    let shared = with_volume(r#"{"name":"v","dockerVolumeConfiguration":{"scope":"shared","autoprovision":true}}"#);
    assert_eq!(refused(&shared, &HostPolicy::default()), ["volumes[0].name"]);
    let policy = HostPolicy { allowed_shared_volumes: vec!["v".into()], ..HostPolicy::default() };
    assert!(refused(&shared, &policy).is_empty());
}

#[test]
fn a_shared_volume_never_takes_a_berth_task_volume_name() {
    let t = r#"{"family":"f","volumes":[{"name":"berth-1234-data","dockerVolumeConfiguration":{"scope":"shared"}}],
        "containerDefinitions":[{"name":"a","image":"busybox","memory":8,
        "mountPoints":[{"sourceVolume":"berth-1234-data","containerPath":"/v"}]}]}"#;
    let policy = HostPolicy { allowed_shared_volumes: vec!["berth-1234-data".into()], ..HostPolicy::default() };
    assert_eq!(refused(t, &policy), ["volumes[0].name"]);
}

#[test]
fn the_pause_image_is_refused_in_every_spelling() {
    for image in [
        "berth/pause:1",
        "berth/pause",
        "berth/pause:latest",
        "docker.io/berth/pause:1",
        "index.docker.io/berth/pause:1",
        "DOCKER.IO/berth/pause:1",
        "berth/pause@sha256:0123456789012345678901234567890123456789012345678901234567890123",
    ] {
        assert!(names_pause_image(image), "{image}");
    }
    for image in ["busybox", "berth/pauser:1", "example.com/berth/pause:1", "library/pause:1", "pause:1"] {
        assert!(!names_pause_image(image), "{image}");
    }
    assert_eq!(
        refused(&one("").replace("\"busybox\"", "\"docker.io/berth/pause:1\""), &HostPolicy::default()),
        ["containerDefinitions[0].image"]
    );
}

#[test]
fn log_options_that_reach_out_need_the_driver_allowed() {
    for (driver, option) in [
        ("syslog", "syslog-address"),
        ("syslog", "syslog-tls-ca-cert"),
        ("syslog", "syslog-tls-cert"),
        ("syslog", "syslog-tls-key"),
        ("json-file", "fluentd-address"),
        ("journald", "gelf-address"),
        ("local", "splunk-url"),
    ] {
        let t = one(&format!(
            r#","logConfiguration":{{"logDriver":"{driver}","options":{{"{option}":"udp://10.0.0.1:514"}}}}"#
        ));
        assert_eq!(
            refused(&t, &HostPolicy::default()),
            [format!("containerDefinitions[0].logConfiguration.options[{option:?}]")],
            "{driver} {option}"
        );
        let policy = HostPolicy { allowed_log_drivers: vec![driver.into()], ..HostPolicy::default() };
        assert!(refused(&t, &policy).is_empty(), "{driver} {option}");
    }
    let fine =
        one(r#","logConfiguration":{"logDriver":"json-file","options":{"max-size":"5m","max-file":"3","tag":"x"}}"#);
    assert!(refused(&fine, &HostPolicy::default()).is_empty());
}

#[test]
fn log_rotation_cannot_be_raised_past_the_hosts_bound() {
    for (option, value) in
        [("max-size", "11m"), ("max-size", "1g"), ("max-size", "-1"), ("max-file", "6"), ("max-file", "x")]
    {
        let t = one(&format!(r#","logConfiguration":{{"logDriver":"local","options":{{"{option}":"{value}"}}}}"#));
        assert_eq!(
            refused(&t, &HostPolicy::default()),
            [format!("containerDefinitions[0].logConfiguration.options[{option:?}]")],
            "{option}={value}"
        );
    }
    let t = one(r#","logConfiguration":{"logDriver":"json-file","options":{"max-size":"10240k","max-file":"5"}}"#);
    assert!(refused(&t, &HostPolicy::default()).is_empty());
}

#[test]
fn log_sizes_read_as_docker_reads_them() {
    assert_eq!(log_size_bytes("10m"), Some(10 << 20));
    assert_eq!(log_size_bytes("10MiB"), Some(10 << 20));
    assert_eq!(log_size_bytes("10 mb"), Some(10 << 20));
    assert_eq!(log_size_bytes("1.5k"), Some(1536));
    assert_eq!(log_size_bytes("100"), Some(100));
    assert_eq!(log_size_bytes("-1"), None);
    assert_eq!(log_size_bytes("0"), None);
    assert_eq!(log_size_bytes("10x"), None);
    assert_eq!(log_size_bytes(""), None);
}

#[test]
fn ulimits_above_their_bounds_are_refused() {
    let t = one(
        r#","ulimits":[{"name":"memlock","softLimit":-1,"hardLimit":-1},{"name":"nofile","softLimit":1024,"hardLimit":4096},
            {"name":"rtprio","softLimit":0,"hardLimit":99},{"name":"core","softLimit":-1,"hardLimit":-1}]"#,
    );
    assert_eq!(
        refused(&t, &HostPolicy::default()),
        [
            "containerDefinitions[0].ulimits[0].softLimit",
            "containerDefinitions[0].ulimits[0].hardLimit",
            "containerDefinitions[0].ulimits[2].hardLimit",
        ]
    );
    let mut policy = HostPolicy::default();
    policy.ulimit_max.insert("memlock".into(), -1);
    policy.ulimit_max.insert("rtprio".into(), 99);
    assert!(refused(&t, &policy).is_empty());
}

#[test]
fn tmpfs_exec_suid_dev_need_allowing() {
    let t = one(
        r#","linuxParameters":{"tmpfs":[{"containerPath":"/t","size":8,"mountOptions":["rw","exec","nosuid","SUID","dev","mode=1777"]}]}"#,
    );
    assert_eq!(
        refused(&t, &HostPolicy::default()),
        [
            "containerDefinitions[0].linuxParameters.tmpfs[0].mountOptions[1]",
            "containerDefinitions[0].linuxParameters.tmpfs[0].mountOptions[3]",
            "containerDefinitions[0].linuxParameters.tmpfs[0].mountOptions[4]",
        ]
    );
    let policy = HostPolicy { allowed_tmpfs_options: vec!["exec".into()], ..HostPolicy::default() };
    assert_eq!(refused(&t, &policy).len(), 2);
}

#[test]
fn memory_is_demanded_only_when_configured() {
    let t = r#"{"family":"f","containerDefinitions":[{"name":"a","image":"busybox","memoryReservation":8}]}"#;
    assert!(refused(t, &HostPolicy::default()).is_empty());
    let policy = HostPolicy { require_memory: true, ..HostPolicy::default() };
    assert_eq!(refused(t, &policy), ["containerDefinitions[0].memory"]);
}

#[test]
fn every_refusal_names_the_setting_that_would_allow_it() {
    let t = r#"{"family":"f","networkMode":"host","volumes":[{"name":"v","host":{"sourcePath":"/etc"}}],
        "containerDefinitions":[{"name":"a","image":"berth/pause:1","privileged":true,
          "dockerSecurityOptions":["seccomp=unconfined"],
          "linuxParameters":{"capabilities":{"add":["SYS_ADMIN"]},"devices":[{"hostPath":"/dev/kmsg"}],
             "tmpfs":[{"containerPath":"/t","size":8,"mountOptions":["exec"]}]},
          "ulimits":[{"name":"rtprio","softLimit":1,"hardLimit":1}],
          "logConfiguration":{"logDriver":"syslog","options":{"syslog-address":"tcp://1.2.3.4:514"}}}]}"#;
    let accepted = parse(t);
    let issues =
        refusals(&accepted.task, &accepted.paths, &HostPolicy { require_memory: true, ..HostPolicy::default() });
    assert_eq!(issues.len(), 12, "{issues:?}");
    for issue in issues {
        assert!(
            issue.message.contains("(host.") || issue.message.contains("berth's own pause image"),
            "{}: {}",
            issue.path,
            issue.message
        );
    }
}

#[test]
fn prefixes_match_whole_components_and_refuse_parent_dirs() {
    let allowed = [PathBuf::from("/srv/data")];
    assert!(path_allowed("/srv/data", &allowed));
    assert!(path_allowed("/srv/data/x", &allowed));
    assert!(!path_allowed("/srv/database", &allowed));
    assert!(!path_allowed("/srv/data/../../etc", &allowed));
    assert!(!path_allowed("srv/data", &allowed));
}

/// Every spelling Docker accepts of a capability: any case, with or without `CAP_`.
fn spelling(name: &'static str) -> impl Strategy<Value = String> {
    (any::<bool>(), proptest::collection::vec(any::<bool>(), name.len() + 4)).prop_map(move |(prefixed, upper)| {
        let full = if prefixed { format!("CAP_{name}") } else { name.to_string() };
        full.chars().zip(upper).map(|(c, u)| if u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
    })
}

proptest! {
    /// A capability's decision never depends on its spelling: the default set passes, the
    /// rest is refused, however each is written.
    #[test]
    fn capability_decisions_ignore_spelling(
        default in proptest::sample::select(DOCKER_DEFAULT_CAPABILITIES.to_vec()).prop_flat_map(spelling),
        other in proptest::sample::select(vec!["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "BPF", "DAC_READ_SEARCH"])
            .prop_flat_map(spelling),
    ) {
        prop_assert!(capability_allowed(&default, &[]));
        prop_assert!(!capability_allowed(&other, &[]));
        prop_assert!(capability_allowed(&other, &[other.to_ascii_uppercase()]));
    }
}
