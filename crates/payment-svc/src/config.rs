use std::net::SocketAddr;
use std::time::Duration;

use platform::config::{Common, LogSettings, Sensitive, millis, seconds};
use platform::sql::DbTarget;

/// payment-svc's settings: each one an argument and an environment variable (`--help` lists
/// them).
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "payment-svc",
    version,
    about = "The payment participant of the saga: charges and refunds through the payment provider",
    after_help = "Every setting is also read from the environment variable in brackets; an argument wins."
)]
pub struct Config {
    /// Where the provider's webhooks, health, readiness and metrics are served.
    #[arg(
        long,
        env = "PAYMENT_SVC_ADDR",
        default_value = "127.0.0.1:8081",
        value_name = "ADDR"
    )]
    pub http_addr: SocketAddr,
    /// The database: a SQLite file path, or a `postgres://user:password@host:port/db` URL that
    /// several replicas may share.
    #[arg(long, env = "PAYMENT_SVC_DB", value_name = "PATH_OR_URL")]
    pub database: Option<Sensitive>,
    /// The database when `PAYMENT_SVC_DB` is unset (one service per container).
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "PATH_OR_URL",
        hide_env_values = true
    )]
    pub database_url: Option<Sensitive>,
    /// The `whsec_…` secret the payment provider signs its webhooks with (a key of 24 to 64
    /// bytes). Required: never built in.
    #[arg(
        long,
        env = "PSP_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "WHSEC"
    )]
    pub webhook_secret: Option<Sensitive>,
    /// payment-svc's own settings.
    #[command(flatten)]
    pub settings: Settings,
    /// Kafka, consumer, database and runtime settings.
    #[command(flatten)]
    pub common: Common,
    /// Logging.
    #[command(flatten)]
    pub log: LogSettings,
}

/// The settings only payment-svc has (`shopctl up` takes them too).
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "payment-svc")]
#[group(id = "payment-svc-settings")]
pub struct Settings {
    /// The payment provider's API.
    #[arg(
        long,
        env = "PSP_URL",
        default_value = "http://127.0.0.1:8090",
        value_name = "URL"
    )]
    pub psp_url: String,
    /// Longest wait for the provider's answer to a request.
    #[arg(long = "psp-timeout-ms", env = "PSP_TIMEOUT_MS", default_value = "5000",
          value_parser = millis, value_name = "MS")]
    pub psp_timeout: Duration,
    /// Provider requests running at once beside the consumer; beyond it, handlers wait.
    #[arg(long, env = "PSP_MAX_IN_FLIGHT", default_value_t = 256,
          value_parser = platform::config::at_least_one, value_name = "N")]
    pub psp_max_in_flight: usize,
    /// Webhooks whose timestamp is further from now than this are refused (replay protection).
    #[arg(long = "psp-webhook-tolerance-s", env = "PSP_WEBHOOK_TOLERANCE_S", default_value = "300",
          value_parser = seconds, value_name = "S")]
    pub webhook_tolerance: Duration,
    /// The URL the provider calls back; by default this service's own `/webhooks/payments` on
    /// its listen address (set it when the provider reaches payment-svc under another name).
    #[arg(
        long = "payment-webhook-url",
        env = "PAYMENT_WEBHOOK_URL",
        value_name = "URL"
    )]
    pub webhook_url: Option<String>,
    /// A request without an outcome for this long is sent again (same idempotency key).
    #[arg(long = "payment-resubmit-after-ms", env = "PAYMENT_RESUBMIT_AFTER_MS",
          default_value = "3000", value_parser = millis, value_name = "MS")]
    pub resubmit_after: Duration,
    /// How often to look for such requests.
    #[arg(long = "payment-sweep-interval-ms", env = "PAYMENT_SWEEP_INTERVAL_MS",
          default_value = "500", value_parser = millis, value_name = "MS")]
    pub sweep_interval: Duration,
    /// Consecutive provider failures that open the circuit breaker.
    #[arg(
        long = "psp-breaker-threshold",
        env = "PSP_BREAKER_THRESHOLD",
        default_value_t = 5,
        value_name = "N"
    )]
    pub breaker_threshold: u32,
    /// How long the breaker stays open before a trial request.
    #[arg(long = "psp-breaker-cooldown-ms", env = "PSP_BREAKER_COOLDOWN_MS",
          default_value = "5000", value_parser = millis, value_name = "MS")]
    pub breaker_cooldown: Duration,
}

impl Config {
    /// The service name: Kafka client id and consumer group.
    pub const SERVICE: &'static str = "payment-svc";

    /// Reads the arguments and the environment (`KAFKA_CLIENT_*` included); exits with a usage
    /// message on a bad setting, as `--help` and `--version` do.
    pub fn parse() -> Self {
        let mut config: Self = platform::config::parse();
        config.common = config.common.for_service(Self::SERVICE, std::env::vars());
        config
    }

    /// Where the data is: `PAYMENT_SVC_DB`, else `DATABASE_URL`, else `data/payment-svc.db`.
    pub fn database_target(&self) -> DbTarget {
        platform::config::database_target(&self.database, &self.database_url, "data/payment-svc.db")
    }
}

#[cfg(test)]
mod command_line_tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Config::command().debug_assert();
    }
}
