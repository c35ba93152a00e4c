//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), both ways: order-api signs
//! the webhooks it sends to clients, the payment-provider simulator signs its notifications and
//! payment-svc verifies them.
//!
//! A message carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by a shared secret written
//! `whsec_<base64 key>`. Verification compares in constant time and refuses timestamps outside
//! a tolerance window, so a captured message cannot be replayed later; the id lets the receiver
//! drop a message it has already applied.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header with the message id (the same on every retry of one message).
pub const ID: &str = "webhook-id";
/// Header with the send time, Unix seconds.
pub const TIMESTAMP: &str = "webhook-timestamp";
/// Header with one or more space-separated `v1,<base64>` signatures.
pub const SIGNATURE: &str = "webhook-signature";

/// The specification's default tolerance: five minutes either way.
pub const DEFAULT_TOLERANCE_S: i64 = 300;

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
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .strip_prefix("whsec_")
            .ok_or("a webhook secret starts with whsec_")?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "a webhook secret is whsec_ and base64".to_owned())?;
        if key.len() < 16 {
            return Err("a webhook secret holds at least 16 bytes".into());
        }
        Ok(Self(key))
    }

    /// A fresh random secret, in its text form.
    pub fn generate() -> String {
        let key: [u8; 24] = rand::random();
        format!("whsec_{}", STANDARD.encode(key))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
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

    /// Checks a received message: headers present, timestamp within `tolerance_s` of `now`
    /// (Unix seconds), and one of the `v1` signatures matching (compared in constant time, so
    /// response timing reveals nothing about the expected signature).
    pub fn verify(
        &self,
        headers: &(impl HeaderSource + ?Sized),
        body: &[u8],
        now: i64,
        tolerance_s: i64,
    ) -> Result<(), VerifyError> {
        let id = headers.get(ID).ok_or(VerifyError::MissingHeader(ID))?;
        let timestamp_text = headers
            .get(TIMESTAMP)
            .ok_or(VerifyError::MissingHeader(TIMESTAMP))?;
        let signatures = headers
            .get(SIGNATURE)
            .ok_or(VerifyError::MissingHeader(SIGNATURE))?;
        let timestamp: i64 = timestamp_text
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        let age_s = now.saturating_sub(timestamp);
        if age_s.abs() > tolerance_s {
            return Err(VerifyError::OutsideTolerance { age_s, tolerance_s });
        }
        let matches = signatures.split(' ').any(|candidate| {
            let Some(encoded) = candidate.strip_prefix("v1,") else {
                return false;
            };
            let Ok(tag) = STANDARD.decode(encoded) else {
                return false;
            };
            // `verify_slice` is the constant-time comparison of the MAC crate.
            self.mac(id, timestamp_text.trim(), body)
                .verify_slice(&tag)
                .is_ok()
        });
        if matches {
            Ok(())
        } else {
            Err(VerifyError::NoMatch)
        }
    }
}

/// Where [`Secret::verify`] reads headers from (an HTTP header map, or a test's list).
pub trait HeaderSource {
    /// The header's value, if present and text.
    fn get(&self, name: &str) -> Option<&str>;
}

impl HeaderSource for axum::http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        axum::http::HeaderMap::get(self, name).and_then(|value| value.to_str().ok())
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

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

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
    fn signs_like_the_standard_webhooks_reference() -> Result<(), String> {
        // Test vector from the Standard Webhooks specification's reference implementations.
        let secret = Secret::parse(SPEC_SECRET)?;
        assert_eq!(secret.sign(SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
        assert!(Secret::parse("nope").is_err());
        assert!(Secret::parse("whsec_c2hvcnQ=").is_err(), "too short a key");
        assert!(Secret::parse(&Secret::generate()).is_ok());
        Ok(())
    }

    #[test]
    fn verifies_the_reference_message_and_refuses_tampering() -> Result<(), String> {
        let secret = Secret::parse(SPEC_SECRET)?;
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
    fn refuses_old_and_future_timestamps() -> Result<(), String> {
        let secret = Secret::parse(SPEC_SECRET)?;
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
}
