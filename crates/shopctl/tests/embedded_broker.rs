//! The embedded broker serves fetches from any offset of a long partition: its message-set
//! lookup (`native/mock_msgset_find.c`, walking from the nearer end) must find the same
//! message set librdkafka's own walk from the oldest would.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use embedded_broker::EmbeddedBroker;

const TOPIC: &str = "lookup";
/// Enough message sets that a wrong walk in either direction shows.
const MESSAGES: i64 = 1_500;

/// Sends `MESSAGES` messages one at a time, so that each is a message set of its own; the
/// payload of each is its offset.
async fn fill(bootstrap: &str) -> Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()?;
    for n in 0..MESSAGES {
        let payload = n.to_string();
        let delivered = producer
            .send(
                FutureRecord::<(), _>::to(TOPIC)
                    .partition(0)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)?;
        ensure!(
            delivered.offset == n,
            "message {n} landed at offset {}",
            delivered.offset
        );
    }
    Ok(())
}

/// Reads `count` messages from `start`, checking that each carries its own offset.
fn read_from(bootstrap: &str, start: i64, count: i64) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{start}"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(TOPIC, 0, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut expected = start;
    while expected < start + count {
        if Instant::now() > deadline {
            bail!("reading from {start}: stuck before offset {expected}");
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        let payload = std::str::from_utf8(message.payload().context("no payload")?)?;
        ensure!(
            message.offset() == expected && payload == expected.to_string(),
            "reading from {start}: expected offset {expected}, got {} carrying {payload}",
            message.offset()
        );
        expected += 1;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn fetches_from_any_offset_of_a_long_partition_get_the_right_messages() -> Result<()> {
    let broker = EmbeddedBroker::start(1)?;
    broker.create_topic(TOPIC, 1)?;
    let bootstrap = broker.bootstrap_servers().to_owned();
    fill(&bootstrap).await?;
    let reads = tokio::task::spawn_blocking(move || -> Result<()> {
        // From the oldest, around both sides of the middle (where the walk changes ends), and
        // the newest.
        for (start, count) in [
            (0, 50),
            (MESSAGES / 2 - 2, 5),
            (MESSAGES / 2 + 1, 5),
            (MESSAGES - 3, 3),
        ] {
            read_from(&bootstrap, start, count)?;
        }
        // One consumer through the whole partition.
        read_from(&bootstrap, 0, MESSAGES)
    });
    reads.await?
}
