//! `shopctl bench` against a running stack: the load generator places real orders, follows
//! them to their end and writes a report with the documented keys. A smoke test of the tool,
//! not a performance assertion.

use anyhow::{Context, Result};
use serde_json::Value;

use saga_tests::Stack;

/// Keys every run report has (docs/performance.md).
const RUN_KEYS: [&str; 21] = [
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
    "bench_cpu_ms_per_saga",
    "saga_share_of_broker_limit",
];

/// Keys of the whole report.
const REPORT_KEYS: [&str; 4] = ["version", "started_at", "machine", "baseline_broker"];

fn check(report: &Value, mode: &str) -> Result<()> {
    for key in RUN_KEYS.iter().chain(&REPORT_KEYS) {
        assert!(report.get(key).is_some(), "no {key:?} in {report}");
    }
    assert_eq!(report["mode"], mode);
    // The bench reads its own CPU time even against a shop it did not start.
    assert!(report["bench_cpu_ms_per_saga"].is_f64(), "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    let completed = report["completed_sagas"]
        .as_u64()
        .context("completed_sagas")?;
    assert!(completed > 0, "{report}");
    let outcomes: u64 = report["outcomes"]
        .as_object()
        .context("outcomes")?
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(outcomes, completed, "every completed saga has an outcome");
    for latency in ["accept_latency_ms", "saga_latency_ms"] {
        let p = &report[latency];
        let at = |key: &str| p[key].as_f64().with_context(|| format!("{latency}.{key}"));
        let (p50, p99, max) = (at("p50")?, at("p99")?, at("max")?);
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{latency}: {p}");
        for key in ["p90", "p999", "mean", "count"] {
            at(key)?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_bench_follows_orders_to_their_end_in_closed_and_open_loop() -> Result<()> {
    // One client placing orders as fast as sagas end would meet the default rate limit.
    let stack = Stack::start_with_env(&[
        ("RATE_LIMIT_PER_S", "100000"),
        ("RATE_LIMIT_BURST", "100000"),
    ])
    .await?;
    let url = stack.url("");
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("report.json");
    let out_arg = out.display().to_string();

    let printed = stack.shopctl(&[
        "bench",
        "--url",
        &url,
        "--duration",
        "3s",
        "--concurrency",
        "4",
        "--warmup",
        "500ms",
        "--out",
        &out_arg,
        "--quiet",
    ])?;
    let closed: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    assert_eq!(
        closed,
        serde_json::from_str::<Value>(&printed)?,
        "stdout = --out"
    );
    check(&closed, "closed")?;
    assert_eq!(closed["concurrency"], 4);
    assert_eq!(closed["target_rate_per_s"], Value::Null);
    assert_eq!(
        closed["send_lag_ms"],
        Value::Null,
        "no schedule to be late for"
    );
    assert_eq!(closed["observe"], "sse");
    // A healthy shop streams every saga to its end: no stream broke, none was polled instead.
    assert_eq!(closed["stream_resumes"], 0, "{closed}");
    assert_eq!(closed["poll_fallbacks"], 0, "{closed}");

    // Open loop: 20 orders/s for 2 s is a fixed schedule of 40 orders, each followed by polling.
    let printed = stack.shopctl(&[
        "bench",
        "--url",
        &url,
        "--rate",
        "20",
        "--duration",
        "2s",
        "--warmup",
        "0s",
        "--observe",
        "poll",
        "--quiet",
    ])?;
    let open: Value = serde_json::from_str(&printed)?;
    check(&open, "open")?;
    assert_eq!(open["target_rate_per_s"], 20.0);
    assert_eq!(open["observe"], "poll");
    assert_eq!(open["orders_accepted"], 40);
    assert_eq!(open["completed_sagas"], 40);
    // How late the bench was is measured for every order, and is part of each one's latency.
    let lag = &open["send_lag_ms"];
    assert_eq!(lag["count"], 40, "{open}");
    let lag_max = lag["max"].as_f64().context("send_lag_ms.max")?;
    let accept_max = open["accept_latency_ms"]["max"]
        .as_f64()
        .context("accept_latency_ms.max")?;
    assert!(lag_max <= accept_max, "{open}");

    // A bench that completes nothing (a wrong key here) measured nothing: it fails, and says why.
    let refused = stack.shopctl(&[
        "bench",
        "--url",
        &url,
        "--api-key",
        "sk_not_a_key",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--concurrency",
        "1",
        "--quiet",
    ]);
    let error = refused
        .expect_err("a bench without a completed saga fails")
        .to_string();
    assert!(error.contains("no saga completed"), "{error}");
    assert!(
        error.contains("\"unauthorized\""),
        "the report names the errors: {error}"
    );
    Ok(())
}
