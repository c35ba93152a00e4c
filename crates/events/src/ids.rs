//! Typed identifiers: an order id can never be passed where a SKU is expected.
//!
//! Each type validates on the way in (`parse` / `FromStr` / `Deserialize`), so code that holds one
//! may trust its shape.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::EventError;

/// Identifies an order, and therefore a saga. Shown as `ord_` followed by 32 hex digits.
///
/// Backed by a UUIDv7 so that ids sort by creation time, which keeps database indexes compact.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(Uuid);

impl OrderId {
    const PREFIX: &'static str = "ord_";

    /// A fresh, time-ordered order id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0.simple())
    }
}

impl fmt::Debug for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for OrderId {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| EventError::invalid("order id", "must start with \"ord_\""))?;
        if hex.len() != 32 {
            return Err(EventError::invalid(
                "order id",
                "must be \"ord_\" followed by 32 hex digits",
            ));
        }
        Uuid::try_parse(hex).map(Self).map_err(|_| {
            EventError::invalid("order id", "must be \"ord_\" followed by 32 hex digits")
        })
    }
}

/// Identifies one event (the CloudEvents `id`); consumers deduplicate on it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    /// A fresh, time-ordered event id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for EventId {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s)
            .map(Self)
            .map_err(|_| EventError::invalid("event id", "must be a UUID"))
    }
}

/// Serde through `Display` / `FromStr`, for the id types whose text form is not their field.
macro_rules! serde_via_str {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_via_str!(OrderId);

/// Declares a validated string identifier: `$check` says whether a character is allowed.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $rule:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` and wraps it.
            pub fn parse(value: impl Into<String>) -> Result<Self, EventError> {
                let value = value.into();
                if value.is_empty() || value.len() > $max {
                    return Err(EventError::invalid(
                        $kind,
                        format!("must be 1 to {} characters long", $max),
                    ));
                }
                let check: fn(&str) -> bool = $check;
                if !check(&value) {
                    return Err(EventError::invalid($kind, $rule));
                }
                Ok(Self(value))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = EventError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        serde_via_str!($name);
    };
}

string_id!(
    /// The customer who placed an order, as the client names them (e.g. `usr_8a3f`).
    UserId,
    "user_id",
    64,
    "may contain only ASCII letters, digits, '_' and '-'",
    |s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
);

string_id!(
    /// A stock-keeping unit from the catalog (e.g. `WIDGET-42`).
    Sku,
    "sku",
    32,
    "may contain only upper-case ASCII letters, digits and '-'",
    |s| s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
);

string_id!(
    /// A token naming how the customer pays (e.g. `pm_visa_4242`); only the provider knows
    /// whether it will be honoured.
    PaymentMethod,
    "payment_method",
    64,
    "must start with \"pm_\" and contain only lower-case ASCII letters, digits and '_'",
    |s| s.starts_with("pm_")
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_id_round_trips_through_text() {
        let id = OrderId::new();
        let text = id.to_string();
        assert!(text.starts_with("ord_"));
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<OrderId>().ok(), Some(id));
    }

    #[test]
    fn order_id_rejects_other_shapes() {
        for bad in [
            "",
            "ord_",
            "ord_xyz",
            "8a3f",
            "ORD_0190d1c2a3b47c8d9e0f1a2b3c4d5e6f",
        ] {
            assert!(bad.parse::<OrderId>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn string_ids_validate_their_alphabet() {
        assert!(UserId::parse("usr_8a3f").is_ok());
        assert!(UserId::parse("usr 8a3f").is_err());
        assert!(UserId::parse("").is_err());
        assert!(Sku::parse("WIDGET-42").is_ok());
        assert!(Sku::parse("widget-42").is_err());
        assert!(PaymentMethod::parse("pm_visa_4242").is_ok());
        assert!(PaymentMethod::parse("visa_4242").is_err());
        assert!(UserId::parse("u".repeat(65)).is_err());
    }
}
