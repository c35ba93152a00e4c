//! `--baseline-broker`: how many saga-sized messages the broker moves per second on its own,
//! produce to consume, so that saga throughput can be read as a share of the broker's limit.
//!
//! A producer and a consumer (rdkafka, settings as in `platform::kafka`: idempotent, `acks=all`,
//! Nagle off, but a short `linger.ms`) run for a few seconds on a fresh topic. The producer
//! stays at most a bounded number of messages ahead of the consumer: the embedded broker keeps
//! only ~5 MiB (or 100 000 messages) per partition, and a consumer that fell further behind
//! would lose messages under it. What is measured is therefore the sustained rate, not a burst
//! into a queue.
//!
//! The topic is created with [`PARTITIONS`] partitions through the Admin API where the broker
//! has one (Apache Kafka); the embedded broker has none, and auto-creates it with its default
//! partition count instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::Serialize;

use events::{
    Currency, Envelope, EventId, LineItem, Money, OrderConfirmed, OrderCreated, OrderId,
    PaymentCompleted, PaymentInitiated, PaymentMethod, PricedLineItem, Sku, StockReserved, UserId,
};

/// Partitions asked for: enough that the per-partition limit of the embedded broker is far off.
const PARTITIONS: i32 = 16;

/// Messages the producer may be ahead of the consumer, per partition (~2 MiB of saga events,
/// under the embedded broker's 5 MiB per partition).
const AHEAD_PER_PARTITION: u64 = 2_000;

/// Not measured at the start: connections, metadata, the first fetches.
const WARMUP: Duration = Duration::from_millis(500);

/// Kafka messages of one confirmed saga: `order.created` (order-api), `payment.initiated` and
/// `payment.completed` (payment-svc), `stock.reserved` (inventory-svc), `order.confirmed`
/// (order-api). A declined one has four (`payment.failed`, `order.cancelled` instead of the last
/// three).
pub(crate) const MESSAGES_PER_CONFIRMED_SAGA: u32 = 5;

/// The baseline's result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Baseline {
    /// Messages produced and consumed per second.
    pub(crate) messages_per_s: f64,
    /// Size of each message (the average encoded saga event).
    pub(crate) message_bytes: usize,
    /// Partitions of the topic.
    pub(crate) partitions: usize,
    /// Measured time.
    pub(crate) duration_s: f64,
    /// The broker measured.
    pub(crate) bootstrap: String,
}

/// The five events of a confirmed saga, as the services encode them (with trace context).
fn confirmed_saga() -> Result<Vec<Envelope>> {
    let order_id = OrderId::new();
    let sku = Sku::parse("WIDGET-42")?;
    let price = Money::new(2499, Currency::USD);
    let line = LineItem {
        sku: sku.clone(),
        quantity: 1,
    };
    let created = Envelope::new(
        "/shop/order-api",
        OrderCreated {
            order_id,
            user_id: UserId::parse("usr_bench")?,
            items: vec![PricedLineItem {
                sku,
                quantity: 1,
                unit_price: price,
            }],
            total: price,
            payment_method: PaymentMethod::parse("pm_visa_4242")?,
            created_at: chrono::Utc::now(),
        },
        None,
    );
    let cause = Some(EventId::new());
    let mut saga = vec![
        created,
        Envelope::new(
            "/shop/payment-svc",
            PaymentInitiated {
                order_id,
                amount: price,
            },
            cause,
        ),
        Envelope::new(
            "/shop/payment-svc",
            PaymentCompleted {
                order_id,
                payment_id: format!("ch_{}", uuid_like()),
                amount: price,
                items: vec![line.clone()],
            },
            None,
        ),
        Envelope::new(
            "/shop/inventory-svc",
            StockReserved {
                order_id,
                items: vec![line],
            },
            cause,
        ),
        Envelope::new(
            "/shop/order-api",
            OrderConfirmed {
                order_id,
                total: price,
            },
            cause,
        ),
    ];
    for envelope in &mut saga {
        envelope.meta.traceparent =
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned());
    }
    Ok(saga)
}

/// 24 hex digits, the length of a provider's charge id suffix.
fn uuid_like() -> String {
    let id = EventId::new().as_uuid().simple().to_string();
    id[id.len() - 24..].to_owned()
}

/// The average encoded size of a confirmed saga's events, and one of them to send.
pub(crate) fn saga_message() -> Result<(usize, Vec<u8>)> {
    let encoded: Vec<Vec<u8>> = confirmed_saga()?.iter().map(Envelope::encode).collect();
    let average = encoded.iter().map(Vec::len).sum::<usize>() / encoded.len().max(1);
    // Sent bytes of exactly the average size: the payload's content does not matter to the
    // broker, its size does.
    let mut payload = encoded.into_iter().next().unwrap_or_default();
    payload.resize(average, b' ');
    Ok((average, payload))
}

/// Measures `bootstrap` for `duration`.
pub(crate) async fn measure(bootstrap: &str, duration: Duration) -> Result<Baseline> {
    let topic = format!(
        "bench.baseline.{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S%3f")
    );
    create_topic(bootstrap, &topic).await;
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || measure_blocking(&bootstrap, &topic, duration))
        .await
        .context("the broker baseline panicked")?
}

/// Creates the topic where the Admin API exists; elsewhere the producer auto-creates it.
async fn create_topic(bootstrap: &str, topic: &str) {
    let admin: Result<AdminClient<DefaultClientContext>, _> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create();
    let Ok(admin) = admin else { return };
    let new_topic = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(-1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    let created = tokio::time::timeout(
        Duration::from_secs(10),
        admin.create_topics([&new_topic], &options),
    )
    .await;
    match created {
        Ok(Ok(results)) if results.iter().all(Result::is_ok) => {
            tracing::info!(topic, partitions = PARTITIONS, "Baseline topic created.");
        }
        _ => tracing::debug!(
            topic,
            "No Admin API (the embedded broker): the topic is auto-created."
        ),
    }
}

fn measure_blocking(bootstrap: &str, topic: &str, duration: Duration) -> Result<Baseline> {
    let (message_bytes, payload) = saga_message()?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "shopctl-bench-baseline")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("socket.nagle.disable", "true")
        .create()?;
    let partitions = wait_for_partitions(&producer, topic)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("shopctl-bench-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("socket.nagle.disable", "true")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..i32::try_from(partitions)? {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    let consumed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (consumed, stop) = (Arc::clone(&consumed), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100))
                    && message.payload().is_some()
                {
                    consumed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // Keys shaped like order ids, many of them, so messages spread over every partition.
    let keys: Vec<String> = (0..1024).map(|_| OrderId::new().to_string()).collect();
    let ahead = AHEAD_PER_PARTITION * partitions as u64;
    let started = Instant::now();
    let (measure_from, until) = (started + WARMUP, started + WARMUP + duration);
    let mut first: Option<(Instant, u64)> = None;
    let mut produced = 0_u64;
    let mut failed = 0_u64;
    while Instant::now() < until {
        if first.is_none() && Instant::now() >= measure_from {
            first = Some((Instant::now(), consumed.load(Ordering::Relaxed)));
        }
        if produced.saturating_sub(consumed.load(Ordering::Relaxed)) >= ahead {
            producer.poll(Duration::from_millis(1));
            continue;
        }
        let key = &keys[(produced % keys.len() as u64) as usize];
        match producer.send(BaseRecord::to(topic).key(key).payload(&payload)) {
            Ok(()) => produced += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(5));
            }
            Err(_) => failed += 1,
        }
        if produced.is_multiple_of(256) {
            producer.poll(Duration::ZERO);
        }
    }
    let last = (Instant::now(), consumed.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let _ = producer.flush(Duration::from_secs(5));
    if failed > 0 {
        tracing::warn!(failed, "Some baseline messages could not be produced.");
    }
    let (from, before) = first.context("the baseline ended before it measured")?;
    let seconds = (last.0 - from).as_secs_f64();
    let moved = last.1 - before;
    if moved == 0 {
        bail!("no message came back from the broker at {bootstrap} within {duration:?}");
    }
    Ok(Baseline {
        messages_per_s: (moved as f64 / seconds).round(),
        message_bytes,
        partitions,
        duration_s: (seconds * 1000.0).round() / 1000.0,
        bootstrap: bootstrap.to_owned(),
    })
}

/// Asks for the topic's metadata (which auto-creates it on the embedded broker) until it has
/// partitions.
fn wait_for_partitions(producer: &BaseProducer, topic: &str) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(metadata) = metadata {
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len());
            if partitions > 0 {
                return Ok(partitions);
            }
        }
        if Instant::now() > deadline {
            bail!("topic {topic} did not appear on the broker");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saga_messages_are_about_a_kibibyte() -> Result<()> {
        let (bytes, payload) = saga_message()?;
        assert_eq!(payload.len(), bytes);
        assert!((300..2000).contains(&bytes), "{bytes} bytes");
        assert_eq!(
            confirmed_saga()?.len(),
            MESSAGES_PER_CONFIRMED_SAGA as usize
        );
        Ok(())
    }
}
