//! An in-process payment provider with deterministic test payment methods:
//!
//! | payment method                       | outcome                                         |
//! |--------------------------------------|-------------------------------------------------|
//! | `pm_visa_4242`, `pm_mastercard_5555` | charge succeeds                                 |
//! | `pm_slow_3s`                         | charge succeeds, but only after `slow_delay`    |
//! | `pm_flaky`                           | the first two requests fail (provider error), then it succeeds |
//! | `pm_card_declined`                   | declined                                        |
//! | `pm_insufficient_funds`              | insufficient funds                              |
//! | any other `pm_…`                     | invalid payment method                          |
//!
//! Outcomes are sent as [`Notification`]s after `delay`, like a PSP's webhook. A repeated
//! request (same idempotency key) returns the original charge, with its outcome once that is
//! decided. Its memory is the process's: after a restart it has forgotten earlier charges (a real
//! PSP would not), which payment-svc's own records make harmless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use uuid::Uuid;

use events::{OrderId, PaymentFailureReason, PaymentMethod};

use super::{
    Accepted, ChargeRequest, Notification, Outcome, PaymentProvider, ProviderError, RefundRequest,
};

/// Requests of `pm_flaky` that fail before one succeeds.
const FLAKY_FAILURES: u32 = 2;

/// Tuning of the simulator.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// How long after a request its outcome is notified.
    pub delay: Duration,
    /// How long `pm_slow_3s` takes instead.
    pub slow_delay: Duration,
}

/// What the simulator remembers of one idempotency key.
#[derive(Debug)]
struct Known {
    outcome: Outcome,
    /// When the outcome is decided (and notified).
    decided_at: Instant,
}

/// The simulator; cheap to clone.
#[derive(Clone, Debug)]
pub struct SimulatedProvider {
    config: SimulatorConfig,
    notifications: mpsc::Sender<Notification>,
    /// Outcome by idempotency key, so a repeated request gets the same answer.
    known: Arc<Mutex<HashMap<String, Known>>>,
    /// Failed attempts of `pm_flaky` by idempotency key.
    flaky_attempts: Arc<Mutex<HashMap<String, u32>>>,
}

impl SimulatedProvider {
    /// A simulator that notifies through `notifications`.
    pub fn new(config: SimulatorConfig, notifications: mpsc::Sender<Notification>) -> Self {
        Self {
            config,
            notifications,
            known: Arc::default(),
            flaky_attempts: Arc::default(),
        }
    }

    fn decide_charge(method: &PaymentMethod, charge_id: String) -> Outcome {
        let (reason, detail) = match method.as_str() {
            "pm_visa_4242" | "pm_mastercard_5555" | "pm_slow_3s" | "pm_flaky" => {
                return Outcome::ChargeSucceeded { charge_id };
            }
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

    /// `pm_flaky` fails its first requests, like a provider answering 503.
    fn flaky_failure(&self, method: &PaymentMethod, key: &str) -> Option<ProviderError> {
        if method.as_str() != "pm_flaky" {
            return None;
        }
        let mut attempts = self
            .flaky_attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let failed = attempts.entry(key.to_owned()).or_default();
        (*failed < FLAKY_FAILURES).then(|| {
            *failed += 1;
            ProviderError(format!(
                "503 Service Unavailable (simulated, attempt {failed})"
            ))
        })
    }

    /// Takes a request: a new key gets `outcome`, notified after `delay`; a known key gets its
    /// original answer.
    fn accept(
        &self,
        order_id: OrderId,
        key: String,
        outcome: Outcome,
        delay: Duration,
    ) -> Accepted {
        let now = Instant::now();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = known.get(&key) {
            let decided = now >= existing.decided_at;
            return Accepted {
                id: id_of(&existing.outcome),
                outcome: decided.then(|| existing.outcome.clone()),
            };
        }
        let id = id_of(&outcome);
        known.insert(
            key,
            Known {
                outcome: outcome.clone(),
                decided_at: now + delay,
            },
        );
        drop(known);
        let sender = self.notifications.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let notification = Notification {
                notification_id: format!("evt_{}", Uuid::new_v4().simple()),
                order_id,
                outcome,
            };
            // The receiver is gone only when the service is stopping; recovery asks again.
            let _ = sender.send(notification).await;
        });
        Accepted { id, outcome: None }
    }
}

fn id_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::ChargeSucceeded { charge_id } | Outcome::ChargeFailed { charge_id, .. } => {
            charge_id.clone()
        }
        Outcome::RefundSucceeded { refund_id } => refund_id.clone(),
    }
}

impl PaymentProvider for SimulatedProvider {
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        let key = request.order_id.to_string();
        let result = match self.flaky_failure(&request.payment_method, &key) {
            Some(error) => Err(error),
            None => {
                let outcome = Self::decide_charge(
                    &request.payment_method,
                    format!("ch_{}", Uuid::new_v4().simple()),
                );
                let delay = if request.payment_method.as_str() == "pm_slow_3s" {
                    self.config.slow_delay
                } else {
                    self.config.delay
                };
                Ok(self.accept(request.order_id, key, outcome, delay))
            }
        };
        Box::pin(async move { result })
    }

    fn refund(&self, request: RefundRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        let outcome = Outcome::RefundSucceeded {
            refund_id: format!("re_{}", Uuid::new_v4().simple()),
        };
        let key = format!("refund:{}", request.order_id);
        let accepted = self.accept(request.order_id, key, outcome, self.config.delay);
        Box::pin(async move { Ok(accepted) })
    }
}
