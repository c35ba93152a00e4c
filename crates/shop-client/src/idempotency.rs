//! The `Idempotency-Key` that makes placing an order safe to retry.

use std::fmt;

use crate::Error;

/// Names one order placement, so that a retried `POST` gets the original order instead of
/// placing a second one.
///
/// A key is 1 to 255 printable ASCII characters; it is sent as a Structured Field String
/// (`Idempotency-Key: "…"`, draft-ietf-httpapi-idempotency-key-header §2.1). Keys are per API
/// key and kept by the server for `IDEMPOTENCY_KEY_TTL_MS`; the same key with another body is
/// refused (`422`).
///
/// ```
/// use shop_client::IdempotencyKey;
///
/// // A key of the caller's own, e.g. its cart id, so a retry after a crash finds the order.
/// let key = IdempotencyKey::new("cart-8a3f-checkout")?;
/// assert_eq!(key.header_value(), "\"cart-8a3f-checkout\"");
/// # Ok::<(), shop_client::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key the API accepts.
    pub const MAX_LEN: usize = 255;

    /// Checks `key` is one the API accepts.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if it is empty, longer than [`IdempotencyKey::MAX_LEN`] or has a
    /// character that is not printable ASCII.
    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        if key.is_empty() || key.len() > Self::MAX_LEN {
            return Err(Error::Config(format!(
                "an idempotency key has 1 to {} characters, this one {}",
                Self::MAX_LEN,
                key.len()
            )));
        }
        if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(Error::Config(
                "an idempotency key has printable ASCII characters only".into(),
            ));
        }
        Ok(Self(key))
    }

    /// A fresh random key (a UUID v4): unguessable, and never the same twice.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The header's value: the key as a Structured Field String, quoted, with `"` and `\`
    /// escaped.
    pub fn header_value(&self) -> String {
        let mut value = String::with_capacity(self.0.len() + 2);
        value.push('"');
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                value.push('\\');
            }
            value.push(c);
        }
        value.push('"');
        value
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sent_as_structured_field_strings() {
        let key = IdempotencyKey::new(r#"a "quoted" \ key"#).expect("valid key");
        assert_eq!(key.header_value(), r#""a \"quoted\" \\ key""#);
        let generated = IdempotencyKey::generate();
        assert_eq!(generated.as_str().len(), 36);
        assert_ne!(generated, IdempotencyKey::generate());
    }

    #[test]
    fn keys_the_api_would_refuse_are_refused_here() {
        for bad in [
            String::new(),
            "k".repeat(256),
            "tab\there".into(),
            "é".into(),
        ] {
            assert!(IdempotencyKey::new(bad.clone()).is_err(), "{bad:?}");
        }
        assert!(IdempotencyKey::new("k".repeat(255)).is_ok());
    }
}
