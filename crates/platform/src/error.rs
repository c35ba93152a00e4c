use thiserror::Error;

/// Failures of the shared runtime.
#[derive(Debug, Error)]
pub enum PlatformError {
    /// A configuration variable is present but unusable.
    #[error("invalid configuration {name}={value:?}: {reason}")]
    Config {
        /// The environment variable.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be opened, migrated or used.
    #[error("database error: {0}")]
    Database(#[from] crate::sql::SqlError),
    /// A Kafka client could not be created or used.
    #[error("kafka error: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A socket or file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
