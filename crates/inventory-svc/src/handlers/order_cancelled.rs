//! `order.cancelled` → give back whatever was reserved for the order (`stock.released`), exactly
//! once; or, if nothing was decided yet, make sure a late `payment.completed` reserves nothing.
//!
//! This covers every cancellation — declined, out of stock, timeout — the same way: the first
//! two have nothing reserved, so only a timed-out order that got its stock gets it released.
//!
//! Another replica may be reserving for the same order at the same moment. "Nothing decided
//! yet" is therefore claimed by inserting the `cancelled` row; if a reservation got in first,
//! the insert waited for it and does nothing, and the reservation is released instead.
//!
//! On redelivery: the inbox drops an event already handled; a second cancellation of the same
//! order finds its reservation released or cancelled already, and gives nothing back twice.

use events::{Envelope, OrderCancelled, StockReleased};
use platform::db::after_commit;
use platform::inbox;
use platform::kafka::{HandlerError, MessageInfo};
use platform::outbox;

use super::{Inventory, SOURCE};
use crate::store::{self, ReservationStatus};

pub(super) async fn handle(
    inventory: &Inventory,
    envelope: Envelope,
    cancelled: OrderCancelled,
    info: &MessageInfo,
) -> Result<(), HandlerError> {
    inbox::apply_once(&inventory.db, envelope, info, move |tx, envelope| {
        let order_id = cancelled.order_id;
        let reason = cancelled.reason.as_str();
        let status = match store::reservation_status(tx, order_id)? {
            None if store::mark_cancelled(tx, order_id, reason)? => {
                after_commit(move || {
                    tracing::info!(
                        reason,
                        "Order cancelled before any reservation; a late payment will reserve nothing."
                    );
                });
                return Ok(());
            }
            // Decided meanwhile: read what was committed (the insert above waited for it).
            None => store::reservation_status(tx, order_id)?,
            decided => decided,
        };
        if status != Some(ReservationStatus::Reserved) {
            return Ok(());
        }
        // `None`: released meanwhile, by another replica; it announced the release.
        let Some(items) = store::release(tx, order_id, reason)? else {
            return Ok(());
        };
        let lines = items.len();
        after_commit(move || tracing::info!(lines, reason, "Stock released."));
        let released = StockReleased {
            order_id,
            items,
            reason: cancelled.reason,
        };
        outbox::enqueue(tx, &Envelope::new(SOURCE, released, Some(envelope.meta.id)))?;
        Ok(())
    })
    .await
    .map(drop)
}
