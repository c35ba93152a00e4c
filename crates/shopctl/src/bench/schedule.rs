//! The open-loop arrival schedule: when each order is meant to be sent.
//!
//! Arrivals are evenly spaced at `1 / rate` and fixed before the run starts, so a slow answer
//! never delays the next order: the load the shop sees is the load asked for. Latency is then
//! measured from each order's *intended* send time, so time an order spent waiting to be sent
//! (the client fell behind, or the server stopped accepting connections) counts against the
//! server instead of silently disappearing — the "coordinated omission" a closed loop suffers.

use std::time::Duration;

/// Evenly spaced arrivals over a span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Schedule {
    /// Orders per second.
    rate_per_s: f64,
    /// Arrivals in the span: every `i` with `i / rate < span`.
    count: u64,
}

impl Schedule {
    /// `rate_per_s` orders per second for `span`.
    pub(crate) fn new(rate_per_s: f64, span: Duration) -> Self {
        let exact = span.as_secs_f64() * rate_per_s;
        // The tolerance keeps 0.3 s × 10/s at 3 arrivals despite floating-point rounding.
        let count = if rate_per_s > 0.0 && exact > 0.0 {
            (exact - 1e-9).ceil().max(0.0) as u64
        } else {
            0
        };
        Self { rate_per_s, count }
    }

    /// When arrival `index` is due, from the start of the run.
    pub(crate) fn at(&self, index: u64) -> Duration {
        Duration::from_secs_f64(index as f64 / self.rate_per_s)
    }

    /// Every arrival: its index and when it is due.
    pub(crate) fn arrivals(&self) -> impl Iterator<Item = (u64, Duration)> + '_ {
        (0..self.count).map(|index| (index, self.at(index)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn arrivals_are_evenly_spaced_from_zero() {
        let schedule = Schedule::new(4.0, Duration::from_secs(1));
        let times: Vec<u128> = schedule.arrivals().map(|(_, at)| ms(at)).collect();
        assert_eq!(times, [0, 250, 500, 750]);
    }

    fn count(rate: f64, span: Duration) -> usize {
        Schedule::new(rate, span).arrivals().count()
    }

    #[test]
    fn the_count_is_every_arrival_before_the_end() {
        assert_eq!(count(10.0, Duration::from_millis(300)), 3);
        assert_eq!(count(4.0, Duration::from_millis(1100)), 5);
        assert_eq!(count(3.0, Duration::from_secs(1)), 3);
        assert_eq!(count(500.0, Duration::from_secs(10)), 5000);
        assert_eq!(count(0.0, Duration::from_secs(10)), 0);
        assert_eq!(count(5.0, Duration::ZERO), 0);
    }

    #[test]
    fn fractional_rates_space_arrivals_over_seconds() {
        let schedule = Schedule::new(0.5, Duration::from_secs(5));
        let times: Vec<u128> = schedule.arrivals().map(|(_, at)| ms(at)).collect();
        assert_eq!(times, [0, 2000, 4000]);
    }

    #[test]
    fn arrival_times_do_not_drift() {
        // Computed from the index, not accumulated: the 10 000th arrival at 1000/s is at 10 s.
        let schedule = Schedule::new(1000.0, Duration::from_secs(11));
        assert_eq!(schedule.at(10_000), Duration::from_secs(10));
        let last = schedule.arrivals().last().map(|(_, at)| at);
        assert_eq!(last.map(ms), Some(10_999));
    }
}
