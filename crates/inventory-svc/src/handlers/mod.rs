//! What inventory-svc does with each event it consumes, one module per event.

mod order_cancelled;
mod payment_completed;
#[cfg(test)]
mod tests;

use events::{Envelope, Event, EventKind};
use platform::Db;
use platform::kafka::{EventHandler, HandlerError, MessageInfo};

/// The name this service gives itself in events it produces.
pub const SOURCE: &str = "/shop/inventory-svc";

/// The events inventory-svc handles: what [`Inventory`] matches on. The consumer subscribes to
/// their topics and passes the other events there over.
pub const HANDLES: &[EventKind] = &[EventKind::PaymentCompleted, EventKind::OrderCancelled];

/// inventory-svc's event handler.
#[derive(Clone, Debug)]
pub struct Inventory {
    pub(crate) db: Db,
}

impl Inventory {
    /// Handlers writing to `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl EventHandler for Inventory {
    async fn handle(&self, envelope: Envelope, info: &MessageInfo) -> Result<(), HandlerError> {
        match &envelope.event {
            Event::PaymentCompleted(payment) => {
                let payment = payment.clone();
                payment_completed::handle(self, envelope, payment, info).await
            }
            Event::OrderCancelled(cancelled) => {
                let cancelled = cancelled.clone();
                order_cancelled::handle(self, envelope, cancelled, info).await
            }
            // Not in `HANDLES`: the consumer does not hand these over.
            _ => Ok(()),
        }
    }
}
