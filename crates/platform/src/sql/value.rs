//! The values that cross between stores and drivers: what a parameter is bound as, and what a
//! column is read into.
//!
//! SQLite's five storage classes are the common ground: Postgres columns of the types the
//! schemas use (integers, floating point, text, bytes, booleans, integer `NUMERIC` from `SUM`)
//! map onto them, and a parameter adapts to whatever type Postgres inferred for its placeholder,
//! so the same statement binds the same Rust values on both.

use std::borrow::Cow;

use super::{ErrorKind, Result, SqlError};

/// A value borrowed from a parameter or a row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer (booleans are 0 and 1).
    Integer(i64),
    /// A double-precision float.
    Real(f64),
    /// UTF-8 text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// A parameter's value: borrowed from the Rust value where it already is text or bytes
/// (a `String`, an ID), owned where binding formats it first (a timestamp, a UUID).
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer (booleans are 0 and 1).
    Integer(i64),
    /// A double-precision float.
    Real(f64),
    /// UTF-8 text.
    Text(Cow<'a, str>),
    /// Bytes.
    Blob(Cow<'a, [u8]>),
}

impl Value<'_> {
    /// The value, borrowed, as the drivers bind it.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(int) => ValueRef::Integer(*int),
            Value::Real(real) => ValueRef::Real(*real),
            Value::Text(text) => ValueRef::Text(text),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }
    }
}

impl<'a> From<ValueRef<'a>> for Value<'a> {
    fn from(value: ValueRef<'a>) -> Self {
        match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(int) => Value::Integer(int),
            ValueRef::Real(real) => Value::Real(real),
            ValueRef::Text(text) => Value::Text(Cow::Borrowed(text)),
            ValueRef::Blob(bytes) => Value::Blob(Cow::Borrowed(bytes)),
        }
    }
}

/// A Rust value that can be bound as a statement parameter: one direction of the SQL edge.
/// Domain types implement it (see `types.rs`), so stores bind an `OrderId` or a timestamp as
/// they are and never format them at the call site.
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Result<Value<'_>>;
}

/// A Rust value that a column can be read into: the other direction of the SQL edge. A column
/// that does not hold a valid value of the type (a corrupt row) is an error, never a default.
pub trait FromValue: Sized {
    /// Converts the column's value; a mismatch is a [`ErrorKind::Conversion`] error.
    fn from_value(value: ValueRef<'_>) -> Result<Self>;
}

pub(super) fn mismatch(wanted: &str, value: ValueRef<'_>) -> SqlError {
    SqlError::new(
        ErrorKind::Conversion,
        format!("cannot read {value:?} as {wanted}"),
    )
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Result<Value<'_>> {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Result<Value<'_>> {
        match self {
            Some(value) => value.to_value(),
            None => Ok(Value::Null),
        }
    }
}

impl ToValue for str {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(Cow::Borrowed(self)))
    }
}

impl ToValue for String {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(Cow::Borrowed(self)))
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Blob(Cow::Borrowed(self)))
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Blob(Cow::Borrowed(self)))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Real(*self))
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Integer(i64::from(*self)))
    }
}

macro_rules! integers {
    ($($ty:ty),*) => {$(
        impl ToValue for $ty {
            fn to_value(&self) -> Result<Value<'_>> {
                i64::try_from(*self).map(Value::Integer).map_err(|_| {
                    SqlError::new(ErrorKind::Conversion, format!("{self} does not fit in 64 bits"))
                })
            }
        }

        impl FromValue for $ty {
            fn from_value(value: ValueRef<'_>) -> Result<Self> {
                match value {
                    ValueRef::Integer(int) => <$ty>::try_from(int)
                        .map_err(|_| mismatch(stringify!($ty), value)),
                    other => Err(mismatch(stringify!($ty), other)),
                }
            }
        }
    )*};
}

integers!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl FromValue for f64 {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Real(real) => Ok(real),
            // Exact below 2^53, which is all an amount or a count ever is here.
            #[allow(clippy::cast_precision_loss)]
            ValueRef::Integer(int) => Ok(int as f64),
            other => Err(mismatch("f64", other)),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Integer(int) => Ok(int != 0),
            other => Err(mismatch("bool", other)),
        }
    }
}

impl FromValue for String {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Text(text) => Ok(text.to_owned()),
            other => Err(mismatch("text", other)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Blob(bytes) => Ok(bytes.to_vec()),
            // Text is bytes too (SQLite may hand back either for a column written as text).
            ValueRef::Text(text) => Ok(text.as_bytes().to_vec()),
            other => Err(mismatch("bytes", other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// The parameters of one statement: `[]`, an array of one type (`[id, other_id]`), or the
/// mixed list [`params!`](crate::params) builds.
pub trait Params {
    /// The values to bind, in placeholder order (`?1` first).
    fn values(&self) -> Result<Vec<Value<'_>>>;
}

impl Params for [&dyn ToValue] {
    fn values(&self) -> Result<Vec<Value<'_>>> {
        self.iter().map(|param| param.to_value()).collect()
    }
}

impl<P: Params + ?Sized> Params for &P {
    fn values(&self) -> Result<Vec<Value<'_>>> {
        (**self).values()
    }
}

impl Params for [&dyn ToValue; 0] {
    fn values(&self) -> Result<Vec<Value<'_>>> {
        Ok(Vec::new())
    }
}

macro_rules! arrays {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(&self) -> Result<Vec<Value<'_>>> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}

arrays!(1, 2, 3, 4, 5, 6, 7, 8);

/// Parameters of mixed types for one statement, in placeholder order:
/// `conn.execute("… WHERE id = ?1 AND n > ?2", params![id, 3])`.
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::sql::ToValue]
    };
    ($($param:expr),+ $(,)?) => {
        &[$(&$param as &dyn $crate::sql::ToValue),+] as &[&dyn $crate::sql::ToValue]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_convert_within_range_only() {
        assert_eq!(u32::from_value(ValueRef::Integer(7)), Ok(7));
        assert!(u32::from_value(ValueRef::Integer(-1)).is_err());
        assert!(u64::MAX.to_value().is_err());
        assert_eq!(Option::<i64>::from_value(ValueRef::Null), Ok(None));
        assert!(String::from_value(ValueRef::Integer(1)).is_err());
    }

    #[test]
    fn params_keep_their_order() -> Result<()> {
        let id = "o-1".to_owned();
        let list: &[&dyn ToValue] = crate::params![id, 3_u32, None::<&str>, true];
        assert_eq!(
            list.values()?,
            vec![
                Value::Text("o-1".into()),
                Value::Integer(3),
                Value::Null,
                Value::Integer(1)
            ]
        );
        assert_eq!(["a", "b"].values()?.len(), 2);
        Ok(())
    }
}
