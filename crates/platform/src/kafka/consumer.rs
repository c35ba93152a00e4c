//! The consumer loop, written once for every service.
//!
//! Offsets are stored (`enable.auto.offset.store=false`) only after a message was handled —
//! its effect and outgoing events committed to the database — or safely dead-lettered. The
//! background auto-commit then commits stored offsets, and shutdown commits them synchronously.
//! A crash can therefore only cause redelivery, which the inbox absorbs; never a loss.

use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use events::{Envelope, Topic};

use super::dead_letter::Failure;
use super::{DeadLetter, EventHandler, HandlerError, MessageInfo};
use crate::PlatformError;
use crate::config::KafkaConfig;

/// How a consumer retries.
#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    /// Attempts for a transient failure before the message is dead-lettered.
    pub max_attempts: u32,
    /// Pause before the second attempt; doubles each time, with jitter.
    pub initial_backoff: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// A subscribed consumer in the service's consumer group.
pub struct EventConsumer {
    consumer: StreamConsumer,
    dead_letter: DeadLetter,
    settings: ConsumerSettings,
    group: String,
}

impl std::fmt::Debug for EventConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventConsumer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl EventConsumer {
    /// Joins the group named by `config.client_id` and subscribes to `topics`.
    pub fn subscribe(
        config: &KafkaConfig,
        topics: &[Topic],
        dead_letter: DeadLetter,
        settings: ConsumerSettings,
    ) -> Result<Self, PlatformError> {
        let session_ms = config.session_timeout.as_millis().max(1);
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("client.id", &config.client_id)
            .set("group.id", &config.client_id)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.commit.interval.ms",
                config.commit_interval.as_millis().to_string(),
            )
            // A new group reads from the beginning: topics exist before the services start, and
            // an event published before a service's first start must still be handled.
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", session_ms.to_string())
            .set("heartbeat.interval.ms", (session_ms / 3).max(1).to_string())
            .set(
                "fetch.wait.max.ms",
                config.fetch_wait.as_millis().to_string(),
            )
            .set("partition.assignment.strategy", "cooperative-sticky")
            .create()?;
        let names: Vec<&str> = topics.iter().map(|topic| topic.name()).collect();
        consumer.subscribe(&names)?;
        Ok(Self {
            consumer,
            dead_letter,
            settings,
            group: config.client_id.clone(),
        })
    }

    /// Consumes until `shutdown`, handling one message at a time, then commits stored offsets.
    ///
    /// One at a time keeps per-order (per-partition) order without further bookkeeping; a
    /// message being handled when shutdown arrives is finished first.
    pub async fn run<H: EventHandler>(self, handler: H, shutdown: CancellationToken) {
        tracing::info!(group = %self.group, "Consumer started.");
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                message = self.consumer.recv() => message,
            };
            match message {
                Ok(message) => {
                    if self.process(&handler, &message, &shutdown).await
                        && let Err(error) = self.consumer.store_offset_from_message(&message)
                    {
                        // The partition was revoked meanwhile; its next owner sees the
                        // message again and the inbox makes that harmless.
                        tracing::warn!(%error, "Could not store an offset.");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "Kafka consumer error.");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::warn!(%error, "Could not commit offsets on shutdown.");
        }
        tracing::info!(group = %self.group, "Consumer stopped.");
    }

    /// Handles or dead-letters one message; `true` when its offset may be stored.
    async fn process<H: EventHandler>(
        &self,
        handler: &H,
        message: &BorrowedMessage<'_>,
        shutdown: &CancellationToken,
    ) -> bool {
        let info = MessageInfo {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let envelope = match message.payload().map(Envelope::decode) {
            Some(Ok(envelope)) => envelope,
            Some(Err(error)) => {
                return self
                    .dead_letter_now(message, &info, "poison", error.to_string(), 1, shutdown)
                    .await;
            }
            None => {
                return self
                    .dead_letter_now(
                        message,
                        &info,
                        "poison",
                        "empty message".to_owned(),
                        1,
                        shutdown,
                    )
                    .await;
            }
        };
        let span = tracing::info_span!(
            "process",
            messaging.destination.name = %info.topic,
            messaging.kafka.partition = info.partition,
            messaging.kafka.offset = info.offset,
            event_type = envelope.kind().short_name(),
            event_id = %envelope.meta.id,
            order_id = %envelope.key(),
            correlation_id = %envelope.meta.correlation_id,
        );
        self.handle_with_retries(handler, envelope, message, &info, shutdown)
            .instrument(span)
            .await
    }

    async fn handle_with_retries<H: EventHandler>(
        &self,
        handler: &H,
        envelope: Envelope,
        message: &BorrowedMessage<'_>,
        info: &MessageInfo,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut first_failure = None;
        let mut backoff = self.settings.initial_backoff;
        for attempt in 1..=self.settings.max_attempts {
            let error = match handler.handle(envelope.clone(), info).await {
                Ok(()) => return true,
                Err(error) => error,
            };
            let now = Utc::now();
            let first = *first_failure.get_or_insert(now);
            let last_attempt = attempt == self.settings.max_attempts;
            if matches!(error, HandlerError::Permanent(_)) || last_attempt {
                let failure = Failure {
                    class: error.class(),
                    message: error.to_string(),
                    attempts: attempt,
                    first_failure: first,
                    last_failure: now,
                };
                return self
                    .dead_letter
                    .publish(info, message.key(), message.payload(), &failure, shutdown)
                    .await;
            }
            tracing::warn!(%error, attempt, "Handler failed; retrying.");
            let jitter = rand::rng().random_range(0.5..1.5);
            tokio::select! {
                () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                // Not done: leave the offset alone so the message is consumed again later.
                () = shutdown.cancelled() => return false,
            }
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
        false
    }

    async fn dead_letter_now(
        &self,
        message: &BorrowedMessage<'_>,
        info: &MessageInfo,
        class: &'static str,
        reason: String,
        attempts: u32,
        shutdown: &CancellationToken,
    ) -> bool {
        let now = Utc::now();
        let failure = Failure {
            class,
            message: reason,
            attempts,
            first_failure: now,
            last_failure: now,
        };
        self.dead_letter
            .publish(info, message.key(), message.payload(), &failure, shutdown)
            .await
    }
}
