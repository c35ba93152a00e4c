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
}

/// Runs until `shutdown`, then: stop accepting HTTP and finish in-flight requests; finish the
/// message being handled and commit offsets; let background tasks end; publish what is left in
/// the outbox; flush the producer.
pub async fn run<H: EventHandler>(
    parts: ServiceParts<H>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let relay_stop = CancellationToken::new();
    let relay = tokio::spawn(outbox::run_relay(
        parts.db.clone(),
        parts.producer.clone(),
        RelayConfig::default(),
        relay_stop.clone(),
    ));
    let consumer = tokio::spawn(parts.consumer.run(parts.handler, shutdown.clone()));
    let served = crate::http::serve(parts.listener, parts.router, shutdown.clone()).await;
    // If the server stopped on its own (an error), stop everything else too.
    shutdown.cancel();
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
    if let Err(error) = parts.producer.flush(Duration::from_secs(5)) {
        tracing::warn!(%error, "Producer flush incomplete.");
    }
    served
}
