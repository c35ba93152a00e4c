//! Callbacks that failed for good, as the operator console lists them: each can be sent again
//! ([`super::retry`]), which keeps its `webhook-id`, so a receiver that got it after all drops
//! the repeat.

use serde::Serialize;

use events::OrderId;
use platform::db::Migration;
use platform::params;
use platform::sql::{Conn, Result, Row};

/// Failed deliveries are few among many delivered ones: a partial index finds and counts them
/// without reading the others.
pub(crate) const MIGRATION: Migration = Migration::new(
    "order-api/webhooks/4",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_failed ON webhook_deliveries (finished_at)
        WHERE status = 'failed';",
);

/// One failed delivery.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FailedDelivery {
    id: String,
    order_id: OrderId,
    principal: String,
    url: String,
    event_type: String,
    attempts: i64,
    /// When the last attempt failed.
    finished_at: Option<String>,
    /// The last attempt's error class and HTTP status, if it got one.
    last_error: Option<String>,
    last_status_code: Option<i64>,
}

impl FailedDelivery {
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            order_id: row.get(1)?,
            principal: row.get(2)?,
            url: row.get(3)?,
            event_type: row.get(4)?,
            attempts: row.get(5)?,
            finished_at: row
                .get::<Option<chrono::DateTime<chrono::Utc>>>(6)?
                .map(platform::time::format),
            last_error: row
                .get::<Option<String>>(7)?
                .map(|text| super::coarse(&text)),
            last_status_code: row.get(8)?,
        })
    }
}

/// The most recent failed deliveries, newest first, at most `limit`.
pub(crate) fn failed(conn: &Conn<'_>, limit: i64) -> Result<Vec<FailedDelivery>> {
    conn.query_map(
        "SELECT d.id, d.order_id, d.principal, d.url, d.event_type, d.attempts, d.finished_at, \
                a.error, a.status_code \
         FROM webhook_deliveries d \
         LEFT JOIN webhook_attempts a ON a.delivery_id = d.id AND a.attempt = d.attempts \
         WHERE d.status = 'failed' ORDER BY d.finished_at DESC LIMIT ?1",
        params![limit],
        FailedDelivery::from_row,
    )
}

/// How many deliveries failed for good and wait for an operator.
pub(crate) fn count_failed(conn: &Conn<'_>) -> Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'failed'",
        params![],
        |row| row.get(0),
    )
}
