//! `shopctl`: run the whole shop on an embedded broker (or just the broker), place and follow
//! orders, load the shop, handle dead letters.

pub mod bench;
pub mod broker;
pub mod dlq;
pub mod order;
pub mod up;
