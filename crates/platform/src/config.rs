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

/// Where a service keeps its data: the service's own variable `name` (a SQLite path or a
/// `postgres://` URL), else `DATABASE_URL` (one database per service, as in a container), else
/// the SQLite file `default_path`.
pub fn env_database(name: &str, default_path: &str) -> crate::sql::DbTarget {
    let value = std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| env_or("DATABASE_URL", default_path));
    crate::sql::DbTarget::parse(&value)
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
    /// Further client properties from `KAFKA_CLIENT_*` (see [`client_properties_from_env`]):
    /// what a real cluster needs and the saga does not care about, e.g. TLS and SASL.
    pub client_properties: Vec<(String, String)>,
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
            client_properties: client_properties_from_env(),
        })
    }

    /// A client configuration with the bootstrap servers, the client id and the `KAFKA_CLIENT_*`
    /// properties; producers and consumers add their own settings on top, so the ones the
    /// guarantees rest on (idempotence, `acks`, manual offset storage) cannot be overridden.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut config = client_config_from(&self.client_properties);
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id);
        config
    }

    /// The same settings pointed at another bootstrap list (used by `shopctl up`).
    pub fn with_bootstrap(mut self, bootstrap_servers: &str) -> Self {
        bootstrap_servers.clone_into(&mut self.bootstrap_servers);
        self
    }
}

/// Prefix of the variables passed to the Kafka client as properties.
pub const CLIENT_PROPERTY_PREFIX: &str = "KAFKA_CLIENT_";

/// librdkafka properties from the environment: `KAFKA_CLIENT_SECURITY_PROTOCOL=SASL_SSL` becomes
/// `security.protocol=SASL_SSL` (prefix removed, lower case, `_` → `.`). Sorted by name, so
/// the result does not depend on the environment's order.
pub fn client_properties_from_env() -> Vec<(String, String)> {
    let mut properties: Vec<(String, String)> = std::env::vars()
        .filter_map(|(name, value)| {
            let property = property_name(&name)?;
            Some((property, value))
        })
        .collect();
    properties.sort();
    properties
}

/// A client configuration holding just `properties`.
pub fn client_config_from(properties: &[(String, String)]) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    for (name, value) in properties {
        config.set(name, value);
    }
    config
}

fn property_name(variable: &str) -> Option<String> {
    let rest = variable.strip_prefix(CLIENT_PROPERTY_PREFIX)?;
    (!rest.is_empty()).then(|| rest.to_ascii_lowercase().replace('_', "."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_variables_name_librdkafka_properties() {
        assert_eq!(
            property_name("KAFKA_CLIENT_SECURITY_PROTOCOL").as_deref(),
            Some("security.protocol")
        );
        assert_eq!(
            property_name("KAFKA_CLIENT_SSL_CA_LOCATION").as_deref(),
            Some("ssl.ca.location")
        );
        assert_eq!(property_name("KAFKA_CLIENT_"), None);
        assert_eq!(property_name("KAFKA_LINGER_MS"), None);
    }
}
