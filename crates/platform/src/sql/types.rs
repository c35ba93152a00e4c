//! The domain types at the SQL edge: each one binds and reads itself, so a store passes an
//! `OrderId`, a `Currency` or a `DateTime<Utc>` as it is and gets one back, and a value that
//! does not parse (a corrupt row) is a [`ErrorKind::Conversion`] error, never a default.
//!
//! Identifiers and currencies are stored as their text form; timestamps as
//! [`crate::time::format`] writes them.

use std::borrow::Cow;
use std::fmt::Display;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use events::{Currency, EventId, OrderId, PaymentMethod, Sku, UserId};

use super::value::mismatch;
use super::{ErrorKind, FromValue, Result, SqlError, ToValue, Value, ValueRef};

/// Reads a text column through `FromStr`, naming the type in the error.
fn parse_text<T>(wanted: &str, value: ValueRef<'_>) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    match value {
        ValueRef::Text(text) => text.parse().map_err(|error| {
            SqlError::new(
                ErrorKind::Conversion,
                format!("cannot read {text:?} as {wanted}: {error}"),
            )
        }),
        other => Err(mismatch(wanted, other)),
    }
}

impl ToValue for DateTime<Utc> {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(Cow::Owned(crate::time::format(*self))))
    }
}

impl FromValue for DateTime<Utc> {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Text(text) => crate::time::parse(text).map_err(|error| {
                SqlError::new(
                    ErrorKind::Conversion,
                    format!("cannot read {text:?} as a timestamp: {error}"),
                )
            }),
            other => Err(mismatch("a timestamp", other)),
        }
    }
}

/// Types stored as their `Display` text that must be formatted to bind (UUID-backed ids).
macro_rules! formatted {
    ($($ty:ty => $wanted:literal),* $(,)?) => {$(
        impl ToValue for $ty {
            fn to_value(&self) -> Result<Value<'_>> {
                Ok(Value::Text(Cow::Owned(self.to_string())))
            }
        }

        impl FromValue for $ty {
            fn from_value(value: ValueRef<'_>) -> Result<Self> {
                parse_text($wanted, value)
            }
        }
    )*};
}

formatted!(OrderId => "an order id", EventId => "an event id");

/// Types that hold their text form and bind it borrowed.
macro_rules! textual {
    ($($ty:ty => $wanted:literal),* $(,)?) => {$(
        impl ToValue for $ty {
            fn to_value(&self) -> Result<Value<'_>> {
                Ok(Value::Text(Cow::Borrowed(self.as_str())))
            }
        }

        impl FromValue for $ty {
            fn from_value(value: ValueRef<'_>) -> Result<Self> {
                parse_text($wanted, value)
            }
        }
    )*};
}

textual!(
    UserId => "a user id",
    Sku => "a SKU",
    PaymentMethod => "a payment method",
    Currency => "a currency",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_types_round_trip() -> Result<()> {
        let id = OrderId::new();
        let bound = id.to_value()?;
        assert_eq!(OrderId::from_value(bound.as_ref())?, id);

        let at = crate::time::parse("2026-12-05T13:36:39.5Z").expect("a valid timestamp");
        let bound = at.to_value()?;
        assert_eq!(bound, Value::Text("2026-12-05T13:36:39.500000Z".into()));
        assert_eq!(DateTime::<Utc>::from_value(bound.as_ref())?, at);

        assert_eq!(Currency::from_value(ValueRef::Text("EUR"))?.as_str(), "EUR");
        assert_eq!(
            Sku::from_value(ValueRef::Text("WIDGET-42"))?.as_str(),
            "WIDGET-42"
        );
        Ok(())
    }

    #[test]
    fn a_corrupt_value_is_an_error_not_a_default() {
        let errors = [
            Currency::from_value(ValueRef::Text("dollars")).err(),
            OrderId::from_value(ValueRef::Text("o-1")).err(),
            DateTime::<Utc>::from_value(ValueRef::Text("yesterday")).err(),
            UserId::from_value(ValueRef::Integer(7)).err(),
        ];
        for error in errors {
            let kind = error.map(|error| error.kind());
            assert_eq!(kind, Some(ErrorKind::Conversion));
        }
    }
}
