//! order-api's tables and the queries on them. Every write happens inside a transaction given
//! by the caller, so state, history and outgoing events commit together.
//!
//! On Postgres several replicas share these tables, and two of them may move one order at the
//! same moment: its replies arrive on two topics whose partitions different replicas consume,
//! a rebalance hands a partition over while the old owner is still busy, and the deadline
//! reaper runs beside the consumers. So a transition reads the order's status with
//! [`status_for_update`] (which locks the row until the transaction ends), changes the order only
//! from the status it read ([`record_transition`]), and the history's primary key
//! `(order_id, seq)` refuses a second entry with the same number as a last resort.

use events::{CancellationReason, Currency, EventId, Money, OrderId, PricedLineItem};
use platform::db::Migration;
use platform::params;
use platform::sql::{Conn, Dialect, OptionalExtension, Result};

use crate::saga::OrderStatus;

pub(crate) mod timeline;

pub(crate) const MIGRATION: Migration = Migration::new(
    "order-api/orders/1",
    "
CREATE TABLE IF NOT EXISTS orders (
    order_id            TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL,
    payment_method      TEXT NOT NULL,
    status              TEXT NOT NULL,
    cancellation_reason TEXT,
    total_minor         INTEGER NOT NULL CHECK (total_minor >= 0),
    currency            TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    -- The saga must end by then; the deadline reaper cancels it otherwise (a durable timer).
    deadline_at         TEXT NOT NULL,
    -- Who placed the order; only they may see it.
    principal           TEXT NOT NULL,
    -- Trace context of the request that placed the order, so that a timeout joins its trace.
    traceparent         TEXT
);
CREATE INDEX IF NOT EXISTS orders_open_by_deadline ON orders (deadline_at)
    WHERE status NOT IN ('confirmed', 'cancelled');
CREATE TABLE IF NOT EXISTS order_items (
    order_id         TEXT NOT NULL REFERENCES orders (order_id),
    line_no          INTEGER NOT NULL,
    sku              TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);
-- Every status an order went through; `seq` numbers them per order (SSE event ids).
CREATE TABLE IF NOT EXISTS order_history (
    order_id   TEXT NOT NULL REFERENCES orders (order_id),
    seq        INTEGER NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    cause      TEXT NOT NULL,
    event_id   TEXT,
    at         TEXT NOT NULL,
    PRIMARY KEY (order_id, seq)
);
-- The saga timeline: every event of an order's saga, produced or received here, once
-- (see `store::timeline`). `occurred_at` is the event's own time, `recorded_at` ours.
CREATE TABLE IF NOT EXISTS saga_events (
    order_id    TEXT NOT NULL REFERENCES orders (order_id),
    event_id    TEXT NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    service     TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    trace_id    TEXT
);
CREATE INDEX IF NOT EXISTS saga_events_by_order ON saga_events (order_id, occurred_at);
",
);

/// One row of an order's history: a status and when it was reached.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    /// The order.
    pub order_id: OrderId,
    /// 1 for `pending`, then +1 per transition.
    pub seq: i64,
    /// The status reached.
    pub status: OrderStatus,
    /// For `cancelled`: why.
    pub reason: Option<CancellationReason>,
    /// What caused it: `api` or an event type.
    pub cause: String,
    /// The event that caused it, if any.
    pub event_id: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

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

/// The order's status and latest history sequence number, if the order exists, for a
/// transaction that is about to move it.
///
/// On Postgres the order's row stays locked until the transaction ends: another replica's
/// transition of the same order waits, then reads the status this one leaves. The sequence
/// number is read by a second statement on purpose: at `READ COMMITTED` a statement that waited
/// for a row lock sees the new version of the locked row, but the rest of that statement still
/// reads from its older snapshot, which may lack the history the other transaction added.
pub(crate) fn status_for_update(
    tx: &Conn<'_>,
    order_id: OrderId,
) -> Result<Option<(OrderStatus, i64)>> {
    let sql = match tx.dialect() {
        Dialect::Sqlite => "SELECT status FROM orders WHERE order_id = ?1",
        Dialect::Postgres => "SELECT status FROM orders WHERE order_id = ?1 FOR UPDATE",
    };
    let id = order_id.to_string();
    let Some(status) = tx
        .query_row(sql, params![id], |row| row.get::<String>(0))
        .optional()?
    else {
        return Ok(None);
    };
    let last_seq = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM order_history WHERE order_id = ?1",
        params![id],
        |row| row.get::<i64>(0),
    )?;
    Ok(OrderStatus::parse(&status).map(|status| (status, last_seq)))
}

/// Moves the order from `from` to `entry.status` and appends `entry` to its history; `false`
/// (and nothing written) if the order is no longer in `from`, because another transaction moved
/// it since `from` was read.
pub(crate) fn record_transition(
    tx: &Conn<'_>,
    from: OrderStatus,
    entry: &HistoryEntry,
) -> Result<bool> {
    let changed = tx.execute(
        "UPDATE orders SET status = ?2, cancellation_reason = COALESCE(?3, cancellation_reason), updated_at = ?4
         WHERE order_id = ?1 AND status = ?5",
        params![
            entry.order_id.to_string(),
            entry.status.as_str(),
            entry.reason.map(CancellationReason::as_str),
            entry.at,
            from.as_str()
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    insert_history(tx, entry)?;
    Ok(true)
}

/// The notification channel of committed history entries (payload `<order id>:<seq>`), for
/// the event streams and waiting requests other order-api replicas hold (see
/// [`crate::updates::follow_other_replicas`]).
pub(crate) const HISTORY_CHANNEL: &str = "order_history";

fn insert_history(tx: &Conn<'_>, entry: &HistoryEntry) -> Result<()> {
    platform::db::notify::announce(
        tx,
        HISTORY_CHANNEL,
        &format!("{}:{}", entry.order_id, entry.seq),
    )?;
    tx.execute(
        "INSERT INTO order_history (order_id, seq, status, reason, cause, event_id, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            entry.order_id.to_string(),
            entry.seq,
            entry.status.as_str(),
            entry.reason.map(CancellationReason::as_str),
            entry.cause,
            entry.event_id,
            entry.at,
        ],
    )?;
    Ok(())
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

/// The history entries of `order_id` with `seq > after`, in order.
pub(crate) fn history_after(
    conn: &Conn<'_>,
    order_id: OrderId,
    after: i64,
) -> Result<Vec<HistoryEntry>> {
    conn.query_map(
        "SELECT seq, status, reason, cause, event_id, at FROM order_history WHERE order_id = ?1 AND seq > ?2 ORDER BY seq",
        params![order_id.to_string(), after],
        |row| {
            Ok(HistoryEntry {
                order_id,
                seq: row.get(0)?,
                status: OrderStatus::parse(&row.get::<String>(1)?)
                    .unwrap_or(OrderStatus::Pending),
                reason: row
                    .get::<Option<String>>(2)?
                    .as_deref()
                    .and_then(CancellationReason::parse),
                cause: row.get(3)?,
                event_id: row.get(4)?,
                at: row.get(5)?,
            })
        },
    )
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

/// Makes a history entry for a transition caused by `event_id` of `cause` type.
pub(crate) fn entry_for(
    order_id: OrderId,
    seq: i64,
    status: OrderStatus,
    reason: Option<CancellationReason>,
    cause: &str,
    event_id: EventId,
    at: &str,
) -> HistoryEntry {
    HistoryEntry {
        order_id,
        seq,
        status,
        reason,
        cause: cause.to_owned(),
        event_id: Some(event_id.to_string()),
        at: at.to_owned(),
    }
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

#[cfg(test)]
mod tests;
