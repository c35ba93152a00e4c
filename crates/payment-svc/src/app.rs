use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use events::Topic;
use platform::Db;
use platform::http::{Readiness, health_routes, observe};
use platform::kafka::{ConsumerSettings, DeadLetter, EventConsumer, EventProducer};
use platform::service::{self, ServiceParts};

use crate::handlers::Payments;
use crate::provider::{CircuitBreaker, Notification, SimulatedProvider, SimulatorConfig};
use crate::{Config, PaymentSvcError, recovery, store};

/// payment-svc, built and ready to run.
#[derive(Debug)]
pub struct Application {
    config: Config,
    listener: TcpListener,
    db: Db,
    producer: EventProducer,
    consumer: EventConsumer,
    payments: Payments,
    notifications: mpsc::Receiver<Notification>,
}

impl Application {
    /// Sets everything up; fails fast on bad configuration.
    pub async fn build(config: Config) -> Result<Self, PaymentSvcError> {
        let db = Db::open(&config.database_path, &[store::MIGRATION])?;
        let producer = EventProducer::new(&config.kafka)?;
        let consumer = EventConsumer::subscribe(
            &config.kafka,
            &[Topic::Orders, Topic::Inventory],
            DeadLetter::new(producer.clone(), Config::SERVICE),
            ConsumerSettings::from_env()?,
        )?;
        let (sender, notifications) = mpsc::channel(1024);
        let provider = SimulatedProvider::new(
            SimulatorConfig {
                delay: config.provider_delay,
                slow_delay: config.provider_slow_delay,
            },
            sender,
        );
        let provider = CircuitBreaker::new(
            Arc::new(provider),
            config.breaker_threshold,
            config.breaker_cooldown,
        );
        let payments = Payments::new(db.clone(), Arc::new(provider));
        let listener = TcpListener::bind(config.http_addr).await?;
        Ok(Self {
            config,
            listener,
            db,
            producer,
            consumer,
            payments,
            notifications,
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
    ) -> Result<(), PaymentSvcError> {
        let background = vec![
            tokio::spawn(recovery::run_notifications(
                self.payments.clone(),
                self.notifications,
                shutdown.clone(),
            )),
            tokio::spawn(recovery::run_sweep(
                self.payments.clone(),
                self.config.sweep_interval,
                self.config.resubmit_after,
                shutdown.clone(),
            )),
        ];
        let readiness = Readiness {
            db: self.db.clone(),
            producer: self.producer.clone(),
            scrape_gauges: Vec::new(),
        };
        let parts = ServiceParts {
            listener: self.listener,
            router: observe(health_routes(readiness)),
            db: self.db,
            producer: self.producer,
            consumer: self.consumer,
            handler: self.payments,
            background,
        };
        service::run(parts, shutdown)
            .await
            .map_err(PaymentSvcError::from)
    }
}
