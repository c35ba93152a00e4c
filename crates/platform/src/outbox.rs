//! The transactional outbox: events are written in the same transaction as the state change that
//! caused them, then published by a relay.
//!
//! This is how a service changes its database and publishes an event without a distributed
//! transaction (which Kafka cannot take part in): if the transaction commits, the event will be
//! published — after a crash, by the next relay run; if it rolls back, the event never existed.
//! A row is deleted only after the broker acknowledged it (delivery report), so publishing is at
//! least once, and consumers deduplicate by event id (see [`crate::inbox`]).

use std::time::Duration;

use futures::future::join_all;
use rusqlite::{Transaction, params};
use tokio_util::sync::CancellationToken;

use events::Envelope;

use crate::Db;
use crate::db::now_text;
use crate::kafka::{EventProducer, OutgoingMessage};

pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    topic       TEXT NOT NULL,
    msg_key     TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    payload     BLOB NOT NULL,
    created_at  TEXT NOT NULL
);
";

/// Queues `envelope` for publication on its kind's topic, inside the caller's transaction.
pub fn enqueue(tx: &Transaction<'_>, envelope: &Envelope) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO outbox (event_id, topic, msg_key, event_type, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            envelope.meta.id.to_string(),
            envelope.kind().topic().name(),
            envelope.key(),
            envelope.kind().type_name(),
            envelope.encode(),
            now_text(),
        ],
    )?;
    Ok(())
}

/// How many rows wait to be published (the backlog).
pub fn backlog(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))
}

/// Tuning of the relay.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Most rows published per round; bounds memory and the size of the delete.
    pub batch_size: usize,
    /// How often to look at the table when no commit woke the relay (covers rows written by a
    /// previous run of the process, or by another process).
    pub idle_poll: Duration,
    /// Longest pause after a failed publish before trying again.
    pub max_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            idle_poll: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
        }
    }
}

struct Row {
    id: i64,
    message: OutgoingMessage,
}

/// Publishes outbox rows in insertion order until `shutdown`, then publishes what is left
/// (bounded by the producer's timeout) and returns.
pub async fn run_relay(
    db: Db,
    producer: EventProducer,
    config: RelayConfig,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let stopping = shutdown.is_cancelled();
        match relay_once(&db, &producer, config.batch_size).await {
            Ok(RoundOutcome {
                published,
                failed: 0,
            }) => {
                backoff = Duration::from_millis(50);
                if published > 0 {
                    continue;
                }
                if stopping {
                    return;
                }
                tokio::select! {
                    () = db.committed() => {}
                    () = tokio::time::sleep(config.idle_poll) => {}
                    () = shutdown.cancelled() => {}
                }
            }
            Ok(RoundOutcome { published, failed }) => {
                tracing::warn!(
                    published,
                    failed,
                    "Some outbox events were not acknowledged; retrying."
                );
                if stopping {
                    return;
                }
                pause(&shutdown, backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
            Err(error) => {
                tracing::error!(%error, "Could not read or update the outbox.");
                if stopping {
                    return;
                }
                pause(&shutdown, backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = shutdown.cancelled() => {}
    }
}

struct RoundOutcome {
    published: usize,
    failed: usize,
}

/// One round: read a batch, send it all, await every delivery report, delete what was
/// acknowledged. Sending the batch at once lets the producer pipeline it; the idempotent
/// producer keeps per-partition order across its own retries.
async fn relay_once(
    db: &Db,
    producer: &EventProducer,
    batch_size: usize,
) -> rusqlite::Result<RoundOutcome> {
    let limit = i64::try_from(batch_size).unwrap_or(i64::MAX);
    let rows: Vec<Row> = db
        .call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, topic, msg_key, payload FROM outbox ORDER BY id LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit], |row| {
                Ok(Row {
                    id: row.get(0)?,
                    message: OutgoingMessage {
                        topic: row.get(1)?,
                        key: row.get(2)?,
                        payload: row.get(3)?,
                    },
                })
            })?;
            rows.collect()
        })
        .await?;
    if rows.is_empty() {
        return Ok(RoundOutcome {
            published: 0,
            failed: 0,
        });
    }
    let results = join_all(rows.iter().map(|row| producer.send(&row.message))).await;
    let mut delivered = Vec::with_capacity(rows.len());
    let mut failed = 0;
    for (row, result) in rows.iter().zip(results) {
        match result {
            Ok(()) => delivered.push(row.id),
            Err(error) => {
                failed += 1;
                tracing::debug!(%error, outbox_id = row.id, "Outbox event not acknowledged.");
            }
        }
    }
    let published = delivered.len();
    db.call(move |conn| {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
            for id in delivered {
                stmt.execute(params![id])?;
            }
        }
        tx.commit()
    })
    .await?;
    Ok(RoundOutcome { published, failed })
}
