use thiserror::Error;

/// Why a value could not be turned into one of this crate's types.
#[derive(Debug, Error)]
pub enum EventError {
    /// An identifier or code did not have the expected shape.
    #[error("invalid {kind}: {reason}")]
    InvalidValue {
        /// Which kind of value was rejected, e.g. "order id".
        kind: &'static str,
        /// What was wrong with it, phrased for the person who sent it.
        reason: String,
    },
    /// The bytes were not a CloudEvents JSON envelope.
    #[error("malformed envelope: {0}")]
    MalformedEnvelope(#[source] serde_json::Error),
    /// The envelope's `type` is not one this version knows.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The envelope's `specversion` is not CloudEvents 1.0.
    #[error("unsupported CloudEvents specversion {0:?}")]
    UnsupportedSpecVersion(String),
    /// The `data` did not match the payload of its declared type.
    #[error("invalid data for {event_type}: {source}")]
    InvalidData {
        /// The declared event type.
        event_type: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The catalog file was not the catalog's JSON.
    #[error("invalid catalog: {0}")]
    InvalidCatalog(#[source] serde_json::Error),
    /// An amount overflowed while adding or multiplying.
    #[error("amount overflow")]
    AmountOverflow,
}

impl EventError {
    pub(crate) fn invalid(kind: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidValue {
            kind,
            reason: reason.into(),
        }
    }
}
