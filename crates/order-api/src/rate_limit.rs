//! Per-principal limits, so that one client cannot take the whole shop: a rate limit on placing
//! orders (token bucket; over it, `429` with `Retry-After`), and a cap on the requests a client
//! holds open at once (event streams, `?wait=` and `Prefer: wait`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Token buckets by principal.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens added per second.
    per_second: f64,
    /// Most tokens a bucket holds (the burst).
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` sustained, bursts up to `burst`.
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second: per_second.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::default(),
        }
    }

    /// Takes a token for `principal`, or says how long until one is available.
    pub fn check(&self, principal: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets
            .entry(principal.to_owned())
            .or_insert((self.burst, now));
        let refilled = (*tokens
            + now.saturating_duration_since(*last).as_secs_f64() * self.per_second)
            .min(self.burst);
        *last = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.per_second))
        }
    }
}

/// How many long-lived requests (event streams, waits) each principal holds open.
#[derive(Debug)]
pub struct HeldPerPrincipal {
    /// Most a principal may hold at once.
    max: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One request held open; the count goes down when it is dropped.
#[derive(Debug)]
pub struct Held {
    owner: Arc<HeldPerPrincipal>,
    principal: String,
}

impl HeldPerPrincipal {
    /// At most `max` held requests per principal.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            held: Mutex::default(),
        })
    }

    /// Counts one more request of `principal`, or `None` if it holds `max` already.
    pub fn try_hold(self: &Arc<Self>, principal: &str) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(principal.to_owned()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Held {
            owner: Arc::clone(self),
            principal: principal.to_owned(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.principal) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_principal_holds_at_most_its_share() {
        let limit = HeldPerPrincipal::new(2);
        let first = limit.try_hold("alice").expect("one");
        let _second = limit.try_hold("alice").expect("two");
        assert!(limit.try_hold("alice").is_none(), "a third is refused");
        let _bob = limit.try_hold("bob").expect("bob has his own share");
        drop(first);
        assert!(
            limit.try_hold("alice").is_some(),
            "a released one is free again"
        );
    }

    #[test]
    fn allows_the_burst_then_the_rate_per_principal() {
        let limiter = RateLimiter::new(2.0, 3.0);
        let now = Instant::now();
        assert!((0..3).all(|_| limiter.check("alice", now).is_ok()));
        let wait = limiter.check("alice", now).expect_err("over the burst");
        assert!(wait <= Duration::from_millis(500));
        assert!(
            limiter.check("bob", now).is_ok(),
            "buckets are per principal"
        );
        assert!(
            limiter
                .check("alice", now + Duration::from_millis(500))
                .is_ok(),
            "refilled"
        );
    }
}
