//! An order's history: every status it went through, numbered per order, and the guarded
//! transition that appends to it (see the [module docs](super) for why it is guarded).

use chrono::{DateTime, Utc};

use events::{CancellationReason, EventId, OrderId};
use platform::params;
use platform::sql::{Conn, Dialect, OptionalExtension, Result, Row};

use crate::saga::OrderStatus;

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
    pub event_id: Option<EventId>,
    /// When: the time of the transaction that made the transition.
    pub at: DateTime<Utc>,
}

impl HistoryEntry {
    /// Reads a row of `order_history` selected as
    /// `order_id, seq, status, reason, cause, event_id, at`.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            order_id: row.get(0)?,
            seq: row.get(1)?,
            status: row.get(2)?,
            reason: super::reason(row.get(3)?)?,
            cause: row.get(4)?,
            event_id: row.get(5)?,
            at: row.get(6)?,
        })
    }
}

/// What a transaction that is about to move an order reads of it first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Locked {
    /// Where the order stands.
    pub(crate) status: OrderStatus,
    /// The latest history sequence number: the next entry is `last_seq + 1`.
    pub(crate) last_seq: i64,
    /// When it was accepted (its first history entry's time): from the same row, so that a
    /// transition that ends the saga can tell its duration without reading the history again.
    pub(crate) accepted_at: DateTime<Utc>,
}

/// The order's status, latest history sequence number and acceptance time, if the order
/// exists, for a transaction that is about to move it.
///
/// On Postgres the order's row stays locked until the transaction ends: another replica's
/// transition of the same order waits, then reads the status this one leaves. The sequence
/// number is read by a second statement on purpose: at `READ COMMITTED` a statement that waited
/// for a row lock sees the new version of the locked row, but the rest of that statement still
/// reads from its older snapshot, which may lack the history the other transaction added.
pub(crate) fn status_for_update(tx: &Conn<'_>, order_id: OrderId) -> Result<Option<Locked>> {
    let sql = match tx.dialect() {
        Dialect::Sqlite => "SELECT status, created_at FROM orders WHERE order_id = ?1",
        Dialect::Postgres => "SELECT status, created_at FROM orders WHERE order_id = ?1 FOR UPDATE",
    };
    let Some((status, accepted_at)) = tx
        .query_row(sql, params![order_id], |row| {
            Ok((row.get::<OrderStatus>(0)?, row.get::<DateTime<Utc>>(1)?))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let last_seq = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM order_history WHERE order_id = ?1",
        params![order_id],
        |row| row.get::<i64>(0),
    )?;
    Ok(Some(Locked {
        status,
        last_seq,
        accepted_at,
    }))
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
            entry.order_id,
            entry.status,
            entry.reason.map(CancellationReason::as_str),
            entry.at,
            from
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
/// [`crate::status_feed::follow_other_replicas`]).
pub(crate) const HISTORY_CHANNEL: &str = "order_history";

pub(super) fn insert_history(tx: &Conn<'_>, entry: &HistoryEntry) -> Result<()> {
    platform::db::notify::announce(
        tx,
        HISTORY_CHANNEL,
        &format!("{}:{}", entry.order_id, entry.seq),
    )?;
    tx.execute(
        "INSERT INTO order_history (order_id, seq, status, reason, cause, event_id, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            entry.order_id,
            entry.seq,
            entry.status,
            entry.reason.map(CancellationReason::as_str),
            entry.cause,
            entry.event_id,
            entry.at,
        ],
    )?;
    Ok(())
}

/// The history entries of `order_id` with `seq > after`, in order.
pub(crate) fn history_after(
    conn: &Conn<'_>,
    order_id: OrderId,
    after: i64,
) -> Result<Vec<HistoryEntry>> {
    conn.query_map(
        "SELECT order_id, seq, status, reason, cause, event_id, at FROM order_history
         WHERE order_id = ?1 AND seq > ?2 ORDER BY seq",
        params![order_id, after],
        HistoryEntry::from_row,
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
    at: DateTime<Utc>,
) -> HistoryEntry {
    HistoryEntry {
        order_id,
        seq,
        status,
        reason,
        cause: cause.to_owned(),
        event_id: Some(event_id),
        at,
    }
}
