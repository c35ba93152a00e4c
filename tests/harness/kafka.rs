//! Reading and writing topics directly, to replay or inject messages.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A message as found on a topic.
#[derive(Clone, Debug)]
pub struct FoundMessage {
    /// Its key.
    pub key: Vec<u8>,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Its headers as text.
    pub headers: Vec<(String, String)>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Producer + ad-hoc readers on the test broker.
pub struct KafkaTool {
    bootstrap: String,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTool")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl KafkaTool {
    pub(crate) fn new(bootstrap: &str) -> Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "0")
            .create()?;
        Ok(Self {
            bootstrap: bootstrap.to_owned(),
            producer,
        })
    }

    /// Waits until `topic` holds a message matching `matches`, reading every partition from the
    /// beginning (no consumer group involved).
    pub fn find(
        &self,
        topic: &str,
        matches: impl Fn(&FoundMessage) -> bool,
    ) -> Result<FoundMessage> {
        self.find_all(topic, &matches, 1)?
            .into_iter()
            .next()
            .context("no message")
    }

    /// Waits until `topic` holds at least `count` messages matching `matches`; returns them.
    pub fn find_all(
        &self,
        topic: &str,
        matches: &dyn Fn(&FoundMessage) -> bool,
        count: usize,
    ) -> Result<Vec<FoundMessage>> {
        let (consumer, partitions) = self.reader(topic)?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment.add_partition_offset(topic, i32::try_from(partition)?, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let started = Instant::now();
        let mut found = Vec::new();
        let mut last_error = None;
        while started.elapsed() < crate::DEADLINE {
            let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            // A consumer error (`AllBrokersDown` while a test holds the broker down, a dropped
            // connection) is librdkafka telling, not giving up: it reconnects by itself, as the
            // services' consumers do. Only the deadline ends the read.
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    last_error = Some(error);
                    continue;
                }
            };
            let candidate = FoundMessage {
                key: message.key().unwrap_or_default().to_vec(),
                payload: message.payload().unwrap_or_default().to_vec(),
                headers: message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                partition: message.partition(),
                offset: message.offset(),
            };
            if matches(&candidate) {
                found.push(candidate);
                if found.len() >= count {
                    return Ok(found);
                }
            }
        }
        bail!(
            "found {} of {count} matching messages on {topic} within the deadline \
             (last consumer error: {last_error:?})",
            found.len()
        )
    }

    /// A consumer outside any group, and the number of partitions of `topic`.
    fn reader(&self, topic: &str) -> Result<(BaseConsumer, usize)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "saga-tests-reader")
            .set("enable.auto.commit", "false")
            .create()?;
        let partitions = retrying(&format!("metadata of {topic}"), || {
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
            metadata
                .topics()
                .first()
                .map(|t| t.partitions().len())
                .filter(|&partitions| partitions > 0)
                .context("topic metadata missing")
        })?;
        Ok((consumer, partitions))
    }

    /// Every message on `topic` up to its current end.
    pub fn read_all(&self, topic: &str) -> Result<Vec<FoundMessage>> {
        let (consumer, partitions) = self.reader(topic)?;
        let mut expected = 0;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..i32::try_from(partitions)? {
            let (low, high) = retrying(&format!("watermarks of {topic}/{partition}"), || {
                Ok(consumer.fetch_watermarks(topic, partition, Duration::from_secs(5))?)
            })?;
            expected += usize::try_from(high - low)?;
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
        drop(consumer);
        if expected == 0 {
            return Ok(Vec::new());
        }
        self.find_all(topic, &|_| true, expected)
    }

    /// Produces `payload` with `key` and `headers` onto `topic` and waits for the acknowledgement.
    pub async fn produce(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: &[(String, String)],
    ) -> Result<()> {
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(rdkafka::message::Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
        self.producer
            .send(
                FutureRecord::to(topic)
                    .key(key)
                    .payload(payload)
                    .headers(headers),
                Duration::from_secs(5),
            )
            .await
            .map_err(|(error, _)| error)?;
        Ok(())
    }
}

/// `attempt` until it succeeds, for as long as [`crate::DEADLINE`] allows: a broker a test has
/// taken down answers again within it. Blocking, like the `BaseConsumer` calls it wraps.
fn retrying<T>(what: &str, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(error) if started.elapsed() >= crate::DEADLINE => {
                return Err(
                    error.context(format!("{what}: still failing after {:?}", crate::DEADLINE))
                );
            }
            // Pacing between attempts of a blocking call (each waits up to 5 s itself).
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Whether `message` is an event of `event_type` (CloudEvents `type`) about `order_id`.
pub fn is_event(message: &FoundMessage, event_type: &str, order_id: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(&message.payload)
        .map(|doc| doc["type"] == event_type && doc["subject"] == order_id)
        .unwrap_or(false)
}
