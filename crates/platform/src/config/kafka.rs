//! How a service reaches Kafka: the settings every client of it shares, and the librdkafka
//! properties passed through (`--kafka-client`, `KAFKA_CLIENT_*`) for what the saga does not
//! care about (TLS, SASL, racks).

use std::time::Duration;

use clap::Args;

use super::millis;

/// How to reach Kafka; shared by producers and consumers of one service.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Kafka")]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of the brokers.
    #[arg(
        long = "kafka-bootstrap-servers",
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092",
        value_name = "HOSTS"
    )]
    pub bootstrap_servers: String,
    /// Name of the service, used as Kafka `client.id` and as the consumer group id; set by the
    /// service, not by the user.
    #[arg(skip)]
    pub client_id: String,
    /// How long the producer waits to batch. Low, because the saga is a chain of hops; a lone
    /// outbox event skips it (a second client without linger), so only events that have others
    /// to be batched with wait.
    #[arg(long = "kafka-linger-ms", env = "KAFKA_LINGER_MS", default_value = "1",
          value_parser = millis, value_name = "MS")]
    pub linger: Duration,
    /// The longest a fetch waits for data. Apache Kafka answers as soon as data arrives, and so
    /// does the embedded broker of shopctl on Linux; elsewhere the embedded broker answers a
    /// waiting fetch only when this runs out, so it bounds each hop's latency there. Use 100–500
    /// with Apache Kafka. Default 5 (100 under `shopctl up` on Linux, whose broker answers at
    /// once, so that an idle shop does not fetch two hundred times a second).
    #[arg(long = "kafka-fetch-wait-ms", env = "KAFKA_FETCH_WAIT_MS", default_value = "5",
          value_parser = millis, value_name = "MS")]
    pub fetch_wait: Duration,
    /// After how long without heartbeats a crashed consumer's partitions move to the others.
    #[arg(long = "kafka-session-timeout-ms", env = "KAFKA_SESSION_TIMEOUT_MS",
          default_value = "6000", value_parser = millis, value_name = "MS")]
    pub session_timeout: Duration,
    /// How often stored offsets are committed.
    #[arg(long = "kafka-auto-commit-interval-ms", env = "KAFKA_AUTO_COMMIT_INTERVAL_MS",
          default_value = "500", value_parser = millis, value_name = "MS")]
    pub commit_interval: Duration,
    /// A librdkafka property for TLS, SASL and other cluster settings the saga does not care
    /// about (repeatable). Environment variables `KAFKA_CLIENT_<NAME>` give the same:
    /// `KAFKA_CLIENT_SECURITY_PROTOCOL=SASL_SSL` is `security.protocol=SASL_SSL`.
    #[arg(long = "kafka-client", value_name = "PROPERTY=VALUE", value_parser = property)]
    pub client_properties: Vec<(String, String)>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            client_id: String::new(),
            linger: Duration::from_millis(1),
            fetch_wait: Duration::from_millis(5),
            session_timeout: Duration::from_secs(6),
            commit_interval: Duration::from_millis(500),
            client_properties: Vec::new(),
        }
    }
}

impl KafkaConfig {
    /// A client configuration with the bootstrap servers, the client id and the extra
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
    #[must_use]
    pub fn with_bootstrap(mut self, bootstrap_servers: &str) -> Self {
        bootstrap_servers.clone_into(&mut self.bootstrap_servers);
        self
    }

    /// Adds the `KAFKA_CLIENT_*` variables among `variables` (a program passes its
    /// environment) to the properties given as arguments; an argument wins over a variable
    /// for the same property.
    #[must_use]
    pub fn with_client_variables(
        mut self,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        for (name, value) in client_properties_from(variables) {
            if !self
                .client_properties
                .iter()
                .any(|(given, _)| *given == name)
            {
                self.client_properties.push((name, value));
            }
        }
        self.client_properties.sort();
        self
    }
}

/// Prefix of the variables passed to the Kafka client as properties.
pub const CLIENT_PROPERTY_PREFIX: &str = "KAFKA_CLIENT_";

/// librdkafka properties from `KAFKA_CLIENT_*` variables: `KAFKA_CLIENT_SECURITY_PROTOCOL=SASL_SSL`
/// becomes `security.protocol=SASL_SSL` (prefix removed, lower case, `_` → `.`). Sorted by
/// name, so the result does not depend on the environment's order.
pub fn client_properties_from(
    variables: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut properties: Vec<(String, String)> = variables
        .into_iter()
        .filter_map(|(name, value)| Some((property_name(&name)?, value)))
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

/// `name=value` → `(name, value)`.
fn property(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err("expected PROPERTY=VALUE, e.g. security.protocol=SASL_SSL".to_owned()),
    }
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

    #[test]
    fn arguments_win_over_client_variables() {
        let config = KafkaConfig {
            client_properties: vec![("client.rack".to_owned(), "from-argument".to_owned())],
            ..KafkaConfig::default()
        }
        .with_client_variables([
            (
                "KAFKA_CLIENT_CLIENT_RACK".to_owned(),
                "from-variable".to_owned(),
            ),
            (
                "KAFKA_CLIENT_SOCKET_TIMEOUT_MS".to_owned(),
                "1000".to_owned(),
            ),
            ("HOME".to_owned(), "/root".to_owned()),
        ]);
        assert_eq!(
            config.client_properties,
            vec![
                ("client.rack".to_owned(), "from-argument".to_owned()),
                ("socket.timeout.ms".to_owned(), "1000".to_owned()),
            ]
        );
    }

    #[test]
    fn properties_are_name_value_pairs() {
        assert_eq!(
            property("security.protocol=SASL_SSL"),
            Ok(("security.protocol".to_owned(), "SASL_SSL".to_owned()))
        );
        assert!(property("no-equals-sign").is_err());
        assert!(property("=value").is_err());
    }
}
