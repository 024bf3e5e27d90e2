//! The accept loops: each listener (the unix socket, TCP) has its own, with its own cap
//! on open connections, so that a full TCP listener never stops the unix socket. A place
//! is taken before `accept`: connections beyond the cap wait in the kernel's listen
//! backlog until one closes.
//!
//! Each connection is served by hyper's HTTP/1 server with the router as its service, and
//! watched for two timeouts (when set): the header timeout (from the connection's start
//! until its first request's headers are in, and from the first byte of each later
//! request) and the idle timeout (a kept-alive connection with no request in flight and
//! no answer still streaming). hyper's own header timeout is not used: it also runs while
//! a kept-alive connection waits for its next request, so it would be the idle timeout too.
//!
//! Shutdown: no new connections; each one finishes its request in flight and closes
//! (following streams end on the same signal, in their handlers).

use axum::Router;
use axum::body::{Body, HttpBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::gauge::Gauge;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What one listener allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most connections served at once.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive (`None`: no limit).
    pub header_timeout: Option<Duration>,
    /// How long a connection with nothing in flight stays open (`None`: no limit).
    pub idle_timeout: Option<Duration>,
}

/// Serve `app` on `listener` until `shutdown` turns true, then let open requests finish.
/// `open` counts the connections being served.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: Limits,
    open: Gauge,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()>
where
    L: axum::serve::Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        // A place first: beyond the cap, connections wait in the kernel's backlog.
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break,
            },
            _ = shutdown.wait_for(|down| *down) => break,
        };
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|down| *down) => break,
        };
        let open = open.clone();
        open.inc();
        let app = app.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            connection(io, app, limits, shutdown).await;
            open.dec();
            drop(place);
        });
        while connections.try_join_next().is_some() {}
    }
    // No new connections from here on; the open ones finish (Agent::shutdown bounds this).
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// What a connection is doing, for its timeouts.
#[derive(Debug)]
struct Activity {
    /// Requests whose answer is not wholly sent yet.
    in_flight: AtomicUsize,
    /// When the current wait began: `(since, head)`, `head` true while a request's headers
    /// are awaited (the connection's start, or a first byte read while idle), false while
    /// idle between requests. `None` while a request is in flight.
    waiting: Mutex<Option<(Instant, bool)>>,
    /// Wakes the watchdog when the state changes.
    changed: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            waiting: Mutex::new(Some((Instant::now(), true))),
            changed: Notify::new(),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Option<(Instant, bool)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request's headers are in: it is in flight until its answer is sent.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        *self.waiting() = None;
        InFlight(Arc::clone(self))
    }

    /// Bytes arrived: when idle, a request's headers have begun.
    fn read_some(&self) {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return;
        }
        let mut waiting = self.waiting();
        if let Some((_, false)) = *waiting {
            *waiting = Some((Instant::now(), true));
            drop(waiting);
            self.changed.notify_one();
        }
    }

    /// When the connection should be closed, if nothing changes before.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        match *self.waiting() {
            Some((since, true)) => limits.header_timeout.map(|t| since + t),
            Some((since, false)) => limits.idle_timeout.map(|t| since + t),
            None => None,
        }
    }
}

/// A request in flight; dropped when its answer's body is done (or dropped).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.0.waiting() = Some((Instant::now(), false));
            self.0.changed.notify_one();
        }
    }
}

/// An answer's body that keeps its request in flight until it is done.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's stream, telling its [`Activity`] when bytes arrive.
struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Serve one connection until it closes, times out, or shutdown lets it finish.
async fn connection<I>(io: I, app: Router, limits: Limits, mut shutdown: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = Watched { io, activity: Arc::clone(&activity) };
    let inner = TowerToHyperService::new(app);
    let tracking = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let in_flight = tracking.begin();
        let answer = hyper::service::Service::call(&inner, request);
        async move {
            let response = answer.await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(Tracked { body, _in_flight: in_flight })))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "API connection ended with an error");
                }
                return;
            }
            _ = shutdown.wait_for(|down| *down), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            () = activity.changed.notified() => {}
            () = sleep_until(deadline) => {
                if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("API connection closed: header or idle timeout");
                    return;
                }
            }
        }
    }
}

/// Sleep until `deadline`, or for ever.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
