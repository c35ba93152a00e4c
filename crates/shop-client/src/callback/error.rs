//! Why a callback was not accepted, and what a receiver answers for each reason.

use standard_webhooks::VerifyError;

use super::seen::SeenIdsError;

/// Why a delivery was not accepted. [`CallbackError::status`] is the HTTP status a receiver
/// answers; the choice follows from how order-api treats answers: a `2xx` ends the delivery,
/// anything else is retried with the same `webhook-id` and body (up to 8 attempts), then
/// dead-lettered for an operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// A Standard Webhooks header is absent (`400`): not a callback from order-api.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// A header is present but unusable: too long, too many signatures, a timestamp that is
    /// not a number (`400`).
    #[error("{0}")]
    MalformedHeader(VerifyError),
    /// No signature matches (`401`): forged, tampered with, or signed with another secret. A
    /// genuine delivery refused this way (the secret was rotated on one side only) is retried,
    /// so it comes through once the secrets agree again.
    #[error("no signature matches the callback")]
    BadSignature,
    /// `webhook-timestamp` is further from now than the tolerance, in the past or the future
    /// (`401`): a captured message replayed late, or a clock far off. order-api signs each
    /// attempt afresh, so a retry carries a fresh timestamp.
    #[error(
        "the callback's timestamp is {age_s} s from now, outside the tolerance of {tolerance_s} s"
    )]
    Timestamp {
        /// Now minus the message's timestamp (negative: in the future).
        age_s: i64,
        /// The allowed distance.
        tolerance_s: i64,
    },
    /// This `webhook-id` was accepted before (`200`). It is a retry of a delivery whose answer
    /// order-api did not get, or a replay; either way it must not be applied again, and it
    /// must be acknowledged: answering an error would have order-api retry it, to no end,
    /// until it dead-letters a callback that was in fact received.
    #[error("the callback {id} was received before")]
    Replayed {
        /// The repeated `webhook-id`.
        id: String,
    },
    /// The body is longer than any callback (`413`).
    #[error("the callback body is longer than {limit} bytes")]
    BodyTooLarge {
        /// The most accepted.
        limit: usize,
    },
    /// The body could not be read off the connection (`400`).
    #[error("the callback body could not be read: {0}")]
    UnreadableBody(String),
    /// The signature matches but the body is not a callback this client knows (`422`): a
    /// newer order-api's type, most likely. Nothing is recorded, so order-api's retries and,
    /// after them, a replay from its dead-letter topic reach the receiver once it is upgraded.
    #[error("the callback body is not a known callback: {0}")]
    UndecodableBody(#[source] serde_json::Error),
    /// The store of seen ids did not answer (`503`): order-api retries later.
    #[error("the store of seen callback ids failed: {0}")]
    SeenIds(#[source] SeenIdsError),
}

impl CallbackError {
    /// The HTTP status a receiver answers: `2xx` only for [`CallbackError::Replayed`], which
    /// is acknowledged without being applied.
    pub fn status(&self) -> u16 {
        match self {
            Self::Replayed { .. } => 200,
            Self::MissingHeader(_) | Self::MalformedHeader(_) | Self::UnreadableBody(_) => 400,
            Self::BadSignature | Self::Timestamp { .. } => 401,
            Self::BodyTooLarge { .. } => 413,
            Self::UndecodableBody(_) => 422,
            Self::SeenIds(_) => 503,
        }
    }
}

impl From<VerifyError> for CallbackError {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::MissingHeader(name) => Self::MissingHeader(name),
            VerifyError::NoMatch => Self::BadSignature,
            VerifyError::OutsideTolerance { age_s, tolerance_s } => {
                Self::Timestamp { age_s, tolerance_s }
            }
            malformed => Self::MalformedHeader(malformed),
        }
    }
}
