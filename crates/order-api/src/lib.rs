//! order-api: the HTTP edge of the shop and the coordinator of each order's saga.
//!
//! `POST /api/orders` stores the order and its `order.created` event in one transaction and
//! answers `202 Accepted` at once; the [`saga::Coordinator`] then follows the participants'
//! replies and moves the order to `confirmed` or `cancelled`, pushing each step to SSE clients.
//!
//! # Entry points
//!
//! HTTP routes ([`api::router`]): the order routes behind an API key, the operator route
//! behind `ADMIN_TOKEN` (never an API key; `404` while it is unset), and `/healthz`, `/readyz`
//! and `/metrics` open:
//!
//! | Route                                   | Module                           |
//! |-----------------------------------------|----------------------------------|
//! | `POST /api/orders`                      | [`api`]`::create_order`          |
//! | `GET /api/orders/{id}` (`?wait=N`)      | [`api`]`::get_order`             |
//! | `GET /api/orders/{id}/events` (SSE)     | [`api`]`::order_events`          |
//! | `GET /api/orders/{id}/timeline`         | [`api`]`::timeline`              |
//! | `GET /api/orders/{id}/deliveries`       | [`api`]`::deliveries`            |
//! | `GET /orders/{id}` (HTML page)          | [`api`]`::timeline_page`         |
//! | `POST /admin/deliveries/{id}/retry`     | [`api`]`::admin::retry_delivery` |
//! | `/console…` (operator console)          | [`console`]                      |
//! | `GET /healthz`, `/readyz`, `/metrics`   | [`platform::http`]               |
//!
//! Events consumed ([`saga::HANDLES`], one [`saga::Coordinator`] deciding through
//! [`saga::decide`]): `payment.initiated`, `payment.completed`, `payment.failed`,
//! `payment.refunded`, `stock.reserved`, `stock.rejected`, `stock.released`. Events produced
//! (through the outbox): `order.created`, `order.confirmed`, `order.cancelled`.
//!
//! Background tasks (started by [`Application::run_until_stopped`]):
//! - the deadline reaper ([`saga::deadline`]): cancels sagas past their deadline;
//! - the webhook deliverer ([`webhooks::deliverer`]): sends the callbacks of ended sagas, and
//!   copies those that failed for good to `orders.dlq`;
//! - the status feed follower (`status_feed::follow_other_replicas`): brings other replicas'
//!   changes to this one's SSE streams (Postgres only);
//! - the idempotency purge (`idempotency::run_purge`): deletes expired `Idempotency-Key`s;
//! - and, from [`platform::service`], the outbox relay and the reply consumer.

pub mod api;
mod app;
pub mod auth;
mod config;
pub mod console;
mod idempotency;
mod metrics;
mod placement;
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
