use std::net::SocketAddr;
use std::time::Duration;

use platform::config::{LogSettings, Sensitive, millis, seconds};

/// The simulator's settings: each one an argument and an environment variable (`--help` lists
/// them).
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "psp-sim",
    version,
    about = "A payment-provider simulator: charges and refunds, outcomes by signed webhook",
    after_help = "Every setting is also read from the environment variable in brackets; an argument wins."
)]
pub struct Config {
    /// Where the provider API listens.
    #[arg(
        long,
        env = "PSP_SIM_ADDR",
        default_value = "127.0.0.1:8090",
        value_name = "ADDR"
    )]
    pub http_addr: SocketAddr,
    /// The `whsec_…` secret webhooks are signed with (a key of 24 to 64 bytes), shared with the
    /// merchant (payment-svc). Required: a provider never signs with a built-in key.
    #[arg(
        long,
        env = "PSP_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "WHSEC"
    )]
    pub webhook_secret: Option<Sensitive>,
    /// Accept the development secrets published with this project (docker-compose's
    /// defaults); without it the simulator refuses to start with one.
    #[arg(long, env = "ALLOW_DEVELOPMENT_SECRETS")]
    pub allow_development_secrets: bool,
    /// The simulator's behaviour.
    #[command(flatten)]
    pub settings: Settings,
    /// Logging.
    #[command(flatten)]
    pub log: LogSettings,
}

/// How the simulated provider behaves (`shopctl up` takes these too).
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "psp-sim")]
#[group(id = "psp-sim-settings")]
pub struct Settings {
    /// The merchant's webhook endpoint for requests that name none.
    #[arg(
        long = "psp-sim-webhook-url",
        env = "PSP_SIM_WEBHOOK_URL",
        value_name = "URL"
    )]
    pub default_webhook_url: Option<String>,
    /// Time from a request to its outcome.
    #[arg(long = "psp-sim-delay-ms", env = "PSP_SIM_DELAY_MS", default_value = "5",
          value_parser = millis, value_name = "MS")]
    pub delay: Duration,
    /// The same for the payment method `pm_slow_3s`.
    #[arg(long = "psp-sim-slow-ms", env = "PSP_SIM_SLOW_MS", default_value = "3000",
          value_parser = millis, value_name = "MS")]
    pub slow_delay: Duration,
    /// `503` answers to a `pm_flaky` charge before it is accepted.
    #[arg(
        long = "psp-sim-flaky-failures",
        env = "PSP_SIM_FLAKY_FAILURES",
        default_value_t = 2,
        value_name = "N"
    )]
    pub flaky_failures: u32,
    /// Seconds added to the timestamp every webhook is signed with: a provider whose clock is
    /// off. A fault knob for tests (beyond the merchant's tolerance every webhook is refused,
    /// and outcomes only arrive when the merchant asks); leave it at 0 otherwise.
    #[arg(
        long = "psp-sim-clock-skew-s",
        env = "PSP_SIM_CLOCK_SKEW_S",
        default_value_t = 0,
        allow_hyphen_values = true,
        value_name = "S"
    )]
    pub clock_skew_s: i64,
    /// Delivery attempts per webhook before giving up.
    #[arg(
        long = "psp-sim-webhook-attempts",
        env = "PSP_SIM_WEBHOOK_ATTEMPTS",
        default_value_t = 8,
        value_name = "N"
    )]
    pub webhook_attempts: u32,
    /// Wait before a webhook's second attempt; doubles each time (±25 % jitter, at most 30 s).
    #[arg(long = "psp-sim-webhook-backoff-ms", env = "PSP_SIM_WEBHOOK_BACKOFF_MS",
          default_value = "200", value_parser = millis, value_name = "MS")]
    pub webhook_backoff: Duration,
    /// Extra time before answering a charge request (changeable at run time through
    /// `PUT /v1/simulator/latency`).
    #[arg(long = "psp-sim-latency-ms", env = "PSP_SIM_LATENCY_MS", default_value = "0",
          value_parser = millis, value_name = "MS")]
    pub charge_latency: Duration,
    /// How long a decided request is remembered (idempotency, refunds of its charge); older
    /// ones are forgotten, like after a restart.
    #[arg(long = "psp-sim-retention-s", env = "PSP_SIM_RETENTION_S", default_value = "3600",
          value_parser = seconds, value_name = "S")]
    pub retention: Duration,
}

impl Config {
    /// The service name in logs and traces.
    pub const SERVICE: &'static str = "psp-sim";

    /// Reads the arguments and the environment; exits with a usage message on a bad setting,
    /// as `--help` and `--version` do.
    pub fn parse() -> Self {
        platform::config::parse()
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
