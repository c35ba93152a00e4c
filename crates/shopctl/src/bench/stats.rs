//! Recording what the orders did: HDR latency histograms, counts, outcomes, errors, and the
//! live counters the progress bar reads.
//!
//! Latencies go into HDR histograms at microsecond resolution with three significant digits:
//! constant memory however long the run, percentiles accurate to 0.1 %, and no sorting of
//! millions of samples at the end.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use serde::Serialize;
use shop_client::WatchStats;

/// Significant digits kept by the histograms (0.1 % relative error).
const SIGNIFICANT_DIGITS: u8 = 3;

/// Percentiles of a latency distribution, in milliseconds with three decimals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Percentiles {
    /// Median.
    pub(crate) p50: f64,
    /// 90th percentile.
    pub(crate) p90: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// 99.9th percentile.
    pub(crate) p999: f64,
    /// Slowest.
    pub(crate) max: f64,
    /// Arithmetic mean.
    pub(crate) mean: f64,
    /// Samples.
    pub(crate) count: u64,
}

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Latencies(Histogram<u64>);

impl Latencies {
    /// An empty histogram that grows to whatever values it is given.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(Histogram::new(SIGNIFICANT_DIGITS)?))
    }

    /// Records one latency (at least 1 µs, the histogram's lowest value).
    pub(crate) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // The histogram grows to fit; should it ever fail to, the value is clamped instead.
        if self.0.record(micros).is_err() {
            self.0.saturating_record(micros);
        }
    }

    /// The percentiles in milliseconds.
    pub(crate) fn percentiles(&self) -> Percentiles {
        if self.0.is_empty() {
            return Percentiles::default();
        }
        // Whole microseconds are milliseconds with three decimals.
        let ms = |micros: f64| micros.round() / 1000.0;
        let at = |quantile: f64| ms(self.0.value_at_quantile(quantile) as f64);
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: ms(self.0.max() as f64),
            mean: ms(self.0.mean()),
            count: self.0.len(),
        }
    }
}

/// What became of one order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attempt {
    /// From the (intended) send time to order-api's answer to the POST, if it accepted the
    /// order.
    pub(crate) accepted: Option<Duration>,
    /// From the (intended) send time to the terminal status, and that status
    /// (`confirmed`, `cancelled:<reason>`); or why the order did not get there.
    pub(crate) outcome: Result<(Duration, String), String>,
    /// How the order was followed (streams opened, long polls), if it was.
    pub(crate) watch: WatchStats,
}

impl Attempt {
    /// An order that failed with `kind` (`http_503`, `connect`, …) before it was followed.
    pub(crate) fn failed(accepted: Option<Duration>, kind: impl Into<String>) -> Self {
        Self {
            accepted,
            outcome: Err(kind.into()),
            watch: WatchStats::default(),
        }
    }
}

/// Totals of the measured orders.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    /// Accept latencies.
    pub(crate) accept: Latencies,
    /// Saga latencies.
    pub(crate) saga: Latencies,
    /// How late the bench itself was with each order of the open loop: from its intended send
    /// time until its task began placing it. Part of both latencies above.
    pub(crate) send_lag: Latencies,
    /// Orders order-api accepted (`202`, or `201` with `--sync`).
    pub(crate) accepted: u64,
    /// Terminal statuses seen, by status.
    pub(crate) outcomes: BTreeMap<String, u64>,
    /// Failures, by kind.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Event streams reopened after they broke (`Last-Event-ID`), over all orders.
    pub(crate) stream_resumes: u64,
    /// Orders followed by stream that ended up long polling: the stream was not to be had, or
    /// kept breaking.
    pub(crate) poll_fallbacks: u64,
    /// Sagas that *ended* within the measured window, whenever they were sent: the throughput
    /// count, unbiased by orders still open when the window closes.
    pub(crate) ended_in_window: u64,
}

impl Tally {
    fn new() -> Result<Self> {
        Ok(Self {
            accept: Latencies::new()?,
            saga: Latencies::new()?,
            send_lag: Latencies::new()?,
            accepted: 0,
            outcomes: BTreeMap::new(),
            errors: BTreeMap::new(),
            stream_resumes: 0,
            poll_fallbacks: 0,
            ended_in_window: 0,
        })
    }

    /// Sagas that reached a terminal status.
    pub(crate) fn completed(&self) -> u64 {
        self.saga.0.len()
    }
}

/// Counters for the progress bar: every order, warm-up included.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Orders whose saga ended (either way).
    pub(crate) completed: AtomicU64,
    /// Orders that failed.
    pub(crate) errors: AtomicU64,
    /// Orders sent and not yet finished.
    pub(crate) in_flight: AtomicU64,
    /// The most orders in flight at once.
    pub(crate) peak_in_flight: AtomicU64,
}

/// Shared by every task of a run: each records its orders here.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// Measured orders only (not the warm-up). A mutex is plenty: an order takes milliseconds,
    /// recording it a fraction of a microsecond.
    tally: Mutex<Tally>,
    /// Every order, for the progress bar.
    pub(crate) live: Live,
    /// The measured window: from the end of the warm-up to the end of the duration.
    window: (Instant, Instant),
}

impl Recorder {
    /// A recorder with nothing recorded, measuring throughput over `window`.
    pub(crate) fn new(window: (Instant, Instant)) -> Result<Self> {
        Ok(Self {
            tally: Mutex::new(Tally::new()?),
            live: Live::default(),
            window,
        })
    }

    /// An order is being sent.
    pub(crate) fn started(&self) {
        let now = self.live.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.live.peak_in_flight.fetch_max(now, Ordering::Relaxed);
    }

    /// An order of the open loop begins to be placed `late` after its intended send time.
    pub(crate) fn sending(&self, measured: bool, late: Duration) {
        if measured {
            let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            tally.send_lag.record(late);
        }
    }

    /// An order sent with [`Recorder::started`] is finished; `measured` is false during warm-up.
    pub(crate) fn finished(&self, measured: bool, attempt: Attempt) {
        self.live.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.record(measured, attempt);
    }

    /// Records an order that was never sent or has finished.
    pub(crate) fn record(&self, measured: bool, attempt: Attempt) {
        match &attempt.outcome {
            Ok(_) => self.live.completed.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.live.errors.fetch_add(1, Ordering::Relaxed),
        };
        let now = Instant::now();
        let in_window = attempt.outcome.is_ok() && self.window.0 <= now && now < self.window.1;
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        tally.ended_in_window += u64::from(in_window);
        if !measured {
            return;
        }
        if let Some(accepted) = attempt.accepted {
            tally.accepted += 1;
            tally.accept.record(accepted);
        }
        tally.stream_resumes += u64::from(attempt.watch.resumes());
        tally.poll_fallbacks +=
            u64::from(attempt.watch.stream_connects > 0 && attempt.watch.polls > 0);
        match attempt.outcome {
            Ok((saga, status)) => {
                tally.saga.record(saga);
                *tally.outcomes.entry(status).or_default() += 1;
            }
            Err(kind) => *tally.errors.entry(kind).or_default() += 1,
        }
    }

    /// The totals so far.
    pub(crate) fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001 + 0.001
    }

    #[test]
    fn percentiles_are_reported_in_ms_within_a_tenth_of_a_percent() -> Result<()> {
        let mut latencies = Latencies::new()?;
        for ms in 1..=1000_u64 {
            latencies.record(Duration::from_millis(ms));
        }
        let p = latencies.percentiles();
        assert_eq!(p.count, 1000);
        for (actual, expected) in [
            (p.p50, 500.0),
            (p.p90, 900.0),
            (p.p99, 990.0),
            (p.p999, 999.0),
            (p.max, 1000.0),
            (p.mean, 500.5),
        ] {
            assert!(close(actual, expected), "{actual} is not ~{expected}");
        }
        assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max);
        Ok(())
    }

    #[test]
    fn sub_millisecond_latencies_keep_three_decimals() -> Result<()> {
        let mut latencies = Latencies::new()?;
        latencies.record(Duration::from_micros(1234));
        let p = latencies.percentiles();
        assert_eq!((p.p50, p.max, p.count), (1.234, 1.234, 1));
        // Three decimals, never more.
        assert_eq!(format!("{}", p.mean), "1.234");
        Ok(())
    }

    #[test]
    fn an_empty_histogram_reports_zeros() -> Result<()> {
        assert_eq!(Latencies::new()?.percentiles(), Percentiles::default());
        Ok(())
    }

    #[test]
    fn warm_up_orders_are_not_measured() -> Result<()> {
        let now = Instant::now();
        let recorder = Recorder::new((now, now + Duration::from_secs(60)))?;
        let ok = |ms| Attempt {
            accepted: Some(Duration::from_millis(1)),
            outcome: Ok((Duration::from_millis(ms), "confirmed".to_owned())),
            watch: WatchStats::default(),
        };
        recorder.started();
        recorder.sending(false, Duration::from_millis(3));
        recorder.finished(false, ok(5));
        recorder.started();
        recorder.sending(true, Duration::from_millis(2));
        recorder.finished(true, ok(7));
        recorder.record(true, Attempt::failed(None, "client_overloaded"));
        let tally = recorder.tally();
        assert_eq!((tally.accepted, tally.completed()), (1, 1));
        assert_eq!(tally.send_lag.percentiles().count, 1);
        assert_eq!(tally.outcomes["confirmed"], 1);
        assert_eq!(tally.errors["client_overloaded"], 1);
        assert_eq!(
            tally.ended_in_window, 2,
            "a warm-up order may end in the window"
        );
        assert_eq!(recorder.live.completed.load(Ordering::Relaxed), 2);
        assert_eq!(recorder.live.peak_in_flight.load(Ordering::Relaxed), 1);
        Ok(())
    }
}
