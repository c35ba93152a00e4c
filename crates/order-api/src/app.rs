use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use platform::Db;
use platform::config::refuse_development_secret;
use platform::db::Migration;
use platform::db::lease::Lease;
use platform::http::Readiness;
use platform::kafka::{DeadLetter, EventConsumer, EventProducer};
use platform::service::{self, ServiceParts};
use platform::webhook::Secret;

use crate::api::{self, AppState, Shared};
use crate::auth::ApiKeys;
use crate::rate_limit::RateLimiter;
use crate::saga::{Coordinator, deadline};
use crate::status_feed::StatusFeed;
use crate::store;
use crate::webhooks::{self, deliverer::DelivererConfig};
use crate::{Config, OrderApiError};

/// Every migration of order-api's tables, in the order they apply: what the service's database
/// and the tests' scratch databases are opened with.
pub(crate) const MIGRATIONS: &[Migration] = &[
    store::MIGRATION,
    crate::idempotency::MIGRATION,
    crate::idempotency::EXPIRY_MIGRATION,
    crate::webhooks::MIGRATION,
    crate::webhooks::DEAD_LETTER_MIGRATION,
    crate::webhooks::RETRY_MIGRATION,
    store::LISTING_MIGRATION,
    store::CONSOLE_MIGRATION,
    crate::console::SESSIONS_MIGRATION,
    crate::webhooks::FAILED_MIGRATION,
];

/// order-api, built and ready to run: the listener is bound, the database migrated and the
/// consumer subscribed, so orders are accepted from the moment `run_until_stopped` starts.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    db: Db,
    producer: EventProducer,
    /// The broker settings, for the console's reader of the dead-letter topics.
    kafka: platform::config::KafkaConfig,
    consumer: EventConsumer,
    /// What the handlers share, completed when the service starts running.
    state: Shared,
    reaper_interval: std::time::Duration,
    shutdown_timeout: std::time::Duration,
    metrics_token: Option<platform::config::Sensitive>,
    keys: Arc<ApiKeys>,
    leases: Leases,
}

/// The leases of the jobs only one replica may run at a time (on a shared Postgres database).
#[derive(Debug)]
struct Leases {
    /// The deadline reaper's: two reapers would race to cancel the same overdue orders.
    reaper: Lease,
    /// The webhook deliverer's: two deliverers would send every webhook twice.
    deliverer: Lease,
}

impl Application {
    /// Sets everything up; fails fast on bad configuration.
    pub async fn build(config: Config) -> Result<Self, OrderApiError> {
        let settings = &config.settings;
        let common = &config.common;
        let development = common.allow_development_secrets;
        refuse_development_secret("API_KEYS", settings.api_keys.expose(), development)?;
        refuse_development_secret(
            "OPERATOR_KEYS",
            settings.operator_keys.expose(),
            development,
        )?;
        refuse_development_secret(
            "CALLBACK_SECRETS",
            settings.callback_secrets.expose(),
            development,
        )?;
        for (name, url) in [
            ("ORDER_API_DB", &config.database),
            ("DATABASE_URL", &config.database_url),
        ] {
            let url = url.as_ref().map_or("", |url| url.expose());
            refuse_development_secret(name, url, development)?;
        }
        let catalog = platform::config::load_catalog(config.catalog_path.as_deref())?;
        let db = Db::open_with(&config.database_target(), &common.db, MIGRATIONS)?;
        let leases = Leases {
            reaper: Lease::new(&db, "order-api/deadline-reaper")?,
            deliverer: Lease::new(&db, "order-api/webhook-deliverer")?,
        };
        let producer = EventProducer::new(&common.kafka)?;
        let consumer = EventConsumer::subscribe(
            &common.kafka,
            crate::saga::HANDLES,
            DeadLetter::new(producer.clone(), Config::SERVICE),
            common.consumer.clone(),
        )?;
        let keys = ApiKeys::parse(settings.api_keys.expose(), settings.allow_anonymous).map_err(
            |reason| platform::PlatformError::Config {
                name: "API_KEYS".into(),
                value: "(hidden)".into(),
                reason,
            },
        )?;
        if let Some(token) = settings.admin_token.as_ref().filter(|t| !t.is_empty())
            && let Err(reason) = crate::api::admin::check_admin_token(token.expose(), &keys)
        {
            return Err(platform::PlatformError::Config {
                name: "ADMIN_TOKEN".into(),
                value: "(hidden)".into(),
                reason,
            }
            .into());
        }
        let keys = Arc::new(keys);
        let operators = crate::console::OperatorKeys::parse(
            settings.operator_keys.expose(),
            settings.admin_token.as_ref().map(|token| token.expose()),
            &keys,
        )
        .map_err(|reason| platform::PlatformError::Config {
            name: "OPERATOR_KEYS".into(),
            value: "(hidden)".into(),
            reason,
        })?;
        let mut console =
            crate::console::Console::new(operators, Arc::clone(&keys), settings.allow_anonymous);
        console.stuck_after = chrono::TimeDelta::from_std(settings.console_stuck_after)
            .unwrap_or(chrono::TimeDelta::MAX);
        console.secure_cookies = settings.console_secure_cookies;
        let mut secrets = HashMap::new();
        for pair in settings
            .callback_secrets
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let parsed = pair
                .split_once(':')
                .ok_or_else(|| "expected principal:whsec_…".to_owned())
                .and_then(|(principal, secret)| {
                    let secret = Secret::parse(secret)
                        .map_err(|error| format!("{principal}'s secret: {error}"))?;
                    Ok((principal.to_owned(), secret))
                });
            let (principal, secret) = parsed.map_err(|reason| platform::PlatformError::Config {
                name: "CALLBACK_SECRETS".into(),
                value: "(hidden)".into(),
                reason,
            })?;
            secrets.insert(principal, secret);
        }
        let webhooks = DelivererConfig {
            secrets: Arc::new(secrets),
            max_attempts: settings.webhook_max_attempts.max(1),
            base_backoff: settings.webhook_retry_base,
            allow_private: settings.callback_allow_private,
        };
        let listener = TcpListener::bind(config.http_addr).await?;
        let state = Shared {
            held: crate::rate_limit::HeldPerPrincipal::new(settings.max_held_per_principal),
            read_limiter: Arc::new(RateLimiter::new(
                settings.rate_limit_per_s * 10.0,
                settings.rate_limit_burst * 10.0,
            )),
            rate_limiter: Arc::new(RateLimiter::new(
                settings.rate_limit_per_s,
                settings.rate_limit_burst,
            )),
            webhooks,
            db: db.clone(),
            catalog: Arc::new(catalog),
            updates: StatusFeed::new(),
            sse_keep_alive: settings.sse_keep_alive,
            sse_streams: Arc::new(tokio::sync::Semaphore::new(settings.sse_max_streams)),
            sse_max_idle: settings.sse_max_idle,
            shutdown: CancellationToken::new(),
            outbox_backlog_limit: settings.outbox_backlog_limit,
            idempotency_ttl: chrono::TimeDelta::from_std(settings.idempotency_ttl)
                .unwrap_or(chrono::TimeDelta::MAX),
            saga_timeout: chrono::TimeDelta::from_std(settings.saga_timeout)
                .unwrap_or(chrono::TimeDelta::MAX),
            trace_url: settings.trace_url(),
            admin_token: settings
                .admin_token
                .clone()
                .filter(|token| !token.is_empty()),
            console,
        };
        Ok(Self {
            keys,
            leases,
            reaper_interval: settings.reaper_interval,
            shutdown_timeout: common.shutdown_timeout,
            metrics_token: common.metrics_token.clone(),
            listener,
            db,
            producer,
            consumer,
            state,
            kafka: common.kafka.clone(),
        })
    }

    /// Where the HTTP API listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves HTTP, consumes replies and relays the outbox until `shutdown`, then stops without
    /// losing work (see [`platform::service::run`]).
    pub async fn run_until_stopped(
        mut self,
        shutdown: CancellationToken,
    ) -> Result<(), OrderApiError> {
        self.state.shutdown = shutdown.child_token();
        self.state.console.dead_letters = crate::console::dead_letters::Desk::start(
            self.kafka.client_config(),
            shutdown.child_token(),
        );
        let readiness = Readiness::new(
            self.db.clone(),
            self.producer.clone(),
            vec![
                (
                    crate::metrics::SAGAS_IN_FLIGHT,
                    "SELECT COUNT(*) FROM orders WHERE status NOT IN ('confirmed', 'cancelled')",
                ),
                (crate::metrics::ORDERS, "SELECT COUNT(*) FROM orders"),
                // `sagas_open_longer_than_10s` needs the current time: see `api::router`.
            ],
            self.metrics_token.clone(),
        );
        let reaper = tokio::spawn(deadline::run_reaper(
            self.db.clone(),
            self.leases.reaper,
            self.state.updates.clone(),
            self.reaper_interval,
            shutdown.clone(),
        ));
        let deliverer = tokio::spawn(webhooks::deliverer::run(
            self.db.clone(),
            self.leases.deliverer,
            self.producer.clone(),
            self.state.webhooks.clone(),
            shutdown.clone(),
        ));
        let follower = tokio::spawn(crate::status_feed::follow_other_replicas(
            self.db.clone(),
            self.state.updates.clone(),
            shutdown.clone(),
        ));
        let purge = tokio::spawn(crate::idempotency::run_purge(
            self.db.clone(),
            shutdown.clone(),
        ));
        let parts = ServiceParts {
            handler: Coordinator::new(self.db.clone(), self.state.updates.clone()),
            router: api::router(AppState::new(self.state), self.keys, readiness),
            listener: self.listener,
            db: self.db,
            producer: self.producer,
            consumer: self.consumer,
            background: vec![reaper, deliverer, follower, purge],
            shutdown_timeout: self.shutdown_timeout,
        };
        service::run(parts, shutdown)
            .await
            .map_err(OrderApiError::from)
    }
}
