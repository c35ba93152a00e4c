use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::PlatformError;
use crate::config::KafkaConfig;

/// A message ready to be published.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    /// Destination topic.
    pub topic: String,
    /// Partition key (the order id for saga events).
    pub key: String,
    /// The CloudEvents JSON document.
    pub payload: Vec<u8>,
}

/// Publishes messages and reports whether the broker acknowledged each one.
///
/// Idempotent and `acks=all`: a retry inside the client never duplicates or reorders a message
/// within a partition.
#[derive(Clone)]
pub struct EventProducer {
    inner: FutureProducer,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer").finish_non_exhaustive()
    }
}

impl EventProducer {
    /// Creates a producer for `config`.
    pub fn new(config: &KafkaConfig) -> Result<Self, PlatformError> {
        let inner: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("client.id", &config.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.linger.as_millis().to_string())
            // A message not acknowledged within this time fails; the outbox row stays and the
            // relay sends it again, so giving up here loses nothing.
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(Self { inner })
    }

    /// Sends one message and waits for the broker's acknowledgement.
    pub async fn send(&self, message: &OutgoingMessage) -> Result<(), KafkaError> {
        self.send_with_headers(message, OwnedHeaders::new()).await
    }

    /// Sends one message with extra headers and waits for the acknowledgement.
    pub async fn send_with_headers(
        &self,
        message: &OutgoingMessage,
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        let headers = headers.insert(Header {
            key: "content-type",
            value: Some("application/cloudevents+json; charset=UTF-8"),
        });
        let record = FutureRecord::to(&message.topic)
            .key(&message.key)
            .payload(&message.payload)
            .headers(headers);
        self.inner
            .send(record, Timeout::After(Duration::from_secs(5)))
            .await
            .map(|_| ())
            .map_err(|(error, _)| error)
    }

    /// Waits until every queued message is acknowledged or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(Timeout::After(timeout))
    }

    /// Whether a broker answers a metadata request within `timeout` (blocking).
    pub fn broker_reachable(&self, timeout: Duration) -> bool {
        self.inner
            .client()
            .fetch_metadata(None, Timeout::After(timeout))
            .is_ok()
    }
}
