//! `shopctl bench`: closed-loop load against a running shop, measuring what a client sees.
//!
//! Each of `concurrency` workers places an order, then follows its event stream until the saga
//! ends, then places the next. Reported: POST accept latency (time to the `202`), end-to-end
//! saga latency (from sending the POST to the terminal status on the stream), completed sagas
//! per second, outcomes and errors. The JSON report's keys name their units.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// order-api base URL.
    pub url: String,
    /// How long to keep placing orders.
    pub duration: Duration,
    /// Orders in flight at once.
    pub concurrency: usize,
}

/// Percentiles of a latency sample, in milliseconds.
#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    count: usize,
}

impl Percentiles {
    fn of(mut sample: Vec<f64>) -> Self {
        if sample.is_empty() {
            return Self::default();
        }
        sample.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * sample.len() as f64).ceil() as usize).clamp(1, sample.len());
            (sample[rank - 1] * 1000.0).round() / 1000.0
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
            count: sample.len(),
        }
    }
}

/// The report (stable keys; units in the names).
#[derive(Debug, Serialize)]
pub struct BenchReport {
    url: String,
    duration_s: f64,
    concurrency: usize,
    orders_accepted: usize,
    completed_sagas: usize,
    completed_sagas_per_s: f64,
    accept_latency_ms: Percentiles,
    saga_latency_ms: Percentiles,
    outcomes: BTreeMap<String, usize>,
    errors: BTreeMap<String, usize>,
}

#[derive(Default)]
struct WorkerResult {
    accepted: usize,
    accept_ms: Vec<f64>,
    saga_ms: Vec<f64>,
    outcomes: BTreeMap<String, usize>,
    errors: BTreeMap<String, usize>,
}

/// Runs the load and returns the report.
pub async fn run(options: BenchOptions) -> Result<BenchReport> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    let started = Instant::now();
    let until = started + options.duration;
    let workers = (0..options.concurrency).map(|worker| {
        let http = http.clone();
        let url = options.url.trim_end_matches('/').to_owned();
        tokio::spawn(async move { work(http, url, worker, until).await })
    });
    let mut total = WorkerResult::default();
    for result in futures::future::join_all(workers).await {
        let result = result.context("a bench worker panicked")?;
        total.accepted += result.accepted;
        total.accept_ms.extend(result.accept_ms);
        total.saga_ms.extend(result.saga_ms);
        for (k, v) in result.outcomes {
            *total.outcomes.entry(k).or_default() += v;
        }
        for (k, v) in result.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let completed = total.saga_ms.len();
    Ok(BenchReport {
        url: options.url,
        duration_s: (elapsed * 1000.0).round() / 1000.0,
        concurrency: options.concurrency,
        orders_accepted: total.accepted,
        completed_sagas: completed,
        completed_sagas_per_s: ((completed as f64 / elapsed) * 10.0).round() / 10.0,
        accept_latency_ms: Percentiles::of(total.accept_ms),
        saga_latency_ms: Percentiles::of(total.saga_ms),
        outcomes: total.outcomes,
        errors: total.errors,
    })
}

async fn work(http: reqwest::Client, url: String, worker: usize, until: Instant) -> WorkerResult {
    let mut result = WorkerResult::default();
    let mut n = worker;
    while Instant::now() < until {
        n += 1;
        // Mostly good orders, some declined: the common shape of a shop's traffic.
        let method = if n.is_multiple_of(10) {
            "pm_card_declined"
        } else {
            "pm_visa_4242"
        };
        let body = json!({"user_id": "usr_bench", "items": [{"sku": "WIDGET-42", "quantity": 1}], "payment_method": method});
        let sent = Instant::now();
        match one_saga(&http, &url, &body, sent).await {
            Ok((accept, saga, status)) => {
                result.accepted += 1;
                result.accept_ms.push(accept);
                result.saga_ms.push(saga);
                *result.outcomes.entry(status).or_default() += 1;
            }
            Err(error) => {
                let kind = error
                    .to_string()
                    .split(':')
                    .next()
                    .unwrap_or("error")
                    .to_owned();
                *result.errors.entry(kind).or_default() += 1;
                // Do not hammer a refusing or failing server.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    result
}

/// POST, then follow the stream to the end; returns (accept ms, saga ms, final status).
async fn one_saga(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    sent: Instant,
) -> Result<(f64, f64, String)> {
    let response = http
        .post(format!("{url}/api/orders"))
        .json(body)
        .send()
        .await
        .context("post failed")?;
    let accept = sent.elapsed().as_secs_f64() * 1000.0;
    if response.status() != reqwest::StatusCode::ACCEPTED {
        bail!("post answered {}", response.status().as_u16());
    }
    let accepted: serde_json::Value = response.json().await.context("post body")?;
    let events_url = accepted["events_url"]
        .as_str()
        .context("post body: no events_url")?;
    let stream = http
        .get(format!("{url}{events_url}"))
        .send()
        .await
        .context("stream failed")?;
    let mut body = stream.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.context("stream broke")?));
    }
    let saga = sent.elapsed().as_secs_f64() * 1000.0;
    let last = text
        .lines()
        .rev()
        .filter_map(|line| line.strip_prefix("data:"))
        .find_map(|data| serde_json::from_str::<serde_json::Value>(data.trim()).ok())
        .context("stream: no status")?;
    let status = match (last["status"].as_str(), last["reason"].as_str()) {
        (Some("cancelled"), Some(reason)) => format!("cancelled:{reason}"),
        (Some(status), _) => status.to_owned(),
        _ => bail!("stream: status missing"),
    };
    Ok((accept, saga, status))
}

/// Parses `15s`, `500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not like 15s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max, p.count),
            (50.0, 90.0, 99.0, 100.0, 100)
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
    }
}
