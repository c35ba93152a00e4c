//! Verifying the callbacks order-api sends to an order's `callback_url` when its saga ends.
//!
//! A callback is signed following Standard Webhooks with the secret order-api holds for the
//! client (`CALLBACK_SECRETS`). [`CallbackVerifier`] checks it in the order that costs an
//! attacker the most and the receiver the least:
//!
//! 1. the headers: present, within size limits, timestamp within the tolerance — before the
//!    body is read ([`CallbackVerifier::check_headers`]);
//! 2. the signature: one HMAC over the raw body, compared in constant time;
//! 3. the body: decoded into an [`OrderCallback`] — a genuine body this client does not
//!    understand is refused *before* its id is recorded, so that it is delivered again;
//! 4. the `webhook-id`: recorded in a [`SeenIds`] set, and refused if it was already there.
//!
//! Each refusal is a [`CallbackError`] that names the HTTP status to answer. With the `axum`
//! feature, [`VerifiedCallback`] is an extractor that does all of this.

mod error;
#[cfg(feature = "axum")]
mod extractor;
mod payload;
mod seen;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use standard_webhooks::{DEFAULT_TOLERANCE_S, Secret};
pub use standard_webhooks::{HeaderSource, SecretError, SignedHeaders};

pub use error::CallbackError;
#[cfg(feature = "axum")]
pub use extractor::MAX_BODY_BYTES;
pub use payload::OrderCallback;
pub use seen::{DEFAULT_CAPACITY, InMemorySeenIds, SeenIds, SeenIdsError, SeenIdsFuture};

/// A callback that passed every check, with the id it was delivered under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCallback {
    /// `webhook-id`: the same on every retry of this callback; what the receiver logs, and
    /// hands to [`CallbackVerifier::forget`] if it fails to apply the callback.
    pub webhook_id: String,
    /// What the callback says.
    pub callback: OrderCallback,
}

/// Checks order callbacks against one secret and remembers the ids it accepted.
///
/// Cheap to clone: clones share the set of seen ids, so one verifier (in an axum state, say)
/// serves every request.
#[derive(Clone)]
pub struct CallbackVerifier {
    /// The key order-api signs this client's callbacks with.
    secret: Secret,
    /// How far a message's timestamp may be from now, in seconds, either way.
    tolerance_s: i64,
    /// The ids accepted within the tolerance window.
    seen: Arc<dyn SeenIds>,
}

impl std::fmt::Debug for CallbackVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackVerifier")
            .field("secret", &self.secret)
            .field("tolerance_s", &self.tolerance_s)
            .finish_non_exhaustive()
    }
}

impl CallbackVerifier {
    /// A verifier for the secret `whsec_…` order-api was given for this client, with the
    /// specification's tolerance of five minutes and an [`InMemorySeenIds`] set.
    pub fn new(secret: &str) -> Result<Self, SecretError> {
        Ok(Self {
            secret: Secret::parse(secret)?,
            tolerance_s: DEFAULT_TOLERANCE_S,
            seen: Arc::new(InMemorySeenIds::new()),
        })
    }

    /// The same verifier with another tolerance (whole seconds; a clock far off needs more, but
    /// every second more is a second longer a captured message is accepted).
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance_s = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// The same verifier recording ids in `seen`: a store shared by every instance of a
    /// receiver that runs more than one (see [`SeenIds`]).
    pub fn with_seen_ids(mut self, seen: impl SeenIds + 'static) -> Self {
        self.seen = Arc::new(seen);
        self
    }

    /// The tolerance for timestamps.
    pub fn tolerance(&self) -> Duration {
        Duration::from_secs(self.tolerance_s.unsigned_abs())
    }

    /// Verifies a whole delivery against the system clock.
    pub async fn verify(
        &self,
        headers: &(impl HeaderSource + ?Sized),
        body: &[u8],
    ) -> Result<VerifiedCallback, CallbackError> {
        self.verify_at(headers, body, unix_now()).await
    }

    /// Verifies a whole delivery as of `now` (Unix seconds).
    pub async fn verify_at(
        &self,
        headers: &(impl HeaderSource + ?Sized),
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedCallback, CallbackError> {
        let signed = self.check_headers(headers, now)?;
        self.verify_body(&signed, body, now).await
    }

    /// The first step alone: checks the headers as of `now`, so that a receiver can refuse a
    /// message before reading its body.
    pub fn check_headers(
        &self,
        headers: &(impl HeaderSource + ?Sized),
        now: i64,
    ) -> Result<SignedHeaders, CallbackError> {
        Ok(SignedHeaders::check(headers, now, self.tolerance_s)?)
    }

    /// The rest, once the body is read: signature, body, then the id, recorded as of `now`
    /// until the message's timestamp leaves the tolerance window.
    pub async fn verify_body(
        &self,
        signed: &SignedHeaders,
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedCallback, CallbackError> {
        self.secret.verify_body(signed, body)?;
        let callback: OrderCallback =
            serde_json::from_slice(body).map_err(CallbackError::UndecodableBody)?;
        let until = signed.sent_at().saturating_add(self.tolerance_s);
        let new = self
            .seen
            .insert(signed.id(), until, now)
            .await
            .map_err(CallbackError::SeenIds)?;
        if !new {
            return Err(CallbackError::Replayed {
                id: signed.id().to_owned(),
            });
        }
        Ok(VerifiedCallback {
            webhook_id: signed.id().to_owned(),
            callback,
        })
    }

    /// Forgets an accepted `webhook-id`: for a receiver that could not apply the callback and
    /// answers an error, so that order-api's retry is accepted rather than refused as a replay.
    pub async fn forget(&self, webhook_id: &str) -> Result<(), CallbackError> {
        self.seen
            .remove(webhook_id)
            .await
            .map_err(CallbackError::SeenIds)
    }
}

/// The system clock in Unix seconds; a clock before 1970 reads as 0, which every timestamp
/// check then refuses rather than trusts.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}
