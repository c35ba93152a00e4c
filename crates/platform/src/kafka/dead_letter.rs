//! The dead-letter path: a message that cannot be handled is copied, untouched, to
//! `<topic>.dlq` with its own headers (`ce_*`, and the rest) and headers saying why, from where
//! and after how many attempts — and the consumer moves on. Nothing is dropped: the copy is acknowledged before the original's offset
//! is stored.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use tokio_util::sync::CancellationToken;

use super::{EventProducer, MessageInfo, OutgoingMessage};

/// Names of the headers on a dead-lettered message.
pub mod headers {
    /// Topic the message was consumed from.
    pub const ORIGINAL_TOPIC: &str = "dlq.original.topic";
    /// Its partition.
    pub const ORIGINAL_PARTITION: &str = "dlq.original.partition";
    /// Its offset.
    pub const ORIGINAL_OFFSET: &str = "dlq.original.offset";
    /// `poison` (cannot be decoded), `permanent` or `transient` (attempts exhausted).
    pub const ERROR_CLASS: &str = "dlq.error.class";
    /// The error, for humans.
    pub const ERROR_MESSAGE: &str = "dlq.error.message";
    /// How many times handling was tried.
    pub const ATTEMPTS: &str = "dlq.attempts";
    /// When the first attempt failed (RFC 3339).
    pub const FIRST_FAILURE: &str = "dlq.first_failure";
    /// When the last attempt failed (RFC 3339).
    pub const LAST_FAILURE: &str = "dlq.last_failure";
    /// The service that gave up.
    pub const SERVICE: &str = "dlq.service";
}

/// Headers every send writes itself: the original's are not copied.
const REWRITTEN: [&str; 3] = ["content-type", "traceparent", "tracestate"];

/// Why and how a message failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) class: &'static str,
    pub(crate) message: String,
    pub(crate) attempts: u32,
    pub(crate) first_failure: DateTime<Utc>,
    pub(crate) last_failure: DateTime<Utc>,
}

impl Failure {
    /// Ends the `process` span of the failed message with status `Error`: the class as
    /// `error.type`, and what failed after how many attempts as the description.
    pub(crate) fn mark_span(&self, span: &tracing::Span) {
        span.record("error.type", self.class);
        crate::telemetry::mark_error(
            span,
            format_args!(
                "dead-lettered after {} attempt(s): {}",
                self.attempts, self.message
            ),
        );
    }
}

/// Publishes failed messages to their topic's dead-letter twin.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    producer: EventProducer,
    service: String,
}

impl DeadLetter {
    /// Dead-letters through `producer`, naming `service` as the one that gave up.
    pub fn new(producer: EventProducer, service: &str) -> Self {
        Self {
            producer,
            service: service.to_owned(),
        }
    }

    /// Copies the message to `<topic>.dlq`, retrying until the broker acknowledges it.
    /// Returns `false` only if `shutdown` came first; the original is then not marked done
    /// and will be consumed again after restart.
    ///
    /// The copy keeps the original's headers, so a replay sends back the event as it was (its
    /// `ce_type` lets consumers pass over it undecoded); but its content type and trace context,
    /// which every send writes anew (the copy's send span continues the original's trace).
    pub(crate) async fn publish(
        &self,
        info: &MessageInfo,
        original: &OwnedMessage,
        failure: &Failure,
        shutdown: &CancellationToken,
    ) -> bool {
        let message = OutgoingMessage {
            topic: format!("{}.dlq", info.topic),
            key: original
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned())
                .unwrap_or_default(),
            payload: original.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            trace: HashMap::new(),
            cloud_event: None,
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let partition = info.partition.to_string();
            let offset = info.offset.to_string();
            let attempts = failure.attempts.to_string();
            let first = failure.first_failure.to_rfc3339();
            let last = failure.last_failure.to_rfc3339();
            let pairs = [
                (headers::ORIGINAL_TOPIC, info.topic.as_str()),
                (headers::ORIGINAL_PARTITION, partition.as_str()),
                (headers::ORIGINAL_OFFSET, offset.as_str()),
                (headers::ERROR_CLASS, failure.class),
                (headers::ERROR_MESSAGE, failure.message.as_str()),
                (headers::ATTEMPTS, attempts.as_str()),
                (headers::FIRST_FAILURE, first.as_str()),
                (headers::LAST_FAILURE, last.as_str()),
                (headers::SERVICE, self.service.as_str()),
            ];
            let mut headers = OwnedHeaders::new();
            for header in original.headers().iter().flat_map(|headers| headers.iter()) {
                if !REWRITTEN.contains(&header.key) && !header.key.starts_with("dlq.") {
                    headers = headers.insert(header);
                }
            }
            for (key, value) in pairs {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
            match self.producer.send_with_headers(&message, headers).await {
                Ok(()) => {
                    metrics::counter!(
                        crate::metrics::DEAD_LETTERS,
                        "topic" => info.topic.clone(),
                        "class" => failure.class,
                    )
                    .increment(1);
                    tracing::warn!(
                        topic = %info.topic,
                        partition = info.partition,
                        offset = info.offset,
                        error_class = failure.class,
                        error_message = %failure.message,
                        attempts = failure.attempts,
                        "Message sent to the dead-letter topic."
                    );
                    return true;
                }
                Err(error) => {
                    tracing::error!(%error, topic = %message.topic, "Could not dead-letter a message; retrying.");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => return false,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
