//! The saga coordinator: order-api's consumer of the participants' replies.
//!
//! For each reply it decides (see [`state`]) and applies the decision in one transaction: the
//! inbox entry, the reply's row on the order's timeline, the new status and history, and — when
//! the saga ends — `order.confirmed` or `order.cancelled` in the outbox (and on the timeline).
//! Only after the commit are SSE subscribers told.
//!
//! Redelivery: the inbox finds the reply's event id already recorded and skips the transaction,
//! so nothing is written, published or pushed again; the offset is stored once more.

pub mod deadline;
mod state;

use chrono::{DateTime, Utc};
use events::{Envelope, Event, EventKind, OrderCancelled, OrderConfirmed};
use platform::Db;
use platform::db::after_commit;
use platform::inbox;
use platform::kafka::{EventHandler, HandlerError, MessageInfo};
use platform::outbox;
use platform::sql::Conn;

pub use state::{Decision, OrderStatus, Step, can_transition, decide};

use crate::status_feed::StatusFeed;
use crate::store::{self, HistoryEntry};

/// The name this service gives itself in events it produces.
pub const SOURCE: &str = "/shop/order-api";

/// Applies reply events to orders.
#[derive(Clone, Debug)]
pub struct Coordinator {
    db: Db,
    updates: StatusFeed,
}

impl Coordinator {
    /// A coordinator writing to `db` and announcing to `updates`.
    pub fn new(db: Db, updates: StatusFeed) -> Self {
        Self { db, updates }
    }
}

/// The events the coordinator handles: every reply of the saga's participants.
pub const HANDLES: &[EventKind] = &[
    EventKind::PaymentInitiated,
    EventKind::PaymentCompleted,
    EventKind::PaymentFailed,
    EventKind::PaymentRefunded,
    EventKind::StockReserved,
    EventKind::StockRejected,
    EventKind::StockReleased,
];

impl EventHandler for Coordinator {
    async fn handle(&self, envelope: Envelope, info: &MessageInfo) -> Result<(), HandlerError> {
        let Some(Applied {
            entries,
            accepted_at,
        }) = inbox::apply_once(&self.db, envelope, info, apply).await?
        else {
            return Ok(());
        };
        if let Some(end) = entries.iter().find(|entry| entry.status.is_terminal()) {
            record_saga_end(accepted_at, end);
        }
        let statuses: Vec<&'static str> =
            entries.iter().map(|entry| entry.status.as_str()).collect();
        let listeners = self.updates.publish(entries);
        if !statuses.is_empty() {
            // Debug: "Order status changed." already marks each transition, in the log and in
            // the order's trace; a second line per transition cost a few percent of the CPU.
            tracing::debug!(
                ?statuses,
                listeners,
                "Status update pushed to SSE subscribers."
            );
        }
        Ok(())
    }
}

/// What applying a reply did.
#[derive(Debug)]
struct Applied {
    /// The history entries it added (none for a reply that changes nothing).
    entries: Vec<HistoryEntry>,
    /// When the order was accepted, read with its status: the start of the saga's duration.
    accepted_at: DateTime<Utc>,
}

/// Observes how long the saga took, by outcome (`confirmed` or the cancellation reason).
fn record_saga_end(accepted_at: DateTime<Utc>, end: &HistoryEntry) {
    let outcome = match end.reason {
        Some(reason) => reason.as_str(),
        None => end.status.as_str(),
    };
    let seconds = (end.at - accepted_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    metrics::histogram!(SAGA_DURATION, "status" => end.status.as_str(), "outcome" => outcome)
        .record(seconds);
}

/// Saga duration from acceptance to the terminal status {status, outcome}.
pub const SAGA_DURATION: &str = "saga_duration_seconds";

/// Applies one reply (first delivery) inside `tx`; returns the history entries it added.
///
/// The order's row is locked first ([`store::status_for_update`]): on Postgres a reply to the
/// same order handled at the same moment by another replica (the other topic's partition, or a
/// partition being handed over) or the deadline reaper waits for this transaction, then decides
/// on the status it leaves.
fn apply(tx: &Conn<'_>, envelope: &Envelope) -> Result<Applied, HandlerError> {
    let order_id = envelope.event.order_id();
    let Some(store::Locked {
        status: current,
        last_seq,
        accepted_at,
    }) = store::status_for_update(tx, order_id)?
    else {
        // A reply for an order this service never accepted contradicts the contract.
        return Err(HandlerError::Permanent(anyhow::anyhow!(
            "unknown order {order_id}"
        )));
    };
    // Every reply belongs on the timeline, including those that change nothing (a late or a
    // waiting one): that is often what a person looking at a stuck saga needs to see.
    let trace_id = envelope
        .meta
        .traceparent
        .as_deref()
        .and_then(store::timeline::trace_id_of);
    store::timeline::record(tx, envelope, trace_id)?;
    let unchanged = Applied {
        entries: Vec::new(),
        accepted_at,
    };
    let steps = match decide(current, &envelope.event) {
        Decision::Advance(steps) => steps,
        Decision::Wait => {
            after_commit(move || {
                tracing::info!(status = %current, "Waiting for compensation to finish.");
            });
            return Ok(unchanged);
        }
        Decision::Ignore(why) => {
            after_commit(move || {
                tracing::info!(status = %current, why, "Event does not change the order.");
            });
            return Ok(unchanged);
        }
    };
    let now = tx.now();
    let cause = envelope.kind().short_name();
    let mut entries = Vec::with_capacity(steps.len());
    let mut from = current;
    for (seq, step) in (last_seq + 1..).zip(&steps) {
        let entry = store::entry_for(
            order_id,
            seq,
            step.status,
            step.reason,
            cause,
            envelope.meta.id,
            now,
        );
        if !store::record_transition(tx, from, &entry)? {
            // Cannot happen while the row is locked; if it does, decide again on what is there.
            return Err(HandlerError::Transient(anyhow::anyhow!(
                "order {order_id} left {from} while this reply was being applied"
            )));
        }
        crate::webhooks::enqueue_if_subscribed(tx, &entry)?;
        let to = step.status;
        after_commit(move || {
            tracing::info!(from = %from, to = %to, "Order status changed.");
        });
        from = step.status;
        entries.push(entry);
    }
    if let Some(last) = steps.last() {
        let ending: Option<Event> = match (last.status, last.reason) {
            (OrderStatus::Confirmed, _) => Some(
                OrderConfirmed {
                    order_id,
                    total: store::total_of(tx, order_id)?,
                }
                .into(),
            ),
            (OrderStatus::Cancelled, Some(reason)) => {
                Some(OrderCancelled { order_id, reason }.into())
            }
            _ => None,
        };
        if let Some(event) = ending {
            let ending = Envelope::new(SOURCE, event, Some(envelope.meta.id));
            outbox::enqueue(tx, &ending)?;
            // The outbox stamps the current span's trace context on it; record the same trace.
            store::timeline::record(tx, &ending, platform::telemetry::current_trace_id())?;
        }
    }
    Ok(Applied {
        entries,
        accepted_at,
    })
}
