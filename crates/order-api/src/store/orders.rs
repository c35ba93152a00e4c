//! Orders themselves: accepting one, reading it back, and the queries over all of them (the
//! deadline reaper's, the gauges', ownership for authorization).

use chrono::{DateTime, Utc};

use events::{
    CancellationReason, Currency, Money, OrderId, PaymentMethod, PricedLineItem, Sku, UserId,
};
use platform::params;
use platform::sql::{Conn, OptionalExtension, Result, Row};

use super::history::{HistoryEntry, history_after, insert_history};
use crate::saga::OrderStatus;

/// An order as stored.
#[derive(Clone, Debug)]
pub struct OrderRecord {
    /// Its id.
    pub order_id: OrderId,
    /// Who placed it.
    pub user_id: UserId,
    /// How it is paid.
    pub payment_method: PaymentMethod,
    /// Current status.
    pub status: OrderStatus,
    /// Why it was cancelled, if it was.
    pub cancellation_reason: Option<CancellationReason>,
    /// Sum of the lines.
    pub total: Money,
    /// The lines.
    pub items: Vec<PricedLineItem>,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Every status it went through.
    pub history: Vec<HistoryEntry>,
}

impl OrderRecord {
    /// Reads a row of `orders` selected as `order_id, user_id, payment_method, status,
    /// cancellation_reason, total_minor, currency, created_at, updated_at`; the lines and the
    /// history are read by their own statements.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            order_id: row.get(0)?,
            user_id: row.get(1)?,
            payment_method: row.get(2)?,
            status: row.get(3)?,
            cancellation_reason: super::reason(row.get(4)?)?,
            total: Money::new(row.get(5)?, row.get(6)?),
            items: Vec::new(),
            created_at: row.get(7)?,
            updated_at: row.get(8)?,
            history: Vec::new(),
        })
    }
}

/// A row of `order_items`. Its price is in the order's currency, which the order's row holds.
#[derive(Debug)]
struct ItemRow {
    sku: Sku,
    quantity: u32,
    unit_price_minor: i64,
}

impl ItemRow {
    /// Reads a row selected as `sku, quantity, unit_price_minor`.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            sku: row.get(0)?,
            quantity: row.get(1)?,
            unit_price_minor: row.get(2)?,
        })
    }

    fn priced_in(self, currency: Currency) -> PricedLineItem {
        PricedLineItem {
            sku: self.sku,
            quantity: self.quantity,
            unit_price: Money::new(self.unit_price_minor, currency),
        }
    }
}

/// A new order, as accepted by the API. It is stored at the time of the transaction that
/// stores it ([`Conn::now`]).
#[derive(Debug)]
pub(crate) struct NewOrder<'a> {
    pub(crate) order_id: OrderId,
    /// Who places it: the authenticated client, the only one who may see it.
    pub(crate) principal: &'a str,
    pub(crate) user_id: &'a UserId,
    pub(crate) payment_method: &'a PaymentMethod,
    pub(crate) items: &'a [PricedLineItem],
    pub(crate) total: Money,
    /// When the saga must have ended.
    pub(crate) deadline: DateTime<Utc>,
}

/// Inserts a new order in `pending`, with its lines and first history entry.
pub(crate) fn insert_order(tx: &Conn<'_>, order: &NewOrder<'_>) -> Result<HistoryEntry> {
    let NewOrder {
        order_id,
        principal,
        user_id,
        payment_method,
        items,
        total,
        deadline,
    } = *order;
    let now = tx.now();
    let traceparent = platform::telemetry::inject(&tracing::Span::current()).remove("traceparent");
    tx.execute(
        "INSERT INTO orders (order_id, user_id, payment_method, status, total_minor, currency, created_at, updated_at, deadline_at, traceparent, principal)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)",
        params![
            order_id,
            user_id,
            payment_method,
            OrderStatus::Pending,
            total.amount_minor,
            total.currency,
            now,
            deadline,
            traceparent,
            principal
        ],
    )?;
    for (line_no, item) in items.iter().enumerate() {
        tx.execute(
            "INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price_minor) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                order_id,
                line_no,
                item.sku,
                item.quantity,
                item.unit_price.amount_minor
            ],
        )?;
    }
    let entry = HistoryEntry {
        order_id,
        seq: 1,
        status: OrderStatus::Pending,
        reason: None,
        cause: "api".to_owned(),
        event_id: None,
        at: now,
    };
    insert_history(tx, &entry)?;
    Ok(entry)
}

/// The order's total, for `order.confirmed`.
pub(crate) fn total_of(tx: &Conn<'_>, order_id: OrderId) -> Result<Money> {
    tx.query_row(
        "SELECT total_minor, currency FROM orders WHERE order_id = ?1",
        params![order_id],
        |row| Ok(Money::new(row.get(0)?, row.get(1)?)),
    )
}

/// The whole order, if it exists.
///
/// The order, its lines and its history are read by separate statements, each seeing what was
/// committed when it started: the history may hold a transition committed just after the order's
/// row was read, never miss one the row already shows.
pub(crate) fn load_order(conn: &Conn<'_>, order_id: OrderId) -> Result<Option<OrderRecord>> {
    let Some(mut order) = conn
        .query_row(
            "SELECT order_id, user_id, payment_method, status, cancellation_reason, total_minor, currency, created_at, updated_at
             FROM orders WHERE order_id = ?1",
            params![order_id],
            OrderRecord::from_row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let currency = order.total.currency;
    order.items = conn
        .query_map(
            "SELECT sku, quantity, unit_price_minor FROM order_items WHERE order_id = ?1 ORDER BY line_no",
            params![order_id],
            ItemRow::from_row,
        )?
        .into_iter()
        .map(|item| item.priced_in(currency))
        .collect();
    order.history = history_after(conn, order_id, 0)?;
    Ok(Some(order))
}

/// Number of orders, for tests and metrics.
pub fn count_orders(conn: &Conn<'_>) -> Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM orders", &[], |row| row.get(0))
}

/// Open orders accepted before `before`, for the `sagas_open_longer_than_10s` gauge.
pub(crate) fn count_open_accepted_before(conn: &Conn<'_>, before: DateTime<Utc>) -> Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM orders WHERE status NOT IN ('confirmed', 'cancelled') AND created_at < ?1",
        params![before],
        |row| row.get(0),
    )
}

/// An open order past its deadline, for the deadline reaper.
#[derive(Debug)]
pub(crate) struct Overdue {
    pub(crate) order_id: OrderId,
    /// The trace context of the request that placed it, so that its timeout joins its trace.
    pub(crate) traceparent: Option<String>,
}

impl Overdue {
    /// Reads a row selected as `order_id, traceparent`.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            order_id: row.get(0)?,
            traceparent: row.get(1)?,
        })
    }
}

/// Open orders whose deadline is before `now`, oldest deadline first.
pub(crate) fn overdue(conn: &Conn<'_>, now: DateTime<Utc>, limit: i64) -> Result<Vec<Overdue>> {
    conn.query_map(
        "SELECT order_id, traceparent FROM orders
         WHERE status NOT IN ('confirmed', 'cancelled') AND deadline_at < ?1
         ORDER BY deadline_at LIMIT ?2",
        params![now, limit],
        Overdue::from_row,
    )
}

/// Who placed `order_id`, if it exists.
pub(crate) fn owner_of(conn: &Conn<'_>, order_id: OrderId) -> Result<Option<String>> {
    conn.query_row(
        "SELECT principal FROM orders WHERE order_id = ?1",
        params![order_id],
        |row| row.get(0),
    )
    .optional()
}
