//! payment-svc's tables. A payment row per order is the record of truth: the unique key makes
//! "at most one charge per order" a database constraint, not a hope.
//!
//! On Postgres several replicas share these tables, so every decision taken on a payment is
//! taken on a locked row ([`lock_payment`]) and every state change is conditional on the state
//! it leaves ([`transition`]): whichever replica gets there second sees the first one's result.
//!
//! Records bind and read typed values (`OrderId`, `Money`'s parts, timestamps) through
//! [`platform::sql::ToValue`] and [`platform::sql::FromValue`]; a row that does not read back
//! is an error, never a default. Every write stamps the transaction's one time,
//! [`Conn::now`].

mod notifications;
mod payments;
mod refunds;

use events::{CancellationReason, OrderId};
use platform::db::Migration;
use platform::params;
use platform::sql::{Conn, ErrorKind, OptionalExtension, Result, SqlError};

pub(crate) use notifications::record_notification;
pub(crate) use payments::{
    CancellationRequest, Payment, PaymentStatus, cancellation_requested, insert_payment,
    lock_payment, mark_charge_submitted, request_cancellation, stale_charges, transition,
};
pub(crate) use refunds::{
    CompletedRefund, Refund, complete_refund, insert_refund, mark_refund_submitted, stale_refunds,
};

pub(crate) const MIGRATION: Migration = Migration::new(
    "payment-svc/payments/1",
    "
CREATE TABLE IF NOT EXISTS payments (
    order_id          TEXT PRIMARY KEY,
    amount_minor      INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency          TEXT NOT NULL,
    payment_method    TEXT NOT NULL,
    -- The order lines, forwarded in payment.completed (JSON array of {sku, quantity}).
    items             TEXT NOT NULL,
    status            TEXT NOT NULL
                      CHECK (status IN ('charging', 'charged', 'failed', 'refunding', 'refunded')),
    charge_id         TEXT,
    failure_reason    TEXT,
    submissions       INTEGER NOT NULL DEFAULT 0,
    last_submitted_at TEXT,
    -- Set when the order is cancelled while the charge is in flight: a success is then refunded.
    cancel_reason     TEXT,
    -- Trace context of the order.created handling: the provider's answer continues that trace.
    traceparent       TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    order_id          TEXT PRIMARY KEY REFERENCES payments (order_id),
    amount_minor      INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency          TEXT NOT NULL,
    reason            TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('refunding', 'refunded')),
    refund_id         TEXT,
    submissions       INTEGER NOT NULL DEFAULT 0,
    last_submitted_at TEXT,
    traceparent       TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
-- Provider notifications already applied (webhook ids), so a repeated delivery is dropped.
CREATE TABLE IF NOT EXISTS provider_notifications (
    notification_id TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL,
    received_at     TEXT NOT NULL
);
",
);

/// Where the provider was asked to send the outcome, kept so that every resend of the request
/// is the same request: an idempotency key repeated with a different body is refused, and a
/// replica that takes over another's payment must not ask for webhooks to itself.
pub(crate) const MIGRATION_WEBHOOK_URL: Migration = Migration::new(
    "payment-svc/payments/2",
    "ALTER TABLE payments ADD COLUMN webhook_url TEXT;",
);

/// The event behind each provider request, kept so that the event announcing its outcome
/// (`payment.completed`, `payment.failed`, `payment.refunded`) names it as its `causationid`:
/// the outcome arrives by webhook or recovery, long after the handling that asked for it, and
/// without this a refund could not be traced back to the `stock.rejected` or `order.cancelled`
/// that caused it. `cancel_causation_id` is the `order.cancelled` that flagged a charge in
/// flight: the refund of its success is that event's doing.
pub(crate) const MIGRATION_CAUSATION: Migration = Migration::new(
    "payment-svc/payments/3",
    "
ALTER TABLE payments ADD COLUMN causation_id TEXT;
ALTER TABLE payments ADD COLUMN cancel_causation_id TEXT;
ALTER TABLE refunds ADD COLUMN causation_id TEXT;
",
);

/// Every migration of payment-svc's tables, in order: what a database is opened with.
pub(crate) const MIGRATIONS: &[Migration] =
    &[MIGRATION, MIGRATION_WEBHOOK_URL, MIGRATION_CAUSATION];

/// The W3C `traceparent` of the current span, to store with a row.
fn current_traceparent() -> Option<String> {
    platform::telemetry::inject(&tracing::Span::current()).remove("traceparent")
}

/// The stored trace context of the order's latest provider request: the refund's if there is
/// one, else the charge's.
pub(crate) fn traceparent_of(conn: &Conn<'_>, order_id: OrderId) -> Result<Option<String>> {
    conn.query_row(
        "SELECT COALESCE(r.traceparent, p.traceparent) FROM payments p
         LEFT JOIN refunds r ON r.order_id = p.order_id WHERE p.order_id = ?1",
        params![order_id],
        |row| row.get::<Option<String>>(0),
    )
    .optional()
    .map(Option::flatten)
}

/// A value that was stored but does not read back as what it should be.
pub(crate) fn corrupt(message: String) -> SqlError {
    SqlError::new(ErrorKind::Conversion, message)
}

/// A cancellation reason, as stored (by its name).
fn parse_reason(text: &str) -> Result<CancellationReason> {
    CancellationReason::parse(text)
        .ok_or_else(|| corrupt(format!("{text:?} is not a cancellation reason")))
}

#[cfg(test)]
mod tests;
