//! `payment.completed` → reserve stock for every line of the order, all or nothing, and
//! announce `stock.reserved` or `stock.rejected` (which makes payment-svc refund).
//!
//! The decision is taken on locked stock rows and claimed by inserting the reservation row (see
//! [`store`]): replicas reserving from the same stock at once never oversell it, and an order
//! cancelled meanwhile (perhaps on another replica) is decided once — whichever claim comes
//! first stands, and the other changes nothing and announces nothing.
//!
//! On redelivery: the inbox drops an event already handled; a payment for an order that already
//! has a decision (however it came) changes nothing and announces nothing again.

use events::{
    Envelope, Event, PaymentCompleted, StockRejected, StockRejectionReason, StockReserved,
};
use platform::db::after_commit;
use platform::inbox;
use platform::kafka::{HandlerError, MessageInfo};
use platform::outbox;

use super::{Inventory, SOURCE};
use crate::store;

pub(super) async fn handle(
    inventory: &Inventory,
    envelope: Envelope,
    payment: PaymentCompleted,
    info: &MessageInfo,
) -> Result<(), HandlerError> {
    inbox::apply_once(&inventory.db, envelope, info, move |tx, envelope| {
        let order_id = payment.order_id;
        if store::has_reservation(tx, order_id)? {
            after_commit(|| tracing::info!("Order already has a reservation decision."));
            return Ok(());
        }
        let (shortages, unknown) = store::shortages(tx, &payment.items)?;
        let event: Event = if shortages.is_empty() {
            if !store::reserve(tx, order_id, &payment.items)? {
                after_commit(|| tracing::info!("Order got a reservation decision meanwhile."));
                return Ok(());
            }
            let lines = payment.items.len();
            after_commit(move || tracing::info!(lines, "Stock reserved."));
            StockReserved {
                order_id,
                items: payment.items.clone(),
            }
            .into()
        } else {
            let reason = if unknown {
                StockRejectionReason::UnknownSku
            } else {
                StockRejectionReason::OutOfStock
            };
            let detail = shortages
                .iter()
                .map(|s| {
                    format!(
                        "{}: requested {}, available {}",
                        s.sku, s.requested, s.available
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            if !store::reject(tx, order_id, &detail)? {
                after_commit(|| tracing::info!("Order got a reservation decision meanwhile."));
                return Ok(());
            }
            after_commit(move || tracing::info!(%detail, "Stock rejected."));
            StockRejected {
                order_id,
                reason,
                shortages,
            }
            .into()
        };
        outbox::enqueue(tx, &Envelope::new(SOURCE, event, Some(envelope.meta.id)))?;
        Ok(())
    })
    .await
    .map(drop)
}
