use std::collections::HashMap;

use embedded_broker::EmbeddedBroker;
use rdkafka::bindings::{rd_kafka_resp_err_t, rd_kafka_test_fatal_error};

use super::*;

fn message(key: &str) -> OutgoingMessage {
    OutgoingMessage {
        topic: "fatal-test".to_owned(),
        key: key.to_owned(),
        payload: b"{}".to_vec(),
        trace: HashMap::new(),
        cloud_event: None,
    }
}

/// Raises a fatal error in `client` the way librdkafka does when a broker answers that it lost
/// track of an idempotent producer's sequence numbers (librdkafka's own hook for tests).
#[allow(unsafe_code)]
fn raise_fatal_error(client: &FutureProducer) {
    let reason = c"the broker lost track of this producer's sequence numbers";
    // SAFETY: the pointer is the live client's handle and `reason` a NUL-terminated string
    // that outlives the call, which copies it.
    let raised = unsafe {
        rd_kafka_test_fatal_error(
            client.client().native_ptr(),
            rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
            reason.as_ptr(),
        )
    };
    assert_eq!(raised, rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
}

#[tokio::test]
async fn a_fatal_error_replaces_the_clients_and_sending_goes_on() {
    let broker = EmbeddedBroker::start_empty(1).expect("the embedded broker starts");
    broker.create_topic("fatal-test", 1).expect("the topic");
    let config = KafkaConfig {
        client_id: "fatal-test".to_owned(),
        ..KafkaConfig::default()
    }
    .with_bootstrap(broker.bootstrap_servers());
    let producer = EventProducer::new(&config).expect("a producer");
    producer
        .send(&message("before"))
        .await
        .expect("acknowledged");

    let (client, generation) = producer.client(false);
    raise_fatal_error(&client);
    let error = producer
        .send(&message("refused"))
        .await
        .expect_err("a client with a fatal error fails every send");
    assert!(client.client().fatal_error().is_some(), "{error}");
    drop(client);

    // The send that met the fatal error replaced both clients: the next goes through.
    let (_, replaced) = producer.client(false);
    assert_eq!(replaced, generation + 1);
    producer
        .send(&message("after"))
        .await
        .expect("the new client's acknowledgement");
    producer
        .send_alone(&message("alone"))
        .await
        .expect("the new eager client's acknowledgement");
}

#[tokio::test]
async fn sends_that_meet_the_same_fatal_error_replace_the_clients_once() {
    let broker = EmbeddedBroker::start_empty(1).expect("the embedded broker starts");
    broker.create_topic("fatal-test", 1).expect("the topic");
    let mut config = KafkaConfig {
        client_id: "fatal-test".to_owned(),
        ..KafkaConfig::default()
    }
    .with_bootstrap(broker.bootstrap_servers());
    // Long enough that the sends are still waiting in the client when its fatal error comes.
    config.linger = Duration::from_secs(5);
    let producer = EventProducer::new(&config).expect("a producer");
    let (client, generation) = producer.client(false);

    let messages: Vec<_> = (0..8).map(|i| message(&format!("queued-{i}"))).collect();
    let mut sends = Box::pin(futures::future::join_all(
        messages.iter().map(|m| producer.send(m)),
    ));
    assert!(
        futures::poll!(&mut sends).is_pending(),
        "queued for the linger"
    );
    raise_fatal_error(&client);
    drop(client);
    let results = tokio::time::timeout(Duration::from_secs(4), sends)
        .await
        .expect("the queued sends fail before the linger ends");
    assert!(results.iter().all(Result::is_err), "{results:?}");
    let (_, replaced) = producer.client(false);
    assert_eq!(
        replaced,
        generation + 1,
        "one replacement for one fatal error"
    );
    producer
        .send_alone(&message("after"))
        .await
        .expect("the new client's acknowledgement");
}
