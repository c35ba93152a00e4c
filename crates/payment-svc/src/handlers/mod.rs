//! What payment-svc does with each event it consumes, one module per event. The provider's
//! notifications, which arrive by webhook rather than from Kafka, are applied in
//! [`crate::provider`].

mod order_cancelled;
mod order_created;
mod stock_rejected;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use events::{Envelope, Event, EventKind};
use platform::Db;
use platform::kafka::{EventHandler, HandlerError, MessageInfo};

use crate::provider::{PaymentProvider, Requests};

/// The events payment-svc handles: what [`Payments`] matches on. The consumer subscribes to
/// their topics and passes the other events there over.
pub const HANDLES: &[EventKind] = &[
    EventKind::OrderCreated,
    EventKind::StockRejected,
    EventKind::OrderCancelled,
];

/// payment-svc's event handler and the state its handlers share.
#[derive(Clone)]
pub struct Payments {
    pub(crate) db: Db,
    /// Charges and refunds go to the provider through it, after the handler's commit.
    pub(crate) requests: Requests,
    /// Where this replica asks the provider to send outcomes; recorded with each new payment
    /// and repeated by every resend of its requests, whichever replica sends them.
    pub(crate) webhook_url: Option<String>,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Payments {
    /// Handlers writing to `db` and charging through `provider`, with at most
    /// `max_in_flight` provider requests at once, asking for outcomes at `webhook_url` (`None`:
    /// the provider's default).
    pub fn new(
        db: Db,
        provider: Arc<dyn PaymentProvider>,
        max_in_flight: usize,
        webhook_url: Option<String>,
    ) -> Self {
        Self {
            requests: Requests::new(db.clone(), provider, max_in_flight),
            db,
            webhook_url,
        }
    }
}

impl EventHandler for Payments {
    async fn handle(&self, envelope: Envelope, info: &MessageInfo) -> Result<(), HandlerError> {
        match &envelope.event {
            Event::OrderCreated(order) => {
                let order = order.clone();
                order_created::handle(self, &envelope, order, info).await
            }
            Event::StockRejected(rejection) => {
                let rejection = rejection.clone();
                stock_rejected::handle(self, &envelope, rejection, info).await
            }
            Event::OrderCancelled(cancelled) => {
                let cancelled = cancelled.clone();
                order_cancelled::handle(self, &envelope, cancelled, info).await
            }
            // Not in `HANDLES`: the consumer does not hand these over.
            _ => Ok(()),
        }
    }
}
