//! Orders themselves: accepting one, reading it back, and the queries over all of them (the
//! deadline reaper's, the gauges', ownership for authorization).

use events::{CancellationReason, Currency, Money, OrderId, PricedLineItem};
use platform::params;
use platform::sql::{Conn, OptionalExtension, Result};

use super::history::{HistoryEntry, history_after, insert_history};
use crate::saga::OrderStatus;

/// An order as stored.
#[derive(Clone, Debug)]
pub struct OrderRecord {
    /// Its id.
    pub order_id: OrderId,
    /// Who placed it.
    pub user_id: String,
    /// How it is paid.
    pub payment_method: String,
    /// Current status.
    pub status: OrderStatus,
    /// Why it was cancelled, if it was.
    pub cancellation_reason: Option<CancellationReason>,
    /// Sum of the lines.
    pub total: Money,
    /// The lines.
    pub items: Vec<PricedLineItem>,
    /// When it was accepted.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Every status it went through.
    pub history: Vec<HistoryEntry>,
}

/// A new order, as accepted by the API.
#[derive(Debug)]
pub(crate) struct NewOrder<'a> {
    pub(crate) order_id: OrderId,
    /// Who places it.
    pub(crate) principal: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) payment_method: &'a str,
    pub(crate) items: &'a [PricedLineItem],
    pub(crate) total: Money,
    /// Acceptance time (RFC 3339).
    pub(crate) now: &'a str,
    /// When the saga must have ended (RFC 3339).
    pub(crate) deadline: &'a str,
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
        now,
        deadline,
    } = *order;
    let id = order_id.to_string();
    let traceparent = platform::telemetry::inject(&tracing::Span::current()).remove("traceparent");
    tx.execute(
        "INSERT INTO orders (order_id, user_id, payment_method, status, total_minor, currency, created_at, updated_at, deadline_at, traceparent, principal)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)",
        params![
            id,
            user_id,
            payment_method,
            OrderStatus::Pending.as_str(),
            total.amount_minor,
            total.currency.as_str(),
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
                id,
                line_no,
                item.sku.as_str(),
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
        at: now.to_owned(),
    };
    insert_history(tx, &entry)?;
    Ok(entry)
}

/// The order's total, for `order.confirmed`.
pub(crate) fn total_of(tx: &Conn<'_>, order_id: OrderId) -> Result<Money> {
    tx.query_row(
        "SELECT total_minor, currency FROM orders WHERE order_id = ?1",
        params![order_id.to_string()],
        |row| Ok((row.get::<i64>(0)?, row.get::<String>(1)?)),
    )
    .map(|(minor, currency)| Money::new(minor, currency.parse().unwrap_or(Currency::USD)))
}

/// The whole order, if it exists.
///
/// The order, its lines and its history are read by separate statements, each seeing what was
/// committed when it started: the history may hold a transition committed just after the order's
/// row was read, never miss one the row already shows.
pub(crate) fn load_order(conn: &Conn<'_>, order_id: OrderId) -> Result<Option<OrderRecord>> {
    let id = order_id.to_string();
    let head = conn
        .query_row(
            "SELECT user_id, payment_method, status, cancellation_reason, total_minor, currency, created_at, updated_at
             FROM orders WHERE order_id = ?1",
            params![id],
            |row| {
                Ok((
                    row.get::<String>(0)?,
                    row.get::<String>(1)?,
                    row.get::<String>(2)?,
                    row.get::<Option<String>>(3)?,
                    row.get::<i64>(4)?,
                    row.get::<String>(5)?,
                    row.get::<String>(6)?,
                    row.get::<String>(7)?,
                ))
            },
        )
        .optional()?;
    let Some((
        user_id,
        payment_method,
        status,
        reason,
        total_minor,
        currency,
        created_at,
        updated_at,
    )) = head
    else {
        return Ok(None);
    };
    let currency: Currency = currency.parse().unwrap_or(Currency::USD);
    let items = conn
        .query_map(
            "SELECT sku, quantity, unit_price_minor FROM order_items WHERE order_id = ?1 ORDER BY line_no",
            params![id],
            |row| Ok((row.get::<String>(0)?, row.get::<u32>(1)?, row.get::<i64>(2)?)),
        )?
        .into_iter()
        .filter_map(|(sku, quantity, price)| {
            events::Sku::parse(sku).ok().map(|sku| PricedLineItem {
                sku,
                quantity,
                unit_price: Money::new(price, currency),
            })
        })
        .collect();
    Ok(Some(OrderRecord {
        order_id,
        user_id,
        payment_method,
        status: OrderStatus::parse(&status).unwrap_or(OrderStatus::Pending),
        cancellation_reason: reason.as_deref().and_then(CancellationReason::parse),
        total: Money::new(total_minor, currency),
        items,
        created_at,
        updated_at,
        history: history_after(conn, order_id, 0)?,
    }))
}

/// Number of orders, for tests and metrics.
pub fn count_orders(conn: &Conn<'_>) -> Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM orders", &[], |row| row.get(0))
}

/// Open orders accepted before `before` (RFC 3339), for the `sagas_open_longer_than_10s` gauge.
pub(crate) fn count_open_accepted_before(conn: &Conn<'_>, before: &str) -> Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM orders WHERE status NOT IN ('confirmed', 'cancelled') AND created_at < ?1",
        params![before],
        |row| row.get(0),
    )
}

/// Open orders whose deadline is before `now`, with their stored trace context, oldest first.
pub(crate) fn overdue(
    conn: &Conn<'_>,
    now: &str,
    limit: i64,
) -> Result<Vec<(OrderId, Option<String>)>> {
    let rows = conn.query_map(
        "SELECT order_id, traceparent FROM orders
         WHERE status NOT IN ('confirmed', 'cancelled') AND deadline_at < ?1
         ORDER BY deadline_at LIMIT ?2",
        params![now, limit],
        |row| Ok((row.get::<String>(0)?, row.get::<Option<String>>(1)?)),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, traceparent)| id.parse().ok().map(|id| (id, traceparent)))
        .collect())
}

/// Who placed `order_id`, if it exists.
pub(crate) fn owner_of(conn: &Conn<'_>, order_id: OrderId) -> Result<Option<String>> {
    conn.query_row(
        "SELECT principal FROM orders WHERE order_id = ?1",
        params![order_id.to_string()],
        |row| row.get(0),
    )
    .optional()
}
