//! Consumer lag, per partition, from librdkafka's statistics.

use rdkafka::Statistics;

/// Publishes the client's per-partition consumer lag as a gauge each statistics interval
/// (called by [`super::context::Hooks`]).
///
/// A partition that moved to another replica (a rebalance) is set to 0 here rather than left
/// at its last value: its lag is the new owner's now, and a sum over replicas stays right.
pub(super) struct LagReporter {
    group: String,
    /// The partitions given a lag at the last interval.
    reported: std::sync::Mutex<std::collections::HashSet<(String, i32)>>,
}

impl LagReporter {
    pub(super) fn new(group: String) -> Self {
        Self {
            group,
            reported: std::sync::Mutex::default(),
        }
    }

    fn set(&self, topic: &str, partition: i32, lag: i64) {
        metrics::gauge!(
            crate::metrics::CONSUMER_LAG,
            "group" => self.group.clone(),
            "topic" => topic.to_owned(),
            "partition" => partition.to_string(),
        )
        // A lag is far below 2^53: exact as a float.
        .set(lag as f64);
    }

    /// Publishes the lags of one statistics report.
    pub(super) fn report(&self, statistics: &Statistics) {
        let mut now = std::collections::HashSet::new();
        for (topic, stats) in &statistics.topics {
            for (partition, stats) in &stats.partitions {
                // -1: not assigned here (or not known yet).
                if *partition < 0 || stats.consumer_lag < 0 {
                    continue;
                }
                self.set(topic, *partition, stats.consumer_lag);
                now.insert((topic.clone(), *partition));
            }
        }
        let mut reported = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (topic, partition) in reported.difference(&now) {
            self.set(topic, *partition, 0);
        }
        *reported = now;
    }
}
