//! How a consumer retries failed handlers and spreads its work over lanes.

use std::time::Duration;

/// How a consumer retries and spreads its work.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Kafka consumer")]
pub struct ConsumerSettings {
    /// Attempts for a transient handler failure before the message is dead-lettered.
    #[arg(long = "consumer-max-attempts", env = "CONSUMER_MAX_ATTEMPTS", default_value_t = 6, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Pause before the second attempt; doubles each time, with jitter.
    #[arg(long = "consumer-initial-backoff-ms", env = "CONSUMER_INITIAL_BACKOFF_MS",
          default_value = "50", value_parser = crate::config::millis, value_name = "MS")]
    pub initial_backoff: Duration,
    /// Longest pause between attempts.
    #[arg(long = "consumer-max-backoff-ms", env = "CONSUMER_MAX_BACKOFF_MS",
          default_value = "2000", value_parser = crate::config::millis, value_name = "MS")]
    pub max_backoff: Duration,
    /// Lanes handling partitions concurrently; a partition always stays in one lane, which
    /// handles the events of one order in turn.
    #[arg(long = "consumer-concurrency", env = "CONSUMER_CONCURRENCY", default_value_t = 8, value_name = "N",
          value_parser = crate::config::at_least_one)]
    pub concurrency: usize,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            concurrency: 8,
        }
    }
}
