use std::net::SocketAddr;
use std::time::Duration;

use platform::PlatformError;
use platform::config::{env_millis, env_or, env_parse};

/// The simulator's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `PSP_SIM_ADDR`: where the provider API listens.
    pub http_addr: SocketAddr,
    /// `PSP_WEBHOOK_SECRET`: the `whsec_…` secret webhooks are signed with, shared with the
    /// merchant (payment-svc). Required: a provider never signs with a built-in key.
    pub webhook_secret: Option<String>,
    /// `PSP_SIM_WEBHOOK_URL`: the merchant's endpoint for requests that name none.
    pub default_webhook_url: Option<String>,
    /// `PSP_SIM_DELAY_MS`: time from a request to its outcome.
    pub delay: Duration,
    /// `PSP_SIM_SLOW_MS`: the same for `pm_slow_3s`.
    pub slow_delay: Duration,
    /// `PSP_SIM_FLAKY_FAILURES`: `503` answers to a `pm_flaky` charge before it is accepted.
    pub flaky_failures: u32,
    /// `PSP_SIM_WEBHOOK_ATTEMPTS`: delivery attempts per webhook before giving up.
    pub webhook_attempts: u32,
    /// `PSP_SIM_WEBHOOK_BACKOFF_MS`: wait before the second attempt; doubles each time.
    pub webhook_backoff: Duration,
    /// `PSP_SIM_LATENCY_MS`: extra time before answering a charge request (changeable at run
    /// time through `PUT /v1/simulator/latency`).
    pub charge_latency: Duration,
    /// `PSP_SIM_RETENTION_S`: how long a decided request is remembered (idempotency, refunds).
    pub retention: Duration,
}

impl Config {
    /// The service name in logs and traces.
    pub const SERVICE: &'static str = "psp-sim";

    /// Reads the environment.
    pub fn from_env() -> Result<Self, PlatformError> {
        let optional = |name: &str| Some(env_or(name, "")).filter(|value| !value.is_empty());
        Ok(Self {
            http_addr: env_parse("PSP_SIM_ADDR", SocketAddr::from(([127, 0, 0, 1], 8090)))?,
            webhook_secret: optional("PSP_WEBHOOK_SECRET"),
            default_webhook_url: optional("PSP_SIM_WEBHOOK_URL"),
            delay: env_millis("PSP_SIM_DELAY_MS", Duration::from_millis(5))?,
            slow_delay: env_millis("PSP_SIM_SLOW_MS", Duration::from_secs(3))?,
            flaky_failures: env_parse("PSP_SIM_FLAKY_FAILURES", 2)?,
            webhook_attempts: env_parse("PSP_SIM_WEBHOOK_ATTEMPTS", 8)?,
            webhook_backoff: env_millis("PSP_SIM_WEBHOOK_BACKOFF_MS", Duration::from_millis(200))?,
            charge_latency: env_millis("PSP_SIM_LATENCY_MS", Duration::ZERO)?,
            retention: Duration::from_secs(env_parse("PSP_SIM_RETENTION_S", 3600)?),
        })
    }
}
