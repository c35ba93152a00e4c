//! Configuration from environment variables, with defaults that work on a laptop.
//!
//! Every variable is read here or in a service's `Config::from_env`, so the list of names is
//! easy to find. The same binaries run against the embedded broker and Apache Kafka: only
//! `KAFKA_BOOTSTRAP_SERVERS` changes.

use std::str::FromStr;
use std::time::Duration;

use crate::PlatformError;

/// Reads `name`, or `default` when it is unset or empty.
pub fn env_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => default.to_owned(),
    }
}

/// Reads and parses `name`, or `default` when it is unset or empty.
pub fn env_parse<T>(name: &str, default: T) -> Result<T, PlatformError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value
                .trim()
                .parse()
                .map_err(|err: T::Err| PlatformError::Config {
                    name: name.to_owned(),
                    value,
                    reason: err.to_string(),
                })
        }
        _ => Ok(default),
    }
}

/// Reads a duration given in milliseconds.
pub fn env_millis(name: &str, default: Duration) -> Result<Duration, PlatformError> {
    let millis = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    env_parse(name, millis).map(Duration::from_millis)
}

/// How to reach Kafka; shared by producers and consumers of one service.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `KAFKA_BOOTSTRAP_SERVERS`: comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// Name of the service, used as Kafka `client.id` and as the consumer group id.
    pub client_id: String,
    /// `KAFKA_LINGER_MS`: how long the producer waits to batch. Low, because the saga is a chain
    /// of hops and each hop pays it.
    pub linger: Duration,
    /// `KAFKA_FETCH_WAIT_MS`: the longest a fetch waits for data. The embedded broker answers a
    /// waiting fetch only when this runs out, so it bounds each hop's latency there (5 ms: a
    /// ~25 ms saga, ~10% of a core when idle); Apache Kafka answers as soon as data arrives, so
    /// use 100–500 ms with it.
    pub fetch_wait: Duration,
    /// `KAFKA_SESSION_TIMEOUT_MS`: after how long without heartbeats a crashed consumer's
    /// partitions are handed to others.
    pub session_timeout: Duration,
    /// `KAFKA_AUTO_COMMIT_INTERVAL_MS`: how often stored offsets are committed.
    pub commit_interval: Duration,
}

impl KafkaConfig {
    /// Reads the `KAFKA_*` variables; `client_id` names the service.
    pub fn from_env(client_id: &str) -> Result<Self, PlatformError> {
        Ok(Self {
            bootstrap_servers: env_or("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            client_id: client_id.to_owned(),
            linger: env_millis("KAFKA_LINGER_MS", Duration::from_millis(1))?,
            fetch_wait: env_millis("KAFKA_FETCH_WAIT_MS", Duration::from_millis(5))?,
            session_timeout: env_millis("KAFKA_SESSION_TIMEOUT_MS", Duration::from_secs(6))?,
            commit_interval: env_millis(
                "KAFKA_AUTO_COMMIT_INTERVAL_MS",
                Duration::from_millis(500),
            )?,
        })
    }

    /// The same settings pointed at another bootstrap list (used by `shopctl up`).
    pub fn with_bootstrap(mut self, bootstrap_servers: &str) -> Self {
        bootstrap_servers.clone_into(&mut self.bootstrap_servers);
        self
    }
}
