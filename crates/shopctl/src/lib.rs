//! `shopctl`: run the whole shop on an embedded broker, or just the broker.

pub mod bench;
pub mod broker;
pub mod dlq;
pub mod up;
