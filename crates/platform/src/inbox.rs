//! The inbox: which events a service has already handled.
//!
//! Kafka delivers at least once: after a crash, a rebalance or a producer retry the same event can
//! arrive again. Handlers apply an event with [`apply_once`]: the event id is recorded in the
//! same transaction as the effect, and if it is already there the effect is skipped. Both commit
//! or neither does, so each event changes state exactly once.

use events::Envelope;

use crate::Db;
use crate::db::Migration;
use crate::kafka::{HandlerError, MessageInfo};
use crate::params;
use crate::sql::{Conn, Result};

pub(crate) const MIGRATION: Migration = Migration::new(
    "platform/inbox/1",
    "
CREATE TABLE IF NOT EXISTS inbox (
    event_id     TEXT PRIMARY KEY,
    event_type   TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    kafka_offset INTEGER NOT NULL,
    processed_at TEXT NOT NULL,
    -- How many more times the same event arrived after it was handled; visible proof of dedup.
    redeliveries INTEGER NOT NULL DEFAULT 0
);
",
);

/// Whether an event is new to this service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// First time: apply the effect.
    First,
    /// Already handled: do nothing (the redelivery is counted).
    Duplicate,
}

/// Records `envelope` as handled in `tx`, or counts a redelivery if it already was.
pub fn record(tx: &Conn<'_>, envelope: &Envelope, info: &MessageInfo) -> Result<Delivery> {
    let inserted = tx.execute(
        "INSERT INTO inbox (event_id, event_type, order_id, topic, partition, kafka_offset, processed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (event_id) DO NOTHING",
        params![
            envelope.meta.id,
            envelope.kind().type_name(),
            envelope.key(),
            info.topic,
            info.partition,
            info.offset,
            tx.now(),
        ],
    )?;
    if inserted == 1 {
        return Ok(Delivery::First);
    }
    // Counted once committed: a transaction may run more than once, or be undone.
    let kind = envelope.kind().short_name();
    crate::db::after_commit(move || {
        metrics::counter!(crate::metrics::EVENTS_DUPLICATE, "type" => kind).increment(1);
    });
    tx.execute(
        "UPDATE inbox SET redeliveries = redeliveries + 1 WHERE event_id = ?1",
        params![envelope.meta.id.to_string()],
    )?;
    Ok(Delivery::Duplicate)
}

/// Applies `effect` to `envelope` exactly once: in one write transaction, records the event in
/// the inbox and runs `effect`; a redelivered event is counted and skipped (`Ok(None)`).
pub async fn apply_once<T, F>(
    db: &Db,
    envelope: Envelope,
    info: &MessageInfo,
    mut effect: F,
) -> std::result::Result<Option<T>, HandlerError>
where
    T: Send + 'static,
    F: FnMut(&Conn<'_>, &Envelope) -> std::result::Result<T, HandlerError> + Send + 'static,
{
    let info = info.clone();
    db.transaction(move |tx| {
        if record(tx, &envelope, &info)? == Delivery::Duplicate {
            crate::db::after_commit(|| tracing::info!("Duplicate event ignored."));
            return Ok(None);
        }
        effect(tx, &envelope).map(Some)
    })
    .await
}
