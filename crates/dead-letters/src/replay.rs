//! Sending letters back to their saga topics, and marking them replayed in their dead-letter
//! topic (see [`REPLAY_OF`]).
//!
//! A letter only ever goes to a saga topic that exists ([`original_topic`], checked against
//! the broker's topic list, never created by the send): a letter whose original was not on a
//! saga topic is refused rather than published where nothing reads it. order-api's copies of
//! failed callbacks are refused too: their original was an HTTP request, and only order-api
//! can send it again ([`crate::callback`]).

use std::time::Duration;

use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext};

use platform::kafka::dead_letter_headers as h;

use crate::{DeadLetter, Error, REPLAY_OF, original_topic};

/// The header a letter sent back carries: the letter's id, so that whoever sees the message
/// again can tell it is a replay, and of what.
pub const REPLAYED_FROM: &str = "dlq.replayed_from";

/// The header of a replay marker saying where the letter went (a topic, or `order-api` for a
/// failed callback sent again).
pub const REPLAYED_TO: &str = "dlq.replayed_to";

/// How long a send may wait for the broker's acknowledgement.
const SEND_WITHIN: Duration = Duration::from_secs(10);

/// Why a letter was not sent back.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The letter is not in a dead-letter topic of the shop: there is no saga topic to send
    /// it to.
    #[error("{dlq_topic} is not a dead-letter topic of the shop")]
    NotShopTopic {
        /// The topic the letter is in.
        dlq_topic: String,
    },
    /// order-api's copy of a failed callback: its original was an HTTP request, so order-api
    /// sends it again (`POST /admin/deliveries/{delivery}/retry`), not a topic.
    #[error("a failed callback: order-api sends delivery {delivery} again, no topic takes it")]
    Callback {
        /// The delivery it is the copy of.
        delivery: String,
    },
    /// Its original was on another topic than its dead-letter topic's own, one no service
    /// consumes: published there, nothing would read it.
    #[error("its original was on {from:?}, not on {topic}, and no service consumes that")]
    OtherOrigin {
        /// The original topic its headers name.
        from: String,
        /// The topic its dead-letter topic belongs to.
        topic: &'static str,
    },
    /// The saga topic is missing on the broker; sending would create it on a broker that
    /// auto-creates topics, with the wrong partitions.
    #[error("{topic} does not exist on the broker")]
    TopicMissing {
        /// The saga topic.
        topic: &'static str,
    },
    /// The broker's topic list could not be read.
    #[error("cannot list the broker's topics: {0}")]
    Topics(#[source] KafkaError),
    /// The broker did not acknowledge the letter (or its marker).
    #[error("the broker did not take it: {0}")]
    Send(#[source] KafkaError),
}

/// Sends letters back and marks them replayed: an idempotent producer, shared by every
/// replay of a command or a service.
pub struct Replayer<C: ClientContext + 'static = DefaultClientContext> {
    /// Idempotent, so that a retried send does not produce the letter twice.
    producer: FutureProducer<C>,
}

impl<C: ClientContext + 'static> Clone for Replayer<C> {
    fn clone(&self) -> Self {
        Self {
            producer: self.producer.clone(),
        }
    }
}

impl<C: ClientContext + 'static> std::fmt::Debug for Replayer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer").finish_non_exhaustive()
    }
}

impl Replayer {
    /// A replayer for the broker and client properties of `config`.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        Self::with_context(config, DefaultClientContext)
    }
}

impl<C: ClientContext + 'static> Replayer<C> {
    /// A replayer whose Kafka client reports to `context` (a command keeps the client's log
    /// quiet with [`crate::Quiet`]).
    pub fn with_context(mut config: ClientConfig, context: C) -> Result<Self, Error> {
        let producer = config
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create_with_context(context)?;
        Ok(Self { producer })
    }

    /// Sends `letter` back to its original topic, which it returns: the original key, payload
    /// and headers (but the `dlq.*` ones), plus [`REPLAYED_FROM`]. Does not mark it replayed:
    /// see [`Replayer::mark_replayed`].
    pub async fn send_back(&self, letter: &DeadLetter) -> Result<&'static str, ReplayError> {
        let topic = original_topic(&letter.dlq_topic).ok_or_else(|| ReplayError::NotShopTopic {
            dlq_topic: letter.dlq_topic.clone(),
        })?;
        if let Some(delivery) = letter.delivery_id() {
            return Err(ReplayError::Callback {
                delivery: delivery.to_owned(),
            });
        }
        if let Some(from) = letter
            .header(h::ORIGINAL_TOPIC)
            .filter(|from| !from.is_empty() && *from != topic)
        {
            return Err(ReplayError::OtherOrigin {
                from: from.to_owned(),
                topic,
            });
        }
        if !self.topic_exists(topic).await? {
            return Err(ReplayError::TopicMissing { topic });
        }
        let mut headers = OwnedHeaders::new();
        for (name, value) in letter
            .headers
            .iter()
            .filter(|(name, _)| !name.starts_with("dlq."))
        {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        headers = headers.insert(Header {
            key: REPLAYED_FROM,
            value: Some(&letter.id),
        });
        self.producer
            .send(
                FutureRecord::to(topic)
                    .key(&letter.key)
                    .payload(&letter.payload)
                    .headers(headers),
                SEND_WITHIN,
            )
            .await
            .map_err(|(error, _)| ReplayError::Send(error))?;
        Ok(topic)
    }

    /// Marks `letter` as handled in its dead-letter topic (see [`REPLAY_OF`]), sent back `to`
    /// a topic or a service. The marker has the letter's key, so that it lands in the letter's
    /// partition.
    pub async fn mark_replayed(&self, letter: &DeadLetter, to: &str) -> Result<(), ReplayError> {
        let marker = OwnedHeaders::new()
            .insert(Header {
                key: REPLAY_OF,
                value: Some(&letter.id),
            })
            .insert(Header {
                key: REPLAYED_TO,
                value: Some(to),
            });
        self.producer
            .send(
                FutureRecord::to(&letter.dlq_topic)
                    .key(&letter.key)
                    .payload(&[] as &[u8])
                    .headers(marker),
                SEND_WITHIN,
            )
            .await
            .map_err(|(error, _)| ReplayError::Send(error))?;
        Ok(())
    }

    /// Whether the broker has `topic`, asked without naming it: a metadata request naming a
    /// topic may create it on a broker that auto-creates topics. The request blocks, so it
    /// runs off the async workers.
    async fn topic_exists(&self, topic: &'static str) -> Result<bool, ReplayError> {
        let producer = self.producer.clone();
        let listed = tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(None, Duration::from_secs(10))?;
            Ok(metadata
                .topics()
                .iter()
                .any(|listed| listed.name() == topic))
        })
        .await;
        match listed {
            Ok(listed) => listed.map_err(ReplayError::Topics),
            // The closure does not panic; a runtime shutting down cancels it.
            Err(_) => Err(ReplayError::Topics(KafkaError::Canceled)),
        }
    }
}
