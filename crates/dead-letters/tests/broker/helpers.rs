//! Typed helpers: a broker, dead letters written as the services write them, and waiting for
//! the tail to see something.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use dead_letters::{DeadLetter, Tail};
use embedded_broker::EmbeddedBroker;
use events::OrderId;

/// How long anything may take to show.
const WITHIN: Duration = Duration::from_secs(20);

/// A client config for `broker`.
pub(crate) fn config(broker: &EmbeddedBroker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.bootstrap_servers());
    config
}

/// A tail of `broker`, stopped when the test ends (the guard cancels it).
pub(crate) fn tail(broker: &EmbeddedBroker) -> Result<(Tail, tokio_util::sync::DropGuard)> {
    let shutdown = CancellationToken::new();
    let tail = Tail::start(config(broker), shutdown.clone())?;
    Ok((tail, shutdown.drop_guard()))
}

/// What one dead letter says of itself.
pub(crate) struct Letter<'a> {
    /// The dead-letter topic.
    pub(crate) dlq_topic: &'a str,
    /// The order it concerns (its key).
    pub(crate) order_id: OrderId,
    /// The service that gave it up.
    pub(crate) service: &'a str,
    /// Its original topic, partition and offset.
    pub(crate) origin: (&'a str, i32, i64),
}

/// Writes `letter` as a service's dead-letter path does: the original key, payload and
/// CloudEvents type, plus `dlq.*` headers.
pub(crate) async fn dead_letter(broker: &EmbeddedBroker, letter: &Letter<'_>) -> Result<()> {
    let producer: FutureProducer = config(broker).set("linger.ms", "0").create()?;
    let (topic, partition, offset) = letter.origin;
    let (partition, offset) = (partition.to_string(), offset.to_string());
    let headers = [
        ("ce_type", "shop.payment.completed.v1"),
        ("dlq.original.topic", topic),
        ("dlq.original.partition", partition.as_str()),
        ("dlq.original.offset", offset.as_str()),
        ("dlq.error.class", "permanent"),
        ("dlq.error.message", "the event contradicts the contract"),
        ("dlq.attempts", "3"),
        ("dlq.first_failure", "2026-01-01T00:00:01.000000Z"),
        ("dlq.last_failure", "2026-01-01T00:00:02.000000Z"),
        ("dlq.service", letter.service),
    ]
    .iter()
    .fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(Header {
            key,
            value: Some(*value),
        })
    });
    let key = letter.order_id.to_string();
    producer
        .send(
            FutureRecord::to(letter.dlq_topic)
                .key(&key)
                .payload("{\"order_id\":\"poison\"}")
                .headers(headers),
            WITHIN,
        )
        .await
        .map_err(|(error, _)| error)
        .context("writing a dead letter")?;
    Ok(())
}

/// Waits until `tail` shows what `found` looks for, as every test of the workspace waits
/// (`test_support::eventually`); a failure says `what` it waited for and what the tail had.
pub(crate) async fn until<T>(
    tail: &Tail,
    what: &str,
    mut found: impl FnMut(&Tail) -> Option<T>,
) -> Result<T> {
    test_support::eventually(|| {
        let found = found(tail)
            .ok_or_else(|| format!("no {what}; the tail has {:?}", ids(&tail.snapshot())));
        async move { found }
    })
    .await
}

/// The ids of `letters`.
pub(crate) fn ids(letters: &[DeadLetter]) -> Vec<&str> {
    letters.iter().map(|letter| letter.id.as_str()).collect()
}

/// The first message keyed `key` on any partition of `topic`.
pub(crate) fn find(broker: &EmbeddedBroker, topic: &str, key: &[u8]) -> Result<OwnedMessage> {
    let consumer: BaseConsumer = config(broker).set("group.id", "finder").create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..embedded_broker::SAGA_PARTITIONS {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + WITHIN;
    while std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            if message.key() == Some(key) {
                return Ok(message.detach());
            }
        }
    }
    bail!("nothing keyed {key:?} on {topic} within {WITHIN:?}")
}
