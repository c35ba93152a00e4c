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
//!
//! Rows cross the SQL edge as domain types (ids, statuses, money, `DateTime<Utc>`), each row
//! type read by its own `from_row`; a column that does not hold a valid value is an error, never
//! a default. Times are stored as RFC 3339 text with six fractional digits ([`platform::time`]),
//! and a transaction writes its own time, [`platform::sql::Conn::now`], in every row it touches.
//!
//! `orders` holds the orders and their lines, `history` each order's transitions, `listing`
//! a principal's orders page by page (and everyone's, for the console), `overview` the console's
//! counts, and `timeline` the events of each saga.

use std::borrow::Cow;

use events::CancellationReason;
use platform::db::Migration;
use platform::sql::{ErrorKind, FromValue, Result, SqlError, ToValue, Value, ValueRef};

use crate::saga::OrderStatus;

mod history;
mod listing;
mod orders;
mod overview;
pub(crate) mod timeline;

pub use history::HistoryEntry;
pub(crate) use history::{
    HISTORY_CHANNEL, Locked, entry_for, history_after, record_transition, status_for_update,
};
pub(crate) use listing::{
    CONSOLE_MIGRATION, MIGRATION as LISTING_MIGRATION, OrderKey, OrderSummary, Page, list_orders,
};
pub(crate) use orders::{
    NewOrder, Overdue, count_open_accepted_before, insert_order, load_order, overdue, owner_of,
    total_of,
};
pub use orders::{OrderRecord, count_orders};
pub(crate) use overview::overview;

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

/// A status binds as its text form, and a stored text that names no status is a corrupt row.
impl ToValue for OrderStatus {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(Cow::Borrowed(self.as_str())))
    }
}

impl FromValue for OrderStatus {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        let text = String::from_value(value)?;
        OrderStatus::parse(&text).ok_or_else(|| corrupt(&text, "an order status"))
    }
}

/// A stored cancellation reason (`events` owns the type, so it cannot bind itself here).
fn reason(text: Option<String>) -> Result<Option<CancellationReason>> {
    text.map(|text| {
        CancellationReason::parse(&text).ok_or_else(|| corrupt(&text, "a cancellation reason"))
    })
    .transpose()
}

fn corrupt(text: &str, wanted: &str) -> SqlError {
    SqlError::new(
        ErrorKind::Conversion,
        format!("cannot read {text:?} as {wanted}"),
    )
}

#[cfg(test)]
mod tests;
