//! Copies of webhooks that failed for good, in `orders.dlq`.
//!
//! The copy is owed from the moment the last attempt is recorded as `failed`, in that same
//! transaction, and paid when the broker acknowledges it (`dead_lettered_at` is then set). So a
//! copy cannot be lost to a broker that is down at that moment, or to a crash between the record
//! and the send: each round of the deliverer sends the copies still owed. A crash between the
//! acknowledgement and its record sends one twice; a copy is for people and tools that look at
//! it, and its `webhook.id` header says which delivery it is.
//!
//! The copy's topic, origin and delivery header are `dead_letters::callback`'s: the readers of
//! dead letters (`shopctl dlq`, the operator console) recognise a copy by them.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use rdkafka::message::OwnedHeaders;

use dead_letters::callback::{DELIVERY_ID_HEADER, ORIGIN, TOPIC};
use events::OrderId;
use platform::Db;
use platform::db::Migration;
use platform::kafka::{EventProducer, OutgoingMessage, dead_letter_headers as h};
use platform::params;
use platform::sql::{Conn, Result, Row};

/// Most copies sent per round; they are sent together.
const BATCH: i64 = 20;

/// How long a round waits for the broker to take its copies. The producer itself would keep
/// trying for its `message.timeout.ms` (30 s), holding up the webhooks due meanwhile, which do
/// not need the broker; a copy not acknowledged in time stays owed, and is sent again.
const SEND_WAIT: Duration = Duration::from_secs(2);

pub(crate) const MIGRATION: Migration = Migration::new(
    "order-api/webhooks/2",
    "
ALTER TABLE webhook_deliveries ADD COLUMN dead_lettered_at TEXT;
-- Failed before copies were recorded: copied at the time, or lost then.
UPDATE webhook_deliveries SET dead_lettered_at = finished_at WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS webhook_deliveries_owed ON webhook_deliveries (finished_at)
    WHERE status = 'failed' AND dead_lettered_at IS NULL;
",
);

/// A failed delivery whose copy the broker has not acknowledged yet.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Owed {
    pub(super) id: String,
    order_id: OrderId,
    url: String,
    payload: String,
    attempts: u32,
    /// The last attempt's error (empty if its record is missing).
    error: String,
    /// When the last attempt failed (missing only in rows older than this column's use).
    failed_at: Option<DateTime<Utc>>,
}

impl Owed {
    /// Reads a row selected as `id, order_id, url, payload, attempts, error, finished_at`.
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            order_id: row.get(1)?,
            url: row.get(2)?,
            payload: row.get(3)?,
            attempts: row.get(4)?,
            error: row.get::<Option<String>>(5)?.unwrap_or_default(),
            failed_at: row.get(6)?,
        })
    }
}

/// The oldest copies still owed.
pub(super) fn owed(conn: &Conn<'_>) -> Result<Vec<Owed>> {
    conn.query_map(
        "SELECT d.id, d.order_id, d.url, d.payload, d.attempts, a.error, d.finished_at
         FROM webhook_deliveries d
         LEFT JOIN webhook_attempts a ON a.delivery_id = d.id AND a.attempt = d.attempts
         WHERE d.status = 'failed' AND d.dead_lettered_at IS NULL
         ORDER BY d.finished_at LIMIT ?1",
        params![BATCH],
        Owed::from_row,
    )
}

/// Records that the broker acknowledged the copies of `ids`, at `now` (the transaction's time).
pub(super) fn paid(tx: &Conn<'_>, ids: &[String], now: DateTime<Utc>) -> Result<()> {
    for id in ids {
        tx.execute(
            "UPDATE webhook_deliveries SET dead_lettered_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
    }
    Ok(())
}

/// Sends the copies still owed and records those acknowledged; `true` if any was recorded (so
/// that a broker that refuses them does not keep the deliverer from pausing).
pub(super) async fn send_owed(db: &Db, producer: &EventProducer) -> bool {
    let owed = match db.read(owed).await {
        Ok(owed) => owed,
        Err(error) => {
            tracing::warn!(%error, "Could not read the webhooks owed to the dead-letter topic.");
            return false;
        }
    };
    if owed.is_empty() {
        return false;
    }
    let sent = join_all(owed.iter().map(|copy| async move {
        let (message, headers) = message(copy);
        let sent =
            tokio::time::timeout(SEND_WAIT, producer.send_with_headers(&message, headers)).await;
        match sent {
            Ok(Ok(())) => Some(copy.id.clone()),
            Ok(Err(error)) => {
                tracing::warn!(%error, order_id = %copy.order_id, delivery = %copy.id, "Could not dead-letter a failed webhook; will try again.");
                None
            }
            Err(_) => {
                tracing::warn!(order_id = %copy.order_id, delivery = %copy.id, "The broker did not take a failed webhook's copy in time; will try again.");
                None
            }
        }
    }))
    .await;
    let paid_ids: Vec<String> = sent.into_iter().flatten().collect();
    if paid_ids.is_empty() {
        return false;
    }
    match db
        .transaction(move |tx| paid(tx, &paid_ids, tx.now()))
        .await
    {
        Ok(()) => true,
        Err(error) => {
            // Sent but not recorded: sent again next round.
            tracing::warn!(%error, "Could not record dead-lettered webhooks.");
            false
        }
    }
}

/// The copy: the payload as it was to be delivered, with `dlq.*` headers saying why.
fn message(copy: &Owed) -> (OutgoingMessage, OwnedHeaders) {
    let attempts = copy.attempts.to_string();
    let failed_at = copy
        .failed_at
        .map(platform::time::format)
        .unwrap_or_default();
    let pairs = [
        (h::ORIGINAL_TOPIC, ORIGIN),
        (h::ERROR_CLASS, "webhook"),
        (h::ERROR_MESSAGE, copy.error.as_str()),
        (h::ATTEMPTS, attempts.as_str()),
        (h::LAST_FAILURE, failed_at.as_str()),
        (h::SERVICE, "order-api"),
        ("webhook.url", copy.url.as_str()),
        (DELIVERY_ID_HEADER, copy.id.as_str()),
    ];
    let message = OutgoingMessage {
        topic: TOPIC.to_owned(),
        key: copy.order_id.to_string(),
        payload: copy.payload.as_bytes().to_vec(),
        trace: HashMap::new(),
        cloud_event: None,
    };
    (message, platform::kafka::headers(&pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn insert(conn: &Conn<'_>, id: &str, status: &str, attempts: u32) -> Result<()> {
        let now = conn.now();
        conn.execute(
            "INSERT INTO webhook_deliveries (id, order_id, url, principal, event_type, payload, status, attempts, next_attempt_at, created_at, finished_at)
             VALUES (?1, ?2, 'http://hook', 'alice', 'order.confirmed', '{}', ?3, ?4, ?5, ?5, ?5)",
            params![id, OrderId::new(), status, attempts, now],
        )?;
        for attempt in 1..=attempts {
            let error = format!("answered 50{attempt}");
            conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms)
                 VALUES (?1, ?2, ?3, 500, ?4, 1.0)",
                params![id, attempt, now, error],
            )?;
        }
        Ok(())
    }

    #[test]
    fn a_failed_delivery_owes_its_copy_until_the_broker_took_it() -> Result<()> {
        let (_scratch, db) = testing::scratch();
        let conn = db.conn();
        insert(&conn, "msg_failed", "failed", 3)?;
        insert(&conn, "msg_delivered", "delivered", 1)?;
        insert(&conn, "msg_pending", "pending", 2)?;

        let owed_now = owed(&conn)?;
        assert_eq!(owed_now.len(), 1, "{owed_now:?}");
        let copy = &owed_now[0];
        assert_eq!(copy.id, "msg_failed");
        assert_eq!(copy.attempts, 3);
        assert_eq!(copy.error, "answered 503", "the last attempt's error");
        // Until it is recorded as paid, every round finds it again.
        assert_eq!(owed(&conn)?, owed_now);

        paid(&conn, &["msg_failed".to_owned()], conn.now())?;
        assert!(owed(&conn)?.is_empty());
        Ok(())
    }

    fn failed_at() -> DateTime<Utc> {
        platform::time::parse("2026-01-01T00:00:01Z").expect("a valid time")
    }

    #[test]
    fn the_copy_keeps_the_payload_and_says_why() {
        let order_id = OrderId::new();
        let copy = Owed {
            id: "msg_1".into(),
            order_id,
            url: "https://hook.example/x".into(),
            payload: "{\"status\":\"confirmed\"}".into(),
            attempts: 5,
            error: "answered 500".into(),
            failed_at: Some(failed_at()),
        };
        let (message, headers) = message(&copy);
        assert_eq!(message.topic, "orders.dlq");
        assert_eq!(message.key, order_id.to_string());
        assert_eq!(message.payload, copy.payload.as_bytes());
        let header = |name: &str| {
            use rdkafka::message::Headers;
            headers
                .iter()
                .find(|header| header.key == name)
                .and_then(|header| header.value)
                .map(|value| String::from_utf8_lossy(value).into_owned())
        };
        assert_eq!(header(h::ERROR_CLASS).as_deref(), Some("webhook"));
        assert_eq!(header(h::ERROR_MESSAGE).as_deref(), Some("answered 500"));
        assert_eq!(header(h::ATTEMPTS).as_deref(), Some("5"));
        assert_eq!(
            header(h::LAST_FAILURE).as_deref(),
            Some("2026-01-01T00:00:01.000000Z")
        );
        assert_eq!(header("webhook.id").as_deref(), Some("msg_1"));
    }
}
