//! What librdkafka calls back into a consumer: statistics, reported as lag, and rebalances,
//! answered so that closing the consumer cannot hang.

use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Statistics, TopicPartitionList};

use super::lag::LagReporter;

/// The consumer's librdkafka context.
pub(super) struct Hooks {
    /// The consumer group, for the metrics' labels.
    group: String,
    lag: LagReporter,
    /// Set just before the consumer is closed (see [`Hooks::closing`]).
    closing: AtomicBool,
    /// Whether the group was already told to give up its partitions during the close.
    answered_while_closing: AtomicBool,
}

impl Hooks {
    pub(super) fn new(group: String) -> Self {
        Self {
            lag: LagReporter::new(group.clone()),
            group,
            closing: AtomicBool::new(false),
            answered_while_closing: AtomicBool::new(false),
        }
    }

    /// Says the consumer is about to be closed: from now on, rebalance events are answered
    /// once at most.
    ///
    /// A close while the group is handing this member an assignment leaves two rebalance
    /// events in the consumer's queue: the assignment, not yet taken, and the revocation the
    /// close starts. librdkafka treats any assignment call made while it closes as giving
    /// every partition up, so the first event's answer completes the close's revocation and
    /// the member leaves the group. Answering the second as well sends a request to the group
    /// coordinator of a client that has stopped serving it, and the call waits forever
    /// (confluentinc/librdkafka#4884): the service would never exit. That is why the events
    /// after the first are dropped here. Without a pending assignment, the close's revocation
    /// is the only event, answered as always.
    pub(super) fn closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Takes (`Assign`) or gives up (anything else: a revocation, or an error that leaves the
    /// assignment in doubt) `partitions`, the way the group's protocol asks.
    fn answer(
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &TopicPartitionList,
    ) -> KafkaResult<()> {
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if !assign && err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            tracing::warn!(error = %RDKafkaErrorCode::from(err), "Rebalance failed; giving up the partitions.");
        }
        match (consumer.rebalance_protocol(), assign) {
            (RebalanceProtocol::Cooperative, true) => consumer.incremental_assign(partitions),
            (RebalanceProtocol::Cooperative, false) => consumer.incremental_unassign(partitions),
            (_, true) => consumer.assign(partitions),
            (_, false) => consumer.unassign(),
        }
    }
}

impl ClientContext for Hooks {
    fn stats(&self, statistics: Statistics) {
        self.lag.report(&statistics);
    }
}

impl ConsumerContext for Hooks {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        if self.closing.load(Ordering::Acquire)
            && self.answered_while_closing.swap(true, Ordering::AcqRel)
        {
            tracing::debug!(
                partitions = partitions.count(),
                "Rebalance event after the close gave the partitions up: dropped."
            );
            return;
        }
        // Which partitions moved, for whoever wonders why a replica went quiet for a moment.
        let moved: Vec<String> = partitions
            .elements()
            .iter()
            .map(|tp| format!("{}/{}", tp.topic(), tp.partition()))
            .collect();
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            tracing::info!(partitions = %moved.join(","), "Partitions assigned.");
        } else {
            tracing::info!(partitions = %moved.join(","), "Partitions given up.");
        }
        if let Err(error) = Self::answer(consumer, err, partitions) {
            tracing::warn!(%error, "Could not apply a rebalance.");
        }
        // Whether this replica has a share of the work: a replica that holds none is idle
        // (more replicas than partitions), or still waiting for the group.
        if let Ok(assignment) = consumer.assignment() {
            metrics::gauge!(crate::metrics::CONSUMER_ASSIGNED, "group" => self.group.clone())
                .set(assignment.count() as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use embedded_broker::EmbeddedBroker;
    use futures::FutureExt;
    use rdkafka::consumer::{Consumer, StreamConsumer};

    use super::Hooks;
    use crate::config::KafkaConfig;

    /// The close of a consumer whose group handed it an assignment it has not taken yet: two
    /// rebalance events at the close, the case that hangs librdkafka when both are answered.
    #[tokio::test]
    async fn a_consumer_closed_with_an_assignment_pending_closes() {
        let broker = EmbeddedBroker::start(1).expect("the embedded broker starts");
        let config = KafkaConfig {
            client_id: "pending-assignment".to_owned(),
            ..KafkaConfig::default()
        }
        .with_bootstrap(broker.bootstrap_servers());
        let consumer: StreamConsumer<Hooks> = super::super::consumer_config(&config)
            .create_with_context(Hooks::new(config.client_id.clone()))
            .expect("a consumer");
        consumer.subscribe(&["orders"]).expect("subscribed");
        // One poll starts the join; the group's answer then waits, unpolled, in the queue. Its
        // arrival cannot be watched without polling, which would take it: the pause is long
        // enough for a join on the embedded broker, and waits for no outcome. The poll is one
        // poll only: a `recv` left waiting (even for a millisecond, on a loaded machine) would
        // be woken by the group's answer and take it.
        assert!(consumer.recv().now_or_never().is_none(), "no message yet");
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Still not taken: the assignment waits in the queue.
        assert_eq!(consumer.assignment().expect("the assignment").count(), 0);
        consumer.context().closing();
        assert!(super::super::close::drop_within(consumer, Duration::from_secs(10)).await);
    }
}
