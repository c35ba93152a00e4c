//! A message sent alone skips the producer's linger; one sent to be batched waits it out.
//!
//! The outbox relay sends a round of one row alone, so an idle saga does not pay the linger on
//! every hop (see docs/performance.md).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use embedded_broker::EmbeddedBroker;
use platform::config::KafkaConfig;
use platform::kafka::{EventProducer, OutgoingMessage};

/// Long enough that a send which waited for it cannot be mistaken for one that did not.
const LINGER: Duration = Duration::from_secs(3);

fn message(key: &str) -> OutgoingMessage {
    OutgoingMessage {
        topic: "linger-test".to_owned(),
        key: key.to_owned(),
        payload: b"{}".to_vec(),
        trace: HashMap::new(),
        cloud_event: None,
    }
}

#[tokio::test]
async fn a_message_sent_alone_does_not_wait_for_the_linger() {
    let broker = EmbeddedBroker::start_empty(1).expect("the embedded broker starts");
    broker.create_topic("linger-test", 1).expect("the topic");
    let mut config = KafkaConfig {
        client_id: "linger-test".to_owned(),
        ..KafkaConfig::default()
    }
    .with_bootstrap(broker.bootstrap_servers());
    config.linger = LINGER;
    let producer = EventProducer::new(&config).expect("a producer");

    let started = Instant::now();
    producer
        .send(&message("batched"))
        .await
        .expect("acknowledged");
    let batched = started.elapsed();
    assert!(
        batched >= LINGER - Duration::from_millis(100),
        "{batched:?}"
    );

    let started = Instant::now();
    producer
        .send_alone(&message("alone"))
        .await
        .expect("acknowledged");
    let alone = started.elapsed();
    assert!(alone < LINGER / 2, "{alone:?}");
}
