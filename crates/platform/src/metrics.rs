//! Prometheus metrics: one recorder per process, rendered by `GET /metrics` on every service.
//!
//! Names carry their unit (`_seconds`, `_total`). Labels are low-cardinality on purpose: topic,
//! event type, outcome, route — never an order id, and never a value a client chooses freely
//! (an HTTP method is mapped to the standard set first, see `http::method_label`): every label
//! value makes a series that lives in memory and in every scrape.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// HTTP server request duration {method, route, status}.
pub const HTTP_REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// Events published {topic, type, outcome = ok | error}.
pub const EVENTS_PRODUCED: &str = "messaging_events_produced_total";
/// Events consumed {topic, type, outcome = handled | retried | dead_lettered}.
pub const EVENTS_CONSUMED: &str = "messaging_events_consumed_total";
/// Events that arrived again after being handled {type}.
pub const EVENTS_DUPLICATE: &str = "messaging_events_duplicate_total";
/// Handler duration {topic, type}.
pub const HANDLER_DURATION: &str = "messaging_handler_duration_seconds";
/// Messages sent to a dead-letter topic {topic, class}.
pub const DEAD_LETTERS: &str = "messaging_dead_letters_total";
/// Consumer lag per partition {group, topic, partition}, from the client's statistics.
pub const CONSUMER_LAG: &str = "messaging_kafka_consumer_lag";
/// Rows waiting in the outbox (set at scrape time).
pub const OUTBOX_BACKLOG: &str = "outbox_backlog";
/// Time from an outbox row's commit to the broker's acknowledgement.
pub const OUTBOX_PUBLISH_LATENCY: &str = "outbox_publish_latency_seconds";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// A histogram not recorded to for this long leaves the exposition (until it is recorded to
/// again). Histograms are the series with the most labels (method × route × status for HTTP)
/// and each costs a line per bucket; one that only an odd request ever touched would otherwise
/// be kept forever. Ten minutes is longer than any `rate()` window a dashboard uses, so a
/// series disappears only after its rate has read zero for a while. Counters and gauges are
/// kept: a gauge set on change (a breaker's state) must not vanish while it holds.
const HISTOGRAM_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Installs the process-wide recorder (once; later calls return the same handle).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ];
            let builder = PrometheusBuilder::new()
                .idle_timeout(MetricKindMask::HISTOGRAM, Some(HISTOGRAM_IDLE_TIMEOUT))
                .set_buckets(&buckets);
            match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => {
                    spawn_upkeep(handle.clone());
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "Metrics disabled: could not install the recorder.");
                    None
                }
            }
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds histogram samples into their buckets every [`UPKEEP_INTERVAL`].
///
/// The recorder keeps every sample until the next upkeep, and without one only a scrape of
/// `/metrics` runs it: a service nobody scrapes would grow by every request and message it
/// handles. A plain thread, because the recorder may be installed outside a runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "Metrics upkeep not started: histograms are folded only when scraped.");
    }
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    match install() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}
