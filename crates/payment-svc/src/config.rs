use std::net::SocketAddr;
use std::time::Duration;

use platform::PlatformError;
use platform::config::{KafkaConfig, env_millis, env_or, env_parse};
use platform::sql::DbTarget;

/// payment-svc's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `PAYMENT_SVC_ADDR`: the provider's webhooks, health, readiness and metrics.
    pub http_addr: SocketAddr,
    /// `PAYMENT_SVC_DB` (else `DATABASE_URL`): a SQLite file path, or a `postgres://` URL —
    /// which several replicas may share.
    pub database: DbTarget,
    /// `PSP_URL`: the payment provider's API.
    pub psp_url: String,
    /// `PSP_TIMEOUT_MS`: longest wait for the provider's answer to a request.
    pub psp_timeout: Duration,
    /// `PSP_MAX_IN_FLIGHT`: provider requests running at once; beyond it, handlers wait.
    pub psp_max_in_flight: usize,
    /// `PSP_WEBHOOK_SECRET`: the `whsec_…` secret the provider signs webhooks with. Required;
    /// never built in.
    pub webhook_secret: Option<String>,
    /// `PSP_WEBHOOK_TOLERANCE_S`: webhooks whose timestamp is further from now are refused
    /// (replay protection).
    pub webhook_tolerance_s: i64,
    /// `PAYMENT_WEBHOOK_URL`: the URL the provider calls back; by default this service's own
    /// `/webhooks/payments` on its listen address.
    pub webhook_url: Option<String>,
    /// `PAYMENT_RESUBMIT_AFTER_MS`: a request without outcome for this long is sent again.
    pub resubmit_after: Duration,
    /// `PAYMENT_SWEEP_INTERVAL_MS`: how often to look for such requests.
    pub sweep_interval: Duration,
    /// `PSP_BREAKER_THRESHOLD`: consecutive provider failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// `PSP_BREAKER_COOLDOWN_MS`: how long the breaker stays open before a trial request.
    pub breaker_cooldown: Duration,
    /// Broker settings; the consumer group is `payment-svc`.
    pub kafka: KafkaConfig,
}

impl Config {
    /// The service name: Kafka client id and consumer group.
    pub const SERVICE: &'static str = "payment-svc";

    /// Reads the environment.
    pub fn from_env() -> Result<Self, PlatformError> {
        Ok(Self {
            http_addr: env_parse("PAYMENT_SVC_ADDR", SocketAddr::from(([127, 0, 0, 1], 8081)))?,
            database: platform::config::env_database("PAYMENT_SVC_DB", "data/payment-svc.db"),
            psp_url: env_or("PSP_URL", "http://127.0.0.1:8090"),
            psp_timeout: env_millis("PSP_TIMEOUT_MS", Duration::from_secs(5))?,
            psp_max_in_flight: env_parse("PSP_MAX_IN_FLIGHT", 256)?,
            webhook_secret: Some(env_or("PSP_WEBHOOK_SECRET", "")).filter(|s| !s.is_empty()),
            webhook_tolerance_s: env_parse(
                "PSP_WEBHOOK_TOLERANCE_S",
                platform::webhook::DEFAULT_TOLERANCE_S,
            )?,
            webhook_url: Some(env_or("PAYMENT_WEBHOOK_URL", "")).filter(|s| !s.is_empty()),
            resubmit_after: env_millis("PAYMENT_RESUBMIT_AFTER_MS", Duration::from_secs(3))?,
            sweep_interval: env_millis("PAYMENT_SWEEP_INTERVAL_MS", Duration::from_millis(500))?,
            breaker_threshold: env_parse("PSP_BREAKER_THRESHOLD", 5)?,
            breaker_cooldown: env_millis("PSP_BREAKER_COOLDOWN_MS", Duration::from_secs(5))?,
            kafka: KafkaConfig::from_env(Self::SERVICE)?,
        })
    }
}
