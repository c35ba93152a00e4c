//! One order, as a client of order-api sees it: placed and followed to the saga's end with the
//! `shop-client` crate, the client the shop offers its users, so that the bench measures what
//! they would get.
//!
//! The end is observed by following the order's event stream (`sse`) or by long polling the
//! order (`poll`), or — with `--sync` — by asking the POST itself to wait (`Prefer: wait=10`),
//! falling back to the observe mode when the answer is `202`. Every failure is reduced to the
//! client's short kind ([`shop_client::Error::kind`]: `http_503`, `connect`, `timeout`…),
//! prefixed `observe_` when following the order failed, so that the report can count them.

use std::time::{Duration, Instant};

use futures::StreamExt;
use shop_client::{
    CancellationReason, NewOrder, OrderStatus, PlaceOptions, Placed, RetryPolicy, Watch, WatchMode,
    WatchOptions, WatchStats,
};

use super::mix::OrderSpec;
use super::stats::Attempt;

/// How the client learns that a saga ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Observe {
    /// Follow `GET /api/orders/{id}/events` (Server-Sent Events) to the terminal status.
    Sse,
    /// Long poll `GET /api/orders/{id}?wait=10` until the status is terminal.
    Poll,
}

impl Observe {
    /// The name used in the report.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Observe::Sse => "sse",
            Observe::Poll => "poll",
        }
    }

    /// How the client's watch starts: streaming (which resumes a broken stream, and long polls
    /// when streaming is not to be had), or long polling only.
    fn mode(self) -> WatchMode {
        match self {
            Observe::Sse => WatchMode::Stream,
            Observe::Poll => WatchMode::Poll,
        }
    }
}

/// The longest one order may take, POST to terminal status; past it the order counts as a
/// `timeout`, so that a stuck saga cannot hold a run open.
const ORDER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a `--sync` POST asks order-api to wait (its cap).
const SYNC_WAIT: Duration = shop_client::MAX_WAIT;

/// Places orders on one order-api.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// The shop's client, its connection pool shared by every order of the run.
    shop: shop_client::Client,
    /// Whether the POST asks to wait for the end (`Prefer: wait=10`).
    sync: bool,
}

impl Client {
    /// A client of `base` holding up to `connections` idle connections.
    ///
    /// Its retries are off. A retried POST is still one order (same `Idempotency-Key`), but
    /// its latency would then count from the last attempt, and the refusal that caused the
    /// retry would go uncounted: the bench reports each failure instead, as it happens.
    pub(crate) fn new(
        base: &str,
        api_key: Option<String>,
        observe: Observe,
        sync: bool,
        connections: usize,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .pool_idle_timeout(shop_client::POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let mut shop = shop_client::Client::builder(base)
            .http_client(http)
            .retry(RetryPolicy::never())
            .watch(WatchOptions {
                mode: observe.mode(),
                ..WatchOptions::default()
            });
        if let Some(key) = api_key {
            shop = shop.api_key(key);
        }
        Ok(Self {
            shop: shop.build()?,
            sync,
        })
    }

    /// Places one order and follows it to its end; latencies count from `intended`, the time
    /// the order was meant to be sent.
    pub(crate) async fn order(&self, spec: &OrderSpec<'_>, intended: Instant) -> Attempt {
        let mut accepted = None;
        let placed = self.place_and_follow(spec, intended, &mut accepted);
        let finished = tokio::time::timeout(ORDER_TIMEOUT, placed).await;
        match finished {
            Ok(attempt) => attempt,
            Err(_) => Attempt::failed(accepted, "timeout"),
        }
    }

    async fn place_and_follow(
        &self,
        spec: &OrderSpec<'_>,
        intended: Instant,
        accepted: &mut Option<Duration>,
    ) -> Attempt {
        let Some(order) = new_order(spec) else {
            // A mix naming what no order can hold; order-api would refuse it the same way.
            return Attempt::failed(None, "validation");
        };
        let options = if self.sync {
            PlaceOptions::default().wait(SYNC_WAIT)
        } else {
            PlaceOptions::default()
        };
        let placed = match self.shop.place_order(&order, options).await {
            Ok(placed) => placed,
            Err(error) => return Attempt::failed(None, error.kind()),
        };
        let answered = intended.elapsed();
        *accepted = Some(answered);
        let order_id = match placed {
            // `--sync` and the saga ended within the wait: the answer is the final order.
            Placed::Finished(order) => {
                return Attempt {
                    accepted: Some(answered),
                    outcome: Ok((answered, outcome(order.status, order.cancellation_reason))),
                    watch: WatchStats::default(),
                };
            }
            Placed::Accepted { order_id, .. } => order_id,
        };
        let mut watch = self.shop.watch(order_id);
        let outcome = follow(&mut watch).await;
        Attempt {
            accepted: Some(answered),
            outcome: outcome.map(|status| (intended.elapsed(), status)),
            watch: watch.stats(),
        }
    }
}

/// Follows the order to its terminal status, the way `--observe` says.
async fn follow(watch: &mut Watch) -> Result<String, String> {
    while let Some(transition) = watch.next().await {
        let transition = transition.map_err(|error| format!("observe_{}", error.kind()))?;
        if transition.is_terminal() {
            return Ok(outcome(transition.to, transition.reason));
        }
    }
    // The watch ends after the terminal transition or an error, both handled above.
    Err("observe_ended".to_owned())
}

/// The order `spec` describes: one of its SKU, paid its way, by the bench's user.
fn new_order(spec: &OrderSpec<'_>) -> Option<NewOrder> {
    let user = "usr_bench".parse().ok()?;
    let order =
        NewOrder::new(user, spec.payment_method.parse().ok()?).line(spec.sku.parse().ok()?, 1);
    Some(order)
}

/// `confirmed` or `cancelled:<reason>`, as the report counts outcomes.
fn outcome(status: OrderStatus, reason: Option<CancellationReason>) -> String {
    match status {
        OrderStatus::Cancelled => format!(
            "cancelled:{}",
            reason.map_or("unknown", CancellationReason::as_str)
        ),
        status => status.as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_name_the_cancellation_reason() {
        assert_eq!(outcome(OrderStatus::Confirmed, None), "confirmed");
        assert_eq!(
            outcome(
                OrderStatus::Cancelled,
                Some(CancellationReason::PaymentDeclined)
            ),
            "cancelled:payment_declined"
        );
        assert_eq!(outcome(OrderStatus::Cancelled, None), "cancelled:unknown");
    }

    #[test]
    fn a_mix_entry_no_order_can_hold_is_refused_before_sending() {
        let spec = |sku, payment_method| OrderSpec {
            sku,
            payment_method,
        };
        assert!(new_order(&spec("WIDGET-42", "pm_visa_4242")).is_some());
        assert!(new_order(&spec("widget 42", "pm_visa_4242")).is_none());
    }
}
