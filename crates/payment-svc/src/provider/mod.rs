//! The payment provider (PSP), behind a trait so the HTTP client ([`HttpProvider`], speaking
//! the API `psp-sim` serves) can be swapped for another provider's, and tests can substitute it.
//!
//! The interface has the shape of real PSPs: a charge or refund request carries an idempotency
//! key and is *accepted*; the outcome arrives later as a [`Notification`] (a webhook, for an
//! HTTP provider). A repeated request with the same key returns the same charge, and its outcome
//! if already known — which is how payment-svc recovers requests whose outcome it never saw.
//!
//! [`Requests`] is the way there and back: it sends the requests the handlers and the recovery
//! sweep decide on, and applies the outcomes the provider reports (`outcome`), whether by
//! webhook or in the answer to a repeated request.

mod breaker;
mod http;
mod outcome;
mod requests;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use events::{Money, OrderId, PaymentFailureReason, PaymentMethod};

pub use breaker::{BREAKER_REJECTIONS, BREAKER_STATE, CircuitBreaker};
pub use http::{HttpProvider, WebhookError, notification_of, outcome_of};
pub use requests::Requests;

/// A request to charge a customer.
#[derive(Clone, Debug)]
pub struct ChargeRequest {
    /// Sent as the idempotency key: one order can be charged at most once.
    pub order_id: OrderId,
    /// How much.
    pub amount: Money,
    /// With what.
    pub payment_method: PaymentMethod,
    /// Where to send the outcome (`None`: the provider client's default). A resend repeats
    /// the first request's URL: a request repeated under its idempotency key must be the same.
    pub webhook_url: Option<String>,
}

/// A request to give a charge back.
#[derive(Clone, Debug)]
pub struct RefundRequest {
    /// The order; `refund:<order id>` is the idempotency key (one refund per order).
    pub order_id: OrderId,
    /// The provider's id of the charge to refund.
    pub charge_id: String,
    /// How much.
    pub amount: Money,
    /// Where to send the outcome (`None`: the provider client's default).
    pub webhook_url: Option<String>,
}

/// The final outcome of a charge or refund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The charge went through.
    ChargeSucceeded {
        /// The provider's charge id.
        charge_id: String,
    },
    /// The charge was refused; nothing was taken.
    ChargeFailed {
        /// The charge id the provider gave the attempt.
        charge_id: String,
        /// Why.
        reason: PaymentFailureReason,
        /// The provider's message.
        detail: String,
    },
    /// The refund went through.
    RefundSucceeded {
        /// The provider's refund id.
        refund_id: String,
    },
}

/// What the provider tells us asynchronously.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per notification (a webhook id); used to drop repeats.
    pub notification_id: String,
    /// The order the request was for (the merchant reference).
    pub order_id: OrderId,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The provider's immediate answer to a request.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The provider's id for the charge or refund.
    pub id: String,
    /// The outcome, when the provider already knows it (an idempotent repeat).
    pub outcome: Option<Outcome>,
}

/// The provider did not take the request; it may be retried with the same key.
#[derive(Debug, thiserror::Error)]
#[error("payment provider unavailable: {0}")]
pub struct ProviderError(pub String, pub Availability);

/// Whether a failed request says anything about the provider's health (for the circuit
/// breaker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// No answer, or a server error: the provider may be down.
    Down,
    /// The provider answered, and refused this request (a `4xx`): it is up, and other
    /// requests must not be held back because of this one.
    Up,
}

impl ProviderError {
    /// The provider could not be reached or failed.
    pub fn down(message: impl Into<String>) -> Self {
        Self(message.into(), Availability::Down)
    }
}

/// A payment provider.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Asks for a charge; the outcome comes later as a [`Notification`].
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>>;

    /// Asks for a refund; the outcome comes later as a [`Notification`].
    fn refund(&self, request: RefundRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>>;
}
