//! The one-shot snapshot: every dead letter up to the current end, for a command that prints
//! and exits (`shopctl dlq`).
//!
//! Such a command talks to the broker for a moment, so the Kafka client's own log (dozens of
//! lines a second while a broker is unreachable) would bury the one line that matters:
//! [`Quiet`] keeps it to itself unless asked for it, and [`read`] checks within a few seconds
//! that the broker answers at all, failing with [`Unreachable`].
//!
//! It is blocking on purpose: a command has nothing else to do meanwhile, and librdkafka's
//! metadata and watermark requests block anyway.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use events::Topic;

use crate::letter::Record;
use crate::{DeadLetter, Error, flag_replayed};

/// How long a command waits for the broker's first answer before it gives up: a broker that
/// refuses the connection or cannot be resolved is reported at once (see [`Quiet`]), one that
/// does not answer at all after this long.
const REACH_WITHIN: Duration = Duration::from_secs(4);

/// The broker did not answer: nothing can be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the Kafka broker at {bootstrap}: {reason}")]
pub struct Unreachable {
    /// The bootstrap address that was tried.
    pub bootstrap: String,
    /// The Kafka client's last word on why (e.g. "Connect to ipv4#127.0.0.1:1 failed:
    /// Connection refused"), or that it timed out.
    pub reason: String,
}

/// The Kafka client's callbacks for a one-shot command: its log lines and errors go to the log
/// only when `verbose`; the last error is kept to explain an unreachable broker in one line.
#[derive(Debug, Default)]
pub struct Quiet {
    /// Forward the client's log lines and errors (to `tracing`, as the default context does).
    verbose: bool,
    /// The client reported that no broker of the cluster can be reached.
    all_brokers_down: AtomicBool,
    /// The client's most recent error other than "all brokers are down", e.g. the refused
    /// connection behind it.
    last_error: Mutex<Option<String>>,
}

impl Quiet {
    /// Callbacks that forward the client's log only when `verbose`.
    pub fn new(verbose: bool) -> Self {
        Self {
            verbose,
            ..Self::default()
        }
    }

    /// Why the broker cannot be reached, once the client has said that none can be.
    fn unreachable(&self) -> Option<String> {
        if !self.all_brokers_down.load(Ordering::SeqCst) {
            return None;
        }
        let last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            last.clone()
                .unwrap_or_else(|| "all brokers are down".to_owned()),
        )
    }
}

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if self.verbose {
            DefaultClientContext.log(level, fac, log_message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.all_brokers_down.store(true, Ordering::SeqCst);
        } else {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(without_broker_name(reason).to_owned());
        }
        if self.verbose {
            DefaultClientContext.error(error, reason);
        }
    }
}

impl ConsumerContext for Quiet {}

/// `127.0.0.1:1/bootstrap: Connect to … failed: Connection refused (after 0ms in state
/// CONNECT)` → `Connect to … failed: Connection refused`: the address is already in
/// [`Unreachable`]'s message, and the client's state machine means nothing to its reader.
fn without_broker_name(reason: &str) -> &str {
    let reason = match reason.split_once(": ") {
        Some((name, rest)) if name.contains('/') && !name.contains(' ') => rest,
        _ => reason,
    };
    match reason.rsplit_once(" (after ") {
        Some((said, _)) if reason.ends_with(')') => said,
        _ => reason,
    }
}

/// Returns once the broker answers a metadata request; fails as soon as the client reports
/// every broker down, or after [`REACH_WITHIN`].
fn reach(consumer: &BaseConsumer<Quiet>, bootstrap: &str) -> Result<(), Unreachable> {
    let deadline = Instant::now() + REACH_WITHIN;
    loop {
        let error = match consumer.fetch_metadata(None, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        // The client's log lines and errors wait in its queue until it is polled: only then
        // does `Quiet` hear that the brokers are down. Nothing is assigned yet, so polling
        // returns no message.
        let served = Instant::now() + Duration::from_millis(50);
        while let Some(left) = served.checked_duration_since(Instant::now()) {
            let _ = consumer.poll(left);
        }
        let reason = match consumer.context().unreachable() {
            Some(reason) => reason,
            None if Instant::now() >= deadline => {
                format!("no answer within {} s ({error})", REACH_WITHIN.as_secs())
            }
            None => continue,
        };
        return Err(Unreachable {
            bootstrap: bootstrap.to_owned(),
            reason,
        });
    }
}

/// How long a snapshot may take once the broker answered.
const READ_WITHIN: Duration = Duration::from_secs(30);

/// Reads every dead letter of the saga topics (or only those of the dead-letter topic `only`,
/// named with or without its `.dlq`), up to the current end, sorted by id, replayed flags set.
/// `config` holds the bootstrap servers and client properties; the Kafka client's log goes to
/// the log only when `verbose`.
pub fn read(
    config: &ClientConfig,
    verbose: bool,
    only: Option<&str>,
) -> Result<Vec<DeadLetter>, Error> {
    let bootstrap = config.get("bootstrap.servers").unwrap_or_default();
    let consumer: BaseConsumer<Quiet> =
        assign_only(config).create_with_context(Quiet::new(verbose))?;
    reach(&consumer, bootstrap)?;
    let timeout = Duration::from_secs(5);
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0_i64;
    for topic in Topic::ALL.iter().map(|t| t.dead_letter_name()) {
        if only.is_some_and(|only| only != topic && format!("{only}.dlq") != topic) {
            continue;
        }
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        for partition in 0..i32::try_from(partitions).unwrap_or(i32::MAX) {
            let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
            if high > low {
                remaining += high - low;
                assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
            }
        }
    }
    let mut letters = Vec::new();
    let mut replay_of = BTreeSet::new();
    if remaining == 0 {
        return Ok(letters);
    }
    consumer.assign(&assignment)?;
    let started = Instant::now();
    while remaining > 0 {
        if started.elapsed() > READ_WITHIN {
            return Err(Error::TimedOut { unread: remaining });
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        remaining -= 1;
        match Record::from_message(&message) {
            Record::Letter(letter) => letters.push(letter),
            Record::Marker(of) => {
                replay_of.insert(of);
            }
        }
    }
    flag_replayed(&mut letters, &replay_of);
    letters.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(letters)
}

/// The group id of a reader whose config names none.
pub(crate) const READER_GROUP: &str = "dead-letters";

/// `config` for a consumer that is assigned its partitions, never subscribed: no group is
/// joined and nothing is committed, so a reader never moves a service's offsets and sees
/// every letter each time. librdkafka still wants a group id to assign partitions: the
/// config's own if it has one, else [`READER_GROUP`].
pub(crate) fn assign_only(config: &ClientConfig) -> ClientConfig {
    let mut config = config.clone();
    if config.get("group.id").is_none() {
        config.set("group.id", READER_GROUP);
    }
    config
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    config
}

#[cfg(test)]
mod tests {
    use super::without_broker_name;

    #[test]
    fn the_reason_loses_the_broker_name_and_the_client_state() {
        assert_eq!(
            without_broker_name(
                "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused \
                 (after 0ms in state CONNECT, 1 identical error(s) suppressed)"
            ),
            "Connect to ipv4#127.0.0.1:1 failed: Connection refused"
        );
        assert_eq!(
            without_broker_name("Failed to resolve 'kafka:9092': Name or service not known"),
            "Failed to resolve 'kafka:9092': Name or service not known"
        );
    }
}
