use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use platform::PlatformError;
use platform::config::{KafkaConfig, env_millis, env_or, env_parse};

/// payment-svc's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `PAYMENT_SVC_ADDR`: health, readiness (and later the provider's webhooks).
    pub http_addr: SocketAddr,
    /// `PAYMENT_SVC_DB`: the SQLite file.
    pub database_path: PathBuf,
    /// `PSP_SIM_DELAY_MS`: how long the simulated provider takes to notify an outcome.
    pub provider_delay: Duration,
    /// `PSP_SIM_SLOW_MS`: how long the simulated provider takes for `pm_slow_3s`.
    pub provider_slow_delay: Duration,
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
            database_path: env_or("PAYMENT_SVC_DB", "data/payment-svc.db").into(),
            provider_delay: env_millis("PSP_SIM_DELAY_MS", Duration::from_millis(5))?,
            provider_slow_delay: env_millis("PSP_SIM_SLOW_MS", Duration::from_secs(3))?,
            resubmit_after: env_millis("PAYMENT_RESUBMIT_AFTER_MS", Duration::from_secs(3))?,
            sweep_interval: env_millis("PAYMENT_SWEEP_INTERVAL_MS", Duration::from_millis(500))?,
            breaker_threshold: env_parse("PSP_BREAKER_THRESHOLD", 5)?,
            breaker_cooldown: env_millis("PSP_BREAKER_COOLDOWN_MS", Duration::from_secs(5))?,
            kafka: KafkaConfig::from_env(Self::SERVICE)?,
        })
    }
}
