//! A few dozen orders placed at a steady pace while a fault is on, for the fault tests: the
//! order mix, the placer, and what became of each request.
//!
//! A refused order (503) is counted and given up by default ([`Placer::start`]); a client that
//! must not lose one retries it under the same `Idempotency-Key` until it is accepted
//! ([`Placer::start_retrying`]), so that a retry of a request that was committed after all
//! makes no second order.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use serde_json::json;

use saga_tests::{Accepted, Problem, Stack};

/// (sku, quantity, payment method), in turn: good cards (confirmed), a declined card (cancelled,
/// `payment_declined`) and `LIMITED-1` (5 in stock: a few dozen orders sell it out, so some are
/// cancelled `out_of_stock` and refunded, and overselling would show).
const MIX: [(&str, u32, &str); 6] = [
    ("WIDGET-42", 1, "pm_visa_4242"),
    ("GADGET-7", 1, "pm_mastercard_5555"),
    ("LIMITED-1", 1, "pm_visa_4242"),
    ("DOOHICKEY-3", 2, "pm_visa_4242"),
    ("WIDGET-42", 1, "pm_card_declined"),
    ("GIZMO-9", 1, "pm_visa_4242"),
];

/// Time between two orders.
const PACE: Duration = Duration::from_millis(50);

/// How long a retrying client keeps retrying one order before the run fails: longer than a
/// database restart takes.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// What the placer does with a 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnRefusal {
    /// Counts it, and goes on with the next order.
    GiveUp,
    /// Sends it again, with the same `Idempotency-Key`, after its `Retry-After`.
    Retry,
}

/// What order-api answered to the orders of a run.
#[derive(Debug, Default)]
pub(crate) struct Placed {
    /// Orders answered `202 Accepted`: each must end.
    pub(crate) accepted: Vec<String>,
    /// Orders refused with `503` (a problem document with `Retry-After`) and given up: never
    /// accepted, so there is nothing to lose.
    pub(crate) refused: usize,
    /// `503`s answered to a retrying client, each followed by a retry of the same order.
    pub(crate) retried: usize,
}

impl Placed {
    /// Fails unless each of `expected` orders was accepted exactly once: one distinct id each.
    pub(crate) fn ensure_each_accepted_once(&self, expected: usize) -> Result<()> {
        let distinct: std::collections::HashSet<&String> = self.accepted.iter().collect();
        if self.accepted.len() != expected || distinct.len() != expected {
            bail!(
                "{} orders accepted ({} distinct) of {expected}",
                self.accepted.len(),
                distinct.len()
            );
        }
        Ok(())
    }
}

/// Places orders one after another at a steady pace, in the background.
#[derive(Debug)]
pub(crate) struct Placer {
    /// Orders answered so far.
    progress: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Result<Placed>>,
}

impl Placer {
    /// Starts placing `count` orders on `stack`'s order-api, giving up the ones refused.
    pub(crate) fn start(stack: &Stack, count: usize) -> Self {
        Self::spawn(stack, count, OnRefusal::GiveUp)
    }

    /// Starts placing `count` orders on `stack`'s order-api, each with an `Idempotency-Key`,
    /// retrying a refused one until it is accepted (for [`RETRY_FOR`] at most).
    pub(crate) fn start_retrying(stack: &Stack, count: usize) -> Self {
        Self::spawn(stack, count, OnRefusal::Retry)
    }

    fn spawn(stack: &Stack, count: usize, on_refusal: OnRefusal) -> Self {
        let progress = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(place(
            stack.http.clone(),
            stack.url("/api/orders"),
            count,
            on_refusal,
            Arc::clone(&progress),
        ));
        Self { progress, task }
    }

    /// Waits until `count` orders have been answered (or all have).
    pub(crate) async fn answered(&self, count: usize) -> Result<()> {
        saga_tests::eventually_within(Duration::from_secs(60), || {
            let answered = self.progress.load(Ordering::SeqCst);
            std::future::ready(if answered >= count || self.task.is_finished() {
                Ok(())
            } else {
                Err(format!("{answered} of {count} orders answered"))
            })
        })
        .await
    }

    /// Waits for the last answer.
    pub(crate) async fn finish(self) -> Result<Placed> {
        self.task.await?
    }
}

async fn place(
    http: reqwest::Client,
    url: String,
    count: usize,
    on_refusal: OnRefusal,
    progress: Arc<AtomicUsize>,
) -> Result<Placed> {
    let mut placed = Placed::default();
    for (n, (sku, quantity, method)) in MIX.iter().cycle().take(count).enumerate() {
        let body = json!({"user_id": "usr_faults", "items": [{"sku": sku, "quantity": quantity}], "payment_method": method});
        let key = uuid::Uuid::new_v4().to_string();
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let mut request = http.post(&url).json(&body);
            if on_refusal == OnRefusal::Retry {
                request = request.header("idempotency-key", &key);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("order {n} got no answer"))?;
            match response.status() {
                StatusCode::ACCEPTED => {
                    let accepted: Accepted = response.json().await?;
                    placed.accepted.push(accepted.order_id.to_string());
                    break;
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    let retry_after = retry_after(&response)
                        .with_context(|| format!("order {n}: a 503 without Retry-After"))?;
                    Problem::expect(response, StatusCode::SERVICE_UNAVAILABLE).await?;
                    if on_refusal == OnRefusal::GiveUp {
                        placed.refused += 1;
                        break;
                    }
                    if Instant::now() + retry_after > deadline {
                        bail!("order {n} still refused after {RETRY_FOR:?} of retries");
                    }
                    placed.retried += 1;
                    tokio::time::sleep(retry_after).await;
                }
                status => bail!("order {n}: {status}: {}", response.text().await?),
            }
        }
        progress.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(PACE).await;
    }
    Ok(placed)
}

/// A response's `Retry-After`, in seconds as order-api sends it.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds = response.headers().get("retry-after")?.to_str().ok()?;
    Some(Duration::from_secs(seconds.trim().parse().ok()?))
}
