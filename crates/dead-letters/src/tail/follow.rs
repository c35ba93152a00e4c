//! The thread behind a [`super::Tail`]: a consumer assigned to every partition of every saga
//! dead-letter topic the broker has, from the beginning, reading for as long as the service
//! runs.
//!
//! A thread of its own, not a task on the async runtime: librdkafka's metadata and watermark
//! requests block for as long as the broker takes to answer (seconds, when it is down), which
//! must not hold up the runtime's workers.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use events::Topic;

use super::Shared;
use crate::letter::Record;

/// How often the broker's topics are listed again, so that a dead-letter topic created after
/// the start (the first dead letter of a fresh cluster) is followed within this long.
pub(super) const REFRESH_EVERY: Duration = Duration::from_secs(3);

/// How long one poll waits for a message: also how long stopping may take.
const POLL: Duration = Duration::from_millis(200);

/// How long a metadata or watermark request may wait for the broker.
const ASK_WITHIN: Duration = Duration::from_secs(2);

/// At most one warning per this long: a broker that is down makes the client fail many times
/// a second, and one line says it as well as a hundred.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// A partition of a dead-letter topic.
type Partition = (String, i32);

/// The consumer and what it knows of its partitions.
pub(super) struct Follower {
    /// Assigned partitions only; never subscribed (see `crate::read::assign_only`).
    consumer: BaseConsumer<Logged>,
    /// The tail's memory; gone once every [`super::Tail`] is dropped, which stops the thread.
    shared: Weak<Shared>,
    /// Bumped on every letter or marker, and once when caught up.
    version: watch::Sender<u64>,
    /// The service is stopping.
    shutdown: CancellationToken,
    /// Partitions assigned so far.
    assigned: BTreeSet<Partition>,
    /// The next offset expected per partition: a message before it is one already read.
    next: HashMap<Partition, i64>,
    /// The end each partition had at the first listing, for those not read up to it yet;
    /// `None` until the broker first answered.
    behind: Option<HashMap<Partition, i64>>,
}

impl Follower {
    /// A follower for `consumer`, reporting to `shared` and `version`.
    pub(super) fn new(
        consumer: BaseConsumer<Logged>,
        shared: &Arc<Shared>,
        version: watch::Sender<u64>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            consumer,
            shared: Arc::downgrade(shared),
            version,
            shutdown,
            assigned: BTreeSet::new(),
            next: HashMap::new(),
            behind: None,
        }
    }

    /// Reads until the service stops or nobody holds the tail any more. Errors never end it:
    /// the client reconnects by itself, and the next listing picks up what was missed.
    pub(super) fn run(mut self) {
        let mut refresh_at = Instant::now();
        while !self.shutdown.is_cancelled() && self.shared.strong_count() > 0 {
            if Instant::now() >= refresh_at {
                self.refresh();
                refresh_at = Instant::now() + REFRESH_EVERY;
            }
            match self.consumer.poll(POLL) {
                None => {}
                // Detached from the consumer, which `take` needs free; dead letters are few.
                Some(Ok(message)) => self.take(&message.detach()),
                Some(Err(error)) => self.consumer.context().warn(&error),
            }
        }
    }

    /// Assigns the partitions of the dead-letter topics that appeared since the last listing,
    /// from their beginning. The first listing also notes where each partition ends: the end
    /// to catch up with.
    fn refresh(&mut self) {
        // Asked without naming a topic: a request naming one may create it on a broker that
        // auto-creates topics.
        let metadata = match self.consumer.fetch_metadata(None, ASK_WITHIN) {
            Ok(metadata) => metadata,
            Err(error) => return self.consumer.context().warn(&error),
        };
        let new: Vec<Partition> = metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none() && is_dead_letter_topic(topic.name()))
            .flat_map(|topic| {
                topic
                    .partitions()
                    .iter()
                    .map(|partition| (topic.name().to_owned(), partition.id()))
            })
            .filter(|partition| !self.assigned.contains(partition))
            .collect();
        if self.behind.is_none() {
            let mut behind = HashMap::new();
            for (topic, partition) in &new {
                match self
                    .consumer
                    .fetch_watermarks(topic, *partition, ASK_WITHIN)
                {
                    Ok((low, high)) if high > low => {
                        behind.insert((topic.clone(), *partition), high);
                    }
                    Ok(_) => {}
                    // Tried again, whole, at the next listing.
                    Err(error) => return self.consumer.context().warn(&error),
                }
            }
            self.behind = Some(behind);
            self.check_caught_up();
        }
        if new.is_empty() {
            return;
        }
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in &new {
            if let Err(error) =
                assignment.add_partition_offset(topic, *partition, Offset::Beginning)
            {
                return self.consumer.context().warn(&error);
            }
        }
        match self.consumer.incremental_assign(&assignment) {
            Ok(()) => self.assigned.extend(new),
            Err(error) => self.consumer.context().warn(&error),
        }
    }

    /// Keeps a letter or a marker, and notes how far its partition is read.
    fn take(&mut self, message: &impl Message) {
        let partition = (message.topic().to_owned(), message.partition());
        let next = self.next.entry(partition.clone()).or_default();
        if message.offset() < *next {
            return;
        }
        *next = message.offset() + 1;
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        {
            let mut index = shared.index.lock().unwrap_or_else(|p| p.into_inner());
            match Record::from_message(message) {
                Record::Letter(letter) => index.insert(letter),
                Record::Marker(of) => index.mark(of),
            }
        }
        self.version.send_modify(|version| *version += 1);
        if let Some(behind) = &mut self.behind
            && behind
                .get(&partition)
                .is_some_and(|end| message.offset() + 1 >= *end)
        {
            behind.remove(&partition);
            self.check_caught_up();
        }
    }

    /// Says the tail caught up once every partition was read to the end it had at the first
    /// listing; a UI waiting on the version learns it then.
    fn check_caught_up(&self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if self.behind.as_ref().is_some_and(HashMap::is_empty)
            && !shared.caught_up.swap(true, Ordering::SeqCst)
        {
            self.version.send_modify(|version| *version += 1);
        }
    }
}

/// Whether `name` is the dead-letter topic of a saga topic.
fn is_dead_letter_topic(name: &str) -> bool {
    Topic::ALL
        .iter()
        .any(|topic| topic.dead_letter_name() == name)
}

/// The tail's Kafka client callbacks: the client's own log lines go to the log at debug
/// level, and its errors (and the follower's) at most once per [`WARN_EVERY`], so that a
/// broker that is down for an hour does not fill the service's log.
#[derive(Debug, Default)]
pub(super) struct Logged {
    /// When the last warning was logged, and how many were held back since.
    last_warning: Mutex<Option<(Instant, u64)>>,
}

impl Logged {
    /// Logs `error` unless a warning was logged less than [`WARN_EVERY`] ago.
    fn warn(&self, error: &dyn std::fmt::Display) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *last {
            Some((at, held_back)) if at.elapsed() < WARN_EVERY => *held_back += 1,
            _ => {
                let held_back = last.map_or(0, |(_, held_back)| held_back);
                tracing::warn!(%error, held_back, "Cannot follow the dead-letter topics; will keep trying.");
                *last = Some((Instant::now(), 0));
            }
        }
    }
}

impl ClientContext for Logged {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", fac, "{log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.warn(&format_args!("{error}: {reason}"));
    }
}

impl ConsumerContext for Logged {}
