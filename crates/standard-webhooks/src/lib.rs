//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), both ways: order-api signs
//! the callbacks it sends to clients, the payment-provider simulator signs its notifications and
//! payment-svc verifies them; a client of the shop verifies its callbacks with this crate alone.
//!
//! The crate is sans-io: it reads headers through [`HeaderSource`] and takes the body as bytes
//! and the clock as a number, so it depends on no HTTP stack, runtime or database. The `http`
//! feature implements [`HeaderSource`] for `http::HeaderMap`, the map axum, hyper and reqwest
//! hand out.
//!
//! A message carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by a shared secret written
//! `whsec_<base64 key>`. Verification compares in constant time and refuses timestamps outside
//! a tolerance window, so a captured message cannot be replayed later; the id lets the receiver
//! drop a message it has already applied.
//!
//! A receiver faces the internet, so verification is split in two: [`SignedHeaders::check`]
//! reads only the headers (present, within size limits, at most [`MAX_SIGNATURES`] candidates,
//! timestamp fresh) and can refuse a message before its body is even read; then
//! [`Secret::verify_body`] computes the HMAC over the body once and compares it with each
//! candidate. A message thus costs at most one HMAC, however many signatures it carries.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::digest::array::Array;
use hmac::digest::{CtOutput, Output};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header with the message id (the same on every retry of one message).
pub const ID: &str = "webhook-id";
/// Header with the send time, Unix seconds.
pub const TIMESTAMP: &str = "webhook-timestamp";
/// Header with one or more space-separated `v1,<base64>` signatures.
pub const SIGNATURE: &str = "webhook-signature";

/// The specification's default tolerance: five minutes either way.
pub const DEFAULT_TOLERANCE_S: i64 = 300;

/// Most signatures one message may carry. A sender signs with each key it holds: one, or two
/// while a key is being rotated. Sixteen leaves room for any sane rotation and keeps what a
/// forged message can make the receiver decode small.
pub const MAX_SIGNATURES: usize = 16;

/// Longest `webhook-signature` header accepted, in bytes: [`MAX_SIGNATURES`] signatures of the
/// longest scheme the specification names (`v1a,` and an 88-character Ed25519 signature) fit.
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 2048;

/// Longest `webhook-id` accepted, in bytes. Senders use short unique ids (`msg_…`, `evt_…`);
/// the receiver keys its deduplication on them, so a longer one is refused rather than stored.
pub const MAX_ID_BYTES: usize = 256;

/// An HMAC-SHA256 tag.
type Tag = CtOutput<Hmac<Sha256>>;

/// Fewest key bytes a secret may hold (Standard Webhooks, "Signature scheme": 24 to 64 bytes).
/// Below it an HMAC key is guessable; a secret from elsewhere that is shorter is refused at
/// start-up rather than used.
pub const MIN_SECRET_BYTES: usize = 24;

/// Most key bytes a secret may hold (Standard Webhooks). HMAC-SHA256 hashes a longer key down
/// to 32 bytes anyway, so more adds nothing; other implementations of the specification refuse
/// such a secret, and a secret shared with them must work on both ends.
pub const MAX_SECRET_BYTES: usize = 64;

/// Why a configured secret is refused. Each says what a valid one looks like, because the
/// person reading it is setting up a service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text does not start with `whsec_`.
    #[error("a webhook secret starts with whsec_ (whsec_<base64 of 24 to 64 random bytes>)")]
    Prefix,
    /// What follows `whsec_` is not standard base64.
    #[error(
        "a webhook secret is whsec_ followed by standard base64 (whsec_<base64 of 24 to 64 random bytes>)"
    )]
    NotBase64,
    /// The key is shorter than [`MIN_SECRET_BYTES`] or longer than [`MAX_SECRET_BYTES`].
    #[error(
        "a webhook secret's key holds 24 to 64 bytes, this one {0} (make one with `echo whsec_$(openssl rand -base64 32)`)"
    )]
    Length(usize),
}

/// A signing secret. `Debug` does not show it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a message was refused. The receiver answers `401` for all of them and says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent or not text.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// A header is longer than a genuine sender ever makes it.
    #[error("the {name} header is longer than {limit} bytes")]
    HeaderTooLong {
        /// Which header.
        name: &'static str,
        /// Its size limit.
        limit: usize,
    },
    /// `webhook-signature` lists more signatures than a sender rotating keys ever sends.
    #[error("the webhook-signature header lists more than {limit} signatures")]
    TooManySignatures {
        /// The most accepted.
        limit: usize,
    },
    /// `webhook-timestamp` is not an integer.
    #[error("the webhook-timestamp header is not a Unix time in seconds")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance (a replay, or a clock far off).
    #[error(
        "the message timestamp is {age_s} s from now, outside the tolerance of {tolerance_s} s"
    )]
    OutsideTolerance {
        /// Now minus the message's timestamp (negative: in the future).
        age_s: i64,
        /// The allowed distance.
        tolerance_s: i64,
    },
    /// No `v1` signature matches the message.
    #[error("no signature matches the message")]
    NoMatch,
}

impl Secret {
    /// Parses `whsec_<base64>`; the key (the decoded base64) must hold [`MIN_SECRET_BYTES`] to
    /// [`MAX_SECRET_BYTES`] bytes, as the Standard Webhooks specification requires.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix("whsec_").ok_or(SecretError::Prefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self(key))
    }

    /// A fresh random secret, in its text form.
    pub fn generate() -> String {
        let key: [u8; 24] = rand::random();
        format!("whsec_{}", STANDARD.encode(key))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        #[cfg(test)]
        tests::MACS_COMPUTED.with(|count| count.set(count.get() + 1));
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, &timestamp.to_string(), body).finalize();
        format!("v1,{}", STANDARD.encode(tag.into_bytes()))
    }

    /// Checks a received message: headers present and within limits, timestamp within
    /// `tolerance_s` of `now` (Unix seconds), and one of the `v1` signatures matching.
    /// [`SignedHeaders::check`] then [`Secret::verify_body`]; a receiver that has not read the
    /// body yet calls those two itself, so as to refuse on the headers alone.
    pub fn verify(
        &self,
        headers: &(impl HeaderSource + ?Sized),
        body: &[u8],
        now: i64,
        tolerance_s: i64,
    ) -> Result<(), VerifyError> {
        let signed = SignedHeaders::check(headers, now, tolerance_s)?;
        self.verify_body(&signed, body)
    }

    /// Whether one of the message's `v1` signatures is the HMAC of its id, timestamp and
    /// `body`. The HMAC is computed once; each candidate is compared with it in constant time,
    /// so response timing reveals nothing about the expected signature.
    pub fn verify_body(&self, signed: &SignedHeaders, body: &[u8]) -> Result<(), VerifyError> {
        let expected: Tag = self.mac(&signed.id, &signed.timestamp, body).finalize();
        // Every candidate is compared (no early exit), with `CtOutput`'s constant-time
        // equality: only the number of candidates, which the sender chose, shows in the timing.
        let matches = signed
            .candidates
            .iter()
            .fold(false, |found, candidate| (expected == *candidate) | found);
        if matches {
            Ok(())
        } else {
            Err(VerifyError::NoMatch)
        }
    }
}

/// A message's headers, checked before its body is read: present, within the size limits,
/// at most [`MAX_SIGNATURES`] signatures, timestamp within the tolerance. What is left to check
/// needs the body: [`Secret::verify_body`].
pub struct SignedHeaders {
    /// `webhook-id`: part of the signed content, and the receiver's deduplication key.
    id: String,
    /// `webhook-timestamp` as sent (trimmed): the signed content holds the text, not the number.
    timestamp: String,
    /// `webhook-timestamp` as a number: how long a receiver must remember the id.
    sent_at: i64,
    /// The `v1` signatures, decoded. Candidates of another scheme, or that are not base64 of
    /// a tag's length, cannot match and are left out.
    candidates: Vec<Tag>,
}

impl std::fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("id", &self.id)
            .field("timestamp", &self.timestamp)
            .field("sent_at", &self.sent_at)
            .field("candidates", &self.candidates.len())
            .finish()
    }
}

impl SignedHeaders {
    /// Reads and checks the headers; `now` and the message's timestamp are Unix seconds.
    pub fn check(
        headers: &(impl HeaderSource + ?Sized),
        now: i64,
        tolerance_s: i64,
    ) -> Result<Self, VerifyError> {
        let id = headers.get(ID).ok_or(VerifyError::MissingHeader(ID))?;
        let timestamp_text = headers
            .get(TIMESTAMP)
            .ok_or(VerifyError::MissingHeader(TIMESTAMP))?;
        let signatures = headers
            .get(SIGNATURE)
            .ok_or(VerifyError::MissingHeader(SIGNATURE))?;
        if id.len() > MAX_ID_BYTES {
            return Err(VerifyError::HeaderTooLong {
                name: ID,
                limit: MAX_ID_BYTES,
            });
        }
        if signatures.len() > MAX_SIGNATURE_HEADER_BYTES {
            return Err(VerifyError::HeaderTooLong {
                name: SIGNATURE,
                limit: MAX_SIGNATURE_HEADER_BYTES,
            });
        }
        let timestamp_text = timestamp_text.trim();
        let timestamp: i64 = timestamp_text
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        let age_s = now.saturating_sub(timestamp);
        if age_s.abs() > tolerance_s {
            return Err(VerifyError::OutsideTolerance { age_s, tolerance_s });
        }
        let listed: Vec<&str> = signatures
            .split(' ')
            .filter(|candidate| !candidate.is_empty())
            .take(MAX_SIGNATURES + 1)
            .collect();
        if listed.len() > MAX_SIGNATURES {
            return Err(VerifyError::TooManySignatures {
                limit: MAX_SIGNATURES,
            });
        }
        let candidates = listed
            .into_iter()
            .filter_map(|candidate| candidate.strip_prefix("v1,"))
            .filter_map(|encoded| STANDARD.decode(encoded).ok())
            .filter_map(|tag| Array::try_from_iter(tag).ok())
            .map(|tag: Output<Hmac<Sha256>>| Tag::new(tag))
            .collect();
        Ok(Self {
            id: id.to_owned(),
            timestamp: timestamp_text.to_owned(),
            sent_at: timestamp,
            candidates,
        })
    }

    /// The message id (`webhook-id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the sender says it sent the message (`webhook-timestamp`), Unix seconds. The
    /// message is accepted until this plus the tolerance, so a receiver that refuses repeated
    /// ids must remember the id until then, and need not remember it longer.
    pub fn sent_at(&self) -> i64 {
        self.sent_at
    }
}

/// Where [`Secret::verify`] reads headers from (an HTTP header map, or a test's list).
pub trait HeaderSource {
    /// The header's value, if present and text.
    fn get(&self, name: &str) -> Option<&str>;
}

#[cfg(feature = "http")]
impl HeaderSource for http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        http::HeaderMap::get(self, name).and_then(|value| value.to_str().ok())
    }
}

impl HeaderSource for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// HMACs computed on this thread (each test has its own): the work a message caused.
        pub(super) static MACS_COMPUTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn macs_computed() -> usize {
        MACS_COMPUTED.with(std::cell::Cell::get)
    }

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    /// The specification's test secret (a 24-byte key).
    fn spec_secret() -> Secret {
        Secret::parse(SPEC_SECRET).expect("the specification's secret is valid")
    }

    fn headers(signature: &str) -> [(&'static str, String); 3] {
        [
            (ID, SPEC_ID.to_owned()),
            (TIMESTAMP, SPEC_TS.to_string()),
            (SIGNATURE, signature.to_owned()),
        ]
    }

    fn check(secret: &Secret, signature: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let owned = headers(signature);
        let list: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        secret.verify(list.as_slice(), body, now, DEFAULT_TOLERANCE_S)
    }

    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // Test vector from the Standard Webhooks specification's reference implementations.
        assert_eq!(
            spec_secret().sign(SPEC_ID, SPEC_TS, SPEC_BODY),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn secrets_hold_24_to_64_bytes() {
        let of = |len: usize| Secret::parse(&format!("whsec_{}", STANDARD.encode(vec![7; len])));
        assert_eq!(of(23).err(), Some(SecretError::Length(23)));
        assert!(of(24).is_ok());
        assert!(of(64).is_ok());
        assert_eq!(of(65).err(), Some(SecretError::Length(65)));
        assert_eq!(Secret::parse("nope").err(), Some(SecretError::Prefix));
        assert_eq!(
            Secret::parse("whsec_not base64!").err(),
            Some(SecretError::NotBase64)
        );
        assert!(Secret::parse(&Secret::generate()).is_ok());
    }

    #[test]
    fn verifies_the_reference_message_and_refuses_tampering() -> Result<(), SecretError> {
        let secret = spec_secret();
        assert_eq!(check(&secret, SPEC_SIGNATURE, SPEC_BODY, SPEC_TS), Ok(()));
        // Several signatures (key rotation): any match is enough.
        let rotated = format!("v1,AAAA {SPEC_SIGNATURE}");
        assert_eq!(check(&secret, &rotated, SPEC_BODY, SPEC_TS + 10), Ok(()));
        assert_eq!(
            check(&secret, SPEC_SIGNATURE, br#"{"test": 2432232315}"#, SPEC_TS),
            Err(VerifyError::NoMatch)
        );
        let other = Secret::parse(&Secret::generate())?;
        assert_eq!(
            check(&other, SPEC_SIGNATURE, SPEC_BODY, SPEC_TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check(&secret, "v2,whatever not-base64", SPEC_BODY, SPEC_TS),
            Err(VerifyError::NoMatch)
        );
        Ok(())
    }

    #[test]
    fn refuses_old_and_future_timestamps() -> Result<(), SecretError> {
        let secret = spec_secret();
        assert_eq!(
            check(&secret, SPEC_SIGNATURE, SPEC_BODY, SPEC_TS + 301),
            Err(VerifyError::OutsideTolerance {
                age_s: 301,
                tolerance_s: 300
            })
        );
        assert!(matches!(
            check(&secret, SPEC_SIGNATURE, SPEC_BODY, SPEC_TS - 301),
            Err(VerifyError::OutsideTolerance { age_s: -301, .. })
        ));
        let missing: [(&str, &str); 1] = [(ID, SPEC_ID)];
        assert_eq!(
            secret.verify(missing.as_slice(), SPEC_BODY, SPEC_TS, 300),
            Err(VerifyError::MissingHeader(TIMESTAMP))
        );
        Ok(())
    }

    #[test]
    fn a_message_costs_one_hmac_however_many_signatures_it_carries() -> Result<(), SecretError> {
        let secret = spec_secret();
        let body = vec![b'x'; 64 * 1024];
        let other = Secret::parse(&Secret::generate())?;
        let wrong = other.sign(SPEC_ID, SPEC_TS, &body);
        let right = secret.sign(SPEC_ID, SPEC_TS, &body);
        let mut candidates = vec![wrong.as_str(); 7];
        let before = macs_computed();
        assert_eq!(
            check(&secret, &candidates.join(" "), &body, SPEC_TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(macs_computed() - before, 1, "seven wrong signatures");
        candidates.push(&right);
        let before = macs_computed();
        assert_eq!(
            check(&secret, &candidates.join(" "), &body, SPEC_TS),
            Ok(())
        );
        assert_eq!(macs_computed() - before, 1, "the right one last of eight");
        Ok(())
    }

    #[test]
    fn a_flood_of_signatures_is_refused_without_computing_any_hmac() -> Result<(), SecretError> {
        let secret = spec_secret();
        let body = vec![b'x'; 64 * 1024];
        let other = Secret::parse(&Secret::generate())?;
        let flood = vec![other.sign(SPEC_ID, SPEC_TS, &body); 20_000].join(" ");
        let before = macs_computed();
        let refused = check(&secret, &flood, &body, SPEC_TS);
        assert_eq!(
            refused,
            Err(VerifyError::HeaderTooLong {
                name: SIGNATURE,
                limit: MAX_SIGNATURE_HEADER_BYTES
            })
        );
        assert_eq!(macs_computed() - before, 0);
        Ok(())
    }

    #[test]
    fn refuses_more_signatures_or_longer_headers_than_a_sender_makes() -> Result<(), SecretError> {
        let secret = spec_secret();
        let mut candidates = vec!["v1,AAAA"; MAX_SIGNATURES - 1];
        candidates.push(SPEC_SIGNATURE);
        assert_eq!(
            check(&secret, &candidates.join(" "), SPEC_BODY, SPEC_TS),
            Ok(())
        );
        candidates.insert(0, "v1,AAAA");
        assert_eq!(
            check(&secret, &candidates.join(" "), SPEC_BODY, SPEC_TS),
            Err(VerifyError::TooManySignatures {
                limit: MAX_SIGNATURES
            })
        );
        let long = format!(
            "{SPEC_SIGNATURE} {}",
            "x".repeat(MAX_SIGNATURE_HEADER_BYTES)
        );
        assert_eq!(
            check(&secret, &long, SPEC_BODY, SPEC_TS),
            Err(VerifyError::HeaderTooLong {
                name: SIGNATURE,
                limit: MAX_SIGNATURE_HEADER_BYTES
            })
        );
        let long_id = "m".repeat(MAX_ID_BYTES + 1);
        let headers: [(&str, &str); 3] = [
            (ID, &long_id),
            (TIMESTAMP, "1614265330"),
            (SIGNATURE, SPEC_SIGNATURE),
        ];
        assert_eq!(
            secret.verify(headers.as_slice(), SPEC_BODY, SPEC_TS, 300),
            Err(VerifyError::HeaderTooLong {
                name: ID,
                limit: MAX_ID_BYTES
            })
        );
        Ok(())
    }

    #[test]
    fn headers_are_checked_before_there_is_a_body() -> Result<(), VerifyError> {
        let secret = spec_secret();
        let owned = headers(SPEC_SIGNATURE);
        let list: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let before = macs_computed();
        let stale = SignedHeaders::check(list.as_slice(), SPEC_TS + 3_600, DEFAULT_TOLERANCE_S);
        assert!(matches!(stale, Err(VerifyError::OutsideTolerance { .. })));
        let signed = SignedHeaders::check(list.as_slice(), SPEC_TS, DEFAULT_TOLERANCE_S)?;
        assert_eq!(signed.id(), SPEC_ID);
        assert_eq!(signed.sent_at(), SPEC_TS);
        assert_eq!(macs_computed() - before, 0, "no HMAC without the body");
        assert_eq!(secret.verify_body(&signed, SPEC_BODY), Ok(()));
        Ok(())
    }
}
