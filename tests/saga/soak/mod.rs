//! The saga over time: a steady open-loop load while the chaos test's faults come one at a
//! time at intervals, then how long the shop takes to settle after the last one. The chaos test
//! shows that nothing is lost; this one shows what a run does over time — saga latency minute
//! by minute, the services' memory at start and end, dead letters — and prints a report (also
//! written as JSON: [`report`]).
//!
//! `CHAOS_MINUTES` sets how long the load runs (a real soak: `CHAOS_MINUTES=30`), `SOAK_RATE`
//! its rate in orders per second (default 20), `CHAOS_SEED` replays a run and `SOAK_REPORT`
//! says where the JSON goes (default `target/soak-report.json`). Without `CHAOS_MINUTES` the
//! test runs a small default — 30 s at 5 orders/s, with every kind of fault once — so that CI
//! keeps it cheap and it cannot rot.

mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use saga_tests::eventually_within;

use crate::chaos::{
    Chaos, Fault, chaos_stack, inflict, place_until_accepted, poison_dead_lettered, random_order,
};
use crate::invariants::{check_invariants, settled};
use report::{Memory, Run, SoakReport};

/// The load of a run without `CHAOS_MINUTES`: enough for every kind of fault, cheap for CI.
const DEFAULT_LOAD: Duration = Duration::from_secs(30);

/// Orders per second of a run without `CHAOS_MINUTES`.
const DEFAULT_RATE: u32 = 5;

/// Orders per second of a run with `CHAOS_MINUTES`.
const SOAK_RATE: u32 = 20;

/// The longest mean pause between two faults; shorter runs pause less, so that they still go
/// through every kind of fault.
const MAX_FAULT_GAP: Duration = Duration::from_secs(15);

/// How long the shop may take to settle after the last fault: every accepted order terminal,
/// every invariant holding. More than the chaos test allows, for the backlog a long load at a
/// high rate may leave.
const SETTLE: Duration = Duration::from_secs(180);

/// What a run is asked to do, from the environment.
#[derive(Debug)]
struct Settings {
    /// How long orders are placed.
    load: Duration,
    /// Orders per second.
    rate: u32,
    /// Seeds the order mix and the faults' order and timing.
    seed: u64,
    /// Where the JSON report goes.
    report: PathBuf,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let minutes: Option<f64> = env("CHAOS_MINUTES")?;
        let load = minutes.map_or(DEFAULT_LOAD, |minutes| {
            Duration::from_secs_f64(minutes * 60.0)
        });
        let rate = env("SOAK_RATE")?.unwrap_or(if minutes.is_some() {
            SOAK_RATE
        } else {
            DEFAULT_RATE
        });
        let report = match std::env::var_os("SOAK_REPORT") {
            Some(path) => PathBuf::from(path),
            // target/<profile>/deps/<this test binary> → target/soak-report.json
            None => std::env::current_exe()?
                .ancestors()
                .nth(3)
                .context("the test binary is not in target/<profile>/deps")?
                .join("soak-report.json"),
        };
        Ok(Self {
            load,
            rate: rate.max(1),
            seed: env("CHAOS_SEED")?.unwrap_or(7),
            report,
        })
    }
}

/// The variable `name` parsed, if set.
fn env<T: std::str::FromStr>(name: &str) -> Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    std::env::var(name)
        .ok()
        .map(|value| value.parse().with_context(|| format!("{name}={value}")))
        .transpose()
}

// Two worker threads: the faults block their thread at times (reading whole topics to
// duplicate events), and the load must not pause while they do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_holds_steady_over_time_under_load_and_faults() -> Result<()> {
    let settings = Settings::from_env()?;
    eprintln!(
        "soak: {:?} at {} orders/s, seed {} (CHAOS_MINUTES, SOAK_RATE, CHAOS_SEED)",
        settings.load, settings.rate, settings.seed
    );
    let mut stack = chaos_stack().await?;
    let memory_at_start = Memory::of(&stack)?;

    // Arrange and act: the load runs on its own while the faults come at intervals.
    let load_started = Utc::now();
    let load = tokio::spawn(open_loop(
        stack.http.clone(),
        stack.url("/api/orders"),
        settings.rate,
        settings.load,
        settings.seed,
    ));
    let load_ends = Instant::now() + settings.load;
    let mut chaos = Chaos::default();
    let mut faults: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(settings.seed ^ 0x50a6);
    let gap = (settings.load / u32::try_from(Fault::ALL.len())?).min(MAX_FAULT_GAP);
    let mut round = 0;
    'faults: loop {
        for fault in Fault::shuffled(&mut rng) {
            // A pause of a random length around the gap: faults come at intervals, not in
            // step with anything else.
            let next = Instant::now() + gap.mul_f64(rng.random_range(0.67..1.33));
            // The load ends the faults, once every kind has come at least once.
            if next >= load_ends && round > 0 {
                break 'faults;
            }
            tokio::time::sleep_until(next).await;
            inflict(fault, &mut stack, &mut rng, &mut chaos, round).await?;
            *faults.entry(fault.name()).or_default() += 1;
        }
        round += 1;
    }
    let last_fault = Instant::now();
    let accepted = load.await??;
    eprintln!(
        "soak: {} orders accepted; faults {faults:?}; {chaos:?}",
        accepted.len()
    );

    // Assert: every accepted order ends and the books balance, within a deadline.
    let polled = eventually_within(SETTLE, || {
        let attempt = Instant::now();
        std::future::ready(
            check_invariants(&stack, &accepted)
                .map(|invariants| (invariants, attempt))
                .map_err(|error| format!("{error:#}")),
        )
    })
    .await;
    let Ok((invariants, settled_at)) = polled else {
        // Once more, to print the offending orders with their evidence.
        settled(&stack, &accepted, Duration::ZERO)
            .await
            .context("invariants did not hold after the soak settled")?;
        bail!("the invariants held only after the soak's deadline of {SETTLE:?}");
    };
    let poison = poison_dead_lettered(&stack)?;
    assert!(
        poison >= 1,
        "the poison message is not in the dead-letter topic"
    );

    let run = Run {
        load_started,
        accepted: accepted.len(),
        faults,
        chaos,
        memory_at_start,
        settle: settled_at.saturating_duration_since(last_fault),
    };
    let report = SoakReport::gather(&stack, &settings, run)?;
    eprintln!("{invariants}\n{report}");
    report.write(&settings.report)?;
    eprintln!("soak: report written to {}", settings.report.display());
    Ok(())
}

/// Sends `rate` orders a second for `duration`, each at its scheduled time whether or not the
/// ones before have been accepted — an open loop, as customers arrive: a slow or restarting
/// order-api does not slow the arrivals down, it meets a queue. Each order is retried until it
/// is accepted; returns the accepted orders' ids once all are.
async fn open_loop(
    http: reqwest::Client,
    url: String,
    rate: u32,
    duration: Duration,
    seed: u64,
) -> Result<Vec<String>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let period = Duration::from_secs(1) / rate;
    let count = usize::try_from(duration.as_nanos() / period.as_nanos())?;
    let mut ticks = tokio::time::interval(period);
    // Ticks missed while the runtime was busy are sent at once: the schedule holds.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut placers = JoinSet::new();
    for _ in 0..count {
        ticks.tick().await;
        let body = random_order(&mut rng, "usr_soak");
        let (http, url) = (http.clone(), url.clone());
        placers.spawn(async move { place_until_accepted(&http, &url, &body).await });
    }
    let mut accepted = Vec::with_capacity(count);
    while let Some(placed) = placers.join_next().await {
        accepted.push(placed??);
    }
    Ok(accepted)
}
