//! inventory-svc: the stock participant of the saga. It reserves stock for paid orders, all
//! lines or none, so stock never goes negative and no order is half-reserved.

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
