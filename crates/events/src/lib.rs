//! The saga's contract: what travels between the services, and the data they agree on.
//!
//! This crate does no I/O. It defines the CloudEvents envelope every message is wrapped in,
//! the event types and their payloads, the topic each one lives on, typed identifiers, money,
//! and the product catalog both order-api and inventory-svc read.
//! Its JSON form is pinned by the JSON Schemas in `schemas/` (see `tests/schemas.rs`).

mod catalog;
mod envelope;
mod error;
mod ids;
mod money;
mod payloads;
#[cfg(feature = "test-util")]
pub mod testing;
mod topics;

pub use catalog::{Catalog, Product};
pub use envelope::{Envelope, EventMeta, SPEC_VERSION};
pub use error::EventError;
pub use ids::{EventId, OrderId, PaymentMethod, Sku, UserId};
pub use money::{Currency, Money};
pub use payloads::{
    CancellationReason, Event, EventKind, LineItem, OrderCancelled, OrderConfirmed, OrderCreated,
    PaymentCompleted, PaymentFailed, PaymentFailureReason, PaymentInitiated, PaymentRefunded,
    PricedLineItem, StockRejected, StockRejectionReason, StockReleased, StockReserved,
    StockShortage,
};
pub use topics::Topic;
