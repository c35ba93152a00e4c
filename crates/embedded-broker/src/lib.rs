//! The embedded Kafka-protocol broker for running without Apache Kafka.
//!
//! It is librdkafka's mock cluster: real brokers on real TCP ports that any Kafka client in any
//! process can connect to (produce, consume, consumer groups, offsets), kept in memory. It does
//! not persist, does not compact, has no Admin API and does not implement transactions — which
//! is why correctness here rests on the outbox and inbox, never on Kafka transactions.
//!
//! A crate of its own so that no service links it: `shopctl up`, `shopctl broker` and the
//! benchmarks use it; the services only ever see `KAFKA_BOOTSTRAP_SERVERS`. The faster
//! message-set lookup patched into the mock cluster lives with the program that runs it
//! (`crates/shopctl/native`), because a link argument reaches only the linking package's own
//! binaries.

mod cut_off;
mod fault;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use events::Topic;

pub use fault::{Fault, FaultApi};

/// What starting the cluster or injecting a fault fails with.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// librdkafka refused: no mock cluster, a topic it cannot create, an unknown broker id.
    #[error("kafka error: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A client could not be cut off: an empty or over-long client id, too many cut off at
    /// once, or a librdkafka built without the filter (from the system, not from source).
    #[error("cannot cut off client {0:?}")]
    CutOff(String),
}

/// Partitions of each saga topic. Enough for several consumers per group, and since the mock
/// cluster keeps a bounded amount of data per partition, more partitions keep more history.
pub const SAGA_PARTITIONS: i32 = 8;

/// Partitions of each dead-letter topic.
pub const DEAD_LETTER_PARTITIONS: i32 = 1;

/// A running embedded cluster; stops when dropped.
pub struct EmbeddedBroker {
    /// The client that owns the mock cluster; the cluster lives as long as it does.
    owner: BaseProducer,
    /// `host:port` list to give clients.
    bootstrap_servers: String,
    /// How many brokers the cluster has.
    brokers: i32,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("brokers", &self.brokers)
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts a cluster of `brokers` brokers on free loopback ports and creates the saga topics
    /// and their dead-letter topics.
    pub fn start(brokers: i32) -> Result<Self, BrokerError> {
        let broker = Self::start_empty(brokers)?;
        for topic in Topic::ALL {
            broker.create_topic(topic.name(), SAGA_PARTITIONS)?;
            broker.create_topic(topic.dead_letter_name(), DEAD_LETTER_PARTITIONS)?;
        }
        Ok(broker)
    }

    /// Starts a cluster of `brokers` brokers with no topic at all: for a test of what happens
    /// before a topic exists, and when it is created.
    pub fn start_empty(brokers: i32) -> Result<Self, BrokerError> {
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", brokers.to_string())
            .create()?;
        let bootstrap_servers = owner
            .client()
            .mock_cluster()
            .ok_or(rdkafka::error::KafkaError::MockCluster(
                rdkafka::types::RDKafkaErrorCode::Fail,
            ))?
            .bootstrap_servers();
        let broker = Self {
            owner,
            bootstrap_servers,
            brokers,
        };
        broker.disable_initial_rebalance_delay();
        cut_off::install(&broker.owner);
        Ok(broker)
    }

    /// The `KAFKA_BOOTSTRAP_SERVERS` value for this cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Creates another topic (the mock cluster has no Admin API).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BrokerError> {
        if let Some(cluster) = self.owner.client().mock_cluster() {
            cluster.create_topic(name, partitions, self.brokers.min(3))?;
        }
        Ok(())
    }

    /// Injects a fault, for failure testing.
    pub fn inject(&self, fault: Fault) -> Result<(), BrokerError> {
        let Some(cluster) = self.owner.client().mock_cluster() else {
            return Ok(());
        };
        match fault {
            Fault::BrokerDown(id) => cluster.broker_down(id)?,
            Fault::BrokerUp(id) => cluster.broker_up(id)?,
            Fault::ClientDown(client_id) => cut_off::set(&self.owner, &client_id, true)?,
            Fault::ClientUp(client_id) => cut_off::set(&self.owner, &client_id, false)?,
            Fault::RequestErrors { api, count } => {
                let (key, error) = match api {
                    FaultApi::Produce => (
                        RDKafkaApiKey::Produce,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                    ),
                    FaultApi::Fetch => (
                        RDKafkaApiKey::Fetch,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                    ),
                    FaultApi::OffsetCommit => (
                        RDKafkaApiKey::OffsetCommit,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                    ),
                    FaultApi::Heartbeat => (
                        RDKafkaApiKey::Heartbeat,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                    ),
                    // Drops the client's connection on its next request.
                    FaultApi::Disconnect => (
                        RDKafkaApiKey::Fetch,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT,
                    ),
                };
                cluster.request_errors(key, &vec![error; count]);
            }
        }
        Ok(())
    }

    /// The mock cluster waits 3 s before the first rebalance of a new group (as Kafka's
    /// `group.initial.rebalance.delay.ms` does); services then sit idle after start. Turn it off.
    #[allow(unsafe_code)]
    fn disable_initial_rebalance_delay(&self) {
        let client = self.owner.client().native_ptr();
        // SAFETY: `client` is a live handle owned by `self.owner`; the cluster pointer it
        // returns lives as long as that handle and is only used for this call.
        unsafe {
            let cluster = rdkafka_sys::rd_kafka_handle_mock_cluster(client);
            if !cluster.is_null() {
                rdkafka_sys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
            }
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        cut_off::clear(&self.owner);
    }
}
