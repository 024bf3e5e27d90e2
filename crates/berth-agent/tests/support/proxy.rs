//! A proxy in front of the real Docker daemon, which a test controls: it listens on a unix
//! socket of its own and pipes every connection it accepts to `/var/run/docker.sock`.
//!
//! - [`Proxy::cut_events`] closes every open connection that carries a `GET .../events`
//!   request (the Docker event stream), as a daemon or a network hiccup would;
//! - [`Proxy::set_refusing`] makes Docker unreachable the way a stopped daemon is: the
//!   listener is closed and its socket file removed (a connect fails with "no such file"),
//!   and every open connection is closed; passing again binds the socket anew;
//! - [`Proxy::set_dropping`] keeps the socket but closes every connection, open or new
//!   (a daemon that accepts and hangs up);
//! - [`Proxy::lose_answer_of_next`] forwards the next request whose path ends as asked
//!   (`/start`) and closes its connection once Docker answers, without passing the answer
//!   on: a call Docker did, whose answer berth never gets;
//! - [`Proxy::hold_events`] holds back what Docker sends on event streams until released
//!   (events late, as on a busy daemon);
//! - [`Proxy::hold_next_call`] holds the next `POST` create or start back from Docker (a
//!   call berth sent, which Docker has not begun yet): it reaches Docker only when a
//!   rival (a create of the same name, a start of the same container) comes, just before
//!   that rival, or once [`HOLD_LONGEST`] has passed: a killed berth's call that Docker
//!   does after the next berth has looked;
//! - [`Proxy::counts`]: connections and requests by kind.
//!
//! Docker's HTTP client (hyper, under bollard) keeps connections alive and reuses them, so
//! an events request may come on a connection that served other requests first: every
//! request the client sends is found, following HTTP/1's framing ([`RequestLines`]), and a
//! connection is marked as an events connection before that request is forwarded, so a cut
//! after the request has reached Docker always finds it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The real daemon's socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// What the proxy saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Connections accepted and piped to Docker.
    pub accepted: u64,
    /// Connections accepted while dropping (or refusing: a race with the listener's close)
    /// and closed at once.
    pub dropped_while_refusing: u64,
    /// Connections that carried at least one `GET .../events` request.
    pub events_connections: u64,
    /// `GET .../events` requests.
    pub events_requests: u64,
    /// Other requests (`GET /_ping`, `POST /containers/create`, ...).
    pub other_requests: u64,
    /// Events connections closed by [`Proxy::cut_events`].
    pub events_cut: u64,
    /// Connections closed by [`Proxy::set_refusing`] or [`Proxy::set_dropping`].
    pub closed_by_refusal: u64,
    /// Answers Docker gave that [`Proxy::lose_answer_of_next`] kept from the client.
    pub answers_lost: u64,
    /// Calls held by [`Proxy::hold_next_call`].
    pub calls_held: u64,
    /// Held calls that reached Docker because a rival came.
    pub held_until_rival: u64,
}

/// How long a held call waits for a rival before it is passed on anyway.
pub const HOLD_LONGEST: Duration = Duration::from_secs(2);

/// How long a rival waits after the held call was passed on: less than Docker takes to
/// create a container, so that the rival finds the name reserved but nothing to inspect.
const RIVAL_LAG: Duration = Duration::from_millis(5);

/// One open connection.
struct Conn {
    /// Whether it carried a `GET .../events` request.
    events: bool,
    /// Closes it.
    close: watch::Sender<bool>,
}

struct Shared {
    refusing: AtomicBool,
    /// The path ending of the next `POST` whose answer is lost.
    lose_next: Mutex<Option<String>>,
    /// The next create or start is held.
    hold_next: AtomicBool,
    /// The held calls, by target (path and query, the API version left out): each is let
    /// go through its sender.
    held: Mutex<HashMap<String, tokio::sync::oneshot::Sender<()>>>,
    /// True while event streams are held back.
    events_held: watch::Sender<bool>,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Conn>>,
    counts: Mutex<Counts>,
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connection `id` sent a request: `events` when it is a `GET .../events`.
    fn saw_request(&self, id: u64, events: bool) {
        let mut newly_events = false;
        if events && let Some(conn) = self.conns().get_mut(&id) {
            newly_events = !conn.events;
            conn.events = true;
        }
        let mut counts = self.counts();
        if events {
            counts.events_requests += 1;
            counts.events_connections += u64::from(newly_events);
        } else {
            counts.other_requests += 1;
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<String, tokio::sync::oneshot::Sender<()>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What to do with a `POST` to `target` before it goes on to Docker.
    fn hold(&self, target: &str) -> Hold {
        let Some(call) = held_call(target) else { return Hold::None };
        if let Some(release) = self.held().remove(&call) {
            let _ = release.send(());
            self.counts().held_until_rival += 1;
            return Hold::Rival;
        }
        if !self.hold_next.swap(false, Ordering::SeqCst) {
            return Hold::None;
        }
        let (release, rival) = tokio::sync::oneshot::channel();
        self.held().insert(call.clone(), release);
        self.counts().calls_held += 1;
        Hold::UntilRival(call, rival)
    }

    /// Close every open connection `pick` selects; how many.
    fn close(&self, pick: impl Fn(&Conn) -> bool) -> u64 {
        let mut conns = self.conns();
        let ids: Vec<u64> = conns.iter().filter(|(_, c)| pick(c)).map(|(id, _)| *id).collect();
        for id in &ids {
            if let Some(conn) = conns.remove(id) {
                let _ = conn.close.send(true);
            }
        }
        ids.len() as u64
    }
}

/// The proxy; dropping it closes its listener and every connection, and removes its
/// directory.
pub struct Proxy {
    dir: tempfile::TempDir,
    path: PathBuf,
    upstream: PathBuf,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("path", &self.path).field("counts", &self.counts()).finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy to the real daemon, passing. Panics when the daemon's socket is absent: these
    /// tests must not pass without Docker (scripts/test-env.sh sets it up).
    pub fn start() -> Proxy {
        assert!(
            Path::new(DOCKER_SOCKET).exists(),
            "{DOCKER_SOCKET} is missing: these tests need the real Docker daemon (scripts/test-env.sh)"
        );
        // Short: a unix socket path has a limit of about 108 bytes.
        let dir = tempfile::Builder::new().prefix("bpx-").tempdir_in("/tmp").expect("proxy tempdir");
        let path = dir.path().join("d.sock");
        let shared = Arc::new(Shared {
            refusing: AtomicBool::new(false),
            lose_next: Mutex::new(None),
            hold_next: AtomicBool::new(false),
            held: Mutex::new(HashMap::new()),
            events_held: watch::channel(false).0,
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            counts: Mutex::new(Counts::default()),
        });
        let proxy = Proxy { dir, path, upstream: PathBuf::from(DOCKER_SOCKET), shared, accept: Mutex::new(None) };
        proxy.listen();
        proxy
    }

    /// The socket clients connect to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Docker endpoint for it (`unix:///tmp/...`).
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// What it saw so far.
    pub fn counts(&self) -> Counts {
        *self.shared.counts()
    }

    /// Open connections: (all, events ones).
    pub fn open(&self) -> (usize, usize) {
        let conns = self.shared.conns();
        (conns.len(), conns.values().filter(|c| c.events).count())
    }

    /// Close every open connection that carries the event stream; how many.
    pub fn cut_events(&self) -> u64 {
        let n = self.shared.close(|c| c.events);
        self.shared.counts().events_cut += n;
        n
    }

    /// The next `POST` whose path ends with `suffix` (`/start`) reaches Docker, and its
    /// connection is closed once Docker answers, the answer not passed on.
    pub fn lose_answer_of_next(&self, suffix: &str) {
        *self.shared.lose_next.lock().unwrap_or_else(|e| e.into_inner()) = Some(suffix.to_string());
    }

    /// Hold the next `POST .../containers/create` or `POST .../containers/{id}/start` back
    /// from Docker until a rival comes or [`HOLD_LONGEST`] has passed; `false` takes the
    /// request back if none came yet. Whether one was held: [`Counts::calls_held`].
    pub fn hold_next_call(&self, hold: bool) {
        self.shared.hold_next.store(hold, Ordering::SeqCst);
    }

    /// Hold back (or release) what Docker sends on event streams; held bytes are passed on,
    /// in order, once released.
    pub fn hold_events(&self, held: bool) {
        self.shared.events_held.send_replace(held);
    }

    /// Refuse (close the listener, remove the socket file, close every open connection)
    /// or pass again (bind the socket anew).
    pub async fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
        if refusing {
            let accept = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(accept) = accept {
                accept.abort();
                let _ = accept.await; // the listener is closed once the task is gone
            }
            let _ = std::fs::remove_file(&self.path);
            let n = self.shared.close(|_| true);
            self.shared.counts().closed_by_refusal += n;
        } else {
            self.listen();
        }
    }

    /// Drop connections (accept each and close it at once, and close every open one), or
    /// pass again: Docker reachable but hanging up, where [`Proxy::set_refusing`] makes it
    /// unreachable.
    pub fn set_dropping(&self, dropping: bool) {
        self.shared.refusing.store(dropping, Ordering::SeqCst);
        if dropping {
            let n = self.shared.close(|_| true);
            self.shared.counts().closed_by_refusal += n;
        }
    }

    /// Bind the socket and accept on it (unless it is already accepting).
    fn listen(&self) {
        let mut accept = self.accept.lock().unwrap_or_else(|e| e.into_inner());
        if accept.is_some() {
            return;
        }
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).unwrap_or_else(|e| panic!("bind {}: {e}", self.path.display()));
        *accept = Some(tokio::spawn(accept_loop(listener, Arc::clone(&self.shared), self.upstream.clone())));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take() {
            accept.abort();
        }
        self.shared.close(|_| true);
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>, upstream: PathBuf) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                eprintln!("proxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.refusing.load(Ordering::SeqCst) {
            shared.counts().dropped_while_refusing += 1;
            continue; // dropped: closed at once
        }
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let (close, closed) = watch::channel(false);
        shared.conns().insert(id, Conn { events: false, close });
        shared.counts().accepted += 1;
        tokio::spawn(pipe(client, id, Arc::clone(&shared), upstream.clone(), closed));
    }
}

/// What happens to a request before it goes on to Docker.
enum Hold {
    None,
    /// A rival of a held call: it waits [`RIVAL_LAG`] after letting that call go.
    Rival,
    /// Held (its target, as [`held_call`] names it) until a rival lets it go.
    UntilRival(String, tokio::sync::oneshot::Receiver<()>),
}

/// A create or start's target without the API version (`/containers/create?name=x`,
/// `/containers/<id>/start`); `None` for other requests.
fn held_call(target: &str) -> Option<String> {
    let at = target.find("/containers/")?;
    let call = &target[at..];
    let path = call.split('?').next().unwrap_or_default();
    (path == "/containers/create" || path.ends_with("/start")).then(|| call.to_string())
}

/// Forgets a connection when its task ends, however it ends.
struct Forget {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.shared.conns().remove(&self.id);
    }
}

/// Pipe one connection to Docker until either side closes it or the proxy does.
async fn pipe(client: UnixStream, id: u64, shared: Arc<Shared>, upstream: PathBuf, mut closed: watch::Receiver<bool>) {
    let _forget = Forget { id, shared: Arc::clone(&shared) };
    let piping = async {
        let Ok(server) = UnixStream::connect(&upstream).await else {
            eprintln!("proxy: cannot connect to {}", upstream.display());
            return;
        };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        // Set before a request whose answer is to be lost is forwarded: HTTP/1 clients wait
        // for an answer before the next request, so the next bytes from Docker are that answer.
        let losing = AtomicBool::new(false);
        let requests = async {
            let mut buffer = vec![0u8; 16 * 1024];
            let mut lines = RequestLines::default();
            loop {
                let n = match client_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                // Classified before being forwarded: an events request is marked before
                // Docker has it.
                for events in lines.feed(&buffer[..n]) {
                    shared.saw_request(id, events);
                }
                let mut hold = Hold::None;
                for head in lines.heads.drain(..) {
                    let mut lose = shared.lose_next.lock().unwrap_or_else(|e| e.into_inner());
                    let path = head.strip_prefix("POST ").map(|t| t.split('?').next().unwrap_or_default());
                    if let (Some(suffix), Some(path)) = (lose.as_deref(), path)
                        && path.ends_with(suffix)
                    {
                        *lose = None;
                        losing.store(true, Ordering::SeqCst);
                    }
                    drop(lose);
                    if let Some(target) = head.strip_prefix("POST ") {
                        hold = shared.hold(target);
                    }
                }
                match hold {
                    Hold::None => {}
                    Hold::Rival => tokio::time::sleep(RIVAL_LAG).await,
                    Hold::UntilRival(target, rival) => {
                        let _ = tokio::time::timeout(HOLD_LONGEST, rival).await;
                        shared.held().remove(&target);
                    }
                }
                if server_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
            let _ = server_write.shutdown().await;
        };
        let answers = async {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                let n = match server_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if losing.load(Ordering::SeqCst) {
                    shared.counts().answers_lost += 1;
                    return true;
                }
                let events = shared.conns().get(&id).is_some_and(|c| c.events);
                if events {
                    let mut held = shared.events_held.subscribe();
                    let _ = held.wait_for(|h| !*h).await;
                }
                if client_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
            let _ = client_write.shutdown().await;
            false
        };
        tokio::pin!(requests, answers);
        tokio::select! {
            // A lost answer ends the piping: both halves are dropped, the client sees its
            // connection end without an answer.
            lost = &mut answers => if !lost { requests.await },
            () = &mut requests => { answers.await; }
        }
    };
    tokio::select! {
        () = piping => {}
        _ = closed.wait_for(|c| *c) => {} // dropping both streams closes them
    }
}

/// Finds the HTTP/1 requests in what a client sends, following the framing: a request's
/// head up to its empty line, then its body (`Content-Length` bytes, or chunks), then the
/// next request. A connection that stops looking like HTTP (an upgrade, a head too long)
/// is not looked at any further.
#[derive(Debug, Default)]
pub struct RequestLines {
    state: Framing,
    buffer: Vec<u8>,
    /// The request line (`METHOD target`) of each request found, until taken.
    pub heads: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Reading a request's head.
    #[default]
    Head,
    /// Skipping this many bytes of a body.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping this many bytes of chunk data (its CRLF included).
    ChunkData(u64),
    /// Reading trailer lines up to the empty one.
    Trailers,
    /// No longer HTTP requests.
    Opaque,
}

/// Longest head or line kept.
const MAX_HEAD: usize = 64 * 1024;

impl RequestLines {
    /// Feed bytes; for each request whose head completed, whether it is a `GET .../events`.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<bool> {
        let mut found = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.state {
                Framing::Opaque => break,
                Framing::Body(n) | Framing::ChunkData(n) => {
                    let take = n.min(rest.len() as u64);
                    rest = &rest[take as usize..];
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (Framing::Body(_), 0) => Framing::Head,
                        (Framing::Body(_), _) => Framing::Body(left),
                        (_, 0) => Framing::ChunkSize,
                        _ => Framing::ChunkData(left),
                    };
                }
                Framing::Head | Framing::ChunkSize | Framing::Trailers => {
                    let byte = rest[0];
                    rest = &rest[1..];
                    self.buffer.push(byte);
                    if self.buffer.len() > MAX_HEAD {
                        self.state = Framing::Opaque;
                    } else if byte == b'\n' {
                        self.line_end(&mut found);
                    }
                }
            }
        }
        found
    }

    /// A line ended in the buffer.
    fn line_end(&mut self, found: &mut Vec<bool>) {
        let text = match self.state {
            Framing::Head if self.buffer == b"\r\n" || self.buffer == b"\n" => {
                self.buffer.clear(); // empty lines between requests
                return;
            }
            Framing::Head if !(self.buffer.ends_with(b"\r\n\r\n") || self.buffer.ends_with(b"\n\n")) => {
                return; // the head goes on
            }
            _ => String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned(),
        };
        match self.state {
            Framing::Head => {
                let mut lines = text.lines();
                let first = lines.next().unwrap_or_default();
                let Some(events) = request_line(first) else {
                    self.state = Framing::Opaque;
                    return;
                };
                found.push(events);
                self.heads.push(first.rsplit_once(' ').map_or(first, |(head, _)| head).to_string());
                let (mut length, mut chunked, mut upgrade) = (0u64, false, false);
                for line in lines {
                    let Some((name, value)) = line.split_once(':') else { continue };
                    let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
                    match name.as_str() {
                        "content-length" => length = value.parse().unwrap_or(0),
                        "transfer-encoding" => chunked = value.contains("chunked"),
                        "upgrade" => upgrade = true,
                        _ => {}
                    }
                }
                self.state = if upgrade {
                    Framing::Opaque
                } else if chunked {
                    Framing::ChunkSize
                } else if length > 0 {
                    Framing::Body(length)
                } else {
                    Framing::Head
                };
            }
            Framing::ChunkSize => {
                let size = text.trim().split(';').next().unwrap_or_default().trim();
                self.state = match u64::from_str_radix(size, 16) {
                    Ok(0) => Framing::Trailers,
                    Ok(n) => Framing::ChunkData(n + 2),
                    Err(_) => Framing::Opaque,
                };
            }
            Framing::Trailers => {
                if text.trim().is_empty() {
                    self.state = Framing::Head;
                }
            }
            Framing::Body(_) | Framing::ChunkData(_) | Framing::Opaque => {}
        }
    }
}

/// `Some(is a GET .../events)` when `line` is an HTTP request line.
fn request_line(line: &str) -> Option<bool> {
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let is_method = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !is_method || !target.starts_with('/') || !version.starts_with("HTTP/") {
        return None;
    }
    let path = target.split('?').next().unwrap_or_default();
    Some(method == "GET" && path.ends_with("/events"))
}
