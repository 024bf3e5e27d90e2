//! The 30 real task definitions of `shared/ecs-taskdefs/`, each with the outcome its
//! `EXPECTED.md` gives. The corpus sits beside the checkout (it is never copied into the
//! project); a missing corpus fails the test rather than skipping it.

mod support;

use berth_model::container::{DependencyCondition, Link, PAUSE_CONTAINER_NAME, PortMapping, Protocol, VolumeFrom};
use berth_model::input::{Accepted, Issue, ParseOptions, Rejected, parse};
use berth_model::task::NetworkMode;
use berth_model::volume::{VolumeKind, VolumeScope};
use std::collections::BTreeMap;
use std::path::PathBuf;
use support::corpus_dir;

const ACCEPTED: [&str; 20] = [
    "01", "02", "03", "04", "05", "06", "07", "08", "09", "11", "12", "13", "14", "15", "16", "17", "20", "23", "26",
    "29",
];
const NOT_JSON: [&str; 7] = ["10", "18", "19", "21", "22", "28", "30"];
const BAD_IMAGE: [&str; 2] = ["24", "25"];
const WRONG_TYPES: &str = "27";

/// Every corpus file, by its two-digit number, with its outcome.
fn outcomes() -> BTreeMap<String, (PathBuf, Result<Accepted, Rejected>)> {
    let dir = corpus_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut out = BTreeMap::new();
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_else(|| panic!("{}", path.display()));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let opts = ParseOptions { family: Some(stem.to_string()), arn_random: 7 };
        let number = stem.get(..2).unwrap_or(stem).to_string();
        out.insert(number, (path.clone(), parse(&bytes, &opts)));
    }
    out
}

fn accepted(number: &str) -> Accepted {
    match outcomes().remove(number) {
        Some((_, Ok(a))) => a,
        Some((path, Err(r))) => panic!("{} rejected: {:#?}", path.display(), r.errors),
        None => panic!("no corpus file {number}"),
    }
}

fn rejected(number: &str) -> Rejected {
    match outcomes().remove(number) {
        Some((_, Err(r))) => r,
        Some((path, Ok(a))) => panic!("{} accepted, with warnings {:#?}", path.display(), a.warnings),
        None => panic!("no corpus file {number}"),
    }
}

fn paths(issues: &[Issue]) -> Vec<&str> {
    issues.iter().map(|i| i.path.as_str()).collect()
}

#[test]
fn every_file_has_the_expected_outcome() {
    let all = outcomes();
    assert_eq!(all.len(), 30, "the corpus has 30 files");
    for (number, (path, outcome)) in &all {
        let should_accept = ACCEPTED.contains(&number.as_str());
        match outcome {
            Ok(a) => assert!(should_accept, "{} accepted, with warnings {:#?}", path.display(), a.warnings),
            Err(r) => {
                assert!(!should_accept, "{} rejected: {:#?}", path.display(), r.errors);
                assert!(!r.errors.is_empty());
            }
        }
    }
    let rejected_count = all.values().filter(|(_, o)| o.is_err()).count();
    assert_eq!(rejected_count, 10);
}

#[test]
fn files_that_are_not_json_say_where() {
    let expected = [
        ("10", "invalid JSON at line 14, column 13: key must be a string"),
        ("18", "invalid JSON at line 34, column 20: expected `,` or `}`"),
        ("19", "invalid JSON at line 2, column 13: expected value"),
        ("21", "invalid JSON at line 11, column 28: key must be a string"),
        ("22", "invalid JSON at line 17, column 28: expected value"),
        ("28", "invalid JSON at line 12, column 26: expected value"),
        ("30", "invalid JSON at line 15, column 21: expected value"),
    ];
    assert_eq!(expected.map(|(n, _)| n), NOT_JSON);
    for (number, message) in expected {
        let r = rejected(number);
        assert_eq!(r.errors, [Issue { path: String::new(), message: message.to_string() }], "file {number}");
    }
}

#[test]
fn placeholder_images_are_not_image_references() {
    for number in BAD_IMAGE {
        let r = rejected(number);
        let image_errors: Vec<&Issue> = r
            .errors
            .iter()
            .filter(|e| e.path.ends_with(".image") && e.message.contains("is not a valid image reference"))
            .collect();
        assert!(!image_errors.is_empty(), "file {number}: {:#?}", r.errors);
    }
    let r = rejected("25");
    assert!(r.errors.iter().any(|e| e.to_string()
        == r#"containerDefinitions[0].image: "<IMAGE1_NAME>" is not a valid image reference (invalid reference format)"#));
    let r = rejected("24");
    assert_eq!(paths(&r.errors), ["containerDefinitions[0].image", "containerDefinitions[1].image"]);
}

#[test]
fn templated_numbers_are_type_errors() {
    let r = rejected(WRONG_TYPES);
    let errors: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
    for want in [
        r#"[0].cpu: expected an integer, found the string "${NGINX_CPU_SIZE}""#,
        r#"[0].memory: expected an integer, found the string "${NGINX_MEMORY_SIZE}""#,
        r#"[0].portMappings[0].containerPort: expected an integer, found the string "{NGINX_CONTAINER_PORT}""#,
        r#"[0].portMappings[0].hostPort: expected an integer, found the string "${NGINX_HOST_PORT}""#,
        r#"[1].cpu: expected an integer, found the string "${APP_CPU_SIZE}""#,
        r#"[1].memory: expected an integer, found the string "${APP_MEMORY_SIZE}""#,
    ] {
        assert!(errors.iter().any(|e| e == want), "missing {want:?} in {errors:#?}");
    }
    for image_path in ["[0].image", "[1].image"] {
        assert!(
            r.errors.iter().any(|e| e.path == image_path && e.message.contains("is not a valid image reference")),
            "{image_path}: {errors:#?}"
        );
    }
}

#[test]
fn files_without_ignored_fields_give_no_warnings() {
    for number in ["01", "02", "03", "04", "07", "08", "09", "12", "13", "29"] {
        let a = accepted(number);
        assert!(a.warnings.is_empty(), "file {number}: {:#?}", a.warnings);
    }
}

#[test]
fn ignored_fields_and_unknown_keys_are_each_named() {
    let a = accepted("14");
    assert_eq!(
        a.warnings,
        [Issue { path: "containerDefinitions[0].portBindings".into(), message: "unknown key, ignored".into() }]
    );

    let warned = |number: &str| -> Vec<String> { accepted(number).warnings.into_iter().map(|w| w.path).collect() };
    let w06 = warned("06");
    for p in ["requiresCompatibilities", "containerDefinitions[0].logConfiguration.logDriver"] {
        assert!(w06.iter().any(|w| w == p), "06 lacks {p}: {w06:?}");
    }
    // Task-level sizes are the task's host reservation: acted on, no warning.
    assert!(!w06.iter().any(|w| w == "cpu" || w == "memory"), "{w06:?}");
    assert!(!w06.iter().any(|w| w == "placementConstraints" || w == "volumes"), "empty fields ask nothing: {w06:?}");

    let w26 = warned("26");
    for p in [
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "enableFaultInjection",
        "runtimePlatform",
        "requiresCompatibilities",
        "executionRoleArn",
        "containerDefinitions[0].portMappings[0].name",
        "containerDefinitions[0].portMappings[0].appProtocol",
        "containerDefinitions[0].logConfiguration.logDriver",
    ] {
        let full = format!("taskDefinition.{p}");
        assert!(w26.contains(&full), "26 lacks {full}: {w26:?}");
    }
    assert!(!w26.iter().any(|w| w == "tags" || w.ends_with("secretOptions")), "empty fields ask nothing: {w26:?}");
    assert!(!w26.iter().any(|w| w.ends_with(".cpu") || w.ends_with(".memory")), "task-level sizes: {w26:?}");
    assert_eq!(w26.len(), 14, "{w26:#?}");

    let w11 = warned("11");
    for p in [
        "taskRoleArn",
        "executionRoleArn",
        "containerDefinitions[0].firelensConfiguration",
        "containerDefinitions[0].logConfiguration.logDriver",
        "containerDefinitions[1].logConfiguration.logDriver",
        "containerDefinitions[1].logConfiguration.secretOptions",
    ] {
        assert!(w11.iter().any(|w| w == p), "11 lacks {p}: {w11:?}");
    }

    let w16 = warned("16");
    assert!(w16.iter().any(|w| w == "taskDefinition.volumes[0].efsVolumeConfiguration"), "{w16:?}");
    assert_eq!(warned("05"), ["containerDefinitions[0].logConfiguration.logDriver"]);
}

#[test]
fn file_02_six_containers_ordered_by_links_and_volumes_from() {
    let t = accepted("02").task;
    let names: Vec<&str> = t.containers.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["a", "b", "bb", "c", "d", "exit"]);
    let link = |name: &str, alias: &str| Link { name: name.into(), alias: Some(alias.into()) };
    let from = |name: &str| VolumeFrom { source_container: name.into(), read_only: false };
    let c = |name: &str| t.container(name).map(|c| &c.spec).unwrap_or_else(|| panic!("no container {name}"));
    assert_eq!(c("b").links, [link("a", "a")]);
    assert_eq!(c("c").links, [link("a", "a"), link("bb", "bb"), link("b", "b")]);
    assert_eq!(c("c").volumes_from, [from("a")]);
    assert_eq!(c("d").volumes_from, [from("c")]);
    assert_eq!(c("exit").links, [link("d", "d")]);
    assert!(c("exit").essential, "essential defaults to true");
    assert_eq!(c("exit").command, ["sh", "-c", "exit 42"]);
    assert_eq!((c("a").cpu, c("a").memory), (0, Some(8)));
    assert_eq!(t.family, "ecsftest-network-link-2");
    assert_eq!(t.version, "1");
    assert_eq!(t.arn, "arn:berth:task/00000000000000000000000000000007");
}

#[test]
fn file_03_empty_volume_and_data_only_container() {
    let t = accepted("03").task;
    assert_eq!(t.volumes.len(), 1);
    assert_eq!((t.volumes[0].name.as_str(), &t.volumes[0].kind), ("vol", &VolumeKind::Empty));
    let data = t.container("datavolume").map(|c| &c.spec).unwrap_or_else(|| panic!("no datavolume"));
    assert!(!data.essential);
    assert!(data.command.is_empty());
    assert_eq!(data.mount_points[0].container_path, "/data");
    let exit = t.container("exit").map(|c| &c.spec).unwrap_or_else(|| panic!("no exit"));
    assert_eq!(exit.port_mappings, [PortMapping { container_port: 80, host_port: 0, protocol: Protocol::Tcp }]);
}

#[test]
fn file_08_and_13_windows_paths_are_kept() {
    let t = accepted("08").task;
    assert_eq!(t.volumes[0].kind, VolumeKind::Host { source_path: r"\\.\pipe\docker_engine".into() });
    let m = &t.containers[0].spec.mount_points[0];
    assert_eq!((m.container_path.as_str(), m.read_only), (r"\\.\pipe\docker_engine", false));
    let t = accepted("13").task;
    let source = t.container("data-volume-source").map(|c| &c.spec).unwrap_or_else(|| panic!("no source"));
    assert_eq!(source.mount_points[0].container_path, "C:/data/");
}

#[test]
fn file_09_dependency_conditions_and_health_check() {
    let t = accepted("09").task;
    let conditions: Vec<(String, DependencyCondition)> = t
        .containers
        .iter()
        .flat_map(|c| c.spec.depends_on.iter().map(|d| (d.container_name.clone(), d.condition)))
        .collect();
    assert_eq!(
        conditions,
        [
            ("success-dependency".to_string(), DependencyCondition::Success),
            ("complete-dependency".to_string(), DependencyCondition::Complete),
            ("healthy-dependency".to_string(), DependencyCondition::Healthy),
        ]
    );
    let hd = t.container("healthy-dependency").map(|c| &c.spec).unwrap_or_else(|| panic!("no healthy-dependency"));
    let hc = hd.health_check.as_ref().unwrap_or_else(|| panic!("no health check"));
    assert_eq!(hc.command, ["CMD-SHELL", "echo hello"]);
    assert_eq!((hc.interval, hc.timeout, hc.retries, hc.start_period), (Some(5), Some(50), Some(3), None));
    assert_eq!(hd.image, "127.0.0.1:51670/busybox:latest");
}

#[test]
fn file_12_task_scoped_docker_volume() {
    let t = accepted("12").task;
    let VolumeKind::Docker(cfg) = &t.volumes[0].kind else { panic!("not a Docker volume: {:?}", t.volumes[0]) };
    assert_eq!(cfg.scope, VolumeScope::Task);
    assert!(!cfg.autoprovision);
    assert_eq!(cfg.driver.as_deref(), Some("local"));
    let opts: Vec<(&str, &str)> = cfg.driver_opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(opts, [("device", "tmpfs"), ("type", "tmpfs")]);
    assert_eq!(cfg.labels.get("mylables").map(String::as_str), Some("test"));
    let exit = &t.containers[0].spec;
    assert_eq!((exit.memory, exit.memory_reservation), (Some(256), Some(128)));
}

#[test]
fn file_14_awsvpc_gets_a_pause_container_first() {
    let t = accepted("14").task;
    assert_eq!(t.network_mode, NetworkMode::Awsvpc);
    let names: Vec<&str> = t.containers.iter().map(|c| c.name()).collect();
    assert_eq!(names, [PAUSE_CONTAINER_NAME, "nginx"]);
    assert!(t.containers[0].spec.internal);
    assert!(t.containers[0].spec.port_mappings.is_empty(), "portBindings is not portMappings");
    assert!(t.containers[1].spec.port_mappings.is_empty());
}

#[test]
fn file_15_pause_container_publishes_every_port() {
    let t = accepted("15").task;
    let ports: Vec<u16> = t.containers[0].spec.port_mappings.iter().map(|p| p.container_port).collect();
    assert_eq!(ports, [9080, 9901, 15000, 15001]);
    let envoy = t.container("envoy").map(|c| &c.spec).unwrap_or_else(|| panic!("no envoy"));
    assert_eq!(envoy.user.as_deref(), Some("1337"));
    assert_eq!((envoy.ulimits[0].soft_limit, envoy.ulimits[0].hard_limit), (15000, 15000));
    let router = t.container("log_router").map(|c| &c.spec).unwrap_or_else(|| panic!("no log_router"));
    assert_eq!((router.memory, router.memory_reservation), (None, Some(50)));
}

#[test]
fn file_16_and_17_volumes() {
    let t = accepted("16").task;
    assert_eq!(t.volumes[0].kind, VolumeKind::Unsupported { kind: "efsVolumeConfiguration".into() });
    assert_eq!(t.family, "firelens-efs-example");
    let t = accepted("17").task;
    assert_eq!((t.volumes[0].name.as_str(), &t.volumes[0].kind), ("var-log", &VolumeKind::Empty));
}

#[test]
fn file_20_secrets_are_kept() {
    let t = accepted("20").task;
    assert_eq!(t.network_mode, NetworkMode::Host);
    let names: Vec<&str> = t.containers[0].spec.secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["FOO", "BAR", "BAZ"]);
    assert_eq!(t.containers[0].spec.secrets[0].value_from, "/ecspresso-test/foo");
}

#[test]
fn file_26_describe_output() {
    let t = accepted("26").task;
    assert_eq!(t.version, "3");
    assert_eq!(t.family, "dev");
    assert!(t.arn.starts_with("arn:berth:task/"), "taskDefinitionArn is never a task arn: {}", t.arn);
    let c = t.container("helloworld").map(|c| &c.spec).unwrap_or_else(|| panic!("no helloworld"));
    assert!(c.readonly_root_filesystem);
    assert_eq!(c.image, "docker.io/crccheck/hello-world");
    assert!(c.log_configuration.is_none(), "awslogs falls back to Docker's default");
    assert_eq!(t.containers[0].name(), PAUSE_CONTAINER_NAME);
}

#[test]
fn file_29_stop_timeouts_and_start_dependencies() {
    let t = accepted("29").task;
    let timeouts: Vec<(&str, Option<u64>)> = t.containers.iter().map(|c| (c.name(), c.spec.stop_timeout)).collect();
    assert_eq!(timeouts, [("parent", None), ("dependency1", Some(2)), ("dependency2", Some(20))]);
    let parent = &t.containers[0].spec;
    assert!(parent.depends_on.iter().all(|d| d.condition == DependencyCondition::Start));
    assert_eq!(parent.depends_on.len(), 2);
}
