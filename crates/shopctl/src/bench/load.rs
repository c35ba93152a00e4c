//! The two load shapes, and the progress bar that watches them.
//!
//! - **Closed loop** (`--concurrency N`): N clients, each placing an order, following it to its
//!   end, then placing the next. It finds the throughput the shop sustains at N orders in
//!   flight, but a slow answer also slows the load, which hides how slow it was.
//! - **Open loop** (`--rate R`): orders leave on a fixed schedule whatever the answers (see
//!   [`super::schedule`]; a thread of its own keeps it), latency counts from the intended send
//!   time, and at most `--max-in-flight` orders are open at once; an arrival beyond that is
//!   not sent and counts as a `client_overloaded` error, so an overloaded shop shows up as
//!   errors rather than as a quietly lower rate.
//!
//! Both start with a warm-up whose orders are placed but not measured (connections, caches,
//! consumer assignments settle), then measure for the duration: latencies of the orders sent
//! within it, throughput as the sagas that ended within it. Orders still open when it ends are
//! awaited (the drain), so that every measured order has its latency.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::Client;
use super::mix::Mixes;
use super::schedule::Schedule;
use super::stats::{Attempt, Recorder, Tally};

/// How the orders are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Shape {
    /// `concurrency` clients, each with one order in flight.
    Closed {
        /// Clients.
        concurrency: usize,
    },
    /// `rate_per_s` arrivals per second, at most `max_in_flight` open at once.
    Open {
        /// Orders per second.
        rate_per_s: f64,
        /// Cap on open orders.
        max_in_flight: usize,
    },
}

/// One run's load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Closed or open.
    pub(crate) shape: Shape,
    /// Placed but not measured.
    pub(crate) warmup: Duration,
    /// Measured.
    pub(crate) duration: Duration,
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Measured {
    /// The measured orders.
    pub(crate) tally: Tally,
    /// From the end of the measured window until the last order ended.
    pub(crate) drain: Duration,
    /// The most orders in flight at once.
    pub(crate) peak_in_flight: u64,
}

/// Pause after a failed order in the closed loop, so that a refusing server is not hammered.
const BACKOFF_AFTER_ERROR: Duration = Duration::from_millis(20);

impl Plan {
    /// The measured window of a run that starts (its warm-up) at `start`.
    pub(crate) fn window(&self, start: Instant) -> (Instant, Instant) {
        let measure_from = start + self.warmup;
        (measure_from, measure_from + self.duration)
    }
}

/// Runs `plan` against `client`, starting at `start`; `label` names the run on the progress bar.
pub(crate) async fn run(
    client: Arc<Client>,
    mixes: Arc<Mixes>,
    plan: Plan,
    start: Instant,
    show_progress: bool,
    label: &str,
) -> Result<Measured> {
    let (measure_from, until) = plan.window(start);
    let recorder = Arc::new(Recorder::new((measure_from, until))?);
    let progress = Progress::start(show_progress, label, plan, start, Arc::clone(&recorder));
    match plan.shape {
        Shape::Closed { concurrency } => {
            closed(client, mixes, &recorder, concurrency, measure_from, plan).await?;
        }
        Shape::Open {
            rate_per_s,
            max_in_flight,
        } => {
            let schedule = Schedule::new(rate_per_s, plan.warmup + plan.duration);
            open(
                client,
                mixes,
                &recorder,
                schedule,
                max_in_flight,
                start,
                measure_from,
            )
            .await?;
        }
    }
    progress.finish();
    Ok(Measured {
        tally: recorder.tally(),
        drain: Instant::now().saturating_duration_since(until),
        peak_in_flight: recorder.live.peak_in_flight.load(Ordering::Relaxed),
    })
}

async fn closed(
    client: Arc<Client>,
    mixes: Arc<Mixes>,
    recorder: &Arc<Recorder>,
    concurrency: usize,
    measure_from: Instant,
    plan: Plan,
) -> Result<()> {
    let until = measure_from + plan.duration;
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, mixes, recorder, next) = (
            Arc::clone(&client),
            Arc::clone(&mixes),
            Arc::clone(recorder),
            Arc::clone(&next),
        );
        workers.spawn(async move {
            while Instant::now() < until {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                recorder.started();
                let attempt = client.order(&mixes.order(index), sent).await;
                let failed = attempt.outcome.is_err();
                recorder.finished(sent >= measure_from, attempt);
                if failed {
                    tokio::time::sleep(BACKOFF_AFTER_ERROR).await;
                }
            }
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker.context("a bench worker panicked")?;
    }
    Ok(())
}

/// The open loop. A thread of its own keeps the schedule and starts each order on the runtime:
/// a task of the runtime would wake only at the timer's next millisecond tick, and then wait
/// behind the tasks following earlier orders, so that orders left ~1 ms late at the median and
/// several at the 99th percentile (at 1,500 orders/s) — lateness that counts in every latency.
async fn open(
    client: Arc<Client>,
    mixes: Arc<Mixes>,
    recorder: &Arc<Recorder>,
    schedule: Schedule,
    max_in_flight: usize,
    start: Instant,
    measure_from: Instant,
) -> Result<()> {
    let runtime = tokio::runtime::Handle::current();
    let (started, mut orders) = tokio::sync::mpsc::unbounded_channel();
    let recorder = Arc::clone(recorder);
    let pacer = std::thread::Builder::new()
        .name("bench-pacer".to_owned())
        .spawn(move || {
            let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
            for (index, offset) in schedule.arrivals() {
                let intended = start + offset;
                // Behind schedule (a busy machine), this returns at once: the order leaves
                // late, and its latency still counts from `intended`.
                std::thread::sleep(intended.saturating_duration_since(Instant::now()));
                let measured = intended >= measure_from;
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    recorder.record(measured, Attempt::failed(None, "client_overloaded"));
                    continue;
                };
                let (client, mixes, recorder) = (
                    Arc::clone(&client),
                    Arc::clone(&mixes),
                    Arc::clone(&recorder),
                );
                recorder.started();
                let order = runtime.spawn(async move {
                    recorder.sending(measured, intended.elapsed());
                    let attempt = client.order(&mixes.order(index), intended).await;
                    recorder.finished(measured, attempt);
                    drop(slot);
                });
                if started.send(order).is_err() {
                    // The run has failed and stopped listening.
                    return;
                }
            }
        })
        .context("starting the bench's pacing thread")?;
    // Every order ends (each has a timeout), in whatever order: awaiting them in the order
    // they started only holds on to finished ones a little longer.
    while let Some(order) = orders.recv().await {
        order.await.context("a bench order panicked")?;
    }
    tokio::task::spawn_blocking(move || pacer.join())
        .await
        .context("waiting for the bench's pacing thread")?
        .map_err(|_| anyhow::anyhow!("the bench's pacing thread panicked"))?;
    Ok(())
}

/// The progress bar on stderr: elapsed against planned time, orders/s, in flight, errors.
struct Progress {
    /// The bar (hidden when stderr is not a terminal or with `--quiet`).
    bar: ProgressBar,
    /// Redraws the message every quarter second.
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(show: bool, label: &str, plan: Plan, start: Instant, recorder: Arc<Recorder>) -> Self {
        let planned = plan.warmup + plan.duration;
        let bar = ProgressBar::with_draw_target(
            Some(u64::try_from(planned.as_millis()).unwrap_or(u64::MAX)),
            if show && std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        if let Ok(style) = ProgressStyle::with_template("{prefix} {elapsed:>3} [{bar:30}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_owned());
        let ticker = {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                // Orders per second over the last second: (time, completed) a second apart.
                let mut window: std::collections::VecDeque<(Instant, u64)> =
                    std::collections::VecDeque::new();
                loop {
                    tick.tick().await;
                    let now = Instant::now();
                    let live = &recorder.live;
                    let completed = live.completed.load(Ordering::Relaxed);
                    window.push_back((now, completed));
                    while window.len() > 5 {
                        window.pop_front();
                    }
                    let rate = match window.front() {
                        Some((then, before)) if now > *then => {
                            (completed - before) as f64 / (now - *then).as_secs_f64()
                        }
                        _ => 0.0,
                    };
                    let elapsed = now.duration_since(start);
                    let phase = if elapsed < plan.warmup {
                        "warm-up"
                    } else if elapsed < planned {
                        "measuring"
                    } else {
                        "draining"
                    };
                    bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                    bar.set_message(format!(
                        "{phase}: {rate:.0} orders/s, {} in flight, {} errors",
                        live.in_flight.load(Ordering::Relaxed),
                        live.errors.load(Ordering::Relaxed),
                    ));
                }
            })
        };
        Self { bar, ticker }
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
