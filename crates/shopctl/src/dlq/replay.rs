//! `shopctl dlq replay`: sends letters back to their saga topics, and failed callbacks back to
//! order-api's deliverer ([`super::callback`]); each letter sent back is marked replayed in its
//! dead-letter topic (see [`REPLAY_OF`]).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use platform::kafka::dead_letter_headers as h;

use super::{
    DeadLetter, OrderApi, Quiet, REPLAY_OF, callback, client_config, original_topic, printable,
};
/// Sends `letters` back to their original topics, and failed callbacks back to `order_api`'s
/// deliverer; returns how many were acknowledged. A letter that cannot go back (see the
/// module's documentation) is passed over and the others are sent; the command then fails
/// naming it. The Kafka client's log goes to stderr only when `verbose`.
pub async fn replay(
    bootstrap: &str,
    verbose: bool,
    letters: &[DeadLetter],
    order_api: &OrderApi,
) -> Result<usize> {
    let producer: FutureProducer<Quiet> = client_config()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create_with_context(Quiet::new(verbose))?;
    let existing = existing_topics(&producer)?;
    let mut replayed = 0;
    let mut refused = Vec::new();
    for letter in letters {
        if let Some(delivery) = callback::delivery_id(letter) {
            match callback::retry(order_api, delivery).await {
                Ok(retried) => {
                    mark_replayed(&producer, letter, "order-api").await?;
                    let what = if retried.requeued {
                        "requeued".to_owned()
                    } else {
                        format!("already {}: nothing changed", retried.status)
                    };
                    println!(
                        "replayed {} -> order-api delivery {delivery} ({what})",
                        letter.id
                    );
                    replayed += 1;
                }
                Err(error) => refused.push(format!("{}: {error:#}", letter.id)),
            }
            continue;
        }
        let Some(topic) = original_topic(&letter.dlq_topic) else {
            bail!("{} is not in a dead-letter topic of the shop", letter.id);
        };
        let from = letter.header(h::ORIGINAL_TOPIC);
        if !from.is_empty() && from != topic {
            refused.push(format!(
                "{}: its original was on {:?}, not on {topic}, and no service consumes that",
                letter.id,
                printable(from, false)
            ));
            continue;
        }
        if !existing.iter().any(|name| name == topic) {
            refused.push(format!(
                "{}: {topic} does not exist on the broker",
                letter.id
            ));
            continue;
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
        mark_replayed(&producer, letter, topic).await?;
        println!("replayed {} -> {topic}", letter.id);
        replayed += 1;
    }
    if !refused.is_empty() {
        bail!(
            "{replayed} dead letter(s) replayed; not replayed (see docs/operations.md): {}",
            refused.join("; ")
        );
    }
    Ok(replayed)
}

/// Marks `letter` as handled in its dead-letter topic (see [`REPLAY_OF`]), sent back `to` a
/// topic or a service.
async fn mark_replayed(
    producer: &FutureProducer<Quiet>,
    letter: &DeadLetter,
    to: &str,
) -> Result<()> {
    let marker = OwnedHeaders::new()
        .insert(Header {
            key: REPLAY_OF,
            value: Some(&letter.id),
        })
        .insert(Header {
            key: "dlq.replayed_to",
            value: Some(to),
        });
    producer
        .send(
            FutureRecord::to(&letter.dlq_topic)
                .key(&letter.key)
                .payload(&[] as &[u8])
                .headers(marker),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| error)
        .with_context(|| format!("marking {} as replayed", letter.id))?;
    Ok(())
}

/// The topics the broker has, asked without naming any: a metadata request naming a topic may
/// create it on a broker that auto-creates topics.
fn existing_topics(producer: &FutureProducer<Quiet>) -> Result<Vec<String>> {
    use rdkafka::producer::Producer;
    let metadata = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .context("listing the broker's topics")?;
    Ok(metadata
        .topics()
        .iter()
        .map(|topic| topic.name().to_owned())
        .collect())
}
