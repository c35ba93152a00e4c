//! The life of a service process, written once: serve HTTP, consume, relay the outbox, run
//! background tasks — and stop in an order that loses nothing.

use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Db;
use crate::kafka::{EventConsumer, EventHandler, EventProducer};
use crate::outbox::{self, RelayConfig};

/// Everything a service runs.
#[derive(Debug)]
pub struct ServiceParts<H> {
    /// The bound HTTP listener.
    pub listener: TcpListener,
    /// The HTTP routes.
    pub router: Router,
    /// The service's database (whose outbox is relayed).
    pub db: Db,
    /// The producer the outbox relay publishes with.
    pub producer: EventProducer,
    /// The subscribed consumer.
    pub consumer: EventConsumer,
    /// What the consumer hands events to.
    pub handler: H,
    /// Tasks that watch the same shutdown token and may write to the outbox.
    pub background: Vec<JoinHandle<()>>,
    /// How long stopping may take before the process gives up on in-flight work
    /// (`SHUTDOWN_TIMEOUT_MS`). Giving up loses nothing: unpublished outbox rows stay in the
    /// database and uncommitted messages are consumed again.
    pub shutdown_timeout: Duration,
}

/// Runs until `shutdown`, then: stop accepting HTTP and finish in-flight requests; finish the
/// message being handled and commit offsets; let background tasks end; publish what is left in
/// the outbox; flush the producer — all within the parts' `shutdown_timeout`.
pub async fn run<H: EventHandler>(
    parts: ServiceParts<H>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limit = parts.shutdown_timeout;
    let relay_stop = CancellationToken::new();
    let relay = tokio::spawn(outbox::run_relay(
        parts.db.clone(),
        parts.producer.clone(),
        RelayConfig::default(),
        relay_stop.clone(),
    ));
    let consumer = tokio::spawn(parts.consumer.run(parts.handler, shutdown.clone()));
    let server = tokio::spawn(crate::http::serve(
        parts.listener,
        parts.router,
        shutdown.clone(),
    ));
    // Wait for the signal, or for the server to stop on its own (an error): then stop everything.
    let mut server = server;
    let early = tokio::select! {
        () = shutdown.cancelled() => None,
        served = &mut server => Some(served),
    };
    shutdown.cancel();
    let producer = parts.producer.clone();
    let stopping = async move {
        let served = match early {
            Some(served) => served,
            None => server.await,
        };
        if let Err(error) = consumer.await {
            tracing::error!(%error, "The consumer task failed.");
        }
        for task in parts.background {
            if let Err(error) = task.await {
                tracing::error!(%error, "A background task failed.");
            }
        }
        relay_stop.cancel();
        if let Err(error) = relay.await {
            tracing::error!(%error, "The outbox relay task failed.");
        }
        if let Err(error) = producer.flush(Duration::from_secs(5)) {
            tracing::warn!(%error, "Producer flush incomplete.");
        }
        served
    };
    match tokio::time::timeout(limit, stopping).await {
        Ok(Ok(served)) => served,
        Ok(Err(join_error)) => Err(std::io::Error::other(join_error)),
        Err(_) => {
            tracing::error!(
                ?limit,
                "Shutdown timed out; leaving work in flight (it will be redone after restart)."
            );
            Ok(())
        }
    }
}
