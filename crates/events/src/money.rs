//! Money as integer minor units: 49.98 USD is `4998` cents, never a float.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::EventError;

/// An ISO 4217 currency code, e.g. `USD`. All supported currencies have two minor digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollars, the catalog's currency.
    pub const USD: Currency = Currency(*b"USD");

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl FromStr for Currency {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(EventError::invalid(
                "currency",
                "must be three upper-case letters (ISO 4217)",
            )),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An amount of money in minor units (cents) of a currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount in the currency's minor unit; never negative in this system.
    pub amount_minor: i64,
    /// The currency the amount is in.
    pub currency: Currency,
}

impl Money {
    /// `amount_minor` cents of `currency`.
    pub fn new(amount_minor: i64, currency: Currency) -> Self {
        Self {
            amount_minor,
            currency,
        }
    }

    /// Zero of `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// `self × quantity`, or an error on overflow.
    pub fn checked_mul(self, quantity: u32) -> Result<Self, EventError> {
        self.amount_minor
            .checked_mul(i64::from(quantity))
            .map(|amount| Self::new(amount, self.currency))
            .ok_or(EventError::AmountOverflow)
    }

    /// `self + other`, or an error on overflow or if the currencies differ.
    pub fn checked_add(self, other: Self) -> Result<Self, EventError> {
        if self.currency != other.currency {
            return Err(EventError::invalid(
                "currency",
                format!("cannot add {} to {}", other.currency, self.currency),
            ));
        }
        self.amount_minor
            .checked_add(other.amount_minor)
            .map(|amount| Self::new(amount, self.currency))
            .ok_or(EventError::AmountOverflow)
    }

    /// The amount in major units as a JSON-friendly number (4998 → 49.98).
    ///
    /// Exact for every amount below 2^53 cents: the division gives the double nearest to the
    /// decimal value, and shortest round-trip formatting prints that decimal back.
    pub fn to_major(self) -> f64 {
        self.amount_minor as f64 / 100.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs = self.amount_minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_and_adds_in_minor_units() -> Result<(), EventError> {
        let price = Money::new(2499, Currency::USD);
        let total = price
            .checked_mul(2)?
            .checked_add(Money::zero(Currency::USD))?;
        assert_eq!(total.amount_minor, 4998);
        assert_eq!(total.to_major(), 49.98);
        assert_eq!(total.to_string(), "49.98 USD");
        Ok(())
    }

    #[test]
    fn refuses_overflow_and_mixed_currencies() {
        let big = Money::new(i64::MAX, Currency::USD);
        assert!(big.checked_mul(2).is_err());
        let eur: Currency = "EUR".parse().expect("valid code");
        assert!(
            Money::zero(Currency::USD)
                .checked_add(Money::zero(eur))
                .is_err()
        );
        assert!("usd".parse::<Currency>().is_err());
    }
}
