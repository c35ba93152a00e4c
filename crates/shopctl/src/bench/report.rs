//! The report: JSON with stable keys whose names carry their units, and a table for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::baseline::Baseline;
use super::stats::Percentiles;
use super::target::Rss;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BenchReport {
    /// `shopctl`'s version.
    pub(crate) version: &'static str,
    /// When the bench started (RFC 3339, UTC).
    pub(crate) started_at: String,
    /// Where it ran.
    pub(crate) machine: Machine,
    /// One run, flattened into the report; or, with `--inject-provider-latency`, both runs and
    /// their comparison.
    #[serde(flatten)]
    pub(crate) body: Body,
    /// The broker's own rate (`--baseline-broker`), else `null`.
    pub(crate) baseline_broker: Option<Baseline>,
}

/// The machine the bench ran on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    /// Cores available to the bench.
    pub(crate) cores: usize,
    /// Operating system.
    pub(crate) os: &'static str,
}

impl Machine {
    /// This machine.
    pub(crate) fn this() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            os: std::env::consts::OS,
        }
    }
}

impl BenchReport {
    /// Whether some run completed no saga at all: then the figures measure nothing, and the
    /// bench says so by failing (a wrong `--api-key`, a shop that refuses every order).
    pub(crate) fn completed_nothing(&self) -> bool {
        match &self.body {
            Body::Single(run) => run.completed_sagas == 0,
            Body::Coupling { runs, .. } => runs.iter().any(|run| run.completed_sagas == 0),
        }
    }
}

/// One run, or the coupling experiment's two.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Body {
    /// The usual case.
    Single(Box<RunReport>),
    /// `--inject-provider-latency`.
    Coupling {
        /// Without, then with the provider latency.
        runs: Vec<RunReport>,
        /// How much the latency leaked into what clients see.
        coupling: Coupling,
    },
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunReport {
    /// order-api base URL.
    pub(crate) url: String,
    /// `closed` or `open`.
    pub(crate) mode: &'static str,
    /// The measured window, after the warm-up.
    pub(crate) duration_s: f64,
    /// Warm-up before it (orders placed, not measured).
    pub(crate) warmup_s: f64,
    /// After it, until the last order still open ended.
    pub(crate) drain_s: f64,
    /// The bound on orders in flight: clients in the closed loop, `--max-in-flight` in the open.
    pub(crate) concurrency: usize,
    /// The most orders actually in flight at once.
    pub(crate) peak_in_flight: u64,
    /// Open loop: orders per second asked for; closed loop: `null`.
    pub(crate) target_rate_per_s: Option<f64>,
    /// `sse` or `poll`.
    pub(crate) observe: &'static str,
    /// Whether orders were placed with `Prefer: wait=10`.
    pub(crate) sync: bool,
    /// The payment provider's added latency during the run, if known.
    pub(crate) provider_latency_ms: Option<u64>,
    /// Payment methods and their weights.
    pub(crate) payment_mix: BTreeMap<String, u64>,
    /// SKUs and their weights.
    pub(crate) sku_mix: BTreeMap<String, u64>,
    /// `--seed`.
    pub(crate) seed: u64,
    /// Measured orders order-api accepted.
    pub(crate) orders_accepted: u64,
    /// Measured orders whose saga ended.
    pub(crate) completed_sagas: u64,
    /// Sagas that ended within the measured window (whenever sent), per second of it.
    pub(crate) completed_sagas_per_s: f64,
    /// From the (intended) send time to the POST's answer.
    pub(crate) accept_latency_ms: Percentiles,
    /// From the (intended) send time to the terminal status.
    pub(crate) saga_latency_ms: Percentiles,
    /// Open loop: how late the bench itself was, from each order's intended send time until its
    /// task began placing it (part of both latencies); `null` in the closed loop.
    pub(crate) send_lag_ms: Option<Percentiles>,
    /// Terminal statuses: `confirmed`, `cancelled:<reason>`.
    pub(crate) outcomes: BTreeMap<String, u64>,
    /// Failures by kind: shop-client's `Error::kind` (`http_503`, `http_429`, `connect`,
    /// `unauthorized`…), `observe_<kind>` when following the order failed, `timeout`,
    /// `client_overloaded`.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Event streams the client reopened after a break (`Last-Event-ID`): a saga that resumed
    /// still ends, so its breaks show only here.
    pub(crate) stream_resumes: u64,
    /// Orders followed by stream that the client ended up long polling (`--observe sse`).
    pub(crate) poll_fallbacks: u64,
    /// Resident memory of the shop's process, where it is known.
    pub(crate) rss_mib: Option<Rss>,
    /// The shop's CPU time (user + system, all its threads but the payment provider's) within
    /// the measured window, per saga that ended in it, in ms; `null` for a shop the bench did
    /// not start (`--url`).
    pub(crate) shop_cpu_ms_per_saga: Option<f64>,
    /// The payment provider's (psp-sim, on its own thread in the same process): not the shop's,
    /// as a provider runs elsewhere, but on the same cores here.
    pub(crate) provider_cpu_ms_per_saga: Option<f64>,
    /// The bench's own process (the load it makes), on the same cores when it runs on the
    /// shop's machine; `null` where `/proc` is not to be had.
    pub(crate) bench_cpu_ms_per_saga: Option<f64>,
    /// The same by component, its threads grouped by name: `tokio_workers`, each service's
    /// database threads (`db_writers:order-api`, `db_readers:…`, `db_checkpoints:…`),
    /// `kafka_clients`, `embedded_broker`, `main`, and any other name less its trailing digits;
    /// threads that exited within the window count in the total only.
    pub(crate) shop_cpu_ms_per_saga_by_thread: Option<BTreeMap<String, f64>>,
    /// Kafka messages of one confirmed saga.
    pub(crate) messages_per_order: u32,
    /// `messages_per_order × completed_sagas_per_s ÷ baseline_broker.messages_per_s`, with
    /// `--baseline-broker`.
    pub(crate) saga_share_of_broker_limit: Option<f64>,
}

/// The coupling experiment's comparison: with the provider latency ÷ without.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Coupling {
    /// The latency injected.
    pub(crate) provider_latency_ms: u64,
    /// Accept p99 ratio: ~1 when accepting an order does not wait for the provider.
    pub(crate) accept_p99_ratio: Option<f64>,
    /// Saga p99 ratio: the saga itself does wait for the provider.
    pub(crate) saga_p99_ratio: Option<f64>,
    /// Throughput ratio.
    pub(crate) completed_sagas_per_s_ratio: Option<f64>,
}

impl Coupling {
    /// Compares `without` and `with` the latency.
    pub(crate) fn of(provider_latency_ms: u64, without: &RunReport, with: &RunReport) -> Self {
        let ratio = |a: f64, b: f64| (a > 0.0).then(|| ((b / a) * 100.0).round() / 100.0);
        Self {
            provider_latency_ms,
            accept_p99_ratio: ratio(without.accept_latency_ms.p99, with.accept_latency_ms.p99),
            saga_p99_ratio: ratio(without.saga_latency_ms.p99, with.saga_latency_ms.p99),
            completed_sagas_per_s_ratio: ratio(
                without.completed_sagas_per_s,
                with.completed_sagas_per_s,
            ),
        }
    }
}

impl BenchReport {
    /// The runs in the report.
    pub(crate) fn runs(&self) -> Vec<&RunReport> {
        match &self.body {
            Body::Single(run) => vec![run],
            Body::Coupling { runs, .. } => runs.iter().collect(),
        }
    }

    /// A table for people (stderr).
    pub(crate) fn summary(&self) -> String {
        let mut out = String::new();
        for run in self.runs() {
            summarise_run(&mut out, run);
        }
        if let Body::Coupling { coupling, .. } = &self.body {
            let show = |ratio: Option<f64>| ratio.map_or("-".to_owned(), |r| format!("{r}×"));
            let _ = writeln!(
                out,
                "with the provider {} ms slower: accept p99 {}, saga p99 {}, throughput {}",
                coupling.provider_latency_ms,
                show(coupling.accept_p99_ratio),
                show(coupling.saga_p99_ratio),
                show(coupling.completed_sagas_per_s_ratio),
            );
        }
        if let Some(baseline) = &self.baseline_broker {
            let _ = writeln!(
                out,
                "broker alone: {} messages/s of {} bytes ({} partitions)",
                baseline.messages_per_s, baseline.message_bytes, baseline.partitions
            );
        }
        out
    }
}

fn summarise_run(out: &mut String, run: &RunReport) {
    let shape = match run.target_rate_per_s {
        Some(rate) => format!(
            "open loop, {rate} orders/s, at most {} in flight",
            run.concurrency
        ),
        None => format!("closed loop, {} clients", run.concurrency),
    };
    let provider = run
        .provider_latency_ms
        .map_or(String::new(), |ms| format!(", provider +{ms} ms"));
    let _ = writeln!(
        out,
        "\n{} — {shape}, {} s measured after {} s warm-up, observe {}{}{provider}",
        run.url,
        run.duration_s,
        run.warmup_s,
        run.observe,
        if run.sync { ", sync" } else { "" },
    );
    let _ = writeln!(
        out,
        "{:<20}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>9}",
        "latency (ms)", "p50", "p90", "p99", "p99.9", "max", "mean", "count"
    );
    let lag = run
        .send_lag_ms
        .as_ref()
        .map(|lag| ("of which sent late", lag));
    for (name, p) in [
        ("accept", &run.accept_latency_ms),
        ("saga", &run.saga_latency_ms),
    ]
    .into_iter()
    .chain(lag)
    {
        let _ = writeln!(
            out,
            "{name:<20}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>9}",
            p.p50, p.p90, p.p99, p.p999, p.max, p.mean, p.count
        );
    }
    let _ = writeln!(
        out,
        "completed sagas/s {}   accepted {}   completed {}   peak in flight {}",
        run.completed_sagas_per_s, run.orders_accepted, run.completed_sagas, run.peak_in_flight
    );
    let counts = |map: &BTreeMap<String, u64>| {
        if map.is_empty() {
            return "none".to_owned();
        }
        let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
        parts.join(", ")
    };
    let _ = writeln!(out, "outcomes: {}", counts(&run.outcomes));
    let _ = writeln!(out, "errors: {}", counts(&run.errors));
    if run.stream_resumes + run.poll_fallbacks > 0 {
        let _ = writeln!(
            out,
            "streams resumed {}   orders that fell back to polling {}",
            run.stream_resumes, run.poll_fallbacks
        );
    }
    if let Some(rss) = &run.rss_mib {
        let show = |mib: Option<f64>| mib.map_or("-".to_owned(), |mib| format!("{mib}"));
        let _ = writeln!(
            out,
            "shop RSS (MiB): start {}, end {}, max {}",
            show(rss.start),
            show(rss.end),
            show(rss.max)
        );
    }
    if let Some(cpu) = run.shop_cpu_ms_per_saga {
        let parts: Vec<String> = run
            .shop_cpu_ms_per_saga_by_thread
            .iter()
            .flatten()
            .map(|(group, ms)| format!("{group} {ms:.3}"))
            .collect();
        let _ = writeln!(
            out,
            "shop CPU per saga (ms): {cpu:.3} ({})",
            parts.join(", ")
        );
        if let Some(provider) = run.provider_cpu_ms_per_saga {
            let _ = writeln!(out, "payment provider CPU per saga (ms): {provider:.3}");
        }
    }
    if let Some(bench) = run.bench_cpu_ms_per_saga {
        let _ = writeln!(out, "the bench's own CPU per saga (ms): {bench:.3}");
    }
    if let Some(share) = run.saga_share_of_broker_limit {
        let _ = writeln!(
            out,
            "sagas use {:.1} % of the broker's own rate ({} messages per order)",
            share * 100.0,
            run.messages_per_order
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p99: f64) -> RunReport {
        RunReport {
            url: "http://127.0.0.1:8080".into(),
            mode: "closed",
            duration_s: 10.0,
            warmup_s: 2.0,
            drain_s: 0.05,
            concurrency: 32,
            peak_in_flight: 32,
            target_rate_per_s: None,
            observe: "sse",
            sync: false,
            provider_latency_ms: Some(0),
            payment_mix: BTreeMap::from([("pm_visa_4242".into(), 90)]),
            sku_mix: BTreeMap::from([("WIDGET-42".into(), 1)]),
            seed: 1,
            orders_accepted: 100,
            completed_sagas: 100,
            completed_sagas_per_s: 10.0,
            accept_latency_ms: Percentiles {
                p99,
                ..Percentiles::default()
            },
            saga_latency_ms: Percentiles::default(),
            send_lag_ms: None,
            outcomes: BTreeMap::from([("confirmed".into(), 100)]),
            errors: BTreeMap::new(),
            stream_resumes: 0,
            poll_fallbacks: 0,
            rss_mib: Some(Rss {
                start: Some(80.0),
                end: Some(90.0),
                max: Some(91.0),
            }),
            shop_cpu_ms_per_saga: Some(1.5),
            provider_cpu_ms_per_saga: Some(0.2),
            bench_cpu_ms_per_saga: Some(0.1),
            shop_cpu_ms_per_saga_by_thread: Some(BTreeMap::from([
                ("tokio_workers".into(), 0.7),
                ("db_writers:order-api".into(), 0.5),
            ])),
            messages_per_order: 5,
            saga_share_of_broker_limit: Some(0.01),
        }
    }

    fn report(body: Body) -> BenchReport {
        BenchReport {
            version: "0.1.0",
            started_at: "2026-01-01T00:00:00Z".into(),
            machine: Machine::this(),
            body,
            baseline_broker: None,
        }
    }

    #[test]
    fn a_single_run_has_the_documented_keys_at_the_top() -> Result<(), serde_json::Error> {
        let json = serde_json::to_value(report(Body::Single(Box::new(run(2.0)))))?;
        for key in [
            "version",
            "started_at",
            "machine",
            "url",
            "mode",
            "duration_s",
            "concurrency",
            "target_rate_per_s",
            "observe",
            "sync",
            "provider_latency_ms",
            "orders_accepted",
            "completed_sagas",
            "completed_sagas_per_s",
            "accept_latency_ms",
            "saga_latency_ms",
            "send_lag_ms",
            "outcomes",
            "errors",
            "stream_resumes",
            "poll_fallbacks",
            "rss_mib",
            "shop_cpu_ms_per_saga",
            "provider_cpu_ms_per_saga",
            "bench_cpu_ms_per_saga",
            "shop_cpu_ms_per_saga_by_thread",
            "baseline_broker",
            "saga_share_of_broker_limit",
        ] {
            assert!(json.get(key).is_some(), "no {key:?} in {json}");
        }
        for key in ["p50", "p90", "p99", "p999", "max", "mean", "count"] {
            assert!(json["accept_latency_ms"].get(key).is_some(), "no {key:?}");
            assert!(json["saga_latency_ms"].get(key).is_some(), "no {key:?}");
        }
        for key in ["start", "end", "max"] {
            assert!(json["rss_mib"].get(key).is_some(), "no rss_mib.{key}");
        }
        assert!(
            json["machine"]["cores"]
                .as_u64()
                .is_some_and(|cores| cores > 0)
        );
        assert!(json["machine"]["os"].is_string());
        Ok(())
    }

    #[test]
    fn the_coupling_experiment_reports_both_runs() -> Result<(), serde_json::Error> {
        let (without, mut with) = (run(2.0), run(5.0));
        with.provider_latency_ms = Some(200);
        let coupling = Coupling::of(200, &without, &with);
        assert_eq!(coupling.accept_p99_ratio, Some(2.5));
        let json = serde_json::to_value(report(Body::Coupling {
            runs: vec![without, with],
            coupling,
        }))?;
        assert_eq!(json["runs"][0]["provider_latency_ms"], 0);
        assert_eq!(json["runs"][1]["provider_latency_ms"], 200);
        assert_eq!(json["coupling"]["accept_p99_ratio"], 2.5);
        assert!(json.get("version").is_some() && json.get("url").is_none());
        Ok(())
    }

    #[test]
    fn the_summary_names_every_run() {
        let text = report(Body::Single(Box::new(run(2.0)))).summary();
        assert!(text.contains("closed loop, 32 clients"), "{text}");
        assert!(text.contains("confirmed 100"), "{text}");
        assert!(text.contains("shop CPU per saga (ms): 1.500"), "{text}");
        assert!(text.contains("tokio_workers 0.700"), "{text}");
    }
}
