//! The consumer loop, written once for every service.
//!
//! Offsets are stored (`enable.auto.offset.store=false`) only after a message was handled —
//! its effect and outgoing events committed to the database — or safely dead-lettered. The
//! background auto-commit then commits stored offsets, and shutdown commits them synchronously.
//! A crash can therefore only cause redelivery, which the inbox absorbs; never a loss.
//!
//! A service subscribes to the event kinds it handles, and so to their topics. The other kinds
//! on those topics (a topic carries every event of its producer) are passed over, by their
//! `ce_type` header before any decoding or copying when the message has one (see
//! [`super::cloudevents::declared_kind`]): half of the messages a saga's services consume are
//! not for them.
//!
//! Partitions are handled concurrently, each by one of `CONSUMER_CONCURRENCY` lanes: the
//! messages of one partition always go to the same lane, so a slow handler in one partition
//! does not hold up the others. A lane handles the messages queued in it side by side, except
//! those of one key (one order), which it handles one after the other ([`run`]): per-order
//! order holds, and the transactions of a busy lane share commits.

mod close;
mod context;
mod lag;
mod run;
mod settings;
mod span;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use rand::RngExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use events::{Envelope, EventKind, Topic};

use super::cloudevents::declared_kind;
use super::dead_letter::Failure;
use super::semconv::Broker;
use super::{DeadLetter, EventHandler, HandlerError, MessageInfo};
use crate::PlatformError;
use crate::config::KafkaConfig;
use context::Hooks;
pub use run::RUN_LIMIT;
pub use settings::ConsumerSettings;

/// Messages queued per lane before the dispatch waits.
const LANE_DEPTH: usize = 64;

/// The lane of a partition: the same partition always maps to the same lane.
fn lane_of(partition: i32, lanes: usize) -> usize {
    usize::try_from(partition).unwrap_or(0) % lanes.max(1)
}

/// What the dispatch hands a lane.
enum Work {
    /// A message to handle (or dead-letter).
    Handle(OwnedMessage),
    /// A message whose header says it is of a kind this service does not handle: passed over
    /// without copying it out of the client, only its place kept, so that its offset is stored
    /// in its turn.
    PassOver {
        topic: String,
        partition: i32,
        offset: i64,
        kind: EventKind,
    },
}

/// What became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The handler succeeded.
    Handled,
    /// It is in the dead-letter topic.
    DeadLettered,
    /// Shutdown came first; the message will be consumed again.
    Interrupted,
    /// Not a kind this service handles.
    Skipped,
}

fn outcome_of(done: bool, dead_lettered: bool) -> Outcome {
    match (done, dead_lettered) {
        (false, _) => Outcome::Interrupted,
        (true, true) => Outcome::DeadLettered,
        (true, false) => Outcome::Handled,
    }
}

/// Counts a message passed over by its header, as `events_consumed{outcome="skipped"}`.
fn count_skipped(topic: &str, kind: EventKind) {
    metrics::counter!(
        crate::metrics::EVENTS_CONSUMED,
        "topic" => topic.to_owned(),
        "type" => kind.short_name(),
        "outcome" => "skipped",
    )
    .increment(1);
}

/// The consumer's librdkafka settings: the group, offsets stored by the consumer and committed
/// in the background, and the cooperative assignor (a rebalance moves only the partitions that
/// change owner).
fn consumer_config(config: &KafkaConfig) -> rdkafka::ClientConfig {
    let session_ms = config.session_timeout.as_millis().max(1);
    let mut client = config.client_config();
    client
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
        .set("socket.nagle.disable", "true")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("statistics.interval.ms", "5000");
    client
}

/// A subscribed consumer in the service's consumer group.
pub struct EventConsumer {
    consumer: StreamConsumer<Hooks>,
    /// The kinds handed to the handler; the others are passed over.
    kinds: Vec<EventKind>,
    dead_letter: DeadLetter,
    settings: ConsumerSettings,
    group: String,
    /// The broker its spans name (`server.address`, `server.port`).
    broker: Broker,
}

impl std::fmt::Debug for EventConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventConsumer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl EventConsumer {
    /// How long closing the consumer (leaving its group, freeing the client) may take before
    /// the service stops without waiting for it.
    const CLOSE_LIMIT: Duration = Duration::from_secs(5);

    /// Joins the group named by `config.client_id` and subscribes to the topics of `kinds`;
    /// only events of these kinds reach the handler.
    pub fn subscribe(
        config: &KafkaConfig,
        kinds: &[EventKind],
        dead_letter: DeadLetter,
        settings: ConsumerSettings,
    ) -> Result<Self, PlatformError> {
        let consumer: StreamConsumer<Hooks> =
            consumer_config(config).create_with_context(Hooks::new(config.client_id.clone()))?;
        let mut topics: Vec<Topic> = Vec::new();
        for topic in kinds.iter().map(|kind| kind.topic()) {
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        let names: Vec<&str> = topics.iter().map(|topic| topic.name()).collect();
        consumer.subscribe(&names)?;
        Ok(Self {
            consumer,
            kinds: kinds.to_vec(),
            dead_letter,
            settings,
            group: config.client_id.clone(),
            broker: Broker::of_bootstrap(&config.bootstrap_servers),
        })
    }

    /// Consumes until `shutdown`, then commits stored offsets and leaves the group.
    ///
    /// Messages are handed to the lane of their partition; a lane handles a run of them at a
    /// time (see [`run`]) and then stores their offsets, in order, for those handled or
    /// dead-lettered. At shutdown each lane finishes the run in hand; messages still queued
    /// are not handled and their offsets not stored, so they are consumed again later.
    pub async fn run<H: EventHandler>(self, handler: H, shutdown: CancellationToken) {
        tracing::info!(group = %self.group, concurrency = self.settings.concurrency, "Consumer started.");
        let consumer = Arc::new(self);
        let handler = Arc::new(handler);
        let mut lanes = Vec::with_capacity(consumer.settings.concurrency);
        let mut workers = Vec::with_capacity(consumer.settings.concurrency);
        for _ in 0..consumer.settings.concurrency {
            let (sender, receiver) = mpsc::channel::<Work>(LANE_DEPTH);
            lanes.push(sender);
            workers.push(tokio::spawn(Arc::clone(&consumer).lane(
                Arc::clone(&handler),
                receiver,
                shutdown.clone(),
            )));
        }
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                message = consumer.consumer.recv() => message,
            };
            match message {
                Ok(message) => {
                    let lane = &lanes[lane_of(message.partition(), lanes.len())];
                    let work = match message.headers().and_then(declared_kind) {
                        Some(kind) if !consumer.kinds.contains(&kind) => Work::PassOver {
                            topic: message.topic().to_owned(),
                            partition: message.partition(),
                            offset: message.offset(),
                            kind,
                        },
                        _ => Work::Handle(message.detach()),
                    };
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        // A full lane holds up the dispatch: back-pressure on the broker.
                        sent = lane.send(work) => if sent.is_err() { break },
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
        drop(lanes);
        for worker in workers {
            if let Err(error) = worker.await {
                tracing::error!(%error, "A consumer lane failed.");
            }
        }
        match consumer.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            // Nothing was handled since the last commit: nothing to commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => tracing::debug!("No new offsets to commit on shutdown."),
            Err(error) => tracing::warn!(%error, "Could not commit offsets on shutdown."),
        }
        consumer.close().await;
    }

    /// Leaves the group and frees the client, off the runtime and within [`Self::CLOSE_LIMIT`].
    async fn close(self: Arc<Self>) {
        self.consumer.context().closing();
        let group = self.group.clone();
        if !close::drop_within(self, Self::CLOSE_LIMIT).await {
            tracing::warn!(
                %group,
                limit = ?Self::CLOSE_LIMIT,
                "The Kafka consumer did not close in time; left behind (the broker drops it \
                 from its group after the session timeout)."
            );
        }
        tracing::info!(%group, "Consumer stopped.");
    }

    /// One lane: its partitions' messages, a run at a time (see [`run`]): the messages of one
    /// key in order, those of different keys side by side.
    async fn lane<H: EventHandler>(
        self: Arc<Self>,
        handler: Arc<H>,
        mut messages: mpsc::Receiver<Work>,
        shutdown: CancellationToken,
    ) {
        let mut next = None;
        loop {
            // Once shutdown has begun, no further run: a message of the last run may have been
            // left unfinished, and a later message's offset must not be stored over it. Hence
            // also `biased`: without it, `select!` would take a queued message as often as it
            // noticed the shutdown.
            if shutdown.is_cancelled() {
                return;
            }
            let first = match next.take() {
                Some(work) => work,
                None => tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return,
                    work = messages.recv() => match work {
                        Some(work) => work,
                        None => return,
                    },
                },
            };
            let (works, after) = run::gather(first, &mut messages);
            next = after;
            let done = join_all(
                works
                    .iter()
                    .map(|work| self.settle(handler.as_ref(), work, &shutdown)),
            )
            .await;
            for (topic, partition, offset) in run::finished(&works, &done) {
                if let Err(error) = self.consumer.store_offset(topic, partition, offset) {
                    // The partition was revoked meanwhile; its next owner sees the message
                    // again and the inbox makes that harmless.
                    tracing::warn!(%error, "Could not store an offset.");
                }
            }
        }
    }

    /// Handles, dead-letters or passes over one message of a run; `true` when its offset may
    /// be stored.
    async fn settle<H: EventHandler>(
        &self,
        handler: &H,
        work: &Work,
        shutdown: &CancellationToken,
    ) -> bool {
        match work {
            Work::Handle(message) => self.process(handler, message, shutdown).await,
            Work::PassOver { topic, kind, .. } => {
                count_skipped(topic, *kind);
                true
            }
        }
    }

    /// Handles or dead-letters one message; `true` when its offset may be stored.
    ///
    /// The work is a `CONSUMER` span `process <topic>`, child of the producer's span (from the
    /// `traceparent` header), carrying the order and correlation ids for every log line, and
    /// marked as the work of the service the group is named after (see [`telemetry`]). A
    /// message that goes to the dead-letter topic ends the span with status `Error`, saying
    /// why; one handled after retries does not (each failed attempt is a warning in it).
    async fn process<H: EventHandler>(
        &self,
        handler: &H,
        message: &OwnedMessage,
        shutdown: &CancellationToken,
    ) -> bool {
        let info = MessageInfo {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let span = span::process(message, &info, &self.group, &self.broker);
        let started = Instant::now();
        let (kind, outcome) = async {
            let envelope = match message.payload().map(Envelope::decode) {
                Some(Ok(envelope)) => envelope,
                Some(Err(error)) => {
                    let done = self
                        .dead_letter_now(message, &info, "poison", error.to_string(), 1, shutdown)
                        .await;
                    return ("poison", outcome_of(done, true));
                }
                None => {
                    let done = self
                        .dead_letter_now(
                            message,
                            &info,
                            "poison",
                            "empty message".to_owned(),
                            1,
                            shutdown,
                        )
                        .await;
                    return ("poison", outcome_of(done, true));
                }
            };
            if !self.kinds.contains(&envelope.kind()) {
                // No header said what it was (a replayed dead letter, say): decoded to find out.
                return (envelope.kind().short_name(), Outcome::Skipped);
            }
            let current = tracing::Span::current();
            current.record("messaging.message.id", envelope.meta.id.to_string());
            current.record("event_type", envelope.kind().short_name());
            current.record("order_id", envelope.key());
            current.record("correlation_id", envelope.meta.correlation_id.as_str());
            let kind = envelope.kind().short_name();
            (
                kind,
                self.handle_with_retries(handler, envelope, message, &info, shutdown)
                    .await,
            )
        }
        .instrument(span.clone())
        .await;
        let labels = [("topic", info.topic.clone()), ("type", kind.to_owned())];
        if outcome != Outcome::Skipped {
            // A skipped event was not handled: its decoding time is no handler's duration.
            metrics::histogram!(crate::metrics::HANDLER_DURATION, &labels)
                .record(started.elapsed().as_secs_f64());
        }
        let outcome_label = match outcome {
            Outcome::Handled => "handled",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Interrupted => "interrupted",
            Outcome::Skipped => "skipped",
        };
        metrics::counter!(
            crate::metrics::EVENTS_CONSUMED,
            &[
                labels[0].clone(),
                labels[1].clone(),
                ("outcome", outcome_label.to_owned())
            ]
        )
        .increment(1);
        !matches!(outcome, Outcome::Interrupted)
    }

    async fn handle_with_retries<H: EventHandler>(
        &self,
        handler: &H,
        envelope: Envelope,
        message: &OwnedMessage,
        info: &MessageInfo,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let mut first_failure = None;
        let mut backoff = self.settings.initial_backoff;
        let mut attempt = 0;
        while attempt < self.settings.max_attempts {
            let error = match handler.handle(envelope.clone(), info).await {
                Ok(()) => return Outcome::Handled,
                Err(error) => error,
            };
            // An unavailable database is no fault of the message: waiting it out spends none of
            // the message's attempts, so a long outage dead-letters nothing.
            if !matches!(error, HandlerError::Unavailable(_)) {
                attempt += 1;
            }
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
                failure.mark_span(&tracing::Span::current());
                let done = self
                    .dead_letter
                    .publish(info, message, &failure, shutdown)
                    .await;
                return outcome_of(done, true);
            }
            tracing::warn!(%error, attempt, "Handler failed; retrying.");
            let jitter = rand::rng().random_range(0.5..1.5);
            tokio::select! {
                () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                // Not done: leave the offset alone so the message is consumed again later.
                () = shutdown.cancelled() => return Outcome::Interrupted,
            }
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
        Outcome::Interrupted
    }

    async fn dead_letter_now(
        &self,
        message: &OwnedMessage,
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
        failure.mark_span(&tracing::Span::current());
        self.dead_letter
            .publish(info, message, &failure, shutdown)
            .await
    }
}
