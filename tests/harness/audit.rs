//! Every record of a kind at once, from each service's own database: what the books of a run
//! are checked against once it has settled (the chaos and scale-out tests' invariants). Typed
//! rows, like the per-order views of the records module.

use std::collections::HashSet;

use anyhow::Result;
use chrono::{DateTime, Utc};
use events::CancellationReason;

use crate::records::parse;
use crate::{PaymentRecord, Refund, ServiceKind, Stack, Status, Stock};

/// order-api's record of one order.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredOrder {
    /// The order (`ord_…`).
    pub order_id: String,
    /// Where its saga is.
    pub status: Status,
    /// Why it was cancelled, once it is.
    pub cancellation_reason: Option<CancellationReason>,
    /// Its total, in minor units.
    pub total_minor: i64,
}

/// When an order's saga began and ended, by order-api's records.
#[derive(Clone, Debug, PartialEq)]
pub struct SagaTime {
    /// The order (`ord_…`).
    pub order_id: String,
    /// When order-api accepted it (the order's creation).
    pub accepted_at: DateTime<Utc>,
    /// When it became `confirmed` or `cancelled` (its history's terminal entry).
    pub ended_at: DateTime<Utc>,
}

impl SagaTime {
    /// From acceptance to the terminal status.
    pub fn duration(&self) -> chrono::TimeDelta {
        self.ended_at - self.accepted_at
    }
}

impl Stack {
    /// When each ended saga began and ended, by order id; orders still open are left out.
    pub fn saga_times(&self) -> Result<Vec<SagaTime>> {
        self.with_db(ServiceKind::OrderApi, |conn| {
            Ok(conn.query_map(
                "SELECT o.order_id, o.created_at, MIN(h.at) FROM orders o \
                 JOIN order_history h ON h.order_id = o.order_id \
                 WHERE h.status IN ('confirmed', 'cancelled') \
                 GROUP BY o.order_id, o.created_at ORDER BY o.order_id",
                &[],
                |row| {
                    Ok(SagaTime {
                        order_id: row.get(0)?,
                        accepted_at: row.get(1)?,
                        ended_at: row.get(2)?,
                    })
                },
            )?)
        })
    }

    /// Every order order-api holds, by id.
    pub fn all_orders(&self) -> Result<Vec<StoredOrder>> {
        let rows: Vec<(String, String, Option<String>, i64)> =
            self.with_db(ServiceKind::OrderApi, |conn| {
                Ok(conn.query_map(
                    "SELECT order_id, status, cancellation_reason, total_minor FROM orders \
                     ORDER BY order_id",
                    &[],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )?)
            })?;
        rows.into_iter()
            .map(|(order_id, status, reason, total_minor)| {
                Ok(StoredOrder {
                    order_id,
                    status: parse(&status)?,
                    cancellation_reason: reason.as_deref().map(parse).transpose()?,
                    total_minor,
                })
            })
            .collect()
    }

    /// Every payment payment-svc holds: (order id, payment), by order id.
    pub fn all_payments(&self) -> Result<Vec<(String, PaymentRecord)>> {
        self.payments_where("", &[])
    }

    /// Every refund payment-svc holds: (order id, refund), by order id.
    pub fn all_refunds(&self) -> Result<Vec<(String, Refund)>> {
        self.refunds_where("", &[])
    }

    /// The stock of every SKU: (SKU, stock), by SKU.
    pub fn all_stock(&self) -> Result<Vec<(String, Stock)>> {
        self.with_db(ServiceKind::Inventory, |conn| {
            Ok(conn.query_map(
                "SELECT sku, available, reserved, initial FROM stock ORDER BY sku",
                &[],
                |row| {
                    let stock = Stock {
                        available: row.get(1)?,
                        reserved: row.get(2)?,
                        initial: row.get(3)?,
                    };
                    Ok((row.get(0)?, stock))
                },
            )?)
        })
    }

    /// How many of `sku` the reservations in force hold (those of confirmed orders).
    pub fn held_by_reservations(&self, sku: &str) -> Result<i64> {
        self.query_i64(
            ServiceKind::Inventory,
            "SELECT COALESCE(SUM(i.quantity), 0) FROM reservation_items i \
             JOIN reservations r ON r.order_id = i.order_id \
             WHERE r.status = 'reserved' AND i.sku = ?1",
            &[sku],
        )
    }

    /// The orders whose reservation is in force.
    pub fn reserved_orders(&self) -> Result<HashSet<String>> {
        let ids: Vec<String> = self.with_db(ServiceKind::Inventory, |conn| {
            Ok(conn.query_map(
                "SELECT order_id FROM reservations WHERE status = 'reserved'",
                &[],
                |row| row.get(0),
            )?)
        })?;
        Ok(ids.into_iter().collect())
    }
}
