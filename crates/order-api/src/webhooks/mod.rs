//! Webhooks to the client: an order placed with a `callback_url` is announced to that URL when
//! its saga ends, signed with the client's secret (Standard Webhooks), retried with exponential
//! backoff, logged per attempt (`GET /api/orders/{id}/deliveries`), and dead-lettered after the
//! last attempt; an operator may send a dead-lettered one again ([`retry`]).
//!
//! The delivery is recorded in the same transaction as the terminal status, so a crash between
//! the two cannot lose it; the [`deliverer`] sends it afterwards, at least once.

mod address;
mod client;
pub mod dead_letter;
pub mod deliverer;
mod failed;
mod in_flight;
mod resolver;
mod retry;
pub mod target;
#[cfg(test)]
mod test_server;

use serde::Serialize;

use events::OrderId;
use platform::db::Migration;
use platform::params;
use platform::sql::{Conn, OptionalExtension, Result, Row};

use crate::store::HistoryEntry;

pub(crate) use dead_letter::MIGRATION as DEAD_LETTER_MIGRATION;
pub(crate) use failed::{FailedDelivery, MIGRATION as FAILED_MIGRATION, count_failed, failed};
pub(crate) use retry::{MIGRATION as RETRY_MIGRATION, Retried, retry};

pub(crate) const MIGRATION: Migration = Migration::new(
    "order-api/webhooks/1",
    "
CREATE TABLE IF NOT EXISTS callbacks (
    order_id  TEXT PRIMARY KEY,
    url       TEXT NOT NULL,
    principal TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL,
    url             TEXT NOT NULL,
    principal       TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    finished_at     TEXT
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS webhook_attempts (
    delivery_id TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms REAL NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
",
);

/// Remembers where to announce `order_id`'s end.
pub(crate) fn subscribe(
    tx: &Conn<'_>,
    order_id: OrderId,
    url: &str,
    principal: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO callbacks (order_id, url, principal) VALUES (?1, ?2, ?3)",
        params![order_id, url, principal],
    )?;
    Ok(())
}

/// Where an order's end is announced, and to whom (whose secret signs it).
#[derive(Debug)]
struct Callback {
    url: String,
    principal: String,
}

impl Callback {
    /// Reads a row of `callbacks` selected as `url, principal`.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            url: row.get(0)?,
            principal: row.get(1)?,
        })
    }
}

/// If the order has a callback and `entry` ends its saga, queues the webhook (in `tx`).
///
/// Called only by the transaction that made the terminal transition, which happens once per
/// order (see [`crate::store::record_transition`]), so each order's end is queued once.
pub(crate) fn enqueue_if_subscribed(tx: &Conn<'_>, entry: &HistoryEntry) -> Result<()> {
    if !entry.status.is_terminal() {
        return Ok(());
    }
    let callback = tx
        .query_row(
            "SELECT url, principal FROM callbacks WHERE order_id = ?1",
            params![entry.order_id],
            Callback::from_row,
        )
        .optional()?;
    let Some(Callback { url, principal }) = callback else {
        return Ok(());
    };
    let event_type = format!("order.{}", entry.status.as_str());
    let payload = serde_json::json!({
        "type": event_type,
        "timestamp": platform::time::format(entry.at),
        "data": {
            "order_id": entry.order_id,
            "status": entry.status.as_str(),
            "reason": entry.reason.map(|reason| reason.as_str()),
        },
    })
    .to_string();
    let now = tx.now();
    tx.execute(
        "INSERT INTO webhook_deliveries (id, order_id, url, principal, event_type, payload, status, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
        params![
            format!("msg_{}", uuid::Uuid::now_v7().simple()),
            entry.order_id,
            url,
            principal,
            event_type,
            payload,
            now
        ],
    )?;
    Ok(())
}

/// One delivery with its attempts, for `GET /api/orders/{id}/deliveries`.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    id: String,
    event_type: String,
    url: String,
    status: String,
    attempts: Vec<AttemptView>,
}

/// One attempt.
#[derive(Debug, Serialize)]
pub struct AttemptView {
    attempt: i64,
    at: String,
    status_code: Option<i64>,
    /// Why it failed, as a class (`refused_target`, `connect_failed`, `timeout`,
    /// `http_status`, `no_secret`): see [`client::FailureClass`].
    error: Option<String>,
    duration_ms: f64,
}

impl DeliveryView {
    /// Reads a row of `webhook_deliveries` selected as `id, event_type, url, status`; the
    /// attempts are read by their own statement.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            event_type: row.get(1)?,
            url: row.get(2)?,
            status: row.get(3)?,
            attempts: Vec::new(),
        })
    }
}

impl AttemptView {
    /// Reads a row of `webhook_attempts` selected as
    /// `attempt, at, status_code, error, duration_ms`.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            attempt: row.get(0)?,
            at: platform::time::format(row.get(1)?),
            status_code: row.get(2)?,
            error: row.get::<Option<String>>(3)?.map(|text| coarse(&text)),
            duration_ms: row.get(4)?,
        })
    }
}

/// Every delivery of `order_id`, oldest first.
pub(crate) fn deliveries(conn: &Conn<'_>, order_id: OrderId) -> Result<Vec<DeliveryView>> {
    let mut views = conn.query_map(
        "SELECT id, event_type, url, status FROM webhook_deliveries WHERE order_id = ?1 ORDER BY created_at, id",
        params![order_id],
        DeliveryView::from_row,
    )?;
    for view in &mut views {
        view.attempts = conn.query_map(
            "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts WHERE delivery_id = ?1 ORDER BY attempt",
            params![view.id],
            AttemptView::from_row,
        )?;
    }
    Ok(views)
}

/// The class of a stored attempt error. Attempts recorded before errors were classified hold
/// the client's error text, which may describe our network; they are shown by class too.
fn coarse(stored: &str) -> String {
    let class = client::FailureClass::ALL
        .into_iter()
        .find(|class| class.as_str() == stored)
        .unwrap_or(if stored.starts_with("answered ") {
            client::FailureClass::HttpStatus
        } else if stored.contains("internal address") || stored.contains("cannot resolve") {
            client::FailureClass::RefusedTarget
        } else if stored.contains("no webhook secret") {
            client::FailureClass::NoSecret
        } else {
            client::FailureClass::ConnectFailed
        });
    class.as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::coarse;

    #[test]
    fn stored_errors_are_shown_by_class_only() {
        for (stored, shown) in [
            ("timeout", "timeout"),
            ("refused_target", "refused_target"),
            ("answered 503", "http_status"),
            (
                "db.internal resolves to an internal address (10.0.0.5)",
                "refused_target",
            ),
            (
                "cannot resolve db.internal: failed to lookup",
                "refused_target",
            ),
            (
                "error sending request: tcp connect error: Connection refused",
                "connect_failed",
            ),
            ("no webhook secret for alice", "no_secret"),
        ] {
            assert_eq!(coarse(stored), shown, "{stored}");
        }
    }
}
