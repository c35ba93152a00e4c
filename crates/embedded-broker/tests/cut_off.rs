//! A client cut off by its `client.id` gets nothing from any broker, while the others go on,
//! and is served again once let back.

use std::time::{Duration, Instant};

use embedded_broker::{EmbeddedBroker, Fault};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn client(broker: &EmbeddedBroker, client_id: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("client.id", client_id)
        .set("reconnect.backoff.max.ms", "200")
        .create()
        .expect("a client")
}

/// Whether the client can fetch the cluster's metadata (a request that takes a connection).
fn served(client: &BaseConsumer) -> bool {
    client
        .fetch_metadata(None, Duration::from_millis(1_500))
        .is_ok()
}

#[test]
fn a_client_cut_off_by_its_id_is_refused_while_the_others_are_served() {
    let broker = EmbeddedBroker::start(3).expect("the embedded broker");
    let cut = client(&broker, "payment-svc");
    let kept = client(&broker, "order-api");
    assert!(served(&cut) && served(&kept), "both are served at first");

    broker
        .inject(Fault::ClientDown("payment-svc".into()))
        .expect("cut off");
    // Connections already open are dropped at their next request, new ones at their first.
    assert!(!served(&cut), "the cut-off client was served");
    assert!(
        !served(&client(&broker, "payment-svc")),
        "a new client with the cut-off id was served"
    );
    assert!(served(&kept), "another client was refused too");

    broker
        .inject(Fault::ClientUp("payment-svc".into()))
        .expect("let back");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !served(&cut) {
        assert!(
            Instant::now() < deadline,
            "the client let back was still refused after 10 s"
        );
    }
}

#[test]
fn an_empty_client_id_cannot_be_cut_off() {
    let broker = EmbeddedBroker::start(1).expect("the embedded broker");
    assert!(broker.inject(Fault::ClientDown(String::new())).is_err());
}
