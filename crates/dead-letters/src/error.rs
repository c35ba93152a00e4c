//! What reading and following dead letters fails with. Sending one back has its own error,
//! [`crate::ReplayError`], because its caller decides letter by letter what to do about it.

use rdkafka::error::KafkaError;

use crate::Unreachable;

/// Failures of [`crate::read`], [`crate::Tail::start`] and [`crate::Replayer::new`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker did not answer at all: nothing can be read.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    /// The Kafka client could not be created or a request to the broker failed.
    #[error("kafka error: {0}")]
    Kafka(#[from] KafkaError),
    /// The broker answered but did not serve every letter up to the end it reported in time.
    #[error("timed out reading dead-letter topics ({unread} messages unread)")]
    TimedOut {
        /// Messages the snapshot was still missing.
        unread: i64,
    },
    /// The thread following the dead-letter topics could not be started.
    #[error("cannot start the dead-letter tail: {0}")]
    Thread(#[from] std::io::Error),
}
