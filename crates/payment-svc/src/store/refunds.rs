//! The `refunds` table: at most one refund per order, from its request to its outcome.

use chrono::{DateTime, Utc};
use events::{CancellationReason, EventId, Money, OrderId};
use platform::params;
use platform::sql::{Conn, OptionalExtension, Result, Row};

use super::{current_traceparent, parse_reason};

/// A refund row, with what its requests repeat from the payment.
#[derive(Clone, Debug)]
pub(crate) struct Refund {
    pub(crate) order_id: OrderId,
    pub(crate) amount: Money,
    pub(crate) charge_id: String,
    pub(crate) reason: CancellationReason,
    /// The payment's webhook URL: the refund's outcome goes where the charge's went.
    pub(crate) webhook_url: Option<String>,
    /// The event that asked for the refund (`stock.rejected`, `order.cancelled`), named as the
    /// cause of `payment.refunded`.
    pub(crate) causation_id: Option<EventId>,
}

/// The columns [`Refund::from_row`] reads, in its order, from `refunds r JOIN payments p`.
macro_rules! refund_columns {
    () => {
        "r.order_id, r.amount_minor, r.currency, p.charge_id, r.reason, p.webhook_url, r.causation_id"
    };
}

impl Refund {
    /// Reads a row selected with `refund_columns!()`. A refund is only ever recorded for a
    /// payment with a charge id, so a missing one makes the row corrupt.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            order_id: row.get(0)?,
            amount: Money::new(row.get(1)?, row.get(2)?),
            charge_id: row.get(3)?,
            reason: parse_reason(&row.get::<String>(4)?)?,
            webhook_url: row.get(5)?,
            causation_id: row.get(6)?,
        })
    }
}

/// Records the refund of a payment that was just moved to `refunding`; `false` if the order
/// already has one.
pub(crate) fn insert_refund(tx: &Conn<'_>, refund: &Refund) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO refunds (order_id, amount_minor, currency, reason, status, traceparent, created_at, updated_at, causation_id)
         VALUES (?1, ?2, ?3, ?4, 'refunding', ?5, ?6, ?6, ?7)
         ON CONFLICT (order_id) DO NOTHING",
        params![
            refund.order_id,
            refund.amount.amount_minor,
            refund.amount.currency,
            refund.reason.as_str(),
            current_traceparent(),
            tx.now(),
            refund.causation_id
        ],
    )?;
    Ok(inserted == 1)
}

/// A refund that has just been completed: what `payment.refunded` says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CompletedRefund {
    /// Why the money went back.
    pub(crate) reason: CancellationReason,
    /// The event that asked for the refund (`None` in rows older than its column).
    pub(crate) cause: Option<EventId>,
}

/// Completes a refund in `refunding`; `None` if it was not refunding.
pub(crate) fn complete_refund(
    tx: &Conn<'_>,
    order_id: OrderId,
    refund_id: &str,
) -> Result<Option<CompletedRefund>> {
    let completed = tx
        .query_row(
            "UPDATE refunds SET status = 'refunded', refund_id = ?2, updated_at = ?3
             WHERE order_id = ?1 AND status = 'refunding' RETURNING reason, causation_id",
            params![order_id, refund_id, tx.now()],
            |row| Ok((row.get::<String>(0)?, row.get::<Option<EventId>>(1)?)),
        )
        .optional()?;
    completed
        .map(|(reason, cause)| {
            Ok(CompletedRefund {
                reason: parse_reason(&reason)?,
                cause,
            })
        })
        .transpose()
}

/// Notes that a refund request was sent, if the refund is still waiting for its outcome.
pub(crate) fn mark_refund_submitted(tx: &Conn<'_>, order_id: OrderId) -> Result<()> {
    tx.execute(
        "UPDATE refunds SET submissions = submissions + 1, last_submitted_at = ?2
         WHERE order_id = ?1 AND status = 'refunding'",
        params![order_id, tx.now()],
    )?;
    Ok(())
}

/// Refunds still `refunding` whose last request is older than `before` (or never sent), each
/// read on its own (see [`super::stale_charges`]).
pub(crate) fn stale_refunds(
    conn: &Conn<'_>,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Result<Refund>>> {
    conn.query_map(
        concat!(
            "SELECT ",
            refund_columns!(),
            " FROM refunds r JOIN payments p ON p.order_id = r.order_id
             WHERE r.status = 'refunding' AND COALESCE(r.last_submitted_at, r.created_at) < ?1
             ORDER BY r.created_at LIMIT ?2"
        ),
        params![before, limit],
        |row| Ok(Refund::from_row(row)),
    )
}
