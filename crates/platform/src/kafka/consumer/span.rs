//! The span of a consumed message's handling, following the OpenTelemetry messaging
//! conventions (see [`semconv`]): a `CONSUMER` span `process <topic>`, child of the
//! producer's `send` span.

use opentelemetry::propagation::Extractor;
use rdkafka::message::{Headers, Message, OwnedHeaders, OwnedMessage};
use tracing::field::Empty;

use crate::kafka::MessageInfo;
use crate::kafka::semconv::{self, Broker};
use crate::telemetry;

/// The span of handling `message` in the consumer group `group`: its parent is the producer's
/// span (from the `traceparent` header); the event's id, type, order and correlation ids are
/// recorded on it once the message is decoded, and the service is the one the group is named
/// after (see [`telemetry`]). Its status is set where handling fails (see `EventConsumer`).
pub(super) fn process(
    message: &OwnedMessage,
    info: &MessageInfo,
    group: &str,
    broker: &Broker,
) -> tracing::Span {
    let key = message
        .key()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let span = tracing::info_span!(
        "process",
        otel.name = %format_args!("{} {}", semconv::PROCESS, info.topic),
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        messaging.system = "kafka",
        messaging.operation.name = semconv::PROCESS,
        messaging.operation.type = semconv::PROCESS,
        messaging.destination.name = %info.topic,
        messaging.consumer.group.name = %group,
        messaging.destination.partition.id = %info.partition,
        messaging.kafka.offset = info.offset,
        messaging.kafka.message.key = %key,
        messaging.message.id = Empty,
        server.address = %broker.address,
        server.port = broker.port,
        error.type = Empty,
        event_type = Empty,
        order_id = Empty,
        correlation_id = Empty,
        service.name = %group,
    );
    if let Some(headers) = message.headers() {
        telemetry::set_parent_from(&span, &HeaderExtractor(headers));
    }
    span
}

/// Reads trace context from Kafka message headers.
struct HeaderExtractor<'a>(&'a OwnedHeaders);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|header| header.key == key)
            .and_then(|header| header.value)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|header| header.key).collect()
    }
}
