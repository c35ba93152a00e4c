//! `KAFKA_CLIENT_*` properties reach the Kafka clients: a property librdkafka does not know makes
//! the client refuse to start, a known one is taken.

use platform::config::KafkaConfig;
use platform::kafka::EventProducer;

#[test]
fn client_properties_are_given_to_the_producer() {
    let mut config = KafkaConfig {
        client_id: "client-properties-test".to_owned(),
        ..KafkaConfig::default()
    };
    config.client_properties = vec![("client.rack".to_owned(), "rack-1".to_owned())];
    assert!(
        EventProducer::new(&config).is_ok(),
        "a known property is accepted"
    );

    config.client_properties = vec![("no.such.property".to_owned(), "1".to_owned())];
    let error = EventProducer::new(&config).expect_err("an unknown property is refused");
    assert!(
        error.to_string().contains("no.such.property"),
        "the error names the property: {error}"
    );
}
