//! A principal's orders, newest first, a page at a time (`GET /api/orders`).
//!
//! Pages are cut by keyset, not by `OFFSET`: each page starts strictly after the key
//! `(created_at, order_id)` of the last order of the page before. An order placed while a
//! client pages is newer than every key it holds, so it never shifts a later page (no order is
//! shown twice or skipped), and a page costs the same however deep it is. `order_id` breaks ties
//! between orders accepted in the same microsecond.
//!
//! Timestamps are fixed-width text ([`platform::time`]), so comparing them as text compares the
//! times, and the pair compares as a row value, which both SQLite and Postgres answer from the
//! index [`MIGRATION`] creates.

use chrono::{DateTime, Utc};

use events::{CancellationReason, Money, OrderId, UserId};
use platform::db::Migration;
use platform::sql::{Conn, Result, Row, ToValue};

use crate::saga::OrderStatus;

/// The index a page is read from: one principal's orders in key order, walked backwards.
pub(crate) const MIGRATION: Migration = Migration::new(
    "order-api/orders/2",
    "CREATE INDEX IF NOT EXISTS orders_by_principal ON orders (principal, created_at, order_id);",
);

/// Where an order sits in the newest-first listing; a page starts just after one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OrderKey {
    /// When the order was accepted: newer orders come first.
    pub(crate) created_at: DateTime<Utc>,
    /// Orders accepted in the same microsecond come in descending id order.
    pub(crate) order_id: OrderId,
}

/// Which orders a page holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Page<'a> {
    /// Whose orders: nobody else's are ever listed.
    pub(crate) principal: &'a str,
    /// Only orders in this status, if given.
    pub(crate) status: Option<OrderStatus>,
    /// Only orders after this key (the previous page's last), if given.
    pub(crate) after: Option<OrderKey>,
    /// At most this many orders.
    pub(crate) limit: u32,
}

/// An order as a listing shows it: its state without its lines and history, which would cost a
/// query per order.
#[derive(Clone, Debug)]
pub(crate) struct OrderSummary {
    /// Its id.
    pub(crate) order_id: OrderId,
    /// The user it was placed for.
    pub(crate) user_id: UserId,
    /// Current status.
    pub(crate) status: OrderStatus,
    /// Why it was cancelled, if it was.
    pub(crate) cancellation_reason: Option<CancellationReason>,
    /// Sum of the lines.
    pub(crate) total: Money,
    /// When it was accepted.
    pub(crate) created_at: DateTime<Utc>,
    /// When it last changed.
    pub(crate) updated_at: DateTime<Utc>,
}

impl OrderSummary {
    /// The columns [`OrderSummary::from_row`] reads, in its order.
    const COLUMNS: &'static str = "order_id, user_id, status, cancellation_reason, total_minor, currency, created_at, updated_at";

    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            order_id: row.get(0)?,
            user_id: row.get(1)?,
            status: row.get(2)?,
            cancellation_reason: super::reason(row.get(3)?)?,
            total: Money::new(row.get(4)?, row.get(5)?),
            created_at: row.get(6)?,
            updated_at: row.get(7)?,
        })
    }

    /// The key a page that ends with this order hands to the next.
    pub(crate) fn key(&self) -> OrderKey {
        OrderKey {
            created_at: self.created_at,
            order_id: self.order_id,
        }
    }
}

/// The orders of `page`, newest first.
///
/// The statement is put together from the filters given, rather than written once with
/// `(?2 IS NULL OR …)` guards: such guards hide from the planner which conditions apply, and
/// Postgres may then plan a scan of every order of the principal for every page.
pub(crate) fn list_orders(conn: &Conn<'_>, page: &Page<'_>) -> Result<Vec<OrderSummary>> {
    let limit = i64::from(page.limit);
    let mut params: Vec<&dyn ToValue> = vec![&page.principal];
    let mut sql = format!(
        "SELECT {} FROM orders WHERE principal = ?1",
        OrderSummary::COLUMNS
    );
    if let Some(status) = &page.status {
        params.push(status);
        sql.push_str(&format!(" AND status = ?{}", params.len()));
    }
    if let Some(after) = &page.after {
        params.push(&after.created_at);
        params.push(&after.order_id);
        sql.push_str(&format!(
            " AND (created_at, order_id) < (?{}, ?{})",
            params.len() - 1,
            params.len()
        ));
    }
    params.push(&limit);
    sql.push_str(&format!(
        " ORDER BY created_at DESC, order_id DESC LIMIT ?{}",
        params.len()
    ));
    conn.query_map(&sql, params.as_slice(), OrderSummary::from_row)
}
