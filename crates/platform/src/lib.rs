//! The runtime every service shares: the data path (SQLite or Postgres with outbox and inbox, Kafka producer,
//! consumer and dead-letter plumbing), HTTP helpers, telemetry and shutdown.
//!
//! Services contain only their domain: they open a [`Db`] with their migrations, write state and
//! outgoing events in one transaction with [`outbox::enqueue`], and implement
//! [`kafka::EventHandler`] for what they consume, recording each event in the [`inbox`] in the
//! same transaction as its effect. Everything else — publishing after commit, storing offsets
//! after handling, dead-lettering poison messages — happens here, once.

pub mod config;
pub mod db;
mod error;
pub mod http;
pub mod inbox;
pub mod kafka;
pub mod metrics;
pub mod outbox;
pub mod service;
pub mod shutdown;
pub mod sql;
pub mod telemetry;
pub mod time;

/// Standard Webhooks signatures; a crate of its own so that clients verify callbacks without
/// depending on this one.
pub use standard_webhooks as webhook;

pub use db::Db;
pub use error::PlatformError;
