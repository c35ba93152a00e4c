//! psp-sim: a payment-service-provider simulator with the shape of a real one.
//!
//! Merchants (payment-svc) call its HTTP API to charge and refund, each request carrying an
//! idempotency key; it answers at once (`202`, `pending`) and reports the outcome later by
//! webhook, signed following Standard Webhooks, retried with backoff until the merchant
//! answers `2xx`. Outcomes follow the payment method (see [`ledger`]), so demos and tests are
//! deterministic, including slow and flaky behaviour. The JSON it speaks is `psp-contract`.
//!
//! # Entry points
//!
//! HTTP routes (the table is [`api::router`]):
//! - `POST /v1/charges`, `POST /v1/refunds` — charge and refund requests, each with an
//!   `Idempotency-Key`, answered at once;
//! - `GET /v1/simulator/latency`, `PUT /v1/simulator/latency` — the simulator's own knob: extra
//!   time before answering a charge;
//! - `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! Events consumed: none; the simulator knows no Kafka, only HTTP.
//!
//! Background tasks: one per decided request whose outcome is to be sent, delivering the
//! signed webhook with retries ([`notifier`]); pending ones are dropped at shutdown.

pub mod api;
mod body;
mod config;
pub mod ledger;
pub mod notifier;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use platform::webhook::Secret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, Settings};

use crate::api::ApiState;
use crate::ledger::{Behaviour, Ledger};
use crate::notifier::Notifier;

/// Errors that stop the simulator from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum PspSimError {
    /// A setting is missing or unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading the configuration failed.
    #[error(transparent)]
    Platform(#[from] platform::PlatformError),
    /// The HTTP listener failed.
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
    /// The webhook client could not be built.
    #[error("webhook client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The simulator, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: Arc<ApiState>,
    shutdown: CancellationToken,
}

impl Application {
    /// Binds the listener; fails without a usable webhook secret.
    pub async fn build(config: Config) -> Result<Self, PspSimError> {
        let secret = config
            .webhook_secret
            .as_ref()
            .filter(|secret| !secret.is_empty());
        let secret = secret.ok_or_else(|| {
            PspSimError::Config(
                "PSP_WEBHOOK_SECRET is not set (a whsec_… secret shared with payment-svc)".into(),
            )
        })?;
        platform::config::refuse_development_secret(
            "PSP_WEBHOOK_SECRET",
            secret.expose(),
            config.allow_development_secrets,
        )
        .map_err(|error| PspSimError::Config(error.to_string()))?;
        let secret = Secret::parse(secret.expose())
            .map_err(|reason| PspSimError::Config(format!("PSP_WEBHOOK_SECRET: {reason}")))?;
        let settings = config.settings;
        let shutdown = CancellationToken::new();
        let notifier = Notifier::new(
            secret,
            settings.webhook_attempts,
            settings.webhook_backoff,
            settings.clock_skew_s,
            shutdown.clone(),
        )?;
        let state = Arc::new(ApiState {
            ledger: Ledger::new(Behaviour {
                delay: settings.delay,
                slow_delay: settings.slow_delay,
                flaky_failures: settings.flaky_failures,
                retention: settings.retention,
            }),
            notifier,
            default_webhook_url: settings.default_webhook_url,
            charge_latency_ms: AtomicU64::new(
                u64::try_from(settings.charge_latency.as_millis()).unwrap_or(u64::MAX),
            ),
        });
        let listener = TcpListener::bind(config.http_addr).await?;
        Ok(Self {
            listener,
            state,
            shutdown,
        })
    }

    /// Where the API listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`; pending webhooks are dropped then (see [`notifier`]).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), PspSimError> {
        platform::metrics::describe(notifier::METRICS);
        let router = platform::http::observe(Config::SERVICE, api::router(self.state.clone()));
        let served = platform::http::serve(self.listener, router, shutdown).await;
        self.shutdown.cancel();
        self.state.notifier.closed().await;
        served.map_err(PspSimError::from)
    }
}
