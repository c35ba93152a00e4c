//! payment-svc: the payment participant of the saga.
//!
//! It charges each new order through a [`provider::PaymentProvider`] and refunds orders whose
//! stock could not be reserved. Requests to the provider are made after the intent is recorded,
//! outcomes arrive as signed webhooks, and the recovery sweep re-sends whatever has waited too
//! long — so every payment reaches an outcome and no order is charged twice.
//!
//! # Entry points
//!
//! HTTP routes (the table is `app::router`):
//! - `POST /webhooks/payments` — the provider's signed outcomes ([`webhook`]), applied by
//!   [`provider::Requests`];
//! - `GET /healthz`, `GET /readyz`, `GET /metrics` — as in every service (`platform::http`).
//!
//! Events consumed ([`handlers::HANDLES`], one module each in [`handlers`]):
//! - `order.created` → record the payment, announce `payment.initiated`, ask for the charge;
//! - `stock.rejected` → refund the charge (compensation);
//! - `order.cancelled` → refund the charge, or have it refunded the moment it succeeds.
//!
//! Events produced, through the outbox: `payment.initiated`, `payment.completed`,
//! `payment.failed`, `payment.refunded`.
//!
//! Background tasks:
//! - provider requests, sent beside the consumer once their intent is committed, at most
//!   `PSP_MAX_IN_FLIGHT` at once ([`provider::Requests`]);
//! - the recovery sweep, re-sending requests that have waited too long for an outcome, on the
//!   replica holding its lease (`recovery`);
//! - the outbox relay, the consumer and the HTTP server, run by [`platform::service::run`].

mod app;
mod config;
pub mod handlers;
mod metrics;
pub mod provider;
mod recovery;
mod refund;
mod store;
pub mod webhook;

pub use app::Application;
pub use config::{Config, Settings};

/// The name this service gives itself in events it produces.
pub const SOURCE: &str = "/shop/payment-svc";

/// Errors that stop payment-svc from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum PaymentSvcError {
    /// A setting is missing or unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Configuration, database or broker set-up failed.
    #[error(transparent)]
    Platform(#[from] platform::PlatformError),
    /// The HTTP listener failed.
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
}
