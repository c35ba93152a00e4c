//! `shopctl broker`: only the embedded Kafka-protocol broker, for running the services as
//! separate processes (the end-to-end tests do this), optionally with a fault-injection control
//! endpoint for failure tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;

use embedded_broker::{EmbeddedBroker, Fault, FaultApi};

type Shared = Arc<Mutex<EmbeddedBroker>>;

/// Starts the broker, prints its address (and the control URL) and `ready`, and runs until
/// Ctrl-C / SIGTERM.
pub async fn run(brokers: i32, control_addr: Option<SocketAddr>) -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(brokers)?;
    println!("KAFKA_BOOTSTRAP_SERVERS={}", broker.bootstrap_servers());
    let broker: Shared = Arc::new(Mutex::new(broker));
    let shutdown = platform::shutdown::on_signal();
    if let Some(addr) = control_addr {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("BROKER_CONTROL=http://{}", listener.local_addr()?);
        let router = control_routes(Arc::clone(&broker));
        let stop = shutdown.clone();
        tokio::spawn(async move { platform::http::serve(listener, router, stop).await });
    }
    println!("broker ready");
    shutdown.cancelled().await;
    drop(broker);
    Ok(())
}

/// `POST /brokers/{id}/down|up`, `POST /clients/{client_id}/down|up`,
/// `POST /faults/{produce|fetch|commit|heartbeat|disconnect}/{count}`.
fn control_routes(broker: Shared) -> Router {
    Router::new()
        .route(
            "/brokers/{id}/down",
            post(|state, Path(id): Path<i32>| inject(state, Fault::BrokerDown(id))),
        )
        .route(
            "/brokers/{id}/up",
            post(|state, Path(id): Path<i32>| inject(state, Fault::BrokerUp(id))),
        )
        .route(
            "/clients/{client_id}/down",
            post(|state, Path(id): Path<String>| inject(state, Fault::ClientDown(id))),
        )
        .route(
            "/clients/{client_id}/up",
            post(|state, Path(id): Path<String>| inject(state, Fault::ClientUp(id))),
        )
        .route(
            "/faults/{api}/{count}",
            post(
                |state, Path((api, count)): Path<(String, usize)>| async move {
                    match api.parse::<FaultApi>() {
                        Ok(api) => inject(state, Fault::RequestErrors { api, count }).await,
                        Err(reason) => (StatusCode::BAD_REQUEST, reason),
                    }
                },
            ),
        )
        .with_state(broker)
}

async fn inject(State(broker): State<Shared>, fault: Fault) -> (StatusCode, String) {
    let result = broker
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .inject(fault.clone());
    match result {
        Ok(()) => {
            tracing::warn!(?fault, "Fault injected.");
            (StatusCode::OK, format!("{fault:?}\n"))
        }
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")),
    }
}
