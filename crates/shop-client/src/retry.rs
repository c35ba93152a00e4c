//! When to try again, and how long to wait first.
//!
//! Exponential backoff with *full jitter* (a uniformly random delay between zero and the
//! exponential bound): many clients refused at the same moment — a rate limit, a restarting
//! server — come back spread out instead of in a second wave. A server's `Retry-After` wins over
//! the computed delay: it knows when it will have room.

use std::time::Duration;

use rand::RngExt;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How often, and how patiently, a request is retried.
///
/// Retried: connection failures and timeouts, `429 Too Many Requests` and `503 Service
/// Unavailable`. Placing an order is retried with the same `Idempotency-Key` every time, which
/// is what makes retrying a `POST` safe.
///
/// ```
/// use std::time::Duration;
/// use shop_client::RetryPolicy;
///
/// // Patient: for a batch job that must not give up during a deploy.
/// let policy = RetryPolicy {
///     max_attempts: 10,
///     base_delay: Duration::from_millis(200),
///     max_delay: Duration::from_secs(10),
/// };
/// assert!(policy.backoff(3) <= Duration::from_millis(1600));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; `1` never retries.
    pub max_attempts: u32,
    /// The bound of the first retry's delay; each further retry doubles it.
    pub base_delay: Duration,
    /// The bound no delay exceeds, however many retries came before (a `Retry-After` may).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 250 ms doubling up to 5 s: about 4 s of patience on average, enough to ride
    /// out a restarting service without hiding a dead one for long.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Never retries: every failure is the caller's to handle.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before retry number `retry` (1 for the first retry): a random duration between
    /// zero and `min(max_delay, base_delay × 2^(retry-1))`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let bound = self.bound(retry);
        if bound.is_zero() {
            return bound;
        }
        rand::rng().random_range(Duration::ZERO..=bound)
    }

    /// The upper bound of [`RetryPolicy::backoff`] for retry number `retry`.
    pub fn bound(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }

    /// The delay before retry number `retry` of an answer that said `retry_after`: the server's
    /// word when it gave one, else [`RetryPolicy::backoff`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or_else(|| self.backoff(retry))
    }
}

/// The `Retry-After` of an answer, if it has a valid one.
///
/// Both forms of RFC 9110 §10.2.3 are read: delay-seconds (`Retry-After: 2`), which order-api
/// sends, and an HTTP date, which proxies may (a date in the past means "now").
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after(value, chrono::Utc::now())
}

fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((date.to_utc() - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_bounds() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let bounds: Vec<u64> = (1..=6)
            .map(|retry| policy.bound(retry).as_millis() as u64)
            .collect();
        assert_eq!(bounds, [100, 200, 400, 800, 1000, 1000]);
        for retry in 1..=40 {
            for _ in 0..50 {
                assert!(policy.backoff(retry) <= policy.bound(retry));
            }
        }
        // Full jitter: the delays spread over the range, not all at its top.
        let delays: Vec<Duration> = (0..200).map(|_| policy.backoff(4)).collect();
        assert!(delays.iter().any(|d| *d < Duration::from_millis(400)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(400)));
    }

    #[test]
    fn a_huge_retry_count_does_not_overflow() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.bound(u32::MAX), policy.max_delay);
    }

    #[test]
    fn retry_after_is_honoured_over_backoff() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert!(policy.delay(1, None) <= policy.base_delay);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|date| date.to_utc())
            .expect("valid date");
        let parse = |value| parse_retry_after(value, now);
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse("Thu, 01 Jan 2026 00:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse("Wed, 31 Dec 2025 23:00:00 GMT"), Some(Duration::ZERO));
        for bad in ["", "-1", "1.5", "soon", " 2x"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_comes_from_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, reqwest::header::HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
    }
}
