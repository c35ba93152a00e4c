//! `shopctl dlq list | show | replay`: look at dead letters and send chosen ones back.
//!
//! A dead letter is the original message, untouched, plus `dlq.*` headers saying why it failed
//! (see `platform::kafka::dead_letter_headers`). Replaying produces the original key, payload and
//! headers to the original topic, with `dlq.replayed_from` added. Replays are idempotent: the
//! event keeps its id, so a consumer that already handled it (or a second replay) changes
//! nothing — its inbox drops the repeat.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use events::Topic;
use platform::kafka::dead_letter_headers as h;

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// `<dlq topic>/<partition>/<offset>`: how to name it on the command line.
    pub id: String,
    /// The dead-letter topic.
    pub dlq_topic: String,
    /// Original key.
    pub key: Vec<u8>,
    /// Original payload.
    pub payload: Vec<u8>,
    /// All headers, original and `dlq.*`.
    pub headers: BTreeMap<String, String>,
}

impl DeadLetter {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Reads every dead letter of the saga topics (or of `only`), up to the current end.
pub fn read(bootstrap: &str, only: Option<&str>) -> Result<Vec<DeadLetter>> {
    let consumer: BaseConsumer = client_config()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "shopctl-dlq")
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(5);
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0_i64;
    for topic in Topic::ALL.iter().map(|t| t.dead_letter_name()) {
        if only.is_some_and(|only| only != topic && format!("{only}.dlq") != topic) {
            continue;
        }
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        for partition in 0..i32::try_from(partitions)? {
            let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
            if high > low {
                remaining += high - low;
                assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
            }
        }
    }
    let mut letters = Vec::new();
    if remaining == 0 {
        return Ok(letters);
    }
    consumer.assign(&assignment)?;
    let started = std::time::Instant::now();
    while remaining > 0 {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("timed out reading dead-letter topics ({remaining} messages unread)");
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        remaining -= 1;
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        letters.push(DeadLetter {
            id: format!(
                "{}/{}/{}",
                message.topic(),
                message.partition(),
                message.offset()
            ),
            dlq_topic: message.topic().to_owned(),
            key: message.key().unwrap_or_default().to_vec(),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    letters.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(letters)
}

/// Prints one line per dead letter.
pub fn list(letters: &[DeadLetter]) {
    if letters.is_empty() {
        println!("No dead letters.");
        return;
    }
    println!(
        "{:<22} {:<14} {:<10} {:>8} {:<28} reason",
        "id", "service", "class", "attempts", "last failure"
    );
    for letter in letters {
        let mut reason = letter.header(h::ERROR_MESSAGE).to_owned();
        if reason.len() > 80 {
            reason.truncate(77);
            reason.push_str("...");
        }
        println!(
            "{:<22} {:<14} {:<10} {:>8} {:<28} {reason}",
            letter.id,
            letter.header(h::SERVICE),
            letter.header(h::ERROR_CLASS),
            letter.header(h::ATTEMPTS),
            letter.header(h::LAST_FAILURE),
        );
    }
}

/// Prints one dead letter in full.
pub fn show(letter: &DeadLetter) {
    println!("id: {}", letter.id);
    println!("key: {}", String::from_utf8_lossy(&letter.key));
    for (name, value) in &letter.headers {
        println!("header {name}: {value}");
    }
    let payload = serde_json::from_slice::<serde_json::Value>(&letter.payload)
        .ok()
        .and_then(|json| serde_json::to_string_pretty(&json).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(&letter.payload).into_owned());
    println!("payload:\n{payload}");
}

/// Sends `letters` back to their original topics; returns how many were acknowledged.
pub async fn replay(bootstrap: &str, letters: &[DeadLetter]) -> Result<usize> {
    let producer: FutureProducer = client_config()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()?;
    let mut replayed = 0;
    for letter in letters {
        let topic = letter.header(h::ORIGINAL_TOPIC);
        if topic.is_empty() {
            bail!(
                "{} has no {} header; cannot tell where it came from",
                letter.id,
                h::ORIGINAL_TOPIC
            );
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
            key: "dlq.replayed_from",
            value: Some(&letter.id),
        });
        producer
            .send(
                FutureRecord::to(topic)
                    .key(&letter.key)
                    .payload(&letter.payload)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)
            .with_context(|| format!("replaying {}", letter.id))?;
        println!("replayed {} -> {topic}", letter.id);
        replayed += 1;
    }
    Ok(replayed)
}

/// A client with the `KAFKA_CLIENT_*` properties (TLS, SASL…), like the services'.
fn client_config() -> ClientConfig {
    platform::config::client_config_from(
        &platform::config::client_properties_from(std::env::vars()),
    )
}
