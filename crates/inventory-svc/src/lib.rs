//! inventory-svc: the stock participant of the saga. It reserves stock for paid orders, all
//! lines or none, so stock never goes negative and no order is half-reserved.
//!
//! Its entry points:
//! - **events handled** ([`handlers::HANDLES`], one module each): `payment.completed` reserves
//!   the order's stock (`stock.reserved`, or `stock.rejected`); `order.cancelled` gives it back
//!   (`stock.released`).
//! - **HTTP routes** (the router table in `app.rs`): `GET /healthz`, `GET /readyz`,
//!   `GET /metrics`; stock is not served over HTTP.
//! - **background tasks**: none of its own; [`platform::service::run`] relays the outbox (the
//!   events above) and runs the consumer.
//! - **at start-up**: the catalog's initial stock is seeded into a new database, once.

mod app;
mod config;
pub mod handlers;
mod store;

pub use app::Application;
pub use config::Config;

/// Errors that stop inventory-svc from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum InventorySvcError {
    /// Configuration, database or broker set-up failed.
    #[error(transparent)]
    Platform(#[from] platform::PlatformError),
    /// The database could not be seeded.
    #[error("database: {0}")]
    Database(#[from] platform::sql::SqlError),
    /// The HTTP listener failed.
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
}
