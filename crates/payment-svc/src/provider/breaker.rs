//! A circuit breaker around the payment provider.
//!
//! When the provider keeps failing, calling it harder only deepens the outage. After
//! `threshold` consecutive failures the breaker opens: requests fail at once without reaching
//! the provider, payments stay `charging` (the recovery sweep asks again later, and the saga
//! deadline still applies — orders are not failed just because the provider is down). After
//! `cooldown` one trial request is let through (half-open); success closes the breaker,
//! failure opens it again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::{Accepted, Availability, ChargeRequest, PaymentProvider, ProviderError, RefundRequest};

/// Breaker state as a gauge: 0 closed, 1 half-open, 2 open.
pub const BREAKER_STATE: &str = "payment_provider_circuit_state";
/// Requests refused by the open breaker.
pub const BREAKER_REJECTIONS: &str = "payment_provider_circuit_rejections_total";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// The breaker's decisions, separate from I/O so they can be tested with a fake clock.
#[derive(Debug)]
struct Breaker {
    state: State,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    /// Whether a request may go to the provider now.
    fn admit(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen {
                    trial_in_flight: true,
                };
                true
            }
            State::Open { .. }
            | State::HalfOpen {
                trial_in_flight: true,
            } => false,
            State::HalfOpen {
                trial_in_flight: false,
            } => {
                self.state = State::HalfOpen {
                    trial_in_flight: true,
                };
                true
            }
        }
    }

    fn record(&mut self, success: bool, now: Instant) {
        self.state = match (self.state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (_, false) => State::Open {
                until: now + self.cooldown,
            },
        };
    }

    fn gauge(&self) -> f64 {
        match self.state {
            State::Closed { .. } => 0.0,
            State::HalfOpen { .. } => 1.0,
            State::Open { .. } => 2.0,
        }
    }
}

/// A provider behind a circuit breaker.
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<dyn PaymentProvider>,
    breaker: Arc<Mutex<Breaker>>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker").finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// Wraps `inner`: opens after `threshold` consecutive failures, tries again after `cooldown`.
    pub fn new(inner: Arc<dyn PaymentProvider>, threshold: u32, cooldown: Duration) -> Self {
        metrics::gauge!(BREAKER_STATE).set(0.0);
        Self {
            inner,
            breaker: Arc::new(Mutex::new(Breaker {
                state: State::Closed { failures: 0 },
                threshold: threshold.max(1),
                cooldown,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn guarded(
        &self,
        call: BoxFuture<'_, Result<Accepted, ProviderError>>,
    ) -> Result<Accepted, ProviderError> {
        if !self.lock().admit(Instant::now()) {
            metrics::counter!(BREAKER_REJECTIONS).increment(1);
            return Err(ProviderError::down(
                "circuit open: the provider is failing; not calling it",
            ));
        }
        let result = call.await;
        let mut breaker = self.lock();
        let was_open = breaker.gauge();
        let healthy = match &result {
            Ok(_) => true,
            Err(ProviderError(_, availability)) => *availability == Availability::Up,
        };
        breaker.record(healthy, Instant::now());
        let state = breaker.gauge();
        drop(breaker);
        if state != was_open {
            tracing::warn!(
                state,
                "Payment provider circuit breaker changed state (0 closed, 1 half-open, 2 open)."
            );
        }
        metrics::gauge!(BREAKER_STATE).set(state);
        result
    }
}

impl PaymentProvider for CircuitBreaker {
    fn charge(&self, request: ChargeRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        Box::pin(self.guarded(self.inner.charge(request)))
    }

    fn refund(&self, request: RefundRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        Box::pin(self.guarded(self.inner.refund(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker {
            state: State::Closed { failures: 0 },
            threshold: 3,
            cooldown: Duration::from_secs(5),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let now = Instant::now();
        let mut b = breaker();
        b.record(false, now);
        b.record(false, now);
        b.record(true, now);
        b.record(false, now);
        b.record(false, now);
        assert!(b.admit(now), "two failures after a success keep it closed");
        b.record(false, now);
        assert!(!b.admit(now), "the third consecutive failure opens it");
    }

    #[test]
    fn half_open_lets_one_trial_through_after_the_cooldown() {
        let now = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.record(false, now);
        }
        assert!(!b.admit(now + Duration::from_secs(4)));
        let later = now + Duration::from_secs(5);
        assert!(b.admit(later), "one trial after the cooldown");
        assert!(!b.admit(later), "only one at a time");
        b.record(false, later);
        assert!(
            !b.admit(later + Duration::from_secs(1)),
            "a failed trial reopens it"
        );
        let much_later = later + Duration::from_secs(6);
        assert!(b.admit(much_later));
        b.record(true, much_later);
        assert!(
            b.admit(much_later) && b.admit(much_later),
            "a good trial closes it"
        );
    }

    /// Answers every request with `error`'s availability.
    struct Refusing(Availability);

    impl PaymentProvider for Refusing {
        fn charge(&self, _: ChargeRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
            Box::pin(async move { Err(ProviderError("refused".into(), self.0)) })
        }

        fn refund(&self, _: RefundRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
            Box::pin(async move { Err(ProviderError("refused".into(), self.0)) })
        }
    }

    fn request() -> ChargeRequest {
        ChargeRequest {
            order_id: events::OrderId::new(),
            amount: events::Money::new(100, events::Currency::USD),
            payment_method: events::PaymentMethod::parse("pm_visa_4242").expect("a method"),
            webhook_url: None,
        }
    }

    #[tokio::test]
    async fn refusals_of_single_requests_do_not_open_it_but_outages_do() {
        let refusing = CircuitBreaker::new(
            Arc::new(Refusing(Availability::Up)),
            3,
            Duration::from_secs(60),
        );
        for _ in 0..10 {
            let refused = refusing.charge(request()).await;
            assert!(
                refused.is_err_and(|error| error.0 == "refused"),
                "still called"
            );
        }
        let down = CircuitBreaker::new(
            Arc::new(Refusing(Availability::Down)),
            3,
            Duration::from_secs(60),
        );
        for _ in 0..3 {
            let _ = down.charge(request()).await;
        }
        let held_back = down.charge(request()).await;
        assert!(held_back.is_err_and(|error| error.0.starts_with("circuit open")));
    }
}
