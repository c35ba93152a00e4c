//! Serving a router over TCP with the limits a server facing the internet needs.
//!
//! `axum::serve` builds hyper without a timer, which turns hyper's header-read timeout off: a
//! client could hold a connection, its task and its buffers for ever by sending a request head
//! a byte at a time, or nothing at all (slowloris); nor does it cap the number of connections.
//! This loop does what it does — accept, serve each connection on a task of its own, drain on
//! shutdown — with both limits. HTTP/1.1 only, as before (axum's `http2` feature is off, and
//! no client of these services speaks HTTP/2 without TLS).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// [`ServeLimits::header_read_timeout`] unless told otherwise: a client on a slow mobile link
/// sends a request head (a few hundred bytes) in well under a second.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// [`ServeLimits::max_connections`] unless told otherwise. Well above what the benchmark opens
/// (up to 512 orders in flight, each with an SSE stream besides), well below the file
/// descriptors a process usually gets, which the database and Kafka clients need too.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The limits of one HTTP server.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// How long a client may take to send a whole request head (request line and headers),
    /// counted from when the server starts waiting for one: on a new connection, and after each
    /// answer on a kept-alive connection — so it is also how long an idle connection is kept.
    /// Past it the connection is closed. A response being streamed (SSE) is not limited.
    pub header_read_timeout: Duration,
    /// Connections served at once. Beyond it the server stops accepting: new connections wait
    /// in the kernel's listen backlog until a served one closes, and the kernel refuses them
    /// once the backlog is full. Waiting rather than accepting and closing at once: a burst of
    /// honest clients is served a moment later instead of failing (and retrying at once, which
    /// only adds load), and a waiting connection costs the process nothing. A client holding
    /// connections open to starve the others is cut off by the header timeout.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown`; then stops accepting (the
/// listener is closed), lets each connection finish the request it is answering (a streamed
/// answer ends when its route sees the same shutdown), closes idle ones, and returns once all
/// are closed.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: ServeLimits,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    after_accept_error(error, &shutdown).await;
                    continue;
                }
            },
        };
        // Small writes (an SSE event, the end of a stream) go out at once instead of waiting
        // for the peer's delayed acknowledgement.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "Could not set TCP_NODELAY.");
        }
        // Handlers that care who is on the other end (`ConnectInfo<SocketAddr>`, e.g. a console
        // that lets loopback in during local development) find the peer in the extensions.
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // A client gone, or cut off by the header timeout: nothing the server can mend.
                tracing::debug!(%error, "An HTTP connection ended with an error.");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A connection that died before it was accepted is the client's business; any other error
/// (out of file descriptors, usually) does not clear at once, so wait a second rather than spin.
async fn after_accept_error(error: io::Error, shutdown: &CancellationToken) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(%error, "Could not accept a connection; trying again in a second.");
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}
