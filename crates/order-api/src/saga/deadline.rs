//! Saga deadlines: a durable timer, so that no saga stays open forever.
//!
//! Every order is stored with `deadline_at`. The reaper looks for open orders past it and
//! cancels them with reason `timeout`, publishing `order.cancelled`; the participants then
//! compensate (payment-svc refunds a charge, even one that completes later; inventory-svc
//! releases a reservation). The timer lives in the database, so it survives restarts: an order
//! that passed its deadline while order-api was down is cancelled when it comes back.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use events::{CancellationReason, Envelope, OrderCancelled, OrderId};
use platform::Db;
use platform::db::now_text;
use platform::outbox;

use super::{OrderStatus, SOURCE};
use crate::store::{self, HistoryEntry};
use crate::updates::StatusUpdates;

/// Sagas cancelled because they passed their deadline.
pub const SAGAS_TIMED_OUT: &str = "sagas_timed_out_total";

/// Most overdue sagas handled per round.
const BATCH: i64 = 200;

/// Cancels overdue sagas every `interval` until `shutdown`.
pub async fn run_reaper(
    db: Db,
    updates: StatusUpdates,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match reap_once(&db, &updates).await {
            Ok(count) if count > 0 => tracing::warn!(count, "Sagas cancelled at their deadline."),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "Deadline reaper failed; retrying."),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One round: cancels every overdue saga found; returns how many.
pub async fn reap_once(db: &Db, updates: &StatusUpdates) -> rusqlite::Result<usize> {
    let now = now_text();
    let overdue = db
        .read(move |conn| store::overdue(conn, &now, BATCH))
        .await?;
    let mut cancelled = 0;
    for (order_id, traceparent) in overdue {
        let span =
            tracing::info_span!("saga deadline", order_id = %order_id, correlation_id = %order_id);
        platform::telemetry::set_parent_from_traceparent(&span, traceparent.as_deref(), None);
        let entry = db
            .transaction(move |tx| time_out(tx, order_id))
            .instrument(span.clone())
            .await?;
        if let Some(entry) = entry {
            span.in_scope(|| tracing::warn!("Saga passed its deadline; cancelled."));
            metrics::counter!(SAGAS_TIMED_OUT).increment(1);
            updates.publish([entry]);
            cancelled += 1;
        }
    }
    Ok(cancelled)
}

/// Cancels the order if it is still open (a reply may have ended it since it was selected).
fn time_out(
    tx: &rusqlite::Transaction<'_>,
    order_id: OrderId,
) -> rusqlite::Result<Option<HistoryEntry>> {
    let Some((status, last_seq)) = store::status_of(tx, order_id)? else {
        return Ok(None);
    };
    if status.is_terminal() {
        return Ok(None);
    }
    let entry = HistoryEntry {
        order_id,
        seq: last_seq + 1,
        status: OrderStatus::Cancelled,
        reason: Some(CancellationReason::Timeout),
        cause: "deadline".to_owned(),
        event_id: None,
        at: now_text(),
    };
    store::record_transition(tx, &entry)?;
    crate::webhooks::enqueue_if_subscribed(tx, &entry)?;
    let cancelled = OrderCancelled {
        order_id,
        reason: CancellationReason::Timeout,
    };
    let envelope = Envelope::new(SOURCE, cancelled, None);
    outbox::enqueue(tx, &envelope)?;
    store::timeline::record(tx, &envelope, platform::telemetry::current_trace_id())?;
    Ok(Some(entry))
}
