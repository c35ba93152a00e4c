//! `order.cancelled` → give back whatever was reserved for the order (`stock.released`), exactly
//! once; or, if nothing was decided yet, make sure a late `payment.completed` reserves nothing.
//!
//! This covers every cancellation — declined, out of stock, timeout — the same way: the first
//! two have nothing reserved, so only a timed-out order that got its stock gets it released.

use events::{Envelope, OrderCancelled, StockReleased};
use platform::db::now_text;
use platform::inbox;
use platform::kafka::{HandlerError, MessageInfo};
use platform::outbox;

use super::{Inventory, SOURCE};
use crate::store;

pub(super) async fn handle(
    inventory: &Inventory,
    envelope: Envelope,
    cancelled: OrderCancelled,
    info: &MessageInfo,
) -> Result<(), HandlerError> {
    inbox::apply_once(&inventory.db, envelope, info, move |tx, envelope| {
        let order_id = cancelled.order_id;
        let reason = cancelled.reason.as_str();
        match store::reservation_status(tx, order_id)?.as_deref() {
            Some("reserved") => {
                let items = store::release(tx, order_id, reason)?;
                tracing::info!(lines = items.len(), reason, "Stock released.");
                let released = StockReleased {
                    order_id,
                    items,
                    reason: cancelled.reason,
                };
                outbox::enqueue(tx, &Envelope::new(SOURCE, released, Some(envelope.meta.id)))?;
            }
            Some(_) => {}
            None => {
                tracing::info!(
                    reason,
                    "Order cancelled before any reservation; a late payment will reserve nothing."
                );
                store::mark_cancelled(tx, order_id, reason, &now_text())?;
            }
        }
        Ok(())
    })
    .await
    .map(drop)
}
