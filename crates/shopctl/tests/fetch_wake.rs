//! The embedded broker answers a waiting fetch as soon as a produce gives it data
//! (`native/mock_fetch_wake.c`), as Apache Kafka does, instead of when the consumer's
//! `fetch.wait.max.ms` runs out; and the consumer still gets every message once, in order.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use embedded_broker::EmbeddedBroker;

const TOPIC: &str = "waiting";
/// How long each fetch may wait: far longer than any answer below may take.
const FETCH_WAIT: Duration = Duration::from_secs(20);
/// The longest a message may take to reach the waiting consumer: a fraction of the fetch wait,
/// generous for a loaded machine.
const PROMPT: Duration = Duration::from_secs(5);
const MESSAGES: usize = 20;

#[test]
fn a_waiting_fetch_is_answered_when_data_arrives() -> Result<()> {
    let broker = EmbeddedBroker::start(1)?;
    // Two partitions: the consumer waits on both, the messages go to the second.
    broker.create_topic(TOPIC, 2)?;
    let bootstrap = broker.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "waiting-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", FETCH_WAIT.as_millis().to_string())
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(TOPIC, 0, Offset::Beginning)?;
    assignment.add_partition_offset(TOPIC, 1, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    // Nothing to read yet: the consumer's fetch is left waiting.
    ensure!(
        consumer.poll(Duration::from_millis(500)).is_none(),
        "a message before any was sent"
    );

    for n in 0..MESSAGES {
        let payload = n.to_string();
        producer
            .send(
                BaseRecord::<(), _>::to(TOPIC)
                    .partition(1)
                    .payload(&payload),
            )
            .map_err(|(error, _)| error)?;
        producer.flush(PROMPT)?;
        let sent = Instant::now();
        let message = loop {
            if sent.elapsed() > PROMPT {
                bail!("message {n} not received {PROMPT:?} after it was sent");
            }
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                break message?;
            }
        };
        let received = std::str::from_utf8(message.payload().context("no payload")?)?;
        ensure!(
            received == payload && message.offset() == i64::try_from(n)?,
            "expected message {n}, got {received} at offset {}",
            message.offset()
        );
    }
    // Nothing more: no message twice.
    ensure!(
        consumer.poll(Duration::from_millis(500)).is_none(),
        "a message after the last"
    );
    Ok(())
}
