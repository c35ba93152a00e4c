//! What the producer's and the consumer's spans share, from OpenTelemetry's messaging semantic
//! conventions (v1.27 onwards): "Semantic Conventions for Messaging Spans", §Span name
//! (`{messaging.operation.name} {destination}`) and §Operation types, and "Semantic
//! Conventions for Kafka", §Span attributes (`messaging.system = kafka`,
//! `messaging.kafka.message.key`, `messaging.destination.partition.id`, `server.address` and
//! `server.port` of the broker).

/// `messaging.operation.name` and `messaging.operation.type` of a publish: Kafka's name for
/// it is `send`, of type `send` (before v1.27 the type was `publish`).
pub(crate) const SEND: &str = "send";

/// `messaging.operation.name` and `messaging.operation.type` of handling one consumed
/// message.
pub(crate) const PROCESS: &str = "process";

/// The broker a client talks to, as `server.address` and `server.port`: the first bootstrap
/// server. Which broker leads a partition is the client library's business and may change
/// under it; the bootstrap server is what an operator configured and recognises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Broker {
    /// Host name or IP address, without IPv6 brackets.
    pub(crate) address: String,
    /// The port (Kafka's 9092 when the list names none).
    pub(crate) port: u16,
}

impl Broker {
    /// The first server of a `bootstrap.servers` list (`host:port,host:port`, each maybe with
    /// a `PLAINTEXT://`-style scheme).
    pub(crate) fn of_bootstrap(servers: &str) -> Self {
        let first = servers.split(',').next().unwrap_or_default().trim();
        let first = first.split_once("://").map_or(first, |(_, rest)| rest);
        let (address, port) = match first.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => match port.parse() {
                Ok(port) => (host, port),
                Err(_) => (first, 9092),
            },
            _ => (first, 9092),
        };
        Self {
            address: address
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Broker;

    fn broker(address: &str, port: u16) -> Broker {
        Broker {
            address: address.to_owned(),
            port,
        }
    }

    #[test]
    fn the_first_bootstrap_server_is_the_broker() {
        assert_eq!(
            Broker::of_bootstrap("127.0.0.1:39092,127.0.0.1:39093"),
            broker("127.0.0.1", 39092)
        );
        assert_eq!(Broker::of_bootstrap("kafka"), broker("kafka", 9092));
        assert_eq!(
            Broker::of_bootstrap("PLAINTEXT://kafka:29092"),
            broker("kafka", 29092)
        );
        assert_eq!(Broker::of_bootstrap("[::1]:9093"), broker("::1", 9093));
    }
}
