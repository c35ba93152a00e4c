//! payment-svc's tables. A payment row per order is the record of truth: the unique key makes
//! "at most one charge per order" a database constraint, not a hope.
//!
//! On Postgres several replicas share these tables, so every decision taken on a payment is
//! taken on a locked row ([`lock_payment`]) and every state change is conditional on the state
//! it leaves ([`transition`]): whichever replica gets there second sees the first one's result.

use events::{CancellationReason, Currency, LineItem, Money, OrderId, PaymentMethod};
use platform::db::Migration;
use platform::params;
use platform::sql::{Conn, Dialect, OptionalExtension, Result, Row};

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
        &[order_id.to_string()],
        |row| row.get::<Option<String>>(0),
    )
    .optional()
    .map(Option::flatten)
}

/// A payment's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PaymentStatus {
    Charging,
    Charged,
    Failed,
    Refunding,
    Refunded,
}

impl PaymentStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Charging => "charging",
            PaymentStatus::Charged => "charged",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunding => "refunding",
            PaymentStatus::Refunded => "refunded",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Charging,
            Self::Charged,
            Self::Failed,
            Self::Refunding,
            Self::Refunded,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A payment row.
#[derive(Clone, Debug)]
pub(crate) struct Payment {
    pub(crate) order_id: OrderId,
    pub(crate) amount: Money,
    pub(crate) payment_method: PaymentMethod,
    pub(crate) items: Vec<LineItem>,
    pub(crate) status: PaymentStatus,
    pub(crate) charge_id: Option<String>,
    /// The webhook URL of the first charge request (see [`MIGRATION_WEBHOOK_URL`]); `None`:
    /// the provider's default.
    pub(crate) webhook_url: Option<String>,
}

/// A refund row.
#[derive(Clone, Debug)]
pub(crate) struct Refund {
    pub(crate) order_id: OrderId,
    pub(crate) amount: Money,
    pub(crate) charge_id: String,
    pub(crate) reason: CancellationReason,
    /// The payment's webhook URL: the refund's outcome goes where the charge's went.
    pub(crate) webhook_url: Option<String>,
}

/// Inserts a payment in `charging`; `false` if the order already has one.
///
/// This is the claim on the charge: of two replicas handling the same `order.created`, the
/// second one's insert waits for the first one's commit and then inserts nothing, so only one
/// of them goes on to call the provider.
pub(crate) fn insert_payment(tx: &Conn<'_>, payment: &Payment, now: &str) -> Result<bool> {
    let items = serde_json::to_string(&payment.items).unwrap_or_else(|_| "[]".into());
    let inserted = tx.execute(
        "INSERT INTO payments (order_id, amount_minor, currency, payment_method, items, status, traceparent, created_at, updated_at, webhook_url)
         VALUES (?1, ?2, ?3, ?4, ?5, 'charging', ?6, ?7, ?7, ?8)
         ON CONFLICT (order_id) DO NOTHING",
        params![
            payment.order_id.to_string(),
            payment.amount.amount_minor,
            payment.amount.currency.as_str(),
            payment.payment_method.as_str(),
            items,
            current_traceparent(),
            now,
            payment.webhook_url
        ],
    )?;
    Ok(inserted == 1)
}

/// The columns [`payment_from_row`] reads, in its order.
macro_rules! payment_columns {
    () => {
        "order_id, amount_minor, currency, payment_method, items, status, charge_id, webhook_url"
    };
}

fn payment_from_row(row: &Row<'_>) -> Result<Option<Payment>> {
    let order_id: String = row.get(0)?;
    let currency: String = row.get(2)?;
    let method: String = row.get(3)?;
    let items: String = row.get(4)?;
    let status: String = row.get(5)?;
    let (Ok(order_id), Ok(currency), Ok(payment_method), Ok(items), Some(status)) = (
        order_id.parse::<OrderId>(),
        currency.parse::<Currency>(),
        PaymentMethod::parse(method),
        serde_json::from_str::<Vec<LineItem>>(&items),
        PaymentStatus::parse(&status),
    ) else {
        return Ok(None);
    };
    Ok(Some(Payment {
        order_id,
        amount: Money::new(row.get(1)?, currency),
        payment_method,
        items,
        status,
        charge_id: row.get(6)?,
        webhook_url: row.get(7)?,
    }))
}

/// The payment of `order_id`, if any, locked until the end of `tx` on Postgres.
///
/// Everything a handler decides from a payment's state (refund it, flag it for cancellation,
/// complete it) is decided on this locked row: another replica deciding on the same payment at
/// the same time waits here and then reads the state this one left. Without the lock, a
/// charge's success could read "not cancelled" on one replica while `order.cancelled` flags the
/// payment on another, and then complete it — and the cancelled order would keep its money.
pub(crate) fn lock_payment(tx: &Conn<'_>, order_id: OrderId) -> Result<Option<Payment>> {
    const SQL: &str = concat!(
        "SELECT ",
        payment_columns!(),
        " FROM payments WHERE order_id = ?1"
    );
    const SQL_FOR_UPDATE: &str = concat!(
        "SELECT ",
        payment_columns!(),
        " FROM payments WHERE order_id = ?1 FOR UPDATE"
    );
    let sql = match tx.dialect() {
        Dialect::Sqlite => SQL,
        Dialect::Postgres => SQL_FOR_UPDATE,
    };
    tx.query_row(sql, &[order_id.to_string()], payment_from_row)
        .optional()
        .map(Option::flatten)
}

/// Moves a payment from `from` to `to`; `false` if it was not in `from` (a repeat, or another
/// replica got there first).
pub(crate) fn transition(
    tx: &Conn<'_>,
    order_id: OrderId,
    from: PaymentStatus,
    to: PaymentStatus,
    charge_id: Option<&str>,
    failure_reason: Option<&str>,
    now: &str,
) -> Result<bool> {
    let changed = tx.execute(
        "UPDATE payments SET status = ?3, charge_id = COALESCE(?4, charge_id),
                failure_reason = COALESCE(?5, failure_reason), updated_at = ?6
         WHERE order_id = ?1 AND status = ?2",
        params![
            order_id.to_string(),
            from.as_str(),
            to.as_str(),
            charge_id,
            failure_reason,
            now
        ],
    )?;
    Ok(changed == 1)
}

/// Notes that a charge request was sent (for recovery's staleness check). Only a payment still
/// `charging` is touched: a late note about a payment whose outcome is known changes nothing.
pub(crate) fn mark_charge_submitted(
    conn: &Conn<'_>,
    order_id: OrderId,
    charge_id: &str,
    now: &str,
) -> Result<()> {
    conn.execute(
        "UPDATE payments SET submissions = submissions + 1, last_submitted_at = ?3,
                charge_id = COALESCE(charge_id, ?2)
         WHERE order_id = ?1 AND status = 'charging'",
        params![order_id.to_string(), charge_id, now],
    )?;
    Ok(())
}

/// Records the refund of a payment that was just moved to `refunding`; `false` if the order
/// already has one.
pub(crate) fn insert_refund(tx: &Conn<'_>, refund: &Refund, now: &str) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO refunds (order_id, amount_minor, currency, reason, status, traceparent, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'refunding', ?5, ?6, ?6)
         ON CONFLICT (order_id) DO NOTHING",
        params![
            refund.order_id.to_string(),
            refund.amount.amount_minor,
            refund.amount.currency.as_str(),
            refund.reason.as_str(),
            current_traceparent(),
            now
        ],
    )?;
    Ok(inserted == 1)
}

/// Completes a refund in `refunding`; returns its reason, or `None` if it was not refunding.
pub(crate) fn complete_refund(
    tx: &Conn<'_>,
    order_id: OrderId,
    refund_id: &str,
    now: &str,
) -> Result<Option<CancellationReason>> {
    let reason: Option<String> = tx
        .query_row(
            "UPDATE refunds SET status = 'refunded', refund_id = ?2, updated_at = ?3
             WHERE order_id = ?1 AND status = 'refunding' RETURNING reason",
            params![order_id.to_string(), refund_id, now],
            |row| row.get(0),
        )
        .optional()?;
    Ok(reason.as_deref().and_then(CancellationReason::parse))
}

/// Notes that a refund request was sent, if the refund is still waiting for its outcome.
pub(crate) fn mark_refund_submitted(conn: &Conn<'_>, order_id: OrderId, now: &str) -> Result<()> {
    conn.execute(
        "UPDATE refunds SET submissions = submissions + 1, last_submitted_at = ?2
         WHERE order_id = ?1 AND status = 'refunding'",
        params![order_id.to_string(), now],
    )?;
    Ok(())
}

/// Records a provider notification id; `false` if it was seen before (by this replica or
/// another: the second insert waits for the first one's commit).
pub(crate) fn record_notification(
    tx: &Conn<'_>,
    notification_id: &str,
    order_id: OrderId,
    now: &str,
) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO provider_notifications (notification_id, order_id, received_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (notification_id) DO NOTHING",
        params![notification_id, order_id.to_string(), now],
    )?;
    Ok(inserted == 1)
}

/// Payments still `charging` whose last request is older than `before` (or never sent).
pub(crate) fn stale_charges(conn: &Conn<'_>, before: &str, limit: i64) -> Result<Vec<Payment>> {
    let rows = conn.query_map(
        concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments
             WHERE status = 'charging' AND COALESCE(last_submitted_at, created_at) < ?1
             ORDER BY created_at LIMIT ?2"
        ),
        params![before, limit],
        payment_from_row,
    )?;
    Ok(rows.into_iter().flatten().collect())
}

/// Refunds still `refunding` whose last request is older than `before` (or never sent).
pub(crate) fn stale_refunds(conn: &Conn<'_>, before: &str, limit: i64) -> Result<Vec<Refund>> {
    let rows = conn.query_map(
        "SELECT r.order_id, r.amount_minor, r.currency, p.charge_id, r.reason, p.webhook_url
         FROM refunds r JOIN payments p ON p.order_id = r.order_id
         WHERE r.status = 'refunding' AND COALESCE(r.last_submitted_at, r.created_at) < ?1
         ORDER BY r.created_at LIMIT ?2",
        params![before, limit],
        |row| {
            let order_id: String = row.get(0)?;
            let currency: String = row.get(2)?;
            let charge_id: Option<String> = row.get(3)?;
            let reason: String = row.get(4)?;
            Ok(
                match (
                    order_id.parse(),
                    currency.parse(),
                    charge_id,
                    CancellationReason::parse(&reason),
                ) {
                    (Ok(order_id), Ok(currency), Some(charge_id), Some(reason)) => Some(Refund {
                        order_id,
                        amount: Money::new(row.get(1)?, currency),
                        charge_id,
                        reason,
                        webhook_url: row.get(5)?,
                    }),
                    _ => None,
                },
            )
        },
    )?;
    Ok(rows.into_iter().flatten().collect())
}

/// Flags a `charging` payment so that, if the charge succeeds, it is refunded for `reason`;
/// `false` if the payment was no longer `charging`.
pub(crate) fn request_cancellation(
    tx: &Conn<'_>,
    order_id: OrderId,
    reason: CancellationReason,
    now: &str,
) -> Result<bool> {
    let changed = tx.execute(
        "UPDATE payments SET cancel_reason = ?2, updated_at = ?3
         WHERE order_id = ?1 AND status = 'charging'",
        params![order_id.to_string(), reason.as_str(), now],
    )?;
    Ok(changed == 1)
}

/// The reason the order was cancelled while its charge was in flight, if it was.
pub(crate) fn cancellation_requested(
    tx: &Conn<'_>,
    order_id: OrderId,
) -> Result<Option<CancellationReason>> {
    tx.query_row(
        "SELECT cancel_reason FROM payments WHERE order_id = ?1",
        &[order_id.to_string()],
        |row| row.get::<Option<String>>(0),
    )
    .optional()
    .map(|reason| {
        reason
            .flatten()
            .as_deref()
            .and_then(CancellationReason::parse)
    })
}
