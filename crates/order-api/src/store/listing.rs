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
//!
//! The operator console lists every principal's orders the same way ([`Page::principal`] left
//! out), filtered by status or age: [`CONSOLE_MIGRATION`] adds the indexes those pages walk, so
//! that a page stays as cheap with 100,000 orders as with 100.

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

/// The indexes the console's pages and counts walk: every order by time; every order of one
/// status by time (which also counts them per status without reading the table); the open
/// sagas by age (a few among many ended ones: the stuck ones and the oldest are found without
/// walking the others); the cancelled ones by reason (counted without reading the table).
pub(crate) const CONSOLE_MIGRATION: Migration = Migration::new(
    "order-api/orders/3",
    "
CREATE INDEX IF NOT EXISTS orders_by_time ON orders (created_at, order_id);
CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status, created_at, order_id);
CREATE INDEX IF NOT EXISTS orders_open_by_age ON orders (created_at, order_id)
    WHERE status NOT IN ('confirmed', 'cancelled');
CREATE INDEX IF NOT EXISTS orders_by_reason ON orders (cancellation_reason, created_at, order_id)
    WHERE cancellation_reason IS NOT NULL;
",
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
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Page<'a> {
    /// Whose orders: a customer's listing always names its principal, and nobody else's are
    /// listed; the operator console may leave it out.
    pub(crate) principal: Option<&'a str>,
    /// Only orders in this status, if given.
    pub(crate) status: Option<OrderStatus>,
    /// Only sagas still running (any status but `confirmed` and `cancelled`).
    pub(crate) open_only: bool,
    /// Only orders cancelled for this reason.
    pub(crate) reason: Option<CancellationReason>,
    /// Only orders accepted before this time (older than an age).
    pub(crate) created_before: Option<DateTime<Utc>>,
    /// Only orders accepted at or after this time (younger than an age).
    pub(crate) created_since: Option<DateTime<Utc>>,
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
    /// Who placed it.
    pub(crate) principal: String,
    /// The trace context of the request that placed it (W3C `traceparent`), if it had one.
    pub(crate) traceparent: Option<String>,
    /// The trace id of its first recorded saga event, if any.
    pub(crate) first_event_trace_id: Option<String>,
}

impl OrderSummary {
    /// The columns [`OrderSummary::from_row`] reads, in its order.
    const COLUMNS: &'static str = "order_id, user_id, status, cancellation_reason, total_minor, \
         currency, created_at, updated_at, principal, traceparent, \
         (SELECT trace_id FROM saga_events e WHERE e.order_id = orders.order_id \
             AND e.trace_id IS NOT NULL ORDER BY occurred_at LIMIT 1)";

    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            order_id: row.get(0)?,
            user_id: row.get(1)?,
            status: row.get(2)?,
            cancellation_reason: super::reason(row.get(3)?)?,
            total: Money::new(row.get(4)?, row.get(5)?),
            created_at: row.get(6)?,
            updated_at: row.get(7)?,
            principal: row.get(8)?,
            traceparent: row.get(9)?,
            first_event_trace_id: row.get(10)?,
        })
    }

    /// The id of the trace the order's saga belongs to: the second field of its `traceparent`,
    /// or else the trace of its first recorded event.
    pub(crate) fn trace_id(&self) -> Option<&str> {
        let from_request = self
            .traceparent
            .as_deref()
            .and_then(|traceparent| traceparent.split('-').nth(1))
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        from_request.or(self.first_event_trace_id.as_deref())
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
pub(crate) fn list_orders(conn: &Conn<'_>, page: &Page<'_>) -> Result<Vec<OrderSummary>> {
    let limit = i64::from(page.limit);
    let reason = page.reason.map(CancellationReason::as_str);
    let (sql, params) = statement(page, &limit, &reason);
    conn.query_map(&sql, params.as_slice(), OrderSummary::from_row)
}

/// The statement that reads `page`, and its parameters.
///
/// It is put together from the filters given, rather than written once with `(?2 IS NULL OR …)`
/// guards: such guards hide from the planner which conditions apply, and Postgres may then plan
/// a scan of every order for every page.
fn statement<'p>(
    page: &'p Page<'_>,
    limit: &'p i64,
    reason: &'p Option<&'static str>,
) -> (String, Vec<&'p dyn ToValue>) {
    let mut params: Vec<&dyn ToValue> = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    if let Some(principal) = &page.principal {
        params.push(principal);
        conditions.push(format!("principal = ?{}", params.len()));
    }
    if let Some(status) = &page.status {
        params.push(status);
        conditions.push(format!("status = ?{}", params.len()));
    }
    if page.open_only {
        // Word for word the condition of the partial index `orders_open_by_age`, so that the
        // planner may read the (few) open orders from it.
        conditions.push("status NOT IN ('confirmed', 'cancelled')".to_owned());
    }
    if let Some(reason) = reason {
        params.push(reason);
        conditions.push(format!("cancellation_reason = ?{}", params.len()));
    }
    if let Some(before) = &page.created_before {
        params.push(before);
        conditions.push(format!("created_at < ?{}", params.len()));
    }
    if let Some(since) = &page.created_since {
        params.push(since);
        conditions.push(format!("created_at >= ?{}", params.len()));
    }
    if let Some(after) = &page.after {
        params.push(&after.created_at);
        params.push(&after.order_id);
        conditions.push(format!(
            "(created_at, order_id) < (?{}, ?{})",
            params.len() - 1,
            params.len()
        ));
    }
    params.push(limit);
    let mut sql = format!("SELECT {} FROM orders", OrderSummary::COLUMNS);
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(
        " ORDER BY created_at DESC, order_id DESC LIMIT ?{}",
        params.len()
    ));
    (sql, params)
}

/// How SQLite runs the statement of `page` (`EXPLAIN QUERY PLAN`), one line per step.
#[cfg(test)]
pub(crate) fn plan(conn: &Conn<'_>, page: &Page<'_>) -> Result<Vec<String>> {
    let limit = i64::from(page.limit);
    let reason = page.reason.map(CancellationReason::as_str);
    let (sql, params) = statement(page, &limit, &reason);
    conn.query_map(
        &format!("EXPLAIN QUERY PLAN {sql}"),
        params.as_slice(),
        |row| row.get(3),
    )
}
