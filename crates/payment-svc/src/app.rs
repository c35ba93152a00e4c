use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use platform::Db;
use platform::config::refuse_development_secret;
use platform::db::lease::Lease;
use platform::http::{Readiness, health_routes, observe, problem_answers};
use platform::kafka::{DeadLetter, EventConsumer, EventProducer};
use platform::service::{self, ServiceParts};
use platform::webhook::Secret;

use crate::handlers::Payments;
use crate::provider::{CircuitBreaker, HttpProvider};
use crate::webhook::{self, WebhookState};
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
    webhooks: Arc<WebhookState>,
    /// Which replica runs the recovery sweep.
    sweep_lease: Lease,
}

impl Application {
    /// Sets everything up; fails fast on bad configuration.
    pub async fn build(config: Config) -> Result<Self, PaymentSvcError> {
        let settings = &config.settings;
        let common = &config.common;
        let development = common.allow_development_secrets;
        for (name, value) in [
            ("PSP_WEBHOOK_SECRET", &config.webhook_secret),
            ("PAYMENT_SVC_DB", &config.database),
            ("DATABASE_URL", &config.database_url),
        ] {
            let value = value.as_ref().map_or("", |value| value.expose());
            refuse_development_secret(name, value, development)?;
        }
        let db = Db::open_with(&config.database_target(), &common.db, store::MIGRATIONS)?;
        let sweep_lease = Lease::new(&db, recovery::LEASE)?;
        let producer = EventProducer::new(&common.kafka)?;
        let consumer = EventConsumer::subscribe(
            &common.kafka,
            crate::handlers::HANDLES,
            DeadLetter::new(producer.clone(), Config::SERVICE),
            common.consumer.clone(),
        )?;
        let secret = config
            .webhook_secret
            .as_ref()
            .filter(|secret| !secret.is_empty());
        let secret = secret.ok_or_else(|| {
            PaymentSvcError::Config(
                "PSP_WEBHOOK_SECRET is not set (the whsec_… secret shared with the payment provider)"
                    .into(),
            )
        })?;
        let secret = Secret::parse(secret.expose())
            .map_err(|reason| PaymentSvcError::Config(format!("PSP_WEBHOOK_SECRET: {reason}")))?;
        let listener = TcpListener::bind(config.http_addr).await?;
        let webhook_url = match &settings.webhook_url {
            Some(url) => url.clone(),
            None => own_webhook_url(listener.local_addr()?),
        };
        let provider =
            HttpProvider::new(&settings.psp_url, webhook_url.clone(), settings.psp_timeout)
                .map_err(|error| PaymentSvcError::Config(error.to_string()))?;
        let provider = CircuitBreaker::new(
            Arc::new(provider),
            settings.breaker_threshold,
            settings.breaker_cooldown,
        );
        let payments = Payments::new(
            db.clone(),
            Arc::new(provider),
            settings.psp_max_in_flight,
            Some(webhook_url),
        );
        let webhooks = Arc::new(WebhookState {
            secret,
            tolerance_s: i64::try_from(settings.webhook_tolerance.as_secs()).unwrap_or(i64::MAX),
            requests: payments.requests.clone(),
        });
        Ok(Self {
            config,
            listener,
            db,
            producer,
            consumer,
            payments,
            webhooks,
            sweep_lease,
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
        let background = vec![tokio::spawn(recovery::run_sweep(
            self.payments.requests.clone(),
            self.sweep_lease,
            self.config.settings.sweep_interval,
            self.config.settings.resubmit_after,
            shutdown.clone(),
        ))];
        let readiness = Readiness::new(
            self.db.clone(),
            self.producer.clone(),
            Vec::new(),
            self.config.common.metrics_token.clone(),
        );
        let parts = ServiceParts {
            listener: self.listener,
            router: router(self.webhooks, readiness),
            db: self.db,
            producer: self.producer,
            consumer: self.consumer,
            handler: self.payments,
            background,
            shutdown_timeout: self.config.common.shutdown_timeout,
        };
        service::run(parts, shutdown)
            .await
            .map_err(PaymentSvcError::from)
    }
}

/// Every HTTP route of payment-svc; testable without a socket.
pub(crate) fn router(webhooks: Arc<WebhookState>, readiness: Readiness) -> Router {
    let routes = Router::new()
        .route("/webhooks/payments", post(webhook::receive))
        // The provider's limits, on the routes above only.
        .route_layer(DefaultBodyLimit::max(webhook::MAX_BODY_BYTES))
        .route_layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            webhook::REQUEST_TIMEOUT,
        ))
        .with_state(webhooks)
        // `GET /healthz`, `GET /readyz`, `GET /metrics`: the same in every service.
        .merge(health_routes(readiness));
    platform::metrics::describe(crate::metrics::DESCRIPTIONS);
    // Unknown routes, other methods, the body limit and the timeout answer problems too.
    observe(Config::SERVICE, problem_answers(routes))
}

/// `http://<listen address>/webhooks/payments`, with a wildcard address replaced by loopback
/// (a provider elsewhere needs `PAYMENT_WEBHOOK_URL`).
fn own_webhook_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    format!("http://{host}/webhooks/payments")
}
