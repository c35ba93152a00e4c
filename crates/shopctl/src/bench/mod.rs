//! `shopctl bench`: load against the shop, measuring what a client sees.
//!
//! Without `--url` the bench starts its own `shopctl up` (a child process, measured apart); with
//! it, it drives a shop that is already running. The load is a closed loop (`--concurrency`) or
//! an open loop (`--rate`), each order a payment method and a SKU drawn from `--mix` and
//! `--skus`; the saga's end is observed by event stream, long poll, or a waiting POST (`--sync`).
//! Reported: accept and end-to-end saga latency (HDR histograms), completed sagas per second,
//! outcomes, errors, the shop's memory — and optionally the broker's own rate
//! (`--baseline-broker`) and how a slow payment provider shows through
//! (`--inject-provider-latency`). The JSON report's keys name their units.

mod args;
mod baseline;
mod client;
mod cpu;
mod load;
mod mix;
mod report;
mod schedule;
mod stats;
mod target;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use psp_contract::{LATENCY_PATH, Latency};

pub use args::{BenchArgs, parse_duration};
pub use client::Observe;
pub use mix::Mix;

use client::Client;
use cpu::CpuWindow;
use load::{Plan, Shape};
use mix::Mixes;
use report::{BenchReport, Body, Coupling, Machine, RunReport};
use target::{EmbeddedStack, RssSampler};

/// The shop under load.
#[derive(Debug)]
enum Target {
    /// Started by the bench.
    Embedded(Box<EmbeddedStack>),
    /// Already running.
    External {
        /// order-api.
        url: String,
        /// psp-sim, if given.
        psp_url: Option<String>,
        /// Its process, if given.
        pid: Option<u32>,
    },
}

impl Target {
    fn order_url(&self) -> &str {
        match self {
            Target::Embedded(stack) => stack.banner.order_url.as_deref().unwrap_or_default(),
            Target::External { url, .. } => url,
        }
    }

    fn psp_url(&self) -> Option<&str> {
        match self {
            Target::Embedded(stack) => stack.banner.psp_url.as_deref(),
            Target::External { psp_url, .. } => psp_url.as_deref(),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Target::Embedded(stack) => Some(stack.pid),
            Target::External { pid, .. } => *pid,
        }
    }

    /// The shop's process, if the bench started it: then all its threads are the shop's, and
    /// its CPU time is the shop's.
    fn own_pid(&self) -> Option<u32> {
        match self {
            Target::Embedded(stack) => Some(stack.pid),
            Target::External { .. } => None,
        }
    }

    fn bootstrap(&self) -> Option<&str> {
        match self {
            Target::Embedded(stack) => stack.banner.bootstrap.as_deref(),
            Target::External { .. } => None,
        }
    }
}

/// Runs the bench: JSON report on stdout (and `--out`), summary and progress on stderr.
pub async fn main(args: BenchArgs) -> Result<()> {
    if args.url.is_some() && args.inject_provider_latency.is_some() && args.psp_url.is_none() {
        bail!("--inject-provider-latency with --url needs --psp-url (psp-sim's base URL)");
    }
    if args.url.is_some() && args.baseline_broker && args.bootstrap.is_none() {
        bail!("--baseline-broker with --url needs --bootstrap (the shop's Kafka)");
    }
    if args
        .rate
        .is_some_and(|rate| !(rate > 0.0 && rate.is_finite()))
    {
        bail!("--rate must be a positive number of orders per second");
    }
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let target = match &args.url {
        Some(url) => Target::External {
            url: url.trim_end_matches('/').to_owned(),
            psp_url: args.psp_url.clone(),
            pid: args.pid,
        },
        None => {
            if !args.quiet {
                eprintln!("Starting the shop (`shopctl up`)…");
            }
            Target::Embedded(Box::new(EmbeddedStack::start().await?))
        }
    };
    let report = bench(&args, &target, started_at).await;
    if let Target::Embedded(stack) = target {
        stack.stop().await?;
    }
    let report = report?;
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{json}\n"))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if !args.quiet {
        eprint!("{}", report.summary());
    }
    if report.completed_nothing() {
        bail!("no saga completed: the report above shows the errors");
    }
    Ok(())
}

async fn bench(args: &BenchArgs, target: &Target, started_at: String) -> Result<BenchReport> {
    let shape = match args.rate {
        Some(rate_per_s) => Shape::Open {
            rate_per_s,
            max_in_flight: args.max_in_flight,
        },
        None => Shape::Closed {
            concurrency: args.concurrency,
        },
    };
    let plan = Plan {
        shape,
        warmup: args.warmup,
        duration: args.duration,
    };
    let connections = match shape {
        Shape::Closed { concurrency } => concurrency,
        Shape::Open { max_in_flight, .. } => max_in_flight,
    };
    let client = Arc::new(Client::new(
        target.order_url(),
        args.api_key.clone(),
        args.observe,
        args.sync,
        connections * 2,
    )?);
    let mixes = Arc::new(Mixes {
        payment: args.mix.clone(),
        skus: args.skus.clone(),
        seed: args.seed,
    });
    // Its calls are seconds apart (before and after each run): a pooled connection must not
    // outlive the shop's idle timeout, or a call meets the server closing it.
    let control = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(shop_client::POOL_IDLE_TIMEOUT)
        .build()?;
    let show = !args.quiet && std::io::stderr().is_terminal();
    let mut runs = Vec::new();
    match args.inject_provider_latency {
        None => {
            let label = "bench";
            let run = one_run(args, target, &client, &mixes, &control, plan, show, label).await?;
            runs.push(run);
        }
        Some(latency) => {
            let psp = target
                .psp_url()
                .context("--inject-provider-latency needs psp-sim's URL")?;
            let latency_ms = u64::try_from(latency.as_millis())?;
            for (step, ms) in [0, latency_ms].into_iter().enumerate() {
                set_provider_latency(&control, psp, ms).await?;
                let label = format!("run {}/2 (provider +{ms} ms)", step + 1);
                let run =
                    one_run(args, target, &client, &mixes, &control, plan, show, &label).await;
                if run.is_err() || step == 1 {
                    // Leave the provider as it was found.
                    set_provider_latency(&control, psp, 0).await?;
                }
                runs.push(run?);
            }
        }
    }
    let baseline = if args.baseline_broker {
        let bootstrap = args
            .bootstrap
            .as_deref()
            .or(target.bootstrap())
            .context("--baseline-broker needs --bootstrap")?;
        if show {
            eprintln!(
                "Measuring the broker alone for {:?}…",
                args.baseline_duration
            );
        }
        Some(baseline::measure(bootstrap, args.baseline_duration).await?)
    } else {
        None
    };
    if let Some(baseline) = &baseline {
        for run in &mut runs {
            let share = f64::from(run.messages_per_order) * run.completed_sagas_per_s
                / baseline.messages_per_s.max(1.0);
            run.saga_share_of_broker_limit = Some((share * 10_000.0).round() / 10_000.0);
        }
    }
    let body = match (
        args.inject_provider_latency,
        <[RunReport; 2]>::try_from(runs),
    ) {
        (Some(latency), Ok([without, with])) => Body::Coupling {
            coupling: Coupling::of(u64::try_from(latency.as_millis())?, &without, &with),
            runs: vec![without, with],
        },
        (_, Ok(_)) => bail!("two runs without a latency to compare"),
        (_, Err(mut runs)) => Body::Single(Box::new(runs.pop().context("no run")?)),
    };
    Ok(BenchReport {
        version: env!("CARGO_PKG_VERSION"),
        started_at,
        machine: Machine::this(),
        body,
        baseline_broker: baseline,
    })
}

#[allow(clippy::too_many_arguments)]
async fn one_run(
    args: &BenchArgs,
    target: &Target,
    client: &Arc<Client>,
    mixes: &Arc<Mixes>,
    control: &reqwest::Client,
    plan: Plan,
    show: bool,
    label: &str,
) -> Result<RunReport> {
    let provider_latency_ms = match target.psp_url() {
        Some(psp) => provider_latency(control, psp).await.ok(),
        None => None,
    };
    let sampler = target.pid().map(RssSampler::start);
    let start = Instant::now();
    let (from, until) = plan.window(start);
    let cpu = target
        .own_pid()
        .map(|pid| CpuWindow::start(pid, from, until));
    let bench_cpu = CpuWindow::start(std::process::id(), from, until);
    let measured = load::run(
        Arc::clone(client),
        Arc::clone(mixes),
        plan,
        start,
        show,
        label,
    )
    .await?;
    let rss_mib = sampler.map(RssSampler::finish);
    let tally = measured.tally;
    let window = plan.duration.as_secs_f64().max(f64::EPSILON);
    let cpu = match cpu {
        Some(cpu) => cpu.finish().await,
        None => None,
    };
    let per_saga = cpu.and_then(|spent| spent.per_saga(tally.ended_in_window));
    let bench_cpu_ms_per_saga = bench_cpu
        .finish()
        .await
        .and_then(|spent| spent.total_per_saga(tally.ended_in_window));
    let completed = tally.completed();
    let weights = |mix: &Mix| {
        mix.weights()
            .map(|(name, weight)| (name.to_owned(), weight))
            .collect()
    };
    let (mode, concurrency, target_rate_per_s) = match plan.shape {
        Shape::Closed { concurrency } => ("closed", concurrency, None),
        Shape::Open {
            rate_per_s,
            max_in_flight,
        } => ("open", max_in_flight, Some(rate_per_s)),
    };
    Ok(RunReport {
        url: target.order_url().to_owned(),
        mode,
        duration_s: plan.duration.as_secs_f64(),
        warmup_s: plan.warmup.as_secs_f64(),
        drain_s: (measured.drain.as_secs_f64() * 1000.0).round() / 1000.0,
        concurrency,
        peak_in_flight: measured.peak_in_flight,
        target_rate_per_s,
        observe: args.observe.as_str(),
        sync: args.sync,
        provider_latency_ms,
        payment_mix: weights(&args.mix),
        sku_mix: weights(&args.skus),
        seed: args.seed,
        orders_accepted: tally.accepted,
        completed_sagas: completed,
        completed_sagas_per_s: ((tally.ended_in_window as f64 / window) * 10.0).round() / 10.0,
        accept_latency_ms: tally.accept.percentiles(),
        saga_latency_ms: tally.saga.percentiles(),
        send_lag_ms: target_rate_per_s.map(|_| tally.send_lag.percentiles()),
        outcomes: tally.outcomes,
        errors: tally.errors,
        stream_resumes: tally.stream_resumes,
        poll_fallbacks: tally.poll_fallbacks,
        rss_mib,
        shop_cpu_ms_per_saga: per_saga.as_ref().map(|per| per.shop),
        provider_cpu_ms_per_saga: per_saga.as_ref().map(|per| per.provider),
        bench_cpu_ms_per_saga,
        shop_cpu_ms_per_saga_by_thread: per_saga.map(|per| per.by_component),
        messages_per_order: baseline::MESSAGES_PER_CONFIRMED_SAGA,
        saga_share_of_broker_limit: None,
    })
}

/// `PUT {psp}/v1/simulator/latency`.
async fn set_provider_latency(http: &reqwest::Client, psp: &str, ms: u64) -> Result<()> {
    let url = format!("{}{LATENCY_PATH}", psp.trim_end_matches('/'));
    let response = http
        .put(&url)
        .json(&Latency {
            charge_latency_ms: ms,
        })
        .send()
        .await
        .with_context(|| format!("setting the provider latency at {url}"))?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    Ok(())
}

/// `GET {psp}/v1/simulator/latency`.
async fn provider_latency(http: &reqwest::Client, psp: &str) -> Result<u64> {
    let url = format!("{}{LATENCY_PATH}", psp.trim_end_matches('/'));
    let latency: Latency = http
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .with_context(|| format!("reading the provider latency at {url}"))?;
    Ok(latency.charge_latency_ms)
}
