//! A consumer lane handles the queued messages of different orders side by side, those of one
//! order one after the other, and stores no offset past a message it did not finish.
//!
//! The events are produced in one batch before the consumer starts, and the topic has one
//! partition: the consumer's first fetch brings them all at once, in one lane. The test's
//! runtime has one thread, so the consumer's dispatch hands the lane every message of the fetch
//! before the lane takes its first run (librdkafka queues a fetch's messages together).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use embedded_broker::EmbeddedBroker;
use events::{Envelope, Event, EventKind, OrderId};
use futures::future::join_all;
use platform::config::KafkaConfig;
use platform::kafka::{
    ConsumerSettings, DeadLetter, EventConsumer, EventHandler, EventProducer, HandlerError,
    MessageInfo, OutgoingMessage, RUN_LIMIT,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use test_support::eventually_within;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "orders";

/// How long a handler waits for a message of another order to be handled beside it. Handled
/// one at a time, every handler would wait this long and none would ever have company.
const COMPANY_WAIT: Duration = Duration::from_millis(500);

/// The `n`-th event of `order_id`: `n` travels as the order's total.
fn event(order_id: OrderId, n: i64) -> Envelope {
    events::testing::order_created_envelope(order_id, n)
}

/// The order and number of an event made by [`event`].
fn identify(envelope: &Envelope) -> (OrderId, i64) {
    let Event::OrderCreated(order) = &envelope.event else {
        panic!("only order.created is sent");
    };
    (order.order_id, order.total.amount_minor)
}

struct Stack {
    _broker: EmbeddedBroker,
    config: KafkaConfig,
    producer: EventProducer,
}

async fn stack(group: &str, events: &[Envelope]) -> Stack {
    let broker = EmbeddedBroker::start_empty(1).expect("the embedded broker starts");
    broker.create_topic(TOPIC, 1).expect("the topic");
    broker
        .create_topic(&format!("{TOPIC}.dlq"), 1)
        .expect("the dead-letter topic");
    let config = KafkaConfig {
        client_id: group.to_owned(),
        ..KafkaConfig::default()
    }
    .with_bootstrap(broker.bootstrap_servers());
    // A linger long enough that the events go out in one batch.
    let mut batching = config.clone();
    batching.linger = Duration::from_millis(100);
    let producer = EventProducer::new(&batching).expect("a producer");
    let messages: Vec<OutgoingMessage> = events
        .iter()
        .map(|envelope| OutgoingMessage {
            topic: TOPIC.to_owned(),
            key: envelope.key(),
            payload: envelope.encode(),
            trace: HashMap::new(),
            cloud_event: None,
        })
        .collect();
    for sent in join_all(messages.iter().map(|message| producer.send(message))).await {
        sent.expect("acknowledged");
    }
    Stack {
        _broker: broker,
        config,
        producer,
    }
}

fn consumer(stack: &Stack, settings: ConsumerSettings) -> EventConsumer {
    EventConsumer::subscribe(
        &stack.config,
        &[EventKind::OrderCreated],
        DeadLetter::new(stack.producer.clone(), &stack.config.client_id),
        settings,
    )
    .expect("the consumer subscribes")
}

/// What the handlers saw.
#[derive(Default)]
struct Seen {
    /// The orders of the handlers running now.
    running: Vec<OrderId>,
    /// Most handlers running at once.
    most_at_once: usize,
    /// Orders of which two events were handled at once.
    overlaps: Vec<OrderId>,
    /// The events of each order, in the order their handling began.
    began: HashMap<OrderId, Vec<i64>>,
    handled: usize,
}

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
}

impl Recorder {
    fn seen<T>(&self, read: impl FnOnce(&mut Seen) -> T) -> T {
        read(&mut self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl EventHandler for Recorder {
    async fn handle(&self, envelope: Envelope, _info: &MessageInfo) -> Result<(), HandlerError> {
        let (order_id, n) = identify(&envelope);
        self.seen(|seen| {
            if seen.running.contains(&order_id) {
                seen.overlaps.push(order_id);
            }
            seen.running.push(order_id);
            seen.most_at_once = seen.most_at_once.max(seen.running.len());
            seen.began.entry(order_id).or_default().push(n);
        });
        self.changed.notify_waiters();
        let company = async {
            loop {
                let changed = self.changed.notified();
                if self.seen(|seen| seen.running.len() >= 2) {
                    return;
                }
                changed.await;
            }
        };
        let _alone = tokio::time::timeout(COMPANY_WAIT, company).await;
        self.seen(|seen| {
            let at = seen.running.iter().position(|running| *running == order_id);
            seen.running.remove(at.expect("it is running"));
            seen.handled += 1;
        });
        Ok(())
    }
}

#[tokio::test]
async fn messages_of_different_orders_are_handled_side_by_side_and_of_one_order_in_turn() {
    let orders = [OrderId::new(), OrderId::new(), OrderId::new()];
    let events: Vec<Envelope> = (1..=3)
        .flat_map(|n| orders.iter().map(move |order| event(*order, n)))
        .collect();
    let stack = stack("runs-side-by-side", &events).await;
    let recorder = Recorder::default();
    let shutdown = CancellationToken::new();
    let consuming = tokio::spawn(
        consumer(&stack, ConsumerSettings::default()).run(recorder.clone(), shutdown.clone()),
    );

    eventually_within(Duration::from_secs(30), || async {
        match recorder.seen(|seen| seen.handled) {
            handled if handled == events.len() => Ok(()),
            handled => Err(format!("{handled} of {} handled", events.len())),
        }
    })
    .await
    .expect("every event is handled");
    shutdown.cancel();
    consuming.await.expect("the consumer stops");

    recorder.seen(|seen| {
        assert!(seen.overlaps.is_empty(), "{:?}", seen.overlaps);
        assert!(seen.most_at_once >= 2, "{}", seen.most_at_once);
        for order in orders {
            assert_eq!(seen.began[&order], [1, 2, 3], "{order}");
        }
    });
}

/// Fails the events of one order for as long as it runs; handles the others.
#[derive(Clone)]
struct FailsOne {
    failing: OrderId,
    others_handled: Arc<AtomicUsize>,
}

impl FailsOne {
    fn new(failing: OrderId) -> Self {
        Self {
            failing,
            others_handled: Arc::default(),
        }
    }

    fn others_handled(&self) -> usize {
        self.others_handled.load(Ordering::SeqCst)
    }
}

/// Retries without end, soon after each other: the failing message is still being retried
/// when the test stops the consumer.
fn retrying_for_ever() -> ConsumerSettings {
    ConsumerSettings {
        max_attempts: u32::MAX,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..ConsumerSettings::default()
    }
}

impl EventHandler for FailsOne {
    async fn handle(&self, envelope: Envelope, _info: &MessageInfo) -> Result<(), HandlerError> {
        let (order_id, _) = identify(&envelope);
        if order_id == self.failing {
            return Err(HandlerError::Transient(anyhow::anyhow!("not yet")));
        }
        self.others_handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The group's committed offset of the topic's one partition, if it has one.
fn committed(stack: &Stack) -> Option<i64> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.config.bootstrap_servers)
        .set("group.id", &stack.config.client_id)
        .create()
        .expect("a consumer to read offsets with");
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(TOPIC, 0);
    let committed = reader
        .committed_offsets(partitions, Duration::from_secs(10))
        .expect("the committed offsets");
    let offset = committed
        .find_partition(TOPIC, 0)
        .expect("the partition")
        .offset();
    match offset {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

#[tokio::test]
async fn no_offset_is_stored_past_a_message_that_was_not_finished() {
    let failing = OrderId::new();
    let events = [event(failing, 1), event(OrderId::new(), 1)];
    let stack = stack("runs-unfinished", &events).await;
    let handler = FailsOne::new(failing);
    let shutdown = CancellationToken::new();
    let consuming =
        tokio::spawn(consumer(&stack, retrying_for_ever()).run(handler.clone(), shutdown.clone()));

    // The failing message never succeeds, so the one after it can only be handled in its run.
    eventually_within(Duration::from_secs(30), || async {
        match handler.others_handled() {
            0 => Err("the second message is not handled yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await
    .expect("the second message is handled while the first is retried");
    shutdown.cancel();
    consuming.await.expect("the consumer stops");

    // Storing the second message's offset would commit over the first, which would be lost.
    assert_eq!(committed(&stack), None);
}

#[tokio::test]
async fn no_run_starts_once_shutdown_has_begun() {
    // A queued message taken after the shutdown would be handled and its offset stored over
    // the unfinished one. `select!` picks its branch at random: four rounds would let that
    // through once in sixteen.
    for round in 0..4 {
        let failing = OrderId::new();
        // More than a run holds: the rest stays queued in the lane behind the run.
        let events: Vec<Envelope> = std::iter::once(event(failing, 1))
            .chain((0..RUN_LIMIT + 8).map(|_| event(OrderId::new(), 1)))
            .collect();
        let stack = stack(&format!("runs-after-shutdown-{round}"), &events).await;
        let handler = FailsOne::new(failing);
        let shutdown = CancellationToken::new();
        let consuming = tokio::spawn(
            consumer(&stack, retrying_for_ever()).run(handler.clone(), shutdown.clone()),
        );

        let run_of_others = RUN_LIMIT - 1;
        eventually_within(Duration::from_secs(30), || async {
            match handler.others_handled() {
                handled if handled >= run_of_others => Ok(()),
                handled => Err(format!("{handled} of the run's {run_of_others} handled")),
            }
        })
        .await
        .expect("the run's other messages are handled");
        shutdown.cancel();
        consuming.await.expect("the consumer stops");

        assert_eq!(handler.others_handled(), run_of_others, "round {round}");
        assert_eq!(committed(&stack), None, "round {round}");
    }
}
