//! The reference client of order-api: what a shop's customer links to talk to it.

pub mod callback;
