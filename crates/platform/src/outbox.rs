//! The transactional outbox: events are written in the same transaction as the state change that
//! caused them, then published by a relay.
//!
//! This is how a service changes its database and publishes an event without a distributed
//! transaction (which Kafka cannot take part in): if the transaction commits, the event will be
//! published — after a crash, by the next relay run; if it rolls back, the event never existed.
//! A row is deleted only after the broker acknowledged it (delivery report), so publishing is at
//! least once, and consumers deduplicate by event id (see [`crate::inbox`]).
//!
//! Each message carries the CloudEvents document as its value and the event's `specversion`,
//! `id`, `source` and `type` as `ce_` headers (see [`crate::kafka::cloudevents`]); the row keeps
//! them in columns so the relay never parses a payload.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use events::Envelope;

use crate::db::Migration;
use crate::db::lease::Lease;
use crate::kafka::{CloudEventHeaders, EventProducer, OutgoingMessage};
use crate::metrics as m;
use crate::params;
use crate::sql::{Conn, Dialect, Result};
use crate::{Db, telemetry};

pub(crate) const MIGRATION: Migration = Migration::new(
    "platform/outbox/1",
    "
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    topic       TEXT NOT NULL,
    msg_key     TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    payload     BLOB NOT NULL,
    -- Trace context of the transaction that wrote the row: the publish span continues it.
    traceparent TEXT,
    tracestate  TEXT,
    created_at  TEXT NOT NULL
);
",
);

/// The producing service of each row, for the `ce_source` header. Rows written before this
/// column existed have none; the relay reads it from their payload.
pub(crate) const MIGRATION_SOURCE: Migration = Migration::new(
    "platform/outbox/2",
    "ALTER TABLE outbox ADD COLUMN source TEXT;",
);

/// The notification channel that wakes the relay of whichever replica holds it.
const CHANNEL: &str = "outbox";

/// Queues `envelope` for publication on its kind's topic, inside the caller's transaction.
///
/// The current span's trace context is stored with the row and written into the envelope's
/// `traceparent`, so the trace survives until the relay publishes — even across a restart.
pub fn enqueue(tx: &Conn<'_>, envelope: &Envelope) -> Result<()> {
    let mut trace = telemetry::inject(&tracing::Span::current());
    let traceparent = trace.remove("traceparent");
    let tracestate = trace.remove("tracestate");
    let payload = if traceparent.is_some() {
        let mut traced = envelope.clone();
        traced.meta.traceparent.clone_from(&traceparent);
        traced.meta.tracestate.clone_from(&tracestate);
        traced.encode()
    } else {
        envelope.encode()
    };
    // Wakes the relay if another replica holds it (Postgres folds the repeats of one
    // transaction into one notification).
    crate::db::notify::announce(tx, CHANNEL, "")?;
    tx.execute(
        "INSERT INTO outbox (event_id, topic, msg_key, event_type, payload, traceparent, tracestate, created_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
        envelope.meta.id,
        envelope.kind().topic().name(),
        envelope.key(),
        envelope.kind().type_name(),
        payload,
        traceparent,
        tracestate,
        tx.now(),
        envelope.meta.source,
        ],
    )?;
    Ok(())
}

/// How many rows wait to be published (the backlog).
pub fn backlog(conn: &Conn<'_>) -> Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM outbox", &[], |row| row.get(0))
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
    created_at: String,
    /// The CloudEvents `type`, for the metrics' labels.
    event_type: String,
    message: OutgoingMessage,
}

/// The `source` of an envelope written before the `source` column: read from its payload.
fn source_in(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Source {
        source: String,
    }
    serde_json::from_slice::<Source>(payload)
        .ok()
        .map(|envelope| envelope.source)
}

/// Publishes outbox rows in insertion order until `shutdown`, then publishes what is left
/// (bounded by the producer's timeout) and returns.
///
/// Replicas sharing a Postgres database run one relay at a time: the holder of the
/// `outbox-relay` [`Lease`] publishes every replica's rows, in commit order, and the others
/// stand by to take over when it stops renewing. The others' commits wake it through a Postgres
/// notification; in case one is missed, it also looks at the table every 100 ms there.
pub async fn run_relay(
    db: Db,
    producer: EventProducer,
    config: RelayConfig,
    shutdown: CancellationToken,
) {
    let lease = match Lease::new(&db, "outbox-relay") {
        Ok(lease) => lease,
        Err(error) => {
            tracing::error!(%error, "The outbox relay cannot start.");
            return;
        }
    };
    let idle_poll = match db.dialect() {
        Dialect::Sqlite => config.idle_poll,
        Dialect::Postgres => config.idle_poll.min(Duration::from_millis(100)),
    };
    let mut others = crate::db::notify::listen(&db, CHANNEL);
    let mut backoff = Duration::from_millis(50);
    loop {
        let stopping = shutdown.is_cancelled();
        // One look at the table answers every wake-up waiting so far.
        if let Some(receiver) = others.as_mut() {
            while receiver.try_recv().is_ok() {}
        }
        match lease.held().await {
            Ok(true) => {}
            Ok(false) => {
                // Another replica publishes; keep the backlog estimate that sheds load honest.
                let mark = db.outbox_mark();
                if let Ok(rows) = db.read(backlog).await {
                    db.set_outbox_backlog(rows, mark);
                }
                if stopping {
                    return;
                }
                pause(&shutdown, lease.ttl() / 4).await;
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "Could not renew the outbox relay's lease.");
                if stopping {
                    return;
                }
                pause(&shutdown, backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
                continue;
            }
        }
        match relay_once(&db, &producer, config.batch_size).await {
            Ok(RoundOutcome {
                published,
                failed: 0,
                ..
            }) => {
                backoff = Duration::from_millis(50);
                if published > 0 {
                    continue;
                }
                if stopping {
                    if let Err(error) = lease.release().await {
                        tracing::warn!(%error, "Could not give the outbox relay's lease up.");
                    }
                    return;
                }
                tokio::select! {
                    () = db.committed() => {}
                    Some(_) = next_notice(&mut others) => {}
                    () = tokio::time::sleep(idle_poll) => {}
                    () = shutdown.cancelled() => {}
                }
            }
            Ok(RoundOutcome {
                published,
                failed,
                first_error,
            }) => {
                tracing::warn!(
                    published,
                    failed,
                    error = first_error.as_deref().unwrap_or("unknown"),
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

/// The next notice of another replica's commit; never, without a listener.
async fn next_notice(
    notices: &mut Option<tokio::sync::mpsc::UnboundedReceiver<crate::db::notify::Notice>>,
) -> Option<crate::db::notify::Notice> {
    match notices {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
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
    /// Why the first unacknowledged event failed: the one reason a round's warning names.
    first_error: Option<String>,
}

/// One round: read a batch, send it all, await every delivery report, delete what was
/// acknowledged. Sending the batch at once lets the producer pipeline it; the idempotent
/// producer keeps per-partition order across its own retries.
async fn relay_once(db: &Db, producer: &EventProducer, batch_size: usize) -> Result<RoundOutcome> {
    let limit = i64::try_from(batch_size).unwrap_or(i64::MAX);
    let mark = db.outbox_mark();
    let rows: Vec<Row> = db
        .read(move |conn| {
            conn.query_map(
                "SELECT id, topic, msg_key, payload, traceparent, tracestate, event_type, created_at,
                        event_id, source
                 FROM outbox ORDER BY id LIMIT ?1",
                params![limit],
                |row| {
                let mut trace = HashMap::new();
                if let Some(traceparent) = row.get::<Option<String>>(4)? {
                    trace.insert("traceparent".to_owned(), traceparent);
                }
                if let Some(tracestate) = row.get::<Option<String>>(5)? {
                    trace.insert("tracestate".to_owned(), tracestate);
                }
                let event_type: String = row.get(6)?;
                let payload: Vec<u8> = row.get(3)?;
                let id: String = row.get(8)?;
                let source = row.get::<Option<String>>(9)?.or_else(|| source_in(&payload));
                let cloud_event = source.map(|source| CloudEventHeaders {
                    id,
                    source,
                    event_type: event_type.clone(),
                });
                Ok(Row {
                    id: row.get(0)?,
                    created_at: row.get(7)?,
                    event_type,
                    message: OutgoingMessage {
                        topic: row.get(1)?,
                        key: row.get(2)?,
                        payload,
                        trace,
                        cloud_event,
                    },
                })
                },
            )
        })
        .await?;
    if rows.is_empty() {
        db.set_outbox_backlog(0, mark);
        return Ok(RoundOutcome {
            published: 0,
            failed: 0,
            first_error: None,
        });
    }
    // A round waits for every acknowledgement before the next, so a lone row may skip the
    // producer's linger: there is nothing to batch it with, and the idle saga's every hop would
    // wait the linger out (see docs/performance.md).
    let results = match rows.as_slice() {
        [row] => vec![producer.send_alone(&row.message).await],
        rows => join_all(rows.iter().map(|row| producer.send(&row.message))).await,
    };
    let mut delivered = Vec::with_capacity(rows.len());
    let mut failed = 0;
    let mut first_error = None;
    let now = chrono::Utc::now();
    for (row, result) in rows.iter().zip(results) {
        let labels = [
            ("topic", row.message.topic.clone()),
            ("type", row.event_type.clone()),
        ];
        match result {
            Ok(()) => {
                delivered.push(row.id);
                metrics::counter!(
                    m::EVENTS_PRODUCED,
                    &[
                        labels[0].clone(),
                        labels[1].clone(),
                        ("outcome", "ok".into())
                    ]
                )
                .increment(1);
                if let Ok(created) = chrono::DateTime::parse_from_rfc3339(&row.created_at) {
                    let latency = (now - created.with_timezone(&chrono::Utc))
                        .to_std()
                        .unwrap_or_default();
                    metrics::histogram!(m::OUTBOX_PUBLISH_LATENCY).record(latency.as_secs_f64());
                }
            }
            Err(error) => {
                metrics::counter!(
                    m::EVENTS_PRODUCED,
                    &[
                        labels[0].clone(),
                        labels[1].clone(),
                        ("outcome", "error".into())
                    ]
                )
                .increment(1);
                failed += 1;
                first_error.get_or_insert_with(|| error.to_string());
                tracing::debug!(%error, outbox_id = row.id, "Outbox event not acknowledged.");
            }
        }
    }
    let published = delivered.len();
    // A write transaction like the handlers', so the delete joins their batches.
    let mark = db.outbox_mark();
    let remaining = db
        .transaction(move |tx| {
            for id in &delivered {
                tx.execute("DELETE FROM outbox WHERE id = ?1", params![*id])?;
            }
            backlog(tx)
        })
        .await?;
    db.set_outbox_backlog(remaining, mark);
    Ok(RoundOutcome {
        published,
        failed,
        first_error,
    })
}
