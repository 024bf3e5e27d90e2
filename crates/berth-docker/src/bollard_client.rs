//! The real Docker, through bollard (the seed's `DockerGoClient`).
//!
//! Notes on bollard 0.21 that shape this file:
//! - it builds request paths without an API version, so the daemon answers in its own; the
//!   version is negotiated anyway, so that a later bollard that adds it keeps working with
//!   older daemons (API 1.41 here);
//! - its one client-wide timeout covers only the wait for response headers; berth's own
//!   per-operation timeouts wrap every call (in the engine), so the client's is set above
//!   the longest stop;
//! - it treats 304 as success, so "already started" and "already stopped" are `Ok`;
//! - its streams send nothing until first polled: the event stream is opened with `since`
//!   a little in the past, so events between the call and the first poll are replayed;
//! - it encodes `X-Registry-Auth` in standard base64 where Docker decodes base64url, so
//!   the header is rewritten on the way out (`auth_header`).

use crate::auth::RegistryAuth;
use crate::client::{DockerClient, EventStream, LogStream, ProgressSink};
use crate::error::{DockerError, ErrorKind};
use crate::events::DockerEvent;
use crate::labels;
use crate::types::{
    ContainerConfig, ContainerInfo, ContainerState, ContainerSummary, ImageSummary, LogChunk, LogOptions, LogSource,
    NetworkAttachment, PullProgress, VolumeConfig,
};
use async_trait::async_trait;
use berth_model::container::{PortBinding, Protocol};
use berth_model::status::HealthStatus;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HealthConfig as BollardHealth, HealthStatusEnum, HostConfig as BollardHost,
    HostConfigLogConfig, PortBinding as BollardPortBinding, ResourcesUlimits, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    RemoveVolumeOptionsBuilder, StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::future::ready;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// bollard's own timeout (for response headers); berth's per-operation timeouts are the
/// ones that matter, so this only has to be above the longest of them that waits for
/// headers (a stop: its stop timeout plus two minutes).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

/// How far back an event stream starts, so that nothing between opening it and its first
/// poll is missed (duplicates are harmless: statuses only rise).
const EVENTS_LOOKBACK: chrono::Duration = chrono::Duration::seconds(2);

/// Docker's "zero time": a container that has never started.
const ZERO_TIME_PREFIX: &str = "0001-01-01";

/// The Docker client berth uses in production.
#[derive(Debug, Clone)]
pub struct BollardClient {
    docker: Docker,
    pull_inactivity: Duration,
}

/// A pull with no progress for this long is cancelled (SPEC 3).
pub const DEFAULT_PULL_INACTIVITY: Duration = Duration::from_secs(60);

impl BollardClient {
    /// Make berth's pause image present as `reference`: used only when the image of that
    /// reference carries berth's label with this program's fingerprint; otherwise (missing,
    /// or another image under that tag) it is imported again, which moves the tag to berth's
    /// own. The daemon uses `berth/pause:1`; tests use a reference of their own.
    pub async fn ensure_pause_image_as(&self, reference: &str) -> Result<(), DockerError> {
        let fingerprint = crate::pause::pause_fingerprint();
        match self.docker.inspect_image(reference).await {
            Ok(image) => {
                let label = image.config.and_then(|c| c.labels).and_then(|l| l.get(labels::PAUSE).cloned());
                if label.as_deref() == Some(fingerprint.as_str()) {
                    return Ok(());
                }
                // Another image holds the tag: berth's own is imported over it.
            }
            Err(e) => {
                let e = classify(e, "inspect image", reference);
                if !e.is_not_found() {
                    return Err(e);
                }
            }
        }
        let rootfs = crate::pause::pause_rootfs()
            .map_err(|e| DockerError::new(ErrorKind::Permanent, "make pause image", reference, e.to_string()))?;
        let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .changes(vec![
                format!("CMD [\"{}\"]", crate::pause::PAUSE_PATH),
                format!("LABEL {}={fingerprint}", labels::PAUSE),
            ])
            .build();
        let mut stream = self.docker.create_image(Some(options), Some(bollard::body_full(rootfs.into())), None);
        while let Some(item) = stream.next().await {
            item.map_err(|e| classify(e, "make pause image", reference))?;
        }
        Ok(())
    }

    /// Connect to `DOCKER_HOST`, else `unix:///var/run/docker.sock`, and negotiate the API
    /// version with the daemon.
    pub async fn connect() -> Result<BollardClient, DockerError> {
        Self::connect_to(&crate::docker_endpoint()).await
    }

    /// Connect to `endpoint` (`unix:///path`, `tcp://host:port`, `http://host:port`).
    pub async fn connect_to(endpoint: &str) -> Result<BollardClient, DockerError> {
        let docker = Docker::connect_with_host(endpoint).map_err(|e| classify(e, "connect", endpoint))?;
        // Docker reads X-Registry-Auth as base64url; bollard 0.21 writes standard base64.
        let docker = crate::auth_header::with_auth_header_fix(docker)
            .with_timeout(CLIENT_TIMEOUT)
            .negotiate_version()
            .await
            .map_err(|e| classify(e, "negotiate API version", endpoint))?;
        Ok(BollardClient { docker, pull_inactivity: DEFAULT_PULL_INACTIVITY })
    }

    /// Cancel a pull after this long without progress (default one minute).
    pub fn with_pull_inactivity(mut self, limit: Duration) -> BollardClient {
        self.pull_inactivity = limit;
        self
    }

    /// The bollard client itself, for what the trait does not cover (image import, ...).
    pub fn bollard(&self) -> &Docker {
        &self.docker
    }
}

/// Sort a bollard error into berth's classes.
pub fn classify(e: BollardError, operation: &str, target: &str) -> DockerError {
    let (kind, message) = match e {
        BollardError::DockerResponseServerError { status_code, message } => {
            let kind = match status_code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                304 => ErrorKind::NotModified,
                400..=499 => ErrorKind::Permanent,
                _ if permanent_message(&message) => ErrorKind::Permanent,
                _ => ErrorKind::Transient,
            };
            (kind, message)
        }
        BollardError::DockerStreamError { error } => {
            (if permanent_message(&error) { ErrorKind::Permanent } else { ErrorKind::Transient }, error)
        }
        BollardError::RequestTimeoutError => (ErrorKind::Timeout, "Docker did not answer in time".to_string()),
        // The request never reached Docker.
        BollardError::HyperLegacyError { err } if err.is_connect() => (ErrorKind::Unreachable, err.to_string()),
        other @ BollardError::SocketNotFoundError(_) => (ErrorKind::Unreachable, other.to_string()),
        BollardError::IOError { err }
            if matches!(err.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound) =>
        {
            (ErrorKind::Unreachable, err.to_string())
        }
        // Sent (or partly sent), then the connection failed before a whole answer came back:
        // Docker may have acted on it.
        BollardError::HyperLegacyError { err } => (ErrorKind::Lost, err.to_string()),
        other @ (BollardError::HyperResponseError { .. } | BollardError::IOError { .. }) => {
            (ErrorKind::Lost, other.to_string())
        }
        other @ (BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. }) => {
            (ErrorKind::Permanent, other.to_string())
        }
        other => (ErrorKind::Transient, other.to_string()),
    };
    DockerError::new(kind, operation, target, message)
}

/// Docker answers these with a 500, yet retrying cannot help.
fn permanent_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "pull access denied",
        "repository does not exist",
        "manifest unknown",
        "not found",
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "invalid reference format",
        "denied",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// `(repository, tag or digest)`: Docker pulls every tag of a repository asked for
/// without one, so berth always names one (`latest` when the reference has none).
pub fn split_reference(image: &str) -> (String, String) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (image[..at].to_string(), image[at + 1..].to_string())
        }
        None => (image.to_string(), "latest".to_string()),
    }
}

fn some_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn nanos(secs: Option<u64>) -> Option<i64> {
    secs.map(|s| i64::try_from(s.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX))
}

/// berth's create request in bollard's terms.
fn create_body(c: &ContainerConfig) -> ContainerCreateBody {
    let h = &c.host;
    let mut port_bindings: HashMap<String, Option<Vec<BollardPortBinding>>> = HashMap::new();
    let mut exposed = Vec::new();
    for p in &h.ports {
        let key = format!("{}/{}", p.container_port, p.protocol.as_str());
        let host_port = if p.host_port == 0 { String::new() } else { p.host_port.to_string() };
        port_bindings
            .entry(key.clone())
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(BollardPortBinding { host_ip: None, host_port: Some(host_port) });
        exposed.push(key);
    }
    exposed.sort();
    exposed.dedup();
    let host = BollardHost {
        memory: h.memory_bytes,
        memory_reservation: h.memory_reservation_bytes,
        cpu_shares: h.cpu_shares,
        links: some_vec(h.links.clone()),
        binds: some_vec(h.binds.clone()),
        volumes_from: some_vec(h.volumes_from.clone()),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        network_mode: h.network_mode.clone(),
        ulimits: some_vec(
            h.ulimits
                .iter()
                .map(|(name, soft, hard)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect(),
        ),
        readonly_rootfs: h.readonly_rootfs.then_some(true),
        extra_hosts: some_vec(h.extra_hosts.clone()),
        dns: some_vec(h.dns.clone()),
        dns_search: some_vec(h.dns_search.clone()),
        cap_add: some_vec(h.cap_add.clone()),
        cap_drop: some_vec(h.cap_drop.clone()),
        init: h.init.then_some(true),
        tmpfs: (!h.tmpfs.is_empty()).then(|| h.tmpfs.clone().into_iter().collect()),
        devices: some_vec(
            h.devices
                .iter()
                .map(|(host_path, container_path, perms)| DeviceMapping {
                    path_on_host: Some(host_path.clone()),
                    path_in_container: Some(container_path.clone()),
                    cgroup_permissions: Some(perms.clone()),
                })
                .collect(),
        ),
        shm_size: h.shm_size_bytes,
        pids_limit: h.pids_limit,
        privileged: h.privileged.then_some(true),
        security_opt: some_vec(h.security_opt.clone()),
        sysctls: (!h.sysctls.is_empty()).then(|| h.sysctls.clone().into_iter().collect()),
        log_config: h.log_config.as_ref().map(|l| HostConfigLogConfig {
            typ: Some(l.driver.clone()),
            config: Some(l.options.clone().into_iter().collect()),
        }),
        ..BollardHost::default()
    };
    ContainerCreateBody {
        image: Some(c.image.clone()),
        cmd: some_vec(c.command.clone()),
        entrypoint: some_vec(c.entry_point.clone()),
        env: some_vec(c.env.clone()),
        labels: Some(c.labels.clone().into_iter().collect()),
        working_dir: c.working_dir.clone(),
        user: c.user.clone(),
        hostname: c.hostname.clone(),
        exposed_ports: some_vec(exposed),
        healthcheck: c.health_check.as_ref().map(|hc| BollardHealth {
            test: Some(hc.test.clone()),
            interval: nanos(hc.interval_secs),
            timeout: nanos(hc.timeout_secs),
            retries: hc.retries.map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
            start_period: nanos(hc.start_period_secs),
            start_interval: None,
        }),
        stop_timeout: c.stop_timeout.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        // Sent only when set: absent, Docker's defaults (false) apply.
        network_disabled: c.network_disabled.then_some(true),
        open_stdin: c.open_stdin.then_some(true),
        tty: c.tty.then_some(true),
        host_config: Some(host),
        ..ContainerCreateBody::default()
    }
}

/// A piece of Docker's log stream as berth's chunk: stdout (and a TTY's console output)
/// or stderr; stdin echoes and empty pieces are left out.
fn log_chunk(output: LogOutput) -> Option<LogChunk> {
    let (source, bytes) = match output {
        LogOutput::StdOut { message } | LogOutput::Console { message } => (LogSource::Stdout, message),
        LogOutput::StdErr { message } => (LogSource::Stderr, message),
        LogOutput::StdIn { .. } => return None,
    };
    (!bytes.is_empty()).then_some(LogChunk { source, bytes })
}

/// The first host address of an IPv4 subnet (`172.17.0.0/16` → `172.17.0.1`); `None` for an
/// IPv6 or unreadable one.
fn first_host_address(subnet: &str) -> Option<Ipv4Addr> {
    let (base, len) = subnet.split_once('/')?;
    let base: Ipv4Addr = base.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 30)?;
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Some(Ipv4Addr::from((u32::from(base) & mask) + 1))
}

/// Inspect's networks, by name, with the container's addresses on each.
fn network_attachments(networks: HashMap<String, bollard::models::EndpointSettings>) -> Vec<NetworkAttachment> {
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let mut out: Vec<NetworkAttachment> = networks
        .into_iter()
        .map(|(network, e)| NetworkAttachment {
            network,
            ipv4: non_empty(e.ip_address),
            ipv6: non_empty(e.global_ipv6_address),
        })
        .collect();
    out.sort_by(|a, b| a.network.cmp(&b.network));
    out
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    let s = s?;
    if s.is_empty() || s.starts_with(ZERO_TIME_PREFIX) {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn port_bindings(ports: Option<&HashMap<String, Option<Vec<BollardPortBinding>>>>) -> Vec<PortBinding> {
    let mut out = Vec::new();
    for (key, bindings) in ports.into_iter().flatten() {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(container_port) = port.parse::<u16>() else { continue };
        let protocol = if proto == "udp" { Protocol::Udp } else { Protocol::Tcp };
        for b in bindings.iter().flatten() {
            let Some(host_port) = b.host_port.as_deref().and_then(|p| p.parse::<u16>().ok()) else { continue };
            out.push(PortBinding {
                container_port,
                host_port,
                bind_ip: b.host_ip.clone().unwrap_or_default(),
                protocol,
            });
        }
    }
    out.sort_by(|a, b| (a.container_port, a.host_port, &a.bind_ip).cmp(&(b.container_port, b.host_port, &b.bind_ip)));
    out
}

#[async_trait]
impl DockerClient for BollardClient {
    async fn ping(&self) -> Result<(), DockerError> {
        self.docker.ping().await.map(|_| ()).map_err(|e| classify(e, "ping", "Docker"))
    }

    async fn container_events(&self, since: Option<DateTime<Utc>>) -> Result<EventStream, DockerError> {
        // bollard connects only when the stream is first read: make sure Docker answers
        // now, so that an unreachable daemon is an error here and not an empty stream.
        self.ping().await?;
        let since = since.unwrap_or_else(Utc::now) - EVENTS_LOOKBACK;
        let since = format!("{}.{:09}", since.timestamp(), since.timestamp_subsec_nanos());
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([("type", vec!["container"])]);
        let options = EventsOptionsBuilder::new().since(&since).filters(&filters).build();
        let stream = self.docker.events(Some(options)).filter_map(|item| async move {
            match item {
                Ok(msg) => {
                    let actor = msg.actor.unwrap_or_default();
                    let nanos = msg.time_nano.or(msg.time.map(|t| t.saturating_mul(1_000_000_000))).unwrap_or(0);
                    Some(Ok(DockerEvent {
                        id: actor.id.unwrap_or_default(),
                        action: msg.action.unwrap_or_default(),
                        attributes: Arc::new(actor.attributes.unwrap_or_default().into_iter().collect()),
                        time: DateTime::from_timestamp_nanos(nanos),
                    }))
                }
                Err(e) => Some(Err(classify(e, "read events", "Docker"))),
            }
        });
        Ok(Box::pin(stream))
    }

    async fn pull_image(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &ProgressSink,
    ) -> Result<(), DockerError> {
        let (repo, tag) = split_reference(image);
        let options = CreateImageOptionsBuilder::new().from_image(&repo).tag(&tag).build();
        // The header these make is rewritten to base64url by `auth_header` (see connect).
        let credentials = auth.map(RegistryAuth::to_docker_credentials);
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        loop {
            // A registry that stops sending is given up on after the inactivity timeout.
            let next = match tokio::time::timeout(self.pull_inactivity, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    let secs = self.pull_inactivity.as_secs_f64();
                    return Err(DockerError::new(
                        ErrorKind::Transient,
                        "pull image",
                        image,
                        format!("no progress for {secs:.0} s; the pull was cancelled"),
                    ));
                }
            };
            match next {
                None => return Ok(()),
                Some(Ok(info)) => {
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        let kind = if permanent_message(&detail) { ErrorKind::Permanent } else { ErrorKind::Transient };
                        return Err(DockerError::new(kind, "pull image", image, detail));
                    }
                    let detail = info.progress_detail.unwrap_or_default();
                    progress(PullProgress {
                        image: image.to_string(),
                        layer: info.id.unwrap_or_default(),
                        status: info.status.unwrap_or_default(),
                        current: detail.current.and_then(|c| u64::try_from(c).ok()),
                        total: detail.total.and_then(|t| u64::try_from(t).ok()),
                    });
                }
                // bollard 0.21 can end a finished pull's stream with a spurious "bytes
                // remaining on stream": the image decides.
                Some(Err(e)) if e.to_string().contains("bytes remaining on stream") => {
                    return match self.image_exists(image).await {
                        Ok(true) => Ok(()),
                        _ => Err(classify(e, "pull image", image)),
                    };
                }
                Some(Err(e)) => return Err(classify(e, "pull image", image)),
            }
        }
    }

    async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = classify(e, "inspect image", image);
                if e.is_not_found() { Ok(false) } else { Err(e) }
            }
        }
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String, DockerError> {
        let options = CreateContainerOptionsBuilder::new().name(&config.name).build();
        self.docker
            .create_container(Some(options), create_body(config))
            .await
            .map(|r| r.id)
            .map_err(|e| classify(e, "create container", &config.name))
    }

    async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        self.docker.start_container(id, None).await.map_err(|e| classify(e, "start container", id))
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<(), DockerError> {
        let t = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(t).build();
        self.docker.stop_container(id, Some(options)).await.map_err(|e| classify(e, "stop container", id))
    }

    async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = classify(e, "remove container", id);
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, DockerError> {
        let r = self.docker.inspect_container(id, None).await.map_err(|e| classify(e, "inspect container", id))?;
        let state = r.state.unwrap_or_default();
        let health = state.health.as_ref().and_then(|h| h.status).and_then(|s| match s {
            HealthStatusEnum::HEALTHY => Some(HealthStatus::Healthy),
            HealthStatusEnum::UNHEALTHY => Some(HealthStatus::Unhealthy),
            HealthStatusEnum::STARTING => Some(HealthStatus::Unknown),
            _ => None,
        });
        let config = r.config.unwrap_or_default();
        Ok(ContainerInfo {
            id: r.id.unwrap_or_default(),
            name: r.name.unwrap_or_default().trim_start_matches('/').to_string(),
            image: config.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            state: ContainerState {
                status: state.status.map(|s| s.to_string()).unwrap_or_default(),
                exit_code: state.exit_code.unwrap_or_default(),
                started_at: parse_time(state.started_at.as_deref()),
                finished_at: parse_time(state.finished_at.as_deref()),
                health,
                oom_killed: state.oom_killed.unwrap_or(false),
            },
            port_bindings: port_bindings(r.network_settings.as_ref().and_then(|n| n.ports.as_ref())),
            image_id: r.image.unwrap_or_default(),
            created_at: parse_time(r.created.as_deref()),
            networks: network_attachments(r.network_settings.and_then(|n| n.networks).unwrap_or_default()),
        })
    }

    async fn container_stats(&self, id: &str) -> Result<serde_json::Value, DockerError> {
        const OPERATION: &str = "container stats";
        let options = StatsOptionsBuilder::new().stream(false).one_shot(false).build();
        let mut samples = std::pin::pin!(self.docker.stats(id, Some(options)));
        let sample = samples
            .next()
            .await
            .ok_or_else(|| DockerError::new(ErrorKind::Transient, OPERATION, id, "Docker sent no sample"))?
            .map_err(|e| classify(e, OPERATION, id))?;
        serde_json::to_value(sample).map_err(|e| DockerError::new(ErrorKind::Permanent, OPERATION, id, e.to_string()))
    }

    async fn network_gateway(&self, network: &str) -> Result<Option<Ipv4Addr>, DockerError> {
        let r =
            self.docker.inspect_network(network, None).await.map_err(|e| classify(e, "inspect network", network))?;
        let configs = r.ipam.and_then(|i| i.config).unwrap_or_default();
        Ok(configs.iter().find_map(|c| match c.gateway.as_deref().and_then(|g| g.parse::<Ipv4Addr>().ok()) {
            Some(gateway) => Some(gateway),
            None => c.subnet.as_deref().and_then(first_host_address),
        }))
    }

    async fn container_logs(&self, id: &str, options: LogOptions) -> Result<LogStream, DockerError> {
        const OPERATION: &str = "container logs";
        // bollard's stream asks nothing until polled: a missing container is found here.
        self.docker.inspect_container(id, None).await.map_err(|e| classify(e, OPERATION, id))?;
        let tail = options.tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let mut builder =
            LogsOptionsBuilder::new().follow(options.follow).stdout(true).stderr(true).timestamps(false).tail(&tail);
        if let Some(since) = options.since {
            // Docker's API takes a 32-bit Unix time; later than 2038 means "nothing yet".
            builder = builder.since(i32::try_from(since.max(0)).unwrap_or(i32::MAX));
        }
        let options = builder.build();
        let target = id.to_string();
        let stream = self.docker.logs(id, Some(options)).filter_map(move |item| {
            ready(match item {
                Ok(output) => log_chunk(output).map(Ok),
                Err(e) => Some(Err(classify(e, OPERATION, &target))),
            })
        });
        Ok(Box::pin(stream))
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, DockerError> {
        let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut options = ListContainersOptionsBuilder::new().all(true);
        // No labels: every container (an empty label filter is not sent at all).
        if !wanted.is_empty() {
            let filters: HashMap<&str, Vec<String>> = HashMap::from([("label", wanted.clone())]);
            options = options.filters(&filters);
        }
        let options = options.build();
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| classify(e, "list containers", &wanted.join(",")))?;
        Ok(listed
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                names: c.names.unwrap_or_default().into_iter().map(|n| n.trim_start_matches('/').to_string()).collect(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                image_id: c.image_id.unwrap_or_default(),
            })
            .collect())
    }

    async fn create_volume(&self, config: &VolumeConfig) -> Result<(), DockerError> {
        let request = VolumeCreateRequest {
            name: Some(config.name.clone()),
            driver: config.driver.clone(),
            driver_opts: Some(config.driver_opts.clone().into_iter().collect()),
            labels: Some(config.labels.clone().into_iter().collect()),
            cluster_volume_spec: None,
        };
        self.docker.create_volume(request).await.map(|_| ()).map_err(|e| classify(e, "create volume", &config.name))
    }

    async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        let options = RemoveVolumeOptionsBuilder::new().force(false).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = classify(e, "remove volume", name);
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    async fn volume_labels(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, DockerError> {
        match self.docker.inspect_volume(name).await {
            Ok(v) => Ok(Some(v.labels.into_iter().collect())),
            Err(e) => {
                let e = classify(e, "inspect volume", name);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    async fn ensure_pause_image(&self) -> Result<(), DockerError> {
        self.ensure_pause_image_as(berth_model::container::PAUSE_IMAGE).await
    }

    async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        let options = RemoveImageOptionsBuilder::new().force(false).noprune(false).build();
        match self.docker.remove_image(image, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = classify(e, "remove image", image);
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    async fn list_images(&self) -> Result<Vec<ImageSummary>, DockerError> {
        let options = ListImagesOptionsBuilder::new().all(false).build();
        let images = self.docker.list_images(Some(options)).await.map_err(|e| classify(e, "list images", "Docker"))?;
        Ok(images
            .into_iter()
            .map(|i| ImageSummary { id: i.id, repo_tags: i.repo_tags, size: i.size, created: i.created })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_always_name_a_tag() {
        assert_eq!(split_reference("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(split_reference("busybox:1.36"), ("busybox".into(), "1.36".into()));
        assert_eq!(
            split_reference("127.0.0.1:51670/busybox:latest"),
            ("127.0.0.1:51670/busybox".into(), "latest".into())
        );
        assert_eq!(split_reference("127.0.0.1:51670/busybox"), ("127.0.0.1:51670/busybox".into(), "latest".into()));
        assert_eq!(split_reference("a/b@sha256:abc"), ("a/b".into(), "sha256:abc".into()));
    }

    #[test]
    fn server_errors_are_classified() {
        let err = |code, msg: &str| {
            classify(BollardError::DockerResponseServerError { status_code: code, message: msg.into() }, "op", "t")
        };
        assert_eq!(err(404, "No such container: x").kind, ErrorKind::NotFound);
        assert_eq!(err(409, "Conflict. The container name is already in use").kind, ErrorKind::Conflict);
        assert_eq!(err(400, "invalid mount config").kind, ErrorKind::Permanent);
        assert_eq!(err(500, "pull access denied for nope, repository does not exist").kind, ErrorKind::Permanent);
        assert_eq!(err(500, "driver failed programming external connectivity").kind, ErrorKind::Transient);
        assert_eq!(err(503, "busy").kind, ErrorKind::Transient);
        assert_eq!(classify(BollardError::RequestTimeoutError, "op", "t").kind, ErrorKind::Timeout);
    }

    #[test]
    fn a_connection_that_breaks_after_the_request_is_an_unknown_outcome_not_nothing_done() {
        let io =
            |kind| classify(BollardError::IOError { err: std::io::Error::from(kind) }, "start container", "t").kind;
        // Never reached Docker: nothing was done.
        assert_eq!(io(std::io::ErrorKind::ConnectionRefused), ErrorKind::Unreachable);
        assert_eq!(io(std::io::ErrorKind::NotFound), ErrorKind::Unreachable);
        // Sent, then the answer was lost: Docker may have done it.
        for kind in [
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::ConnectionAborted,
        ] {
            assert_eq!(io(kind), ErrorKind::Lost, "{kind:?}");
        }
    }

    #[test]
    fn zero_start_time_means_never_started() {
        assert_eq!(parse_time(Some("0001-01-01T00:00:00Z")), None);
        assert!(parse_time(Some("2024-05-01T10:00:00.123456789Z")).is_some());
    }
}
