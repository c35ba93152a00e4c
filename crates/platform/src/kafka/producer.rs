use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use tracing::Instrument;
use tracing::field::Empty;

use super::CloudEventHeaders;
use crate::PlatformError;
use crate::config::KafkaConfig;
use crate::telemetry::{self, MapExtractor};

use super::semconv::{self, Broker};

/// A message ready to be published.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    /// Destination topic.
    pub topic: String,
    /// Partition key (the order id for saga events).
    pub key: String,
    /// The CloudEvents JSON document.
    pub payload: Vec<u8>,
    /// W3C trace context (`traceparent`, `tracestate`) the publish span continues; empty to
    /// continue the current span.
    pub trace: HashMap<String, String>,
    /// The event's CloudEvents attributes, sent as `ce_` headers (see [`super::cloudevents`]) so
    /// that consumers can pass over events they do not handle without decoding them; `None`
    /// for messages that are not saga events of their own (dead-letter copies).
    pub cloud_event: Option<CloudEventHeaders>,
}

/// Kafka headers with these names and text values, in this order.
pub fn headers(pairs: &[(&str, &str)]) -> OwnedHeaders {
    pairs
        .iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(*value),
            })
        })
}

/// Publishes messages and reports whether the broker acknowledged each one.
///
/// Idempotent and `acks=all`: a retry inside the client never duplicates or reorders a message
/// within a partition.
///
/// It holds two clients when the configured linger is above zero: one waits up to the linger
/// to batch, the eager one sends at once. [`Self::send_alone`] uses the eager one for a message
/// that has nothing to be batched with, so an idle shop does not pay the linger on every hop.
///
/// An idempotent client can meet a **fatal error** (the broker lost track of its sequence
/// numbers, say): from then on it fails every send, and a service keeping it would go on
/// accepting work while its outbox grew for good. The first send that fails so replaces both
/// clients with new ones (a new producer id); what was not acknowledged stays in the outbox
/// and goes out through them, and consumers drop the copies the old one may have delivered.
#[derive(Clone)]
pub struct EventProducer {
    clients: Arc<RwLock<Clients>>,
    /// Held while new clients are made after a fatal error: one replacement at a time, made
    /// outside the lock on `clients`, so that sends are not held up meanwhile.
    replacing: Arc<Mutex<()>>,
    /// What the clients are made from, to make new ones after a fatal error.
    config: Arc<KafkaConfig>,
    /// The client id: the service whose work its `send` spans are (see [`telemetry`]).
    service: Arc<str>,
    /// The broker its spans name (`server.address`, `server.port`).
    broker: Arc<Broker>,
}

/// The clients an [`EventProducer`] sends through, replaced together after a fatal error.
struct Clients {
    /// Counts replacements, so that sends that met the same fatal error replace them once.
    generation: u64,
    inner: FutureProducer,
    /// The same settings with `linger.ms=0`; `None` when the linger is already zero.
    eager: Option<FutureProducer>,
}

impl Clients {
    fn new(config: &KafkaConfig, generation: u64) -> Result<Self, KafkaError> {
        let client = |linger: Duration| {
            config
                .client_config()
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", linger.as_millis().to_string())
                // Nagle's algorithm holds small writes back for tens of milliseconds; each saga
                // hop is a small write.
                .set("socket.nagle.disable", "true")
                // A message not acknowledged within this time fails; the outbox row stays and
                // the relay sends it again, so giving up here loses nothing.
                .set("message.timeout.ms", "30000")
                .create::<FutureProducer>()
        };
        let eager = if config.linger.as_millis() > 0 {
            Some(client(Duration::ZERO)?)
        } else {
            None
        };
        Ok(Self {
            generation,
            inner: client(config.linger)?,
            eager,
        })
    }
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer").finish_non_exhaustive()
    }
}

impl EventProducer {
    /// Creates a producer for `config`.
    pub fn new(config: &KafkaConfig) -> Result<Self, PlatformError> {
        Ok(Self {
            clients: Arc::new(RwLock::new(Clients::new(config, 0)?)),
            replacing: Arc::new(Mutex::new(())),
            config: Arc::new(config.clone()),
            service: config.client_id.as_str().into(),
            broker: Arc::new(Broker::of_bootstrap(&config.bootstrap_servers)),
        })
    }

    /// The client to send through (the eager one if asked for and there is one), and the
    /// generation it belongs to.
    fn client(&self, eager: bool) -> (FutureProducer, u64) {
        let clients = self.clients.read().unwrap_or_else(PoisonError::into_inner);
        let client = match (&clients.eager, eager) {
            (Some(eager), true) => eager,
            _ => &clients.inner,
        };
        (client.clone(), clients.generation)
    }

    /// Lets go of a client [`Self::client`] handed out. If its generation was replaced
    /// meanwhile this may be its last handle, and dropping that joins the client's threads:
    /// not on an async worker.
    fn release(&self, client: FutureProducer, generation: u64) {
        if self.generation() != generation {
            tokio::task::spawn_blocking(move || drop(client));
        }
    }

    /// The generation of the current clients.
    fn generation(&self) -> u64 {
        self.clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    /// Replaces the clients of `generation` if `client` (one of them) has met a fatal error;
    /// a later generation is left alone (another send replaced them already).
    fn replace_if_fatal(&self, client: &FutureProducer, generation: u64) {
        let Some((code, reason)) = client.client().fatal_error() else {
            return;
        };
        let _replacing = self
            .replacing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.generation() != generation {
            return;
        }
        match Clients::new(&self.config, generation + 1) {
            Ok(fresh) => {
                tracing::error!(
                    error = %reason,
                    code = ?code,
                    "The Kafka producer met a fatal error; sending through a new one from now on."
                );
                let old = std::mem::replace(
                    &mut *self.clients.write().unwrap_or_else(PoisonError::into_inner),
                    fresh,
                );
                // Dropping a client joins its threads: not on an async worker.
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(error) => tracing::error!(
                %error,
                fatal = %reason,
                "The Kafka producer met a fatal error and no new one could be made; trying again \
                 at the next send."
            ),
        }
    }

    /// Sends one message and waits for the broker's acknowledgement.
    pub async fn send(&self, message: &OutgoingMessage) -> Result<(), KafkaError> {
        self.send_with_headers(message, OwnedHeaders::new()).await
    }

    /// Sends a message that has nothing to be batched with and waits for the acknowledgement:
    /// it goes out at once, without the linger.
    ///
    /// Only for a sender that waits for this acknowledgement before it sends anything else (as
    /// the outbox relay does with its rounds): two clients keep no order between them.
    pub async fn send_alone(&self, message: &OutgoingMessage) -> Result<(), KafkaError> {
        self.deliver(true, message, OwnedHeaders::new()).await
    }

    /// Sends one message with extra headers and waits for the acknowledgement.
    ///
    /// The send is a `PRODUCER` span `send <topic>` (OpenTelemetry messaging conventions, see
    /// [`semconv`]) whose context travels in the `traceparent` / `tracestate` headers, so the
    /// consumer's span becomes its child and one saga stays one trace. A send the broker does
    /// not acknowledge ends the span with status `Error`.
    pub async fn send_with_headers(
        &self,
        message: &OutgoingMessage,
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        self.deliver(false, message, headers).await
    }

    /// Sends `message` through the current (`eager`) client: the span, the headers, the
    /// acknowledgement.
    async fn deliver(
        &self,
        eager: bool,
        message: &OutgoingMessage,
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        let span = tracing::info_span!(
            "send",
            otel.name = %format_args!("{} {}", semconv::SEND, message.topic),
            otel.kind = "producer",
            otel.status_code = Empty,
            otel.status_description = Empty,
            messaging.system = "kafka",
            messaging.operation.name = semconv::SEND,
            messaging.operation.type = semconv::SEND,
            messaging.destination.name = %message.topic,
            messaging.kafka.message.key = %message.key,
            messaging.destination.partition.id = Empty,
            messaging.kafka.offset = Empty,
            server.address = %self.broker.address,
            server.port = self.broker.port,
            error.type = Empty,
            service.name = %self.service,
        );
        if !message.trace.is_empty() {
            telemetry::set_parent_from(&span, &MapExtractor(&message.trace));
        }
        let mut headers = headers.insert(Header {
            key: "content-type",
            value: Some("application/cloudevents+json; charset=UTF-8"),
        });
        if let Some(cloud_event) = &message.cloud_event {
            headers = cloud_event.write(headers);
        }
        for (key, value) in telemetry::inject(&span) {
            headers = headers.insert(Header {
                key: &key,
                value: Some(&value),
            });
        }
        let record = FutureRecord::to(&message.topic)
            .key(&message.key)
            .payload(&message.payload)
            .headers(headers);
        let (client, generation) = self.client(eager);
        let result = client
            .send(record, Timeout::After(Duration::from_secs(5)))
            .instrument(span.clone())
            .await;
        let outcome = match result {
            Ok(delivery) => {
                span.record(
                    "messaging.destination.partition.id",
                    delivery.partition.to_string(),
                );
                span.record("messaging.kafka.offset", delivery.offset);
                Ok(())
            }
            Err((error, _)) => {
                // `error.type` is the class (Kafka's error code), the description the detail.
                let class = error
                    .rdkafka_error_code()
                    .map_or_else(|| "_OTHER".to_owned(), |code| format!("{code:?}"));
                span.record("error.type", class);
                telemetry::mark_error(&span, format_args!("not acknowledged: {error}"));
                self.replace_if_fatal(&client, generation);
                Err(error)
            }
        };
        self.release(client, generation);
        outcome
    }

    /// Waits until every queued message is acknowledged or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = std::time::Instant::now() + timeout;
        let (inner, eager) = {
            let clients = self.clients.read().unwrap_or_else(PoisonError::into_inner);
            (clients.inner.clone(), clients.eager.clone())
        };
        if let Some(eager) = eager {
            eager.flush(Timeout::After(timeout))?;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        inner.flush(Timeout::After(left))
    }

    /// Whether a broker answers a metadata request within `timeout` (blocking).
    pub fn broker_reachable(&self, timeout: Duration) -> bool {
        self.client(false)
            .0
            .client()
            .fetch_metadata(None, Timeout::After(timeout))
            .is_ok()
    }
}

#[cfg(test)]
mod tests;
