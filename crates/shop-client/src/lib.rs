//! The reference client of order-api: place an order safely, then follow its saga to the end.
//!
//! order-api answers `POST /api/orders` with `202 Accepted` at once and runs the saga
//! (payment, stock) behind it. This crate shows how to consume such an API well:
//!
//! - **Placing is safe to retry.** Every attempt carries the same `Idempotency-Key`, so a
//!   connection that broke before the answer, a `429` or a `503` is retried (exponential backoff
//!   with full jitter, honouring `Retry-After`) without ever placing a second order.
//! - **Fast sagas answer synchronously.** With [`PlaceOptions::wait`] the server holds the
//!   answer (`Prefer: wait=N`) and gives the final order when the saga ends in time.
//! - **Slow sagas are followed, not polled blindly.** [`Client::watch`] streams each
//!   transition once, in order, over Server-Sent Events; it resumes with `Last-Event-ID` after a
//!   broken connection or a restarted server, and falls back to long polling when streaming is
//!   not to be had.
//! - **Refusals are typed.** Every `application/problem+json` answer becomes an [`Error`]
//!   variant that says what to do next, with the parsed [`Problem`] kept.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use futures::StreamExt;
//! use shop_client::{Client, NewOrder, PlaceOptions, Placed};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .api_key("sk_test_alice_0001")
//!     .build()?;
//! let order = NewOrder::new("usr_8a3f".parse()?, "pm_visa_4242".parse()?)
//!     .line("WIDGET-42".parse()?, 2);
//!
//! // Wait up to 2 s for the outcome on the POST itself; follow the saga if it takes longer.
//! match client
//!     .place_order(&order, PlaceOptions::default().wait(Duration::from_secs(2)))
//!     .await?
//! {
//!     Placed::Finished(order) => println!("{} {}", order.order_id, order.status),
//!     Placed::Accepted { order_id, .. } => {
//!         let mut transitions = client.watch(order_id);
//!         while let Some(transition) = transitions.next().await {
//!             let transition = transition?;
//!             println!("{order_id} {} ({})", transition.to, transition.cause);
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The client holds no global state: settings live in the [`Client`] (cheap to clone, one
//! connection pool), and every call is a plain future or stream the caller may drop to cancel.
//! `docs/client.md` in the repository walks through the API and its retry semantics.
//!
//! The other half of the conversation, order-api's signed callback when a saga ends, is
//! verified by [`callback::CallbackVerifier`] (an axum extractor with the `axum` feature).

pub mod callback;
mod client;
mod error;
mod idempotency;
mod list;
mod order;
mod problem;
mod retry;
mod watch;

pub use client::{Client, ClientBuilder, MAX_WAIT, POOL_IDLE_TIMEOUT};
pub use error::Error;
pub use events::{CancellationReason, Currency, Money, OrderId, PaymentMethod, Sku, UserId};
pub use idempotency::IdempotencyKey;
pub use list::{ListOptions, OrderPage, OrderSummary};
pub use order::{
    HistoryEntry, NewLine, NewOrder, Order, OrderLine, OrderStatus, PlaceOptions, Placed,
};
pub use problem::{FieldError, Problem};
pub use retry::RetryPolicy;
pub use watch::{Transition, Watch, WatchMode, WatchOptions, WatchStats};
