//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the client's secret
//! (`whsec_<base64 key>`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A client's signing secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
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

    /// The `webhook-signature` header value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_standard_webhooks_reference() -> Result<(), String> {
        // Test vector from the Standard Webhooks specification's reference implementations.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(Secret::parse("nope").is_err());
        assert!(Secret::parse(&Secret::generate()).is_ok());
        Ok(())
    }
}
