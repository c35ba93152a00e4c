//! Sending charge and refund requests to the provider, and applying the outcomes it reports.
//!
//! A request to the provider happens after the transaction that recorded the intent, so the
//! process can die between the two, or the provider's notification can be lost: the recovery
//! sweep (`crate::recovery`) sends such requests again through the same [`Requests`].
//!
//! Requests made on behalf of an event run beside the consumer ([`Requests::spawn_charge`]):
//! the intent is already committed, so the consumer goes on to the next event instead of
//! waiting for the provider — a slow provider delays payments, not the whole topic.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::Semaphore;
use tracing::Instrument;
use tracing::field::Empty;

use events::OrderId;
use platform::Db;

use super::outcome::apply_notification;
use super::{Accepted, ChargeRequest, Notification, PaymentProvider, RefundRequest};
use crate::store::{self, Payment, Refund};

/// The way to the provider: its client, the payments' database, and a bound on the requests
/// in flight. Cheap to clone; every clone shares the bound.
#[derive(Clone)]
pub struct Requests {
    /// Where intents are read and outcomes recorded.
    pub(crate) db: Db,
    /// The provider's client (behind the circuit breaker, in the service).
    provider: Arc<dyn PaymentProvider>,
    /// Bounds the provider requests running beside the consumer: when the provider is slow,
    /// handlers wait for a free slot instead of piling up requests without limit.
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests")
            .field("db", &self.db)
            .field("free_slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl Requests {
    /// Requests through `provider`, at most `max_in_flight` of them at once, recorded in `db`.
    pub fn new(db: Db, provider: Arc<dyn PaymentProvider>, max_in_flight: usize) -> Self {
        Self {
            db,
            provider,
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    /// Slots free for another request: all of them once every request has been answered.
    #[cfg(test)]
    pub(crate) fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Sends the charge request of `payment` in the background, in the current span, once one
    /// of the bounded slots is free.
    pub(crate) async fn spawn_charge(&self, payment: Payment) {
        let owned = self.clone();
        self.spawn(async move { owned.submit_charge(&payment).await })
            .await;
    }

    /// Sends the refund request of `refund` in the background (see [`Self::spawn_charge`]).
    pub(crate) async fn spawn_refund(&self, refund: Refund) {
        let owned = self.clone();
        self.spawn(async move { owned.submit_refund(&refund).await })
            .await;
    }

    async fn spawn(&self, request: impl Future<Output = ()> + Send + 'static) {
        // Closed only if the semaphore is dropped, which it is not while `self` lives.
        let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
            return;
        };
        tokio::spawn(
            async move {
                request.await;
                drop(slot);
            }
            .instrument(tracing::Span::current()),
        );
    }

    /// Sends (or re-sends) the charge request of `payment`. Failures are logged: the sweep
    /// retries.
    pub(crate) async fn submit_charge(&self, payment: &Payment) {
        let request = ChargeRequest {
            order_id: payment.order_id,
            amount: payment.amount,
            payment_method: payment.payment_method.clone(),
            webhook_url: payment.webhook_url.clone(),
        };
        let span = tracing::info_span!(
            "payment provider charge",
            otel.name = "psp charge",
            otel.kind = "internal",
            otel.status_code = Empty,
            otel.status_description = Empty,
            payment.amount_minor = payment.amount.amount_minor,
            payment.method = %payment.payment_method,
        );
        match traced(span, self.provider.charge(request)).await {
            Ok(accepted) => {
                let order_id = payment.order_id;
                let charge_id = accepted.id.clone();
                let marked = self
                    .db
                    .transaction(move |tx| store::mark_charge_submitted(tx, order_id, &charge_id))
                    .await;
                if let Err(error) = marked {
                    tracing::warn!(%error, %order_id, "Could not note a charge submission.");
                }
                if let Some(refund) = self.apply_known_outcome(order_id, accepted).await {
                    self.spawn_refund(refund).await;
                }
            }
            Err(error) => {
                tracing::warn!(%error, order_id = %payment.order_id, "Charge request failed; will retry.")
            }
        }
    }

    /// Sends (or re-sends) the refund request of `refund`.
    pub(crate) async fn submit_refund(&self, refund: &Refund) {
        let request = RefundRequest {
            order_id: refund.order_id,
            charge_id: refund.charge_id.clone(),
            amount: refund.amount,
            webhook_url: refund.webhook_url.clone(),
        };
        let span = tracing::info_span!(
            "payment provider refund",
            otel.name = "psp refund",
            otel.kind = "internal",
            otel.status_code = Empty,
            otel.status_description = Empty,
            payment.amount_minor = refund.amount.amount_minor,
        );
        match traced(span, self.provider.refund(request)).await {
            Ok(accepted) => {
                let order_id = refund.order_id;
                let marked = self
                    .db
                    .transaction(move |tx| store::mark_refund_submitted(tx, order_id))
                    .await;
                if let Err(error) = marked {
                    tracing::warn!(%error, %order_id, "Could not note a refund submission.");
                }
                // A refund's outcome never calls for another refund.
                let _ = self.apply_known_outcome(order_id, accepted).await;
            }
            Err(error) => {
                tracing::warn!(%error, order_id = %refund.order_id, "Refund request failed; will retry.")
            }
        }
    }

    /// Applies a notification (a webhook, or an outcome learnt by asking again) and sends the
    /// refund it may call for (a charge that succeeded for an order cancelled meanwhile).
    pub(crate) async fn apply(&self, notification: Notification) -> platform::sql::Result<()> {
        if let Some(refund) = apply_notification(&self.db, notification).await? {
            self.spawn_refund(refund).await;
        }
        Ok(())
    }

    /// A repeated request may come back with the outcome already decided: apply it as if
    /// notified. Returns the refund the outcome calls for, if any (only a charge's outcome
    /// can).
    async fn apply_known_outcome(&self, order_id: OrderId, accepted: Accepted) -> Option<Refund> {
        let outcome = accepted.outcome?;
        let notification = Notification {
            notification_id: format!("sync_{}_{}", accepted.id, Utc::now().timestamp_micros()),
            order_id,
            outcome,
        };
        match apply_notification(&self.db, notification).await {
            Ok(refund) => refund,
            Err(error) => {
                tracing::warn!(%error, %order_id, "Could not apply a known outcome; the sweep will ask again.");
                None
            }
        }
    }
}

/// Awaits a provider call inside its `span` (the HTTP client's span is its child), marking
/// the span failed on error.
async fn traced<T, E: std::fmt::Display>(
    span: tracing::Span,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let result = call.instrument(span.clone()).await;
    if let Err(error) = &result {
        platform::telemetry::mark_error(&span, error);
    }
    result
}
