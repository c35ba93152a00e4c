use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use platform::Db;
use platform::config::refuse_development_secret;
use platform::http::{Readiness, health_routes, observe, problem_answers};
use platform::kafka::{DeadLetter, EventConsumer, EventProducer};
use platform::service::{self, ServiceParts};

use crate::handlers::Inventory;
use crate::{Config, InventorySvcError, store};

/// inventory-svc, built and ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    db: Db,
    producer: EventProducer,
    consumer: EventConsumer,
    shutdown_timeout: std::time::Duration,
    metrics_token: Option<platform::config::Sensitive>,
}

impl Application {
    /// Sets everything up (seeding stock on first start); fails fast on bad configuration.
    pub async fn build(config: Config) -> Result<Self, InventorySvcError> {
        for (name, url) in [
            ("INVENTORY_SVC_DB", &config.database),
            ("DATABASE_URL", &config.database_url),
        ] {
            let url = url.as_ref().map_or("", |url| url.expose());
            refuse_development_secret(name, url, config.common.allow_development_secrets)?;
        }
        let catalog = platform::config::load_catalog(config.catalog_path.as_deref())?;
        let db = Db::open_with(
            &config.database_target(),
            &config.common.db,
            &[store::MIGRATION],
        )?;
        // One transaction: the stock is seeded whole or not at all.
        db.transaction(move |tx| store::seed(tx, &catalog)).await?;
        let producer = EventProducer::new(&config.common.kafka)?;
        let consumer = EventConsumer::subscribe(
            &config.common.kafka,
            crate::handlers::HANDLES,
            DeadLetter::new(producer.clone(), Config::SERVICE),
            config.common.consumer.clone(),
        )?;
        let listener = TcpListener::bind(config.http_addr).await?;
        Ok(Self {
            listener,
            db,
            producer,
            consumer,
            shutdown_timeout: config.common.shutdown_timeout,
            metrics_token: config.common.metrics_token.clone(),
        })
    }

    /// Where the HTTP endpoints listen.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until `shutdown` (see [`platform::service::run`]).
    pub async fn run_until_stopped(
        self,
        shutdown: CancellationToken,
    ) -> Result<(), InventorySvcError> {
        let readiness = Readiness::new(
            self.db.clone(),
            self.producer.clone(),
            Vec::new(),
            self.metrics_token,
        );
        let parts = ServiceParts {
            listener: self.listener,
            router: router(readiness),
            handler: Inventory::new(self.db.clone()),
            db: self.db,
            producer: self.producer,
            consumer: self.consumer,
            background: Vec::new(),
            shutdown_timeout: self.shutdown_timeout,
        };
        service::run(parts, shutdown)
            .await
            .map_err(InventorySvcError::from)
    }
}

/// Every route inventory-svc serves: health, readiness and metrics only (it has no API of its
/// own: it works from the events it consumes).
///
/// | Route          | What                                                  |
/// |----------------|-------------------------------------------------------|
/// | `GET /healthz` | the process is alive                                  |
/// | `GET /readyz`  | database and broker reachable: it can do its work     |
/// | `GET /metrics` | Prometheus text (`Authorization: Bearer` if `METRICS_TOKEN`) |
fn router(readiness: Readiness) -> axum::Router {
    observe(Config::SERVICE, problem_answers(health_routes(readiness)))
}
