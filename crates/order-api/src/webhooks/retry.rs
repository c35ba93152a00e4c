//! An operator's retry of a callback delivery that failed for good: it goes back to `pending`
//! with a fresh budget of attempts, keeping its id (the `webhook-id` receivers deduplicate by),
//! its payload and its principal (whose secret signs it).
//!
//! The attempts made before are kept in the delivery log; the budget counts from
//! `budget_start`, the attempts made when the retry was asked for. A retried delivery that
//! fails for good again is dead-lettered again: its copy is owed anew.

use platform::db::Migration;
use platform::params;
use platform::sql::{Conn, OptionalExtension, Result};

pub(crate) const MIGRATION: Migration = Migration::new(
    "order-api/webhooks/3",
    "ALTER TABLE webhook_deliveries ADD COLUMN budget_start INTEGER NOT NULL DEFAULT 0;",
);

/// What a retry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retried {
    /// The failed delivery is pending again, due now.
    Requeued,
    /// It was pending already: nothing changed.
    AlreadyPending,
    /// It was delivered already: nothing changed.
    AlreadyDelivered,
    /// No delivery has this id.
    NotFound,
}

impl Retried {
    /// The delivery's status after the retry (`None` when there is no such delivery).
    pub(crate) fn status(self) -> Option<&'static str> {
        match self {
            Retried::Requeued | Retried::AlreadyPending => Some("pending"),
            Retried::AlreadyDelivered => Some("delivered"),
            Retried::NotFound => None,
        }
    }
}

/// Moves the delivery `id` from `failed` back to `pending`, due now, with a fresh budget of
/// attempts; a delivery in any other state is left as it is (so asking twice changes nothing).
pub(crate) fn retry(tx: &Conn<'_>, id: &str) -> Result<Retried> {
    let requeued = tx.execute(
        "UPDATE webhook_deliveries
         SET status = 'pending', budget_start = attempts, next_attempt_at = ?2,
             finished_at = NULL, dead_lettered_at = NULL
         WHERE id = ?1 AND status = 'failed'",
        params![id, tx.now()],
    )?;
    if requeued == 1 {
        return Ok(Retried::Requeued);
    }
    let status = tx
        .query_row(
            "SELECT status FROM webhook_deliveries WHERE id = ?1",
            params![id],
            |row| row.get::<String>(0),
        )
        .optional()?;
    Ok(match status.as_deref() {
        None => Retried::NotFound,
        Some("delivered") => Retried::AlreadyDelivered,
        // `pending`; `failed` cannot be left here, as the update above took it.
        Some(_) => Retried::AlreadyPending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use events::OrderId;

    fn insert(conn: &Conn<'_>, id: &str, status: &str, attempts: u32) -> Result<()> {
        let now = conn.now();
        conn.execute(
            "INSERT INTO webhook_deliveries (id, order_id, url, principal, event_type, payload, status, attempts, next_attempt_at, created_at, finished_at, dead_lettered_at)
             VALUES (?1, ?2, 'http://hook', 'alice', 'order.confirmed', '{}', ?3, ?4, ?5, ?5, ?5, ?5)",
            params![id, OrderId::new(), status, attempts, now],
        )?;
        Ok(())
    }

    #[test]
    fn a_failed_delivery_is_requeued_once_with_a_fresh_budget() -> Result<()> {
        let (_scratch, db) = testing::scratch();
        let conn = db.conn();
        insert(&conn, "msg_failed", "failed", 3)?;
        insert(&conn, "msg_delivered", "delivered", 1)?;

        assert_eq!(retry(&conn, "msg_failed")?, Retried::Requeued);
        let row = conn.query_row(
            "SELECT status, attempts, budget_start, finished_at IS NULL, dead_lettered_at IS NULL
             FROM webhook_deliveries WHERE id = 'msg_failed'",
            &[],
            |row| {
                Ok((
                    row.get::<String>(0)?,
                    row.get::<i64>(1)?,
                    row.get::<i64>(2)?,
                    row.get::<bool>(3)?,
                    row.get::<bool>(4)?,
                ))
            },
        )?;
        // The attempts made stay in the log; the new budget counts from them.
        assert_eq!(row, ("pending".to_owned(), 3, 3, true, true));
        assert_eq!(
            super::super::deliverer::due(&conn, conn.now())?.len(),
            1,
            "due at once"
        );

        assert_eq!(retry(&conn, "msg_failed")?, Retried::AlreadyPending);
        assert_eq!(retry(&conn, "msg_delivered")?, Retried::AlreadyDelivered);
        assert_eq!(retry(&conn, "msg_missing")?, Retried::NotFound);
        Ok(())
    }
}
