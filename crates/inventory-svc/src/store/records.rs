//! The rows inventory-svc reads back, each as a typed record: a column that does not hold what
//! its type says (a corrupt row) is an error, never a default or a skipped line.

use events::{LineItem, Sku};
use platform::sql::{ErrorKind, FromValue, Result, Row, SqlError, ValueRef};

/// A SKU's row of `stock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StockLevel {
    /// The SKU.
    pub(crate) sku: Sku,
    /// Units that can still be reserved.
    pub(crate) available: u32,
    /// Units held by reservations.
    pub(crate) reserved: u32,
    /// What the catalog gave at first start: `available + reserved` always.
    pub(crate) initial: u32,
}

impl StockLevel {
    /// The columns [`StockLevel::from_row`] reads, in its order.
    pub(crate) const COLUMNS: &'static str = "sku, available, reserved, initial";

    /// Reads a row selected as [`StockLevel::COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            sku: row.get(0)?,
            available: row.get(1)?,
            reserved: row.get(2)?,
            initial: row.get(3)?,
        })
    }
}

/// A row of `reservation_items`: one line of a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReservationItem {
    /// The SKU reserved.
    pub(crate) sku: Sku,
    /// Units reserved.
    pub(crate) quantity: u32,
}

impl ReservationItem {
    /// The columns [`ReservationItem::from_row`] reads, in its order.
    pub(crate) const COLUMNS: &'static str = "sku, quantity";

    /// Reads a row selected as [`ReservationItem::COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            sku: row.get(0)?,
            quantity: row.get(1)?,
        })
    }
}

impl From<ReservationItem> for LineItem {
    fn from(item: ReservationItem) -> Self {
        Self {
            sku: item.sku,
            quantity: item.quantity,
        }
    }
}

/// Where an order's reservation decision stands (`reservations.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReservationStatus {
    /// Its lines hold stock.
    Reserved,
    /// Nothing was reserved: some line could not be.
    Rejected,
    /// It held stock, and gave it back when its order was cancelled.
    Released,
    /// Its order was cancelled before its payment arrived: a late payment reserves nothing.
    Cancelled,
}

impl ReservationStatus {
    /// The value stored in `reservations.status`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Rejected => "rejected",
            Self::Released => "released",
            Self::Cancelled => "cancelled",
        }
    }
}

impl FromValue for ReservationStatus {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        let all = [
            Self::Reserved,
            Self::Rejected,
            Self::Released,
            Self::Cancelled,
        ];
        match value {
            ValueRef::Text(text) => all
                .into_iter()
                .find(|status| status.as_str() == text)
                .ok_or_else(|| {
                    SqlError::new(
                        ErrorKind::Conversion,
                        format!("cannot read {text:?} as a reservation status"),
                    )
                }),
            other => Err(SqlError::new(
                ErrorKind::Conversion,
                format!("cannot read {other:?} as a reservation status"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_status_reads_back_and_others_are_errors() -> Result<()> {
        for status in ["reserved", "rejected", "released", "cancelled"] {
            let read = ReservationStatus::from_value(ValueRef::Text(status))?;
            assert_eq!(read.as_str(), status);
        }
        for corrupt in [
            ValueRef::Text("pending"),
            ValueRef::Integer(1),
            ValueRef::Null,
        ] {
            let error = ReservationStatus::from_value(corrupt).err();
            assert_eq!(error.map(|e| e.kind()), Some(ErrorKind::Conversion));
        }
        Ok(())
    }
}
