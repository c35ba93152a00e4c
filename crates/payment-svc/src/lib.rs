//! payment-svc: the payment participant of the saga.
//!
//! It charges each new order through a [`provider::PaymentProvider`] and refunds orders whose
//! stock could not be reserved. Requests to the provider are made after the intent is recorded,
//! outcomes arrive as signed webhooks (`POST /webhooks/payments`), and [`recovery`] re-sends
//! whatever has waited too long —
//! so every payment reaches an outcome and no order is charged twice.

mod app;
mod config;
pub mod handlers;
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
