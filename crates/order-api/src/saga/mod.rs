//! The saga coordinator: order-api's consumer of the participants' replies.
//!
//! For each reply it decides (see [`state`]) and applies the decision in one transaction: the
//! inbox entry, the new status and history, and — when the saga ends — `order.confirmed` or
//! `order.cancelled` in the outbox. Only after the commit are SSE subscribers told.

mod state;

use events::{Envelope, Event, OrderCancelled, OrderConfirmed};
use platform::Db;
use platform::db::now_text;
use platform::inbox::{self, Delivery};
use platform::kafka::{EventHandler, HandlerError, MessageInfo};
use platform::outbox;

pub use state::{Decision, OrderStatus, Step, can_transition, decide};

use crate::store::{self, HistoryEntry};
use crate::updates::StatusUpdates;

/// The name this service gives itself in events it produces.
pub const SOURCE: &str = "/shop/order-api";

/// Applies reply events to orders.
#[derive(Clone, Debug)]
pub struct Coordinator {
    db: Db,
    updates: StatusUpdates,
}

impl Coordinator {
    /// A coordinator writing to `db` and announcing to `updates`.
    pub fn new(db: Db, updates: StatusUpdates) -> Self {
        Self { db, updates }
    }
}

impl EventHandler for Coordinator {
    async fn handle(&self, envelope: Envelope, info: &MessageInfo) -> Result<(), HandlerError> {
        if matches!(
            envelope.event,
            Event::OrderCreated(_) | Event::OrderConfirmed(_) | Event::OrderCancelled(_)
        ) {
            return Ok(());
        }
        let info = info.clone();
        let entries = self
            .db
            .transaction(move |tx| apply(tx, &envelope, &info))
            .await?;
        self.updates.publish(entries);
        Ok(())
    }
}

/// Applies one reply inside `tx`; returns the history entries it added.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    envelope: &Envelope,
    info: &MessageInfo,
) -> Result<Vec<HistoryEntry>, HandlerError> {
    if inbox::record(tx, envelope, info)? == Delivery::Duplicate {
        tracing::info!("Duplicate event ignored.");
        return Ok(Vec::new());
    }
    let order_id = envelope.event.order_id();
    let Some((current, last_seq)) = store::status_of(tx, order_id)? else {
        // A reply for an order this service never accepted contradicts the contract.
        return Err(HandlerError::Permanent(anyhow::anyhow!(
            "unknown order {order_id}"
        )));
    };
    let steps = match decide(current, &envelope.event) {
        Decision::Advance(steps) => steps,
        Decision::Wait => {
            tracing::info!(status = %current, "Waiting for compensation to finish.");
            return Ok(Vec::new());
        }
        Decision::Ignore(why) => {
            tracing::info!(status = %current, why, "Event does not change the order.");
            return Ok(Vec::new());
        }
    };
    let now = now_text();
    let cause = envelope.kind().short_name();
    let mut entries = Vec::with_capacity(steps.len());
    for (seq, step) in (last_seq + 1..).zip(&steps) {
        let entry = store::entry_for(
            order_id,
            seq,
            step.status,
            step.reason,
            cause,
            envelope.meta.id,
            &now,
        );
        store::record_transition(tx, &entry)?;
        tracing::info!(from = %current, to = %step.status, "Order status changed.");
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
            outbox::enqueue(tx, &Envelope::new(SOURCE, event, Some(envelope.meta.id)))?;
        }
    }
    Ok(entries)
}
