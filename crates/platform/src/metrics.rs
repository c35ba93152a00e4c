//! Prometheus metrics: one recorder per process, rendered by `GET /metrics` on every service.
//!
//! Conventions (Prometheus, "Metric and label naming"): names carry their base unit
//! (`_seconds`); counters end in `_total` and nothing else does; every metric has a `# HELP`
//! line, from a [`Description`] given to [`describe`] once the recorder is installed (the
//! platform's own in [`PLATFORM`], each service's next to the code that records them). Labels
//! are low-cardinality on purpose: topic, event type, outcome, route — never an order id, and
//! never a value a client chooses freely (an HTTP method is mapped to the standard set first,
//! see `http::method_label`): every label value makes a series that lives in memory and in
//! every scrape.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::db::{COMMIT_BUCKETS, COMMIT_TRANSACTIONS, CONNECTION_WAIT};

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
/// Partitions assigned to this consumer {group}, after each rebalance.
pub const CONSUMER_ASSIGNED: &str = "messaging_kafka_consumer_assigned_partitions";
/// Rows waiting in the outbox (set at scrape time, from the service's `scrape_gauges` too).
pub const OUTBOX_BACKLOG: &str = "outbox_backlog";
/// Time from an outbox row's commit to the broker's acknowledgement.
pub const OUTBOX_PUBLISH_LATENCY: &str = "outbox_publish_latency_seconds";

/// What kind of metric a [`Description`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; its name ends in `_total`.
    Counter,
    /// Goes up and down; its name never ends in `_total`.
    Gauge,
    /// A distribution in buckets; its name ends in its unit.
    Histogram,
}

/// One metric as a scrape describes it: its `# HELP` text, and its unit.
#[derive(Clone, Copy, Debug)]
pub struct Description {
    /// The metric's name, as recorded.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The unit of its values, when it has one besides "how many".
    pub unit: Option<Unit>,
    /// One sentence for the `# HELP` line: what is measured, with its labels.
    pub help: &'static str,
}

/// The metrics platform code records, in every service.
pub const PLATFORM: &[Description] = &[
    Description {
        name: HTTP_REQUEST_DURATION,
        kind: Kind::Histogram,
        unit: Some(Unit::Seconds),
        help: "Time to answer an HTTP request, in seconds, by method, route and status.",
    },
    Description {
        name: EVENTS_PRODUCED,
        kind: Kind::Counter,
        unit: None,
        help: "Events sent to Kafka, by topic, type and outcome (ok: acknowledged, error: not).",
    },
    Description {
        name: EVENTS_CONSUMED,
        kind: Kind::Counter,
        unit: None,
        help: "Events consumed, by topic, type and outcome (handled, skipped, dead_lettered, interrupted).",
    },
    Description {
        name: EVENTS_DUPLICATE,
        kind: Kind::Counter,
        unit: None,
        help: "Events that arrived again after being handled (absorbed by the inbox), by type.",
    },
    Description {
        name: HANDLER_DURATION,
        kind: Kind::Histogram,
        unit: Some(Unit::Seconds),
        help: "Time to handle a consumed event, retries included, in seconds, by topic and type.",
    },
    Description {
        name: DEAD_LETTERS,
        kind: Kind::Counter,
        unit: None,
        help: "Messages copied to a dead-letter topic, by original topic and error class.",
    },
    Description {
        name: CONSUMER_LAG,
        kind: Kind::Gauge,
        unit: None,
        help: "Messages not yet consumed, per consumer group, topic and partition (from the client's statistics).",
    },
    Description {
        name: CONSUMER_ASSIGNED,
        kind: Kind::Gauge,
        unit: None,
        help: "Partitions this consumer holds in its group, set after every rebalance (0 while another replica holds them all).",
    },
    Description {
        name: OUTBOX_BACKLOG,
        kind: Kind::Gauge,
        unit: None,
        help: "Outbox rows written but not yet acknowledged by the broker.",
    },
    Description {
        name: OUTBOX_PUBLISH_LATENCY,
        kind: Kind::Histogram,
        unit: Some(Unit::Seconds),
        help: "Time from an outbox row's commit to the broker's acknowledgement, in seconds.",
    },
    Description {
        name: CONNECTION_WAIT,
        kind: Kind::Histogram,
        unit: Some(Unit::Seconds),
        help: "Time a database job waited for its connection's thread, in seconds, by service, connection (write, read) and priority (interactive: an HTTP request's; background).",
    },
    Description {
        name: COMMIT_TRANSACTIONS,
        kind: Kind::Histogram,
        unit: None,
        help: "Write transactions committed together by one commit (SQLite's group commit; 1 on Postgres), by service.",
    },
];

/// Gives each of `descriptions` to the recorder (installing it first), so that every scrape
/// shows their `# HELP` lines. Describing a metric twice is harmless: the last text wins.
pub fn describe(descriptions: &[Description]) {
    if install().is_some() {
        describe_installed(descriptions);
    }
}

fn describe_installed(descriptions: &[Description]) {
    for description in descriptions {
        let Description {
            name,
            kind,
            unit,
            help,
        } = *description;
        match (kind, unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// A histogram that no scrape has seen change for this long leaves the exposition (until it is
/// recorded to again): the recorder judges idleness when `/metrics` is rendered, counting from
/// the first scrape after the last sample, so a process nobody scrapes keeps its histograms. Histograms are the series with the most labels (method × route × status for HTTP)
/// and each costs a line per bucket; one that only an odd request ever touched would otherwise
/// be kept forever. Ten minutes is longer than any `rate()` window a dashboard uses, so a
/// series disappears only after its rate has read zero for a while. Counters and gauges are
/// kept: a gauge set on change (a breaker's state) must not vanish while it holds.
const HISTOGRAM_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Installs the process-wide recorder (once; later calls return the same handle).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            match builder(HISTOGRAM_IDLE_TIMEOUT).and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => {
                    describe_installed(PLATFORM);
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

/// The recorder's settings: buckets, and histograms leaving after `histogram_idle`.
fn builder(
    histogram_idle: std::time::Duration,
) -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    let buckets = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    PrometheusBuilder::new()
        .idle_timeout(MetricKindMask::HISTOGRAM, Some(histogram_idle))
        .set_buckets(&buckets)
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(COMMIT_TRANSACTIONS.to_owned()),
                COMMIT_BUCKETS,
            )
        })
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Kind, PLATFORM, builder};

    #[test]
    fn an_idle_histogram_leaves_the_exposition_and_counters_and_gauges_stay() {
        let idle = Duration::from_millis(200);
        let recorder = builder(idle).expect("the settings").build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("idle_test_seconds", "route" => "/odd").record(0.01);
            metrics::counter!("idle_test_total").increment(1);
            metrics::gauge!("idle_test_state").set(2.0);
        });
        let first = handle.render();
        assert!(
            first.contains("idle_test_seconds_count{route=\"/odd\"} 1"),
            "{first}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let last = loop {
            let scrape = handle.render();
            if !scrape.contains("idle_test_seconds") || Instant::now() > deadline {
                break scrape;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!last.contains("idle_test_seconds"), "{last}");
        assert!(last.contains("idle_test_total 1"), "{last}");
        assert!(last.contains("idle_test_state 2"), "{last}");
    }

    #[test]
    fn only_counters_end_in_total_and_durations_name_their_unit() {
        for description in PLATFORM {
            assert_eq!(
                description.name.ends_with("_total"),
                description.kind == Kind::Counter,
                "{}",
                description.name
            );
            if description.unit == Some(metrics::Unit::Seconds) {
                assert!(
                    description.name.ends_with("_seconds"),
                    "{}",
                    description.name
                );
            }
            assert!(description.help.ends_with('.'), "{}", description.name);
        }
    }
}
