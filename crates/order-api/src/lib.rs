//! order-api: the HTTP edge of the shop and the coordinator of each order's saga.
//!
//! `POST /api/orders` stores the order and its `order.created` event in one transaction and
//! answers `202 Accepted` at once; the [`saga::Coordinator`] then follows the participants'
//! replies and moves the order to `confirmed` or `cancelled`, pushing each step to SSE clients.

pub mod api;
mod app;
pub mod auth;
mod config;
mod idempotency;
pub mod rate_limit;
pub mod saga;
mod status_feed;
pub mod store;
#[cfg(test)]
mod testing;
pub mod webhooks;

pub use app::Application;
pub use config::{Config, Settings};
pub use status_feed::StatusFeed;

/// Errors that stop order-api from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum OrderApiError {
    /// Configuration, database or broker set-up failed.
    #[error(transparent)]
    Platform(#[from] platform::PlatformError),
    /// The HTTP listener failed.
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
}
