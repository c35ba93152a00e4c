//! What a soak run shows, gathered from the stack once it has settled: printed as text, and
//! written as JSON so that runs can be compared.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use events::{CancellationReason, Topic};
use serde::Serialize;

use saga_tests::{Service, ServiceKind, Stack};

use super::Settings;
use crate::chaos::Chaos;

/// The figures of one run.
#[derive(Debug, Serialize)]
pub(super) struct SoakReport {
    /// How long orders were placed, in seconds.
    load_s: f64,
    /// Orders sent per second.
    rate_per_s: u32,
    /// The run's seed (`CHAOS_SEED`).
    seed: u64,
    /// Orders order-api accepted (every order sent is retried until it is).
    orders_accepted: usize,
    /// Orders order-api holds: more than were accepted when a kill lost the answer to a
    /// request that had placed its order, and the retry placed it again.
    orders_recorded: usize,
    /// The orders order-api holds by outcome: `confirmed`, or the reason of a cancellation.
    outcomes: BTreeMap<&'static str, usize>,
    /// Faults inflicted, by kind.
    faults: BTreeMap<&'static str, u32>,
    /// What the faults did in detail: kills by service, request errors armed, copies and
    /// poison produced.
    fault_details: Chaos,
    /// Saga latency (acceptance to terminal status) of the orders accepted in each minute of
    /// the load.
    latency_per_minute: Vec<MinuteLatency>,
    /// Each process's resident memory at the start and at the end.
    memory: Vec<ProcessMemory>,
    /// Messages on each dead-letter topic.
    dead_letters: BTreeMap<&'static str, usize>,
    /// From the end of the last fault until every accepted order was terminal and every
    /// invariant held, in seconds.
    settle_s: f64,
}

/// The saga latency of the orders accepted in one minute of the load.
#[derive(Debug, Serialize)]
struct MinuteLatency {
    /// Minutes since the load began: 0 for the first.
    minute: i64,
    /// Orders accepted in that minute.
    orders: usize,
    /// Median, in milliseconds.
    p50_ms: i64,
    /// 99th percentile (nearest rank), in milliseconds.
    p99_ms: i64,
    /// The slowest, in milliseconds.
    max_ms: i64,
}

/// One process's memory over the run.
#[derive(Debug, Serialize)]
struct ProcessMemory {
    /// `broker`, `order-api`, `payment-svc`, …
    process: &'static str,
    /// VmRSS when the load began, in KiB.
    start_kib: Option<u64>,
    /// VmRSS at the end, in KiB: of the process running then, which after a kill is a
    /// restarted one.
    end_kib: Option<u64>,
    /// How long the process measured at the end had been running, in seconds.
    up_s: Option<f64>,
    /// How many times it was started (1 + restarts after kills).
    starts: u32,
}

/// What the run itself recorded, beside what the stack holds.
#[derive(Debug)]
pub(super) struct Run {
    /// When the first order was due: minute 0 of the latency figures.
    pub(super) load_started: DateTime<Utc>,
    /// How many orders were accepted.
    pub(super) accepted: usize,
    /// Faults inflicted, by kind.
    pub(super) faults: BTreeMap<&'static str, u32>,
    /// What they did.
    pub(super) chaos: Chaos,
    /// Every process's memory when the load began.
    pub(super) memory_at_start: Memory,
    /// From the end of the last fault until the run settled.
    pub(super) settle: Duration,
}

/// The resident memory of every process of a stack at one moment.
#[derive(Debug)]
pub(super) struct Memory(Vec<(&'static str, Option<u64>)>);

impl Memory {
    /// VmRSS of each process now.
    pub(super) fn of(stack: &Stack) -> Result<Self> {
        processes(stack)
            .into_iter()
            .map(|service| Ok((name(service), service.rss_kib()?)))
            .collect::<Result<_>>()
            .map(Self)
    }
}

/// `broker`, or the service's binary.
fn name(service: &Service) -> &'static str {
    match service.kind() {
        ServiceKind::Broker => "broker",
        kind => kind.binary(),
    }
}

/// The broker, the services and the payment provider.
fn processes(stack: &Stack) -> [&Service; 5] {
    [
        &stack.broker,
        &stack.order_api,
        &stack.payment,
        &stack.inventory,
        &stack.psp,
    ]
}

impl SoakReport {
    /// Reads the run's figures from the settled stack, beside what the run itself recorded.
    pub(super) fn gather(stack: &Stack, settings: &Settings, run: Run) -> Result<Self> {
        let orders = stack.all_orders()?;
        let mut outcomes = BTreeMap::new();
        for order in &orders {
            let outcome = order
                .cancellation_reason
                .map_or(order.status.as_str(), CancellationReason::as_str);
            *outcomes.entry(outcome).or_default() += 1;
        }
        let mut by_minute: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for saga in stack.saga_times()? {
            let minute = (saga.accepted_at - run.load_started).num_seconds().max(0) / 60;
            by_minute
                .entry(minute)
                .or_default()
                .push(saga.duration().num_milliseconds());
        }
        let latency_per_minute = by_minute
            .into_iter()
            .map(|(minute, mut durations)| {
                durations.sort_unstable();
                MinuteLatency {
                    minute,
                    orders: durations.len(),
                    p50_ms: percentile(&durations, 0.50),
                    p99_ms: percentile(&durations, 0.99),
                    max_ms: durations.last().copied().unwrap_or_default(),
                }
            })
            .collect();
        let memory = processes(stack)
            .into_iter()
            .zip(run.memory_at_start.0)
            .map(|(service, (process, start_kib))| {
                Ok(ProcessMemory {
                    process,
                    start_kib,
                    end_kib: service.rss_kib()?,
                    up_s: service.uptime().map(|up| up.as_secs_f64().round()),
                    starts: service.starts(),
                })
            })
            .collect::<Result<_>>()?;
        let kafka = stack.kafka()?;
        let mut dead_letters = BTreeMap::new();
        for topic in Topic::ALL {
            let name = topic.dead_letter_name();
            dead_letters.insert(name, kafka.read_all(name)?.len());
        }
        Ok(Self {
            load_s: settings.load.as_secs_f64(),
            rate_per_s: settings.rate,
            seed: settings.seed,
            orders_accepted: run.accepted,
            orders_recorded: orders.len(),
            outcomes,
            faults: run.faults,
            fault_details: run.chaos,
            latency_per_minute,
            memory,
            dead_letters,
            settle_s: run.settle.as_secs_f64(),
        })
    }

    /// Writes the report as JSON to `path`.
    pub(super) fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }
}

/// The nearest-rank percentile `p` (0 to 1) of `sorted`; 0 for none.
fn percentile(sorted: &[i64], p: f64) -> i64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Memory in MiB, or `-` for a process that was not running.
fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "-".to_owned(),
        |kib| format!("{:.1}", kib as f64 / 1024.0),
    )
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "soak: {:.0} s of load at {} orders/s (seed {})",
            self.load_s, self.rate_per_s, self.seed
        )?;
        writeln!(
            f,
            "  orders: {} accepted, {} recorded, outcomes {:?}",
            self.orders_accepted, self.orders_recorded, self.outcomes
        )?;
        writeln!(f, "  faults: {:?}", self.faults)?;
        writeln!(f, "  saga latency by minute of acceptance (ms):")?;
        for minute in &self.latency_per_minute {
            writeln!(
                f,
                "    minute {:>3}: {:>6} orders  p50 {:>6}  p99 {:>6}  max {:>6}",
                minute.minute, minute.orders, minute.p50_ms, minute.p99_ms, minute.max_ms
            )?;
        }
        writeln!(f, "  memory (VmRSS, MiB):")?;
        for process in &self.memory {
            let up = process
                .up_s
                .map_or_else(|| "not running".to_owned(), |up| format!("up {up:.0} s"));
            writeln!(
                f,
                "    {:<14} start {:>7}  end {:>7}  ({up}, {} start(s))",
                process.process,
                mib(process.start_kib),
                mib(process.end_kib),
                process.starts
            )?;
        }
        writeln!(f, "  dead letters: {:?}", self.dead_letters)?;
        write!(f, "  settled {:.1} s after the last fault", self.settle_s)
    }
}
