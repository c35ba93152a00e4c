//! How [`Value`]s travel to and from Postgres: each parameter is sent as the type Postgres
//! inferred for its placeholder, and each column is read by its Postgres type, so that stores
//! bind and read the same values on both databases.

use ::postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use bytes::BytesMut;

use crate::sql::{ErrorKind, FromValue, Result, SqlError, Value, ValueRef};

/// A parameter that takes the type Postgres inferred for its placeholder: an integer bound
/// where Postgres expects `int4` is sent as one (if it fits), text where it expects text, and
/// so on — as SQLite would store it.
#[derive(Debug)]
pub(super) struct Bind<'a>(ValueRef<'a>);

impl ToSql for Bind<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self.0, ty) {
            (ValueRef::Null, _) => Ok(IsNull::Yes),
            (ValueRef::Integer(int), &Type::INT8) => int.to_sql(ty, out),
            (ValueRef::Integer(int), &Type::INT4) => i32::try_from(int)?.to_sql(ty, out),
            (ValueRef::Integer(int), &Type::INT2) => i16::try_from(int)?.to_sql(ty, out),
            (ValueRef::Integer(int), &Type::BOOL) => (int != 0).to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (ValueRef::Integer(int), &Type::FLOAT8) => (int as f64).to_sql(ty, out),
            (ValueRef::Integer(int), _) if text(ty) => int.to_string().as_str().to_sql(ty, out),
            (ValueRef::Real(real), &Type::FLOAT8) => real.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (ValueRef::Real(real), &Type::FLOAT4) => (real as f32).to_sql(ty, out),
            (ValueRef::Text(value), _) if text(ty) => value.to_sql(ty, out),
            (ValueRef::Text(value), &Type::BYTEA) => value.as_bytes().to_sql(ty, out),
            (ValueRef::Blob(bytes), &Type::BYTEA) => bytes.to_sql(ty, out),
            (value, ty) => Err(format!("cannot bind {value:?} as {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

pub(super) fn binds<'a>(values: &'a [Value<'_>]) -> Vec<Bind<'a>> {
    values.iter().map(|value| Bind(value.as_ref())).collect()
}

pub(super) fn refs<'a>(binds: &'a [Bind<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    binds
        .iter()
        .map(|bind| bind as &(dyn ToSql + Sync))
        .collect()
}

/// Reads column `index` of `row` as a `T`, by the column's Postgres type.
pub(in crate::sql) fn column<T: FromValue>(row: &::postgres::Row, index: usize) -> Result<T> {
    let ty = row
        .columns()
        .get(index)
        .map(|column| column.type_().clone())
        .ok_or_else(|| SqlError::new(ErrorKind::Other, format!("no column {index}")))?;
    let get_err = |error: ::postgres::Error| {
        SqlError::new(ErrorKind::Conversion, format!("column {index}: {error}"))
    };
    let value = match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map(|v| v.map(ValueRef::Integer)),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map(|v| v.map(|v| ValueRef::Integer(v.into()))),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map(|v| v.map(|v| ValueRef::Integer(v.into()))),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map(|v| v.map(|v| ValueRef::Integer(v.into()))),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(index)
            .map(|v| v.map(ValueRef::Real)),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)
            .map(|v| v.map(|v| ValueRef::Real(v.into()))),
        Type::NUMERIC => row
            .try_get::<_, Option<Numeric>>(index)
            .map(|v| v.map(|v| v.0)),
        Type::BYTEA => row
            .try_get::<_, Option<&[u8]>>(index)
            .map(|v| v.map(ValueRef::Blob)),
        ref ty if text(ty) => row
            .try_get::<_, Option<&str>>(index)
            .map(|v| v.map(ValueRef::Text)),
        other => {
            return Err(SqlError::new(
                ErrorKind::Conversion,
                format!("column {index}: unsupported type {other}"),
            ));
        }
    }
    .map_err(get_err)?;
    T::from_value(value.unwrap_or(ValueRef::Null))
        .map_err(|error| crate::sql::in_column(error, index))
}

/// A `NUMERIC` value (what `SUM` of integers gives), read as an integer when it has no
/// fraction, else as a float.
struct Numeric(ValueRef<'static>);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // Binary format: digit count, weight (of the first digit, in powers of 10,000), sign,
        // display scale (unused), then the base-10,000 digits.
        let word = |at: usize| -> std::result::Result<u16, String> {
            raw.get(at..at + 2)
                .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]))
                .ok_or_else(|| "truncated NUMERIC".to_owned())
        };
        let digits = usize::from(word(0)?);
        #[allow(clippy::cast_possible_wrap)]
        let weight = i32::from(word(2)? as i16);
        let sign = word(4)?;
        if sign == 0xC000 {
            return Err("NaN".into());
        }
        let mut value = 0_f64;
        let mut exact: Option<i64> = Some(0);
        for i in 0..digits {
            let digit = word(8 + 2 * i)?;
            let power = weight - i32::try_from(i)?;
            value += f64::from(digit) * 10_000_f64.powi(power);
            exact = match u32::try_from(power) {
                Ok(power) => exact.and_then(|sum| {
                    10_000_i64
                        .checked_pow(power)
                        .and_then(|unit| unit.checked_mul(i64::from(digit)))
                        .and_then(|part| sum.checked_add(part))
                }),
                Err(_) if digit == 0 => exact,
                Err(_) => None,
            };
        }
        let negative = sign == 0x4000;
        Ok(Numeric(match exact {
            Some(int) => ValueRef::Integer(if negative { -int } else { int }),
            None => ValueRef::Real(if negative { -value } else { value }),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(words: &[u16]) -> ValueRef<'static> {
        let raw: Vec<u8> = words.iter().flat_map(|word| word.to_be_bytes()).collect();
        match Numeric::from_sql(&Type::NUMERIC, &raw) {
            Ok(numeric) => numeric.0,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn numeric_sums_read_as_integers() {
        // 123456789 = 1·10000² + 2345·10000 + 6789
        assert_eq!(
            numeric(&[3, 2, 0, 0, 1, 2345, 6789]),
            ValueRef::Integer(123_456_789)
        );
        // -20000 = -(2·10000), trailing zero digits omitted
        assert_eq!(numeric(&[1, 1, 0x4000, 0, 2]), ValueRef::Integer(-20_000));
        assert_eq!(numeric(&[0, 0, 0, 0]), ValueRef::Integer(0));
        // 1.5 = 1 + 5000·10000⁻¹
        assert_eq!(numeric(&[2, 0, 0, 1, 1, 5000]), ValueRef::Real(1.5));
    }
}
