//! Image cleanup (SPEC 7): only images berth itself pulled, unused by any container,
//! older than a minimum age, least recently used first, a few per cycle; off by a
//! setting.
//!
//! The [`ImageLedger`] is what berth knows of the images it pulled: each reference with
//! when it was pulled and last used (a container created from it), kept durable in a
//! small JSON file of the data directory. [`crate::docker::MeteredDocker`] feeds it;
//! [`cleanup_once`] reads it against what Docker lists, and [`cleanup_loop`] runs that on
//! the configured interval.

use crate::config::ImageCleanup;
use crate::metrics::Metrics;
use crate::telemetry::{ImageCleanupCycle, ImageRemoved};
use berth_docker::{DockerClient, DockerError, ErrorKind, ImageSummary};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The ledger's file format version.
const LEDGER_VERSION: u32 = 1;

/// Why the ledger cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("image ledger {path}: {message}")]
pub struct LedgerError {
    /// The file.
    pub path: String,
    /// What failed.
    pub message: String,
}

impl LedgerError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        LedgerError { path: path.display().to_string(), message: message.into() }
    }
}

/// One image berth pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    /// Its reference, in Docker's familiar form (`busybox:latest`,
    /// `127.0.0.1:51670/busybox:latest`), as `docker images` shows its tags.
    pub image: String,
    /// When berth last pulled it.
    pub pulled_at: DateTime<Utc>,
    /// When a container was last created from it; `None`: never since it was pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
}

impl LedgerEntry {
    /// Its last use, or its pull when later (or when it has not been used).
    pub fn last_active(&self) -> DateTime<Utc> {
        self.last_used.map_or(self.pulled_at, |used| used.max(self.pulled_at))
    }
}

/// The ledger file's contents.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerFile {
    version: u32,
    images: Vec<LedgerEntry>,
}

/// When an image was pulled and last used.
#[derive(Debug, Clone, Copy)]
struct Times {
    pulled_at: DateTime<Utc>,
    last_used: Option<DateTime<Utc>>,
    /// The `last_used` the file holds.
    saved_use: Option<DateTime<Utc>>,
}

/// How far the file's `last_used` of an image may lag the one in memory. Uses closer
/// together than this are kept in memory only, so a burst of creates from one image does
/// not rewrite and fsync the ledger for each; after a crash an image looks unused at most
/// this much too early, far less than the cleanup's `min_age` (an hour by default).
const USE_WRITE_INTERVAL: TimeDelta = TimeDelta::minutes(1);

/// The images berth pulled, durable in the data directory: a JSON file rewritten whole
/// (temporary file, fsync, rename) at each change; changes are rare (a pull, a removal, a
/// create from one of these images at most once a minute per image). A file that cannot be read is refused, never
/// overwritten. Safe to share between threads; no lock is held across an `.await`.
#[derive(Debug)]
pub struct ImageLedger {
    path: PathBuf,
    images: Mutex<BTreeMap<String, Times>>,
}

impl ImageLedger {
    /// Open the ledger at `path`, or start an empty one when there is no file (written at
    /// its first change). A file that cannot be read, is not a ledger, or has a newer version is
    /// an error naming it, and is left as it is.
    pub fn open(path: &Path) -> Result<Arc<ImageLedger>, LedgerError> {
        let images = match std::fs::read(path) {
            Ok(bytes) => {
                // An older berth wrote it with the default mode: narrowed to 0600, as every
                // file of the data directory.
                berth_store::files::make_private(path)
                    .map_err(|e| LedgerError::new(path, format!("cannot be made 0600: {e}")))?;
                parse(path, &bytes)?
            }
            // Written at the first change: opening writes nothing (the agent opens the
            // ledger before the engine has taken the data directory's lock).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(LedgerError::new(path, format!("cannot be read: {e}"))),
        };
        tracing::debug!(path = %path.display(), images = images.len(), "image ledger opened");
        Ok(Arc::new(ImageLedger { path: path.to_path_buf(), images: Mutex::new(images) }))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Times>> {
        self.images.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Write the ledger after a change (under the lock, so that writes land in order). A
    /// failure is logged: the ledger in memory stays right, and the next change writes
    /// all of it again.
    fn persist(&self, images: &mut BTreeMap<String, Times>) {
        match write_file(&self.path, images) {
            Ok(()) => images.values_mut().for_each(|t| t.saved_use = t.last_used),
            Err(e) => tracing::warn!(error = %e, "image ledger not saved"),
        }
    }

    /// berth pulled `image` at `now`: it enters the ledger (or its pull time moves on).
    pub fn record_pull(&self, image: &str, now: DateTime<Utc>) {
        let key = normalize_reference(image);
        let mut images = self.lock();
        match images.get_mut(&key) {
            Some(t) if t.pulled_at >= now => return,
            Some(t) => t.pulled_at = now,
            None => {
                images.insert(key, Times { pulled_at: now, last_used: None, saved_use: None });
            }
        }
        self.persist(&mut images);
    }

    /// A container was created from `image` at `now`; nothing happens for an image that
    /// is not in the ledger (berth did not pull it). The file is written when its use time
    /// of the image is a minute old or more (or absent).
    pub fn record_use(&self, image: &str, now: DateTime<Utc>) {
        let key = normalize_reference(image);
        let mut images = self.lock();
        let Some(t) = images.get_mut(&key) else { return };
        if t.last_used.is_some_and(|used| used >= now) {
            return;
        }
        t.last_used = Some(now);
        if t.saved_use.is_some_and(|saved| now - saved < USE_WRITE_INTERVAL) {
            return;
        }
        self.persist(&mut images);
    }

    /// Whether berth pulled `image` (any spelling of the reference Docker takes as the
    /// same: `busybox` is `docker.io/library/busybox:latest`).
    pub fn contains(&self, image: &str) -> bool {
        self.lock().contains_key(&normalize_reference(image))
    }

    /// Every image in the ledger, by reference.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        self.lock()
            .iter()
            .map(|(image, t)| LedgerEntry { image: image.clone(), pulled_at: t.pulled_at, last_used: t.last_used })
            .collect()
    }

    /// The references of the images berth pulled, in Docker's familiar form (as
    /// `ImageSummary::repo_tags` has them).
    pub fn images(&self) -> BTreeSet<String> {
        self.lock().keys().cloned().collect()
    }

    /// `image` leaves the ledger (removed, or gone from the host).
    pub fn forget(&self, image: &str) {
        let key = normalize_reference(image);
        let mut images = self.lock();
        if images.remove(&key).is_some() {
            self.persist(&mut images);
        }
    }
}

/// The ledger in `bytes`, read from `path`.
fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Times>, LedgerError> {
    let file: LedgerFile = serde_json::from_slice(bytes).map_err(|e| {
        LedgerError::new(path, format!("damaged, not an image ledger ({e}); move it away to start an empty one"))
    })?;
    if file.version != LEDGER_VERSION {
        return Err(LedgerError::new(
            path,
            format!("version {} is not the one this berth reads ({LEDGER_VERSION})", file.version),
        ));
    }
    let mut images = BTreeMap::new();
    for entry in file.images {
        let key = normalize_reference(&entry.image);
        if key.is_empty() {
            return Err(LedgerError::new(path, "damaged: an entry has an empty image reference"));
        }
        let times = Times { pulled_at: entry.pulled_at, last_used: entry.last_used, saved_use: entry.last_used };
        if images.insert(key, times).is_some() {
            return Err(LedgerError::new(path, format!("damaged: image {} appears twice", entry.image)));
        }
    }
    Ok(images)
}

/// Write `images` to `path`: a temporary file beside it, synced, renamed over it, and the
/// directory synced.
fn write_file(path: &Path, images: &BTreeMap<String, Times>) -> Result<(), LedgerError> {
    let file = LedgerFile {
        version: LEDGER_VERSION,
        images: images
            .iter()
            .map(|(image, t)| LedgerEntry { image: image.clone(), pulled_at: t.pulled_at, last_used: t.last_used })
            .collect(),
    };
    let mut text = serde_json::to_vec_pretty(&file).map_err(|e| LedgerError::new(path, e.to_string()))?;
    text.push(b'\n');
    berth_store::files::write_atomically(path, &text)
        .map_err(|e| LedgerError::new(path, format!("cannot be written: {e}")))
}

/// `reference` in Docker's familiar form, as `docker images` shows tags: Docker Hub's
/// `docker.io/` (or `index.docker.io/`) and `library/` dropped, `:latest` added when no
/// tag or digest is given. `busybox`, `library/busybox` and
/// `docker.io/library/busybox:latest` are all `busybox:latest`.
pub fn normalize_reference(reference: &str) -> String {
    let reference = reference.trim();
    let (first, rest) = match reference.split_once('/') {
        Some((first, rest)) => (Some(first), rest),
        None => (None, reference),
    };
    let named = match first {
        // Docker Hub, named explicitly.
        Some("docker.io" | "index.docker.io") => rest.strip_prefix("library/").unwrap_or(rest).to_string(),
        // Another registry (a host name with a dot or a port, or localhost).
        Some(host) if host.contains(['.', ':']) || host == "localhost" => reference.to_string(),
        // Docker Hub, implied.
        Some("library") => rest.to_string(),
        _ => reference.to_string(),
    };
    if named.is_empty() || named.contains('@') {
        return named;
    }
    let last = named.rsplit('/').next().unwrap_or(&named);
    if last.contains(':') { named } else { format!("{named}:latest") }
}

/// The longest one Docker call of the cleanup may take: a daemon that does not answer
/// delays the cycle by this much, never for bollard's hours.
const CALL_LIMIT: Duration = Duration::from_secs(120);

/// `call`, or a timeout error once [`CALL_LIMIT`] has passed.
async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, DockerError>>,
) -> Result<T, DockerError> {
    tokio::time::timeout(CALL_LIMIT, call).await.unwrap_or_else(|_| {
        Err(DockerError::new(ErrorKind::Timeout, what, "Docker", format!("no answer in {}s", CALL_LIMIT.as_secs())))
    })
}

/// One cycle of image cleanup at `now`; returns the image references removed.
///
/// The candidates are the ledger's images that are present on the host (a tag of a
/// listed image is the ledger's reference), used by no container on the host in any
/// state (neither by reference nor by image id), and last used (or pulled) at least
/// `settings.min_age` ago. They are removed least recently used first, at most
/// `settings.per_cycle` of them, each by its reference and not forced: a removal Docker
/// refuses as in use (`Conflict`) is skipped and the image kept; removed images leave
/// the ledger. Images berth did not pull are never touched. Ledger images no longer on
/// the host (and not active within the minimum age) leave the ledger.
pub async fn cleanup_once(
    docker: &dyn DockerClient,
    ledger: &ImageLedger,
    settings: &ImageCleanup,
    metrics: &Metrics,
    now: DateTime<Utc>,
) -> Vec<String> {
    let entries = ledger.entries();
    if entries.is_empty() {
        ImageCleanupCycle { candidates: 0, removed: 0, kept_in_use: 0 }.emit(metrics);
        return Vec::new();
    }
    let images = match bounded("list images", docker.list_images()).await {
        Ok(images) => images,
        Err(e) => {
            tracing::warn!(error = %e, "image cleanup skipped: the images could not be listed");
            return Vec::new();
        }
    };
    let containers = match bounded("list containers", docker.list_containers(&[])).await {
        Ok(containers) => containers,
        Err(e) => {
            tracing::warn!(error = %e, "image cleanup skipped: the containers could not be listed");
            return Vec::new();
        }
    };
    let by_tag: HashMap<String, &ImageSummary> =
        images.iter().flat_map(|i| i.repo_tags.iter().map(move |t| (normalize_reference(t), i))).collect();
    let used_references: HashSet<String> = containers.iter().map(|c| normalize_reference(&c.image)).collect();
    let used_ids: HashSet<&str> = containers.iter().map(|c| c.image_id.as_str()).filter(|id| !id.is_empty()).collect();

    let mut kept_in_use = 0;
    let mut candidates: Vec<(LedgerEntry, &ImageSummary, Duration)> = Vec::new();
    for entry in entries {
        let age = (now - entry.last_active()).to_std().unwrap_or(Duration::ZERO);
        let old_enough = age >= settings.min_age;
        let Some(image) = by_tag.get(&entry.image) else {
            if old_enough {
                tracing::debug!(image = %entry.image, "image no longer on the host: it leaves the ledger");
                ledger.forget(&entry.image);
            }
            continue;
        };
        if !old_enough {
            continue;
        }
        if used_references.contains(&entry.image) || used_ids.contains(image.id.as_str()) {
            kept_in_use += 1;
            continue;
        }
        candidates.push((entry, image, age));
    }
    // Least recently used first.
    candidates.sort_by(|(a, ..), (b, ..)| a.last_active().cmp(&b.last_active()).then_with(|| a.image.cmp(&b.image)));

    let mut removed = Vec::new();
    for (entry, image, age) in &candidates {
        if removed.len() >= settings.per_cycle {
            break;
        }
        match bounded("remove image", docker.remove_image(&entry.image)).await {
            Ok(()) => {
                ledger.forget(&entry.image);
                ImageRemoved { reference: &entry.image, image_id: &image.id, tags: &image.repo_tags, age: *age }
                    .emit(metrics);
                removed.push(entry.image.clone());
            }
            Err(e) if e.kind == ErrorKind::Conflict => {
                tracing::debug!(image = %entry.image, error = %e, "image in use: kept");
                kept_in_use += 1;
            }
            Err(e) => tracing::warn!(image = %entry.image, error = %e, "unused image could not be removed"),
        }
    }
    ImageCleanupCycle { candidates: candidates.len(), removed: removed.len(), kept_in_use }.emit(metrics);
    removed
}

/// Run [`cleanup_once`] every `settings.interval` (the first after one interval) until
/// `shutdown` turns true (or its sender goes away); a cycle under way when it does is
/// abandoned. Returns at once when cleanup is disabled.
pub async fn cleanup_loop(
    docker: Arc<dyn DockerClient>,
    ledger: Arc<ImageLedger>,
    settings: ImageCleanup,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if !settings.enabled {
        tracing::info!("image cleanup is off");
        return;
    }
    // A zero interval would spin.
    let interval = settings.interval.max(Duration::from_millis(10));
    tracing::info!(
        interval_s = interval.as_secs_f64(),
        min_age_s = settings.min_age.as_secs_f64(),
        per_cycle = settings.per_cycle,
        ledger = %ledger.path().display(),
        "image cleanup is on"
    );
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }
        tokio::select! {
            _ = cleanup_once(docker.as_ref(), &ledger, &settings, &metrics, Utc::now()) => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
