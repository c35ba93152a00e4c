//! A per-principal rate limit on placing orders (token bucket), so one client cannot take the
//! whole shop; the answer to a client over its limit is `429` with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
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

#[cfg(test)]
mod tests {
    use super::*;

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
