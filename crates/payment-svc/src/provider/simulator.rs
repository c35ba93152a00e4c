//! An in-process payment provider with deterministic test payment methods:
//!
//! | payment method          | outcome                          |
//! |-------------------------|----------------------------------|
//! | `pm_visa_4242`, `pm_mastercard_5555` | charge succeeds     |
//! | `pm_card_declined`      | declined                         |
//! | `pm_insufficient_funds` | insufficient funds               |
//! | any other `pm_…`        | invalid payment method           |
//!
//! Outcomes are sent as [`Notification`]s after `delay`, like a PSP's webhook. Its memory is the
//! process's: after a restart it has forgotten earlier charges (a real PSP would not), which
//! payment-svc's own records make harmless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use uuid::Uuid;

use events::{PaymentFailureReason, PaymentMethod};

use super::{
    Accepted, ChargeRequest, Notification, Outcome, PaymentProvider, ProviderError, RefundRequest,
};

/// Tuning of the simulator.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// How long after a request its outcome is notified.
    pub delay: Duration,
}

/// The simulator; cheap to clone.
#[derive(Clone, Debug)]
pub struct SimulatedProvider {
    config: SimulatorConfig,
    notifications: mpsc::Sender<Notification>,
    /// Outcome by idempotency key, so a repeated request gets the same answer.
    known: Arc<Mutex<HashMap<String, Outcome>>>,
}

impl SimulatedProvider {
    /// A simulator that notifies through `notifications`.
    pub fn new(config: SimulatorConfig, notifications: mpsc::Sender<Notification>) -> Self {
        Self {
            config,
            notifications,
            known: Arc::default(),
        }
    }

    fn decide_charge(method: &PaymentMethod, charge_id: String) -> Outcome {
        let (reason, detail) = match method.as_str() {
            "pm_visa_4242" | "pm_mastercard_5555" => return Outcome::ChargeSucceeded { charge_id },
            "pm_card_declined" => (PaymentFailureReason::Declined, "Your card was declined."),
            "pm_insufficient_funds" => (
                PaymentFailureReason::InsufficientFunds,
                "Your card has insufficient funds.",
            ),
            _ => (
                PaymentFailureReason::InvalidPaymentMethod,
                "The payment method is not known.",
            ),
        };
        Outcome::ChargeFailed {
            charge_id,
            reason,
            detail: detail.to_owned(),
        }
    }

    /// Records `outcome` under `key` unless one exists; returns the stored outcome and whether
    /// it is new.
    fn remember(&self, key: String, outcome: Outcome) -> (Outcome, bool) {
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match known.get(&key) {
            Some(existing) => (existing.clone(), false),
            None => {
                known.insert(key, outcome.clone());
                (outcome, true)
            }
        }
    }

    fn notify_later(&self, notification: Notification) {
        let sender = self.notifications.clone();
        let delay = self.config.delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // The receiver is gone only when the service is stopping; recovery resubmits.
            let _ = sender.send(notification).await;
        });
    }

    fn accept(&self, order_id: events::OrderId, key: String, outcome: Outcome) -> Accepted {
        let (outcome, new) = self.remember(key, outcome);
        let id = match &outcome {
            Outcome::ChargeSucceeded { charge_id } | Outcome::ChargeFailed { charge_id, .. } => {
                charge_id.clone()
            }
            Outcome::RefundSucceeded { refund_id } => refund_id.clone(),
        };
        if new {
            self.notify_later(Notification {
                notification_id: format!("evt_{}", Uuid::new_v4().simple()),
                order_id,
                outcome,
            });
            Accepted { id, outcome: None }
        } else {
            Accepted {
                id,
                outcome: Some(outcome),
            }
        }
    }
}

impl PaymentProvider for SimulatedProvider {
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        let charge_id = format!("ch_{}", Uuid::new_v4().simple());
        let outcome = Self::decide_charge(&request.payment_method, charge_id);
        let key = request.order_id.to_string();
        Box::pin(async move { Ok(self.accept(request.order_id, key, outcome)) })
    }

    fn refund(&self, request: RefundRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        let outcome = Outcome::RefundSucceeded {
            refund_id: format!("re_{}", Uuid::new_v4().simple()),
        };
        let key = format!("refund:{}", request.order_id);
        Box::pin(async move { Ok(self.accept(request.order_id, key, outcome)) })
    }
}
