//! Saga deadlines: a durable timer, so that no saga stays open forever.
//!
//! Every order is stored with `deadline_at`. The reaper looks for open orders past it and
//! cancels them with reason `timeout`, publishing `order.cancelled`; the participants then
//! compensate (payment-svc refunds a charge, even one that completes later; inventory-svc
//! releases a reservation). The timer lives in the database, so it survives restarts: an order
//! that passed its deadline while order-api was down is cancelled when it comes back.
//!
//! Replicas sharing a Postgres database run one reaper between them, the holder of the lease
//! `order-api/deadline-reaper`; the others stand by and take over if it dies. The lease only
//! saves doubled work: each cancellation locks the order and changes it only if it is still
//! open, so a reaper that lost its lease mid-round, or a reply handled at the same moment on
//! another replica, cannot cancel an order twice or cancel one that has just ended.
//!
//! A round run again (after a crash, or by a second reaper) finds the orders it cancelled
//! already `cancelled` and leaves them: no second `order.cancelled`, no second webhook.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use events::{CancellationReason, Envelope, OrderCancelled, OrderId};
use platform::Db;
use platform::db::lease::Lease;
use platform::outbox;
use platform::sql::{Conn, Result};

use super::{OrderStatus, SOURCE};
use crate::status_feed::StatusFeed;
use crate::store::{self, HistoryEntry};

/// Sagas cancelled because they passed their deadline.
pub const SAGAS_TIMED_OUT: &str = "sagas_timed_out_total";

/// Most overdue sagas handled per round.
const BATCH: i64 = 200;

/// Cancels overdue sagas every `interval` while this process holds `lease`, until `shutdown`;
/// then gives the lease up, so that another replica takes over without waiting for it to expire.
pub async fn run_reaper(
    db: Db,
    lease: Lease,
    updates: StatusFeed,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let pause = match lease.held().await {
            Ok(true) => {
                match reap_once(&db, &updates).await {
                    Ok(count) if count > 0 => {
                        tracing::warn!(count, "Sagas cancelled at their deadline.");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, "Deadline reaper failed; retrying."),
                }
                interval
            }
            // Another replica reaps; asking for the lease is a write, so ask less often, but
            // well within the time it takes to notice that the holder died.
            Ok(false) => interval.max(lease.ttl() / 4),
            Err(error) => {
                tracing::warn!(%error, lease = lease.name(), "Could not renew the lease.");
                interval
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
    if let Err(error) = lease.release().await {
        tracing::warn!(%error, lease = lease.name(), "Could not release the lease.");
    }
}

/// One round: cancels every overdue saga found; returns how many.
pub async fn reap_once(db: &Db, updates: &StatusFeed) -> Result<usize> {
    let now = platform::time::now();
    let overdue = db
        .read(move |conn| store::overdue(conn, now, BATCH))
        .await?;
    let mut cancelled = 0;
    for store::Overdue {
        order_id,
        traceparent,
    } in overdue
    {
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

/// Cancels the order if it is still open (a reply may have ended it since it was selected, here
/// or on another replica).
fn time_out(tx: &Conn<'_>, order_id: OrderId) -> Result<Option<HistoryEntry>> {
    let Some(store::Locked {
        status, last_seq, ..
    }) = store::status_for_update(tx, order_id)?
    else {
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
        at: tx.now(),
    };
    if !store::record_transition(tx, status, &entry)? {
        return Ok(None);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, new_order, step};

    #[tokio::test]
    async fn an_overdue_saga_is_cancelled_once_and_an_ended_one_is_left_alone() {
        let (_dir, _target, db) = testing::fresh_db();
        let (open, ended) = (OrderId::new(), OrderId::new());
        db.transaction(move |tx| {
            new_order(tx, open)?;
            new_order(tx, ended)?;
            let declined = step(ended, 2, OrderStatus::Cancelled);
            assert!(store::record_transition(
                tx,
                OrderStatus::Pending,
                &declined
            )?);
            Ok::<_, platform::sql::SqlError>(())
        })
        .await
        .expect("the orders are stored");
        let updates = StatusFeed::new();
        assert_eq!(reap_once(&db, &updates).await, Ok(1));
        assert_eq!(reap_once(&db, &updates).await, Ok(0), "cancelled once");
        let (orders, outbox) = db
            .read(move |conn| {
                let orders = [open, ended]
                    .map(|id| store::load_order(conn, id).map(|order| order.expect("stored")));
                let [open, ended] = orders;
                Ok::<_, platform::sql::SqlError>(((open?, ended?), outbox::backlog(conn)?))
            })
            .await
            .expect("the orders read");
        let (status, reasons) = (
            orders.0.status,
            [&orders.0, &orders.1].map(|order| order.cancellation_reason.map(|r| r.as_str())),
        );
        assert_eq!(status, OrderStatus::Cancelled);
        assert_eq!(reasons, [Some("timeout"), None]);
        assert_eq!(outbox, 1, "one order.cancelled");
        // Selected as overdue just before a reply ended it: the reaper finds it ended.
        let again = db.transaction(move |tx| time_out(tx, ended)).await;
        assert!(again.is_ok_and(|entry| entry.is_none()));
    }
}
