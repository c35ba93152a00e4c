//! What inventory-svc does with each event it consumes, one module per event.

mod order_cancelled;
mod payment_completed;
#[cfg(test)]
mod tests;

use events::{Envelope, Event};
use platform::Db;
use platform::kafka::{EventHandler, HandlerError, MessageInfo};

/// The name this service gives itself in events it produces.
pub const SOURCE: &str = "/shop/inventory-svc";

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
            // Other events on the subscribed topics are not for inventory-svc.
            _ => Ok(()),
        }
    }
}
