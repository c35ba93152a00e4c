//! Kafka plumbing: a producer that reports delivery, a consumer loop that stores offsets only
//! after a message is fully handled, and the dead-letter path for messages that cannot be.

pub mod cloudevents;
mod consumer;
mod dead_letter;
mod producer;
mod semconv;

use std::future::Future;

use events::Envelope;

pub use cloudevents::CloudEventHeaders;
pub use consumer::{ConsumerSettings, EventConsumer, RUN_LIMIT};
pub use dead_letter::{DeadLetter, headers as dead_letter_headers};
pub use producer::{EventProducer, OutgoingMessage, headers};

/// Where a consumed message came from; handlers store it in the inbox.
#[derive(Clone, Debug)]
pub struct MessageInfo {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The message's offset in its partition.
    pub offset: i64,
}

/// Why a handler could not handle an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might work if tried again (database busy, provider unreachable): retried with backoff,
    /// dead-lettered when attempts run out.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// The service's own database cannot store anything now (out of space, failing I/O): the
    /// message is not at fault, and every message would fail the same way. Retried with
    /// backoff until it works or the service stops — never dead-lettered, so the offset
    /// stays put until the effect is committed.
    #[error("unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// Will never work (the event contradicts the contract): dead-lettered at once.
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
}

impl HandlerError {
    /// A short class name for dead-letter headers and logs.
    pub fn class(&self) -> &'static str {
        match self {
            HandlerError::Transient(_) => "transient",
            HandlerError::Unavailable(_) => "unavailable",
            HandlerError::Permanent(_) => "permanent",
        }
    }
}

impl From<crate::sql::SqlError> for HandlerError {
    /// A database that cannot store anything now ([`crate::sql::ErrorKind::Unavailable`]: a
    /// full disk, a Postgres server restarting) is [`HandlerError::Unavailable`]: it is waited
    /// out, however long it takes. Any other database error is transient: busy or locked
    /// databases and serialization conflicts recover, and a constraint that refused a write may have raced another
    /// replica (the retry sees the winner's row); a real bug ends up in the dead-letter topic
    /// after the retries, with the message.
    fn from(error: crate::sql::SqlError) -> Self {
        if error.kind() == crate::sql::ErrorKind::Unavailable {
            HandlerError::Unavailable(error.into())
        } else {
            HandlerError::Transient(error.into())
        }
    }
}

/// Handles the events of the topics a service subscribes to.
///
/// Implementations must be idempotent: record the event in the [`crate::inbox`] in the same
/// transaction as its effect.
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one event. Returning `Ok` lets the consumer move past it.
    fn handle(
        &self,
        envelope: Envelope,
        info: &MessageInfo,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}
