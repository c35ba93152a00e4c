//! `shopctl`: run the whole shop on an embedded broker, or just the broker.

pub mod broker;
pub mod dlq;
pub mod up;
