//! `shopctl broker`: only the embedded Kafka-protocol broker, for running the services as
//! separate processes (the end-to-end tests do this).

use platform::broker::EmbeddedBroker;

/// Starts the broker, prints its address and `ready`, and runs until Ctrl-C / SIGTERM.
pub async fn run(brokers: i32) -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(brokers)?;
    println!("KAFKA_BOOTSTRAP_SERVERS={}", broker.bootstrap_servers());
    println!("broker ready");
    platform::shutdown::on_signal().cancelled().await;
    drop(broker);
    Ok(())
}
