//! The `payments` table: one row per order, from the charge request to its refund.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use events::{
    CancellationReason, EventId, LineItem, Money, OrderId, PaymentFailureReason, PaymentMethod,
};
use platform::params;
use platform::sql::{
    Conn, Dialect, FromValue, OptionalExtension, Result, Row, ToValue, Value, ValueRef,
};

use super::{corrupt, current_traceparent, parse_reason};

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
    const ALL: [Self; 5] = [
        Self::Charging,
        Self::Charged,
        Self::Failed,
        Self::Refunding,
        Self::Refunded,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Charging => "charging",
            PaymentStatus::Charged => "charged",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunding => "refunding",
            PaymentStatus::Refunded => "refunded",
        }
    }
}

impl ToValue for PaymentStatus {
    fn to_value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(Cow::Borrowed(self.as_str())))
    }
}

impl FromValue for PaymentStatus {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        let text = String::from_value(value)?;
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| corrupt(format!("{text:?} is not a payment status")))
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
    /// The webhook URL of the first charge request (see [`super::MIGRATION_WEBHOOK_URL`]);
    /// `None`: the provider's default.
    pub(crate) webhook_url: Option<String>,
    /// The event that asked for the charge (`order.created`), named as the cause of the event
    /// announcing its outcome (see [`super::MIGRATION_CAUSATION`]); `None` in rows older than
    /// that column.
    pub(crate) causation_id: Option<EventId>,
}

/// The columns [`Payment::from_row`] reads, in its order.
macro_rules! payment_columns {
    () => {
        "order_id, amount_minor, currency, payment_method, items, status, charge_id, webhook_url, causation_id"
    };
}

impl Payment {
    /// Reads a row selected with `payment_columns!()`.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        let items: String = row.get(4)?;
        let items = serde_json::from_str(&items)
            .map_err(|error| corrupt(format!("column 4: not a list of order lines: {error}")))?;
        Ok(Self {
            order_id: row.get(0)?,
            amount: Money::new(row.get(1)?, row.get(2)?),
            payment_method: row.get(3)?,
            items,
            status: row.get(5)?,
            charge_id: row.get(6)?,
            webhook_url: row.get(7)?,
            causation_id: row.get(8)?,
        })
    }
}

/// Inserts a payment in `charging`; `false` if the order already has one.
///
/// This is the claim on the charge: of two replicas handling the same `order.created`, the
/// second one's insert waits for the first one's commit and then inserts nothing, so only one
/// of them goes on to call the provider.
pub(crate) fn insert_payment(tx: &Conn<'_>, payment: &Payment) -> Result<bool> {
    let items = serde_json::to_string(&payment.items)
        .map_err(|error| corrupt(format!("order lines that do not serialise: {error}")))?;
    let inserted = tx.execute(
        "INSERT INTO payments (order_id, amount_minor, currency, payment_method, items, status, traceparent, created_at, updated_at, webhook_url, causation_id)
         VALUES (?1, ?2, ?3, ?4, ?5, 'charging', ?6, ?7, ?7, ?8, ?9)
         ON CONFLICT (order_id) DO NOTHING",
        params![
            payment.order_id,
            payment.amount.amount_minor,
            payment.amount.currency,
            payment.payment_method,
            items,
            current_traceparent(),
            tx.now(),
            payment.webhook_url,
            payment.causation_id
        ],
    )?;
    Ok(inserted == 1)
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
    tx.query_row(sql, params![order_id], Payment::from_row)
        .optional()
}

/// Moves a payment from `from` to `to`; `false` if it was not in `from` (a repeat, or another
/// replica got there first). `charge_id` and `failure` are recorded when given.
pub(crate) fn transition(
    tx: &Conn<'_>,
    order_id: OrderId,
    from: PaymentStatus,
    to: PaymentStatus,
    charge_id: Option<&str>,
    failure: Option<PaymentFailureReason>,
) -> Result<bool> {
    let failure_reason = failure.map(failure_code).transpose()?;
    let changed = tx.execute(
        "UPDATE payments SET status = ?3, charge_id = COALESCE(?4, charge_id),
                failure_reason = COALESCE(?5, failure_reason), updated_at = ?6
         WHERE order_id = ?1 AND status = ?2",
        params![order_id, from, to, charge_id, failure_reason, tx.now()],
    )?;
    Ok(changed == 1)
}

/// The failure reason's name in the events (`declined`, `insufficient_funds`, …).
fn failure_code(reason: PaymentFailureReason) -> Result<String> {
    match serde_json::to_value(reason) {
        Ok(serde_json::Value::String(code)) => Ok(code),
        other => Err(corrupt(format!(
            "{reason:?} does not serialise to a name: {other:?}"
        ))),
    }
}

/// Notes that a charge request was sent (for recovery's staleness check). Only a payment still
/// `charging` is touched: a late note about a payment whose outcome is known changes nothing.
pub(crate) fn mark_charge_submitted(
    tx: &Conn<'_>,
    order_id: OrderId,
    charge_id: &str,
) -> Result<()> {
    tx.execute(
        "UPDATE payments SET submissions = submissions + 1, last_submitted_at = ?3,
                charge_id = COALESCE(charge_id, ?2)
         WHERE order_id = ?1 AND status = 'charging'",
        params![order_id, charge_id, tx.now()],
    )?;
    Ok(())
}

/// Payments still `charging` whose last request is older than `before` (or never sent), each
/// read on its own: a corrupt row is an error for that payment, and the others still come.
pub(crate) fn stale_charges(
    conn: &Conn<'_>,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Result<Payment>>> {
    conn.query_map(
        concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments
             WHERE status = 'charging' AND COALESCE(last_submitted_at, created_at) < ?1
             ORDER BY created_at LIMIT ?2"
        ),
        params![before, limit],
        |row| Ok(Payment::from_row(row)),
    )
}

/// Flags a `charging` payment so that, if the charge succeeds, it is refunded for `reason`,
/// `cause` (the `order.cancelled` event) being recorded as the refund's cause; `false` if the
/// payment was no longer `charging`.
pub(crate) fn request_cancellation(
    tx: &Conn<'_>,
    order_id: OrderId,
    reason: CancellationReason,
    cause: EventId,
) -> Result<bool> {
    let changed = tx.execute(
        "UPDATE payments SET cancel_reason = ?2, cancel_causation_id = ?3, updated_at = ?4
         WHERE order_id = ?1 AND status = 'charging'",
        params![order_id, reason.as_str(), cause, tx.now()],
    )?;
    Ok(changed == 1)
}

/// A cancellation that arrived while the charge was in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CancellationRequest {
    /// Why the order was cancelled.
    pub(crate) reason: CancellationReason,
    /// The `order.cancelled` event that said so (`None` in rows older than its column).
    pub(crate) cause: Option<EventId>,
}

/// The cancellation of the order while its charge was in flight, if there was one.
pub(crate) fn cancellation_requested(
    tx: &Conn<'_>,
    order_id: OrderId,
) -> Result<Option<CancellationRequest>> {
    let flagged = tx
        .query_row(
            "SELECT cancel_reason, cancel_causation_id FROM payments WHERE order_id = ?1",
            params![order_id],
            |row| {
                Ok((
                    row.get::<Option<String>>(0)?,
                    row.get::<Option<EventId>>(1)?,
                ))
            },
        )
        .optional()?;
    let Some((Some(reason), cause)) = flagged else {
        return Ok(None);
    };
    Ok(Some(CancellationRequest {
        reason: parse_reason(&reason)?,
        cause,
    }))
}
