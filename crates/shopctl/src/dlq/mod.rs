//! `shopctl dlq list | show | replay`: look at dead letters and send chosen ones back.
//!
//! A dead letter is the original message, untouched, plus `dlq.*` headers saying why it failed
//! (see `platform::kafka::dead_letter_headers`). Replaying produces the original key, payload and
//! headers to the original topic, with `dlq.replayed_from` added. Replays are idempotent: the
//! event keeps its id, so a consumer that already handled it (or a second replay) changes
//! nothing — its inbox drops the repeat.
//!
//! One message can be dead-lettered more than once: a poison message on a topic two services
//! consume is given up by each of their groups. The copies share their origin (original topic,
//! partition and offset, [`DeadLetter::origin`]); replay sends each origin once
//! ([`once_per_origin`]), and a letter counts as replayed once any copy of its origin was.
//!
//! Replay only ever sends to a saga topic that exists ([`original_topic`], checked against the
//! broker's topic list, never created by the send): a letter whose original was not on a saga
//! topic is refused rather than published where nothing reads it. The one exception is
//! order-api's copy of a failed callback, whose original was an HTTP request: replaying it asks
//! order-api to send the callback again ([`callback`]).
//!
//! A one-shot command talks to the broker for a moment and then exits, so the Kafka client's
//! own log (dozens of lines a second while a broker is unreachable) would bury the one line
//! that matters: [`Quiet`] keeps it to itself unless `--verbose` asks for it, and [`read`]
//! checks within a few seconds that the broker answers at all, failing with [`Unreachable`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use events::Topic;
use platform::kafka::dead_letter_headers as h;

pub mod callback;
mod replay;

pub use callback::OrderApi;
pub use replay::replay;

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// `<dlq topic>/<partition>/<offset>`: how to name it on the command line.
    pub id: String,
    /// The dead-letter topic.
    pub dlq_topic: String,
    /// Original key.
    pub key: Vec<u8>,
    /// Original payload.
    pub payload: Vec<u8>,
    /// All headers, original and `dlq.*`.
    pub headers: BTreeMap<String, String>,
    /// Whether `replay` sent it back already (a marker in its dead-letter topic says so).
    pub replayed: bool,
}

/// The header of the marker `replay` appends to a dead-letter topic after sending a letter back:
/// the replayed letter's id. Kafka topics are append-only, so this is how a replayed letter
/// leaves the list of those still to handle, for every operator and every later command.
pub const REPLAY_OF: &str = "dlq.replay_of";

/// The topic a letter of `dlq_topic` goes back to: the dead-letter topic's own saga topic,
/// never what a header says (a header is written by whoever produced the message).
pub fn original_topic(dlq_topic: &str) -> Option<&'static str> {
    Topic::ALL
        .iter()
        .find(|topic| topic.dead_letter_name() == dlq_topic)
        .map(|topic| topic.name())
}

/// `text` with control characters (terminal escapes, carriage returns…) shown as escapes, so
/// that a dead letter's content cannot rewrite the operator's terminal; line feeds are kept
/// when `lines`.
fn printable(text: &str, lines: bool) -> String {
    text.chars()
        .map(|ch| {
            if ch.is_control() && !(lines && ch == '\n') {
                ch.escape_default().collect()
            } else {
                ch.to_string()
            }
        })
        .collect()
}

impl DeadLetter {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// Where the original message was, `topic/partition/offset`, as the `dlq.original.*`
    /// headers say; `None` when they do not say it all.
    pub fn origin(&self) -> Option<String> {
        let [topic, partition, offset] =
            [h::ORIGINAL_TOPIC, h::ORIGINAL_PARTITION, h::ORIGINAL_OFFSET]
                .map(|name| self.headers.get(name).filter(|value| !value.is_empty()));
        Some(format!("{}/{}/{}", topic?, partition?, offset?))
    }
}

/// `letters` with one letter per origin (the first by id), in their order: copies of one
/// message dead-lettered by several consumer groups are sent back once. Letters whose origin
/// is unknown are all kept.
pub fn once_per_origin(letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
    let mut seen = std::collections::BTreeSet::new();
    let mut sorted = letters;
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted
        .into_iter()
        .filter(|letter| letter.origin().is_none_or(|origin| seen.insert(origin)))
        .collect()
}

/// How long a command waits for the broker's first answer before it gives up: a broker that
/// refuses the connection or cannot be resolved is reported at once (see [`Quiet`]), one that
/// does not answer at all after this long.
const REACH_WITHIN: Duration = Duration::from_secs(4);

/// The broker did not answer: the command cannot do anything.
#[derive(Debug)]
pub struct Unreachable {
    /// The bootstrap address that was tried.
    bootstrap: String,
    /// The Kafka client's last word on why (e.g. "Connect to ipv4#127.0.0.1:1 failed:
    /// Connection refused"), or that it timed out.
    reason: String,
}

impl Unreachable {
    /// Where the right address is to be found.
    pub fn hint(&self) -> &'static str {
        "pass the broker's address with --bootstrap (or KAFKA_BOOTSTRAP_SERVERS): the one \
         `shopctl up` prints as `kafka <host:port>`, or localhost:9094 for docker compose; \
         -v shows the Kafka client's log"
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot reach the Kafka broker at {}: {}",
            self.bootstrap, self.reason
        )
    }
}

impl std::error::Error for Unreachable {}

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

/// Reads every dead letter of the saga topics (or of `only`), up to the current end; the
/// Kafka client's log goes to stderr only when `verbose`.
pub fn read(bootstrap: &str, verbose: bool, only: Option<&str>) -> Result<Vec<DeadLetter>> {
    let consumer: BaseConsumer<Quiet> = client_config()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "shopctl-dlq")
        .set("enable.auto.commit", "false")
        .create_with_context(Quiet::new(verbose))?;
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
        for partition in 0..i32::try_from(partitions)? {
            let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
            if high > low {
                remaining += high - low;
                assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
            }
        }
    }
    let mut letters = Vec::new();
    let mut replayed = std::collections::BTreeSet::new();
    if remaining == 0 {
        return Ok(letters);
    }
    consumer.assign(&assignment)?;
    let started = std::time::Instant::now();
    while remaining > 0 {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("timed out reading dead-letter topics ({remaining} messages unread)");
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        remaining -= 1;
        let headers: BTreeMap<String, String> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(of) = headers.get(REPLAY_OF) {
            replayed.insert(of.clone());
            continue;
        }
        letters.push(DeadLetter {
            id: format!(
                "{}/{}/{}",
                message.topic(),
                message.partition(),
                message.offset()
            ),
            dlq_topic: message.topic().to_owned(),
            key: message.key().unwrap_or_default().to_vec(),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
            replayed: false,
        });
    }
    // A copy of a message replayed through another copy is replayed too.
    let replayed_origins: std::collections::BTreeSet<String> = letters
        .iter()
        .filter(|letter| replayed.contains(&letter.id))
        .filter_map(DeadLetter::origin)
        .collect();
    for letter in &mut letters {
        letter.replayed = replayed.contains(&letter.id)
            || letter
                .origin()
                .is_some_and(|origin| replayed_origins.contains(&origin));
    }
    letters.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(letters)
}

/// Prints one line per dead letter still to handle (every one with `include_replayed`).
pub fn list(letters: &[DeadLetter], include_replayed: bool) {
    let hidden = letters.iter().filter(|letter| letter.replayed).count();
    let letters: Vec<&DeadLetter> = letters
        .iter()
        .filter(|letter| include_replayed || !letter.replayed)
        .collect();
    if !include_replayed && hidden > 0 {
        println!("({hidden} replayed dead letter(s) not shown; --include-replayed shows them)");
    }
    if letters.is_empty() {
        println!("No dead letters.");
        return;
    }
    println!(
        "{:<22} {:<14} {:<10} {:>8} {:<28} reason",
        "id", "service", "class", "attempts", "last failure"
    );
    for letter in letters {
        let mut reason = printable(letter.header(h::ERROR_MESSAGE), false);
        if letter.replayed {
            reason.insert_str(0, "(replayed) ");
        }
        if reason.chars().count() > 80 {
            reason = reason.chars().take(77).collect();
            reason.push_str("...");
        }
        println!(
            "{:<22} {:<14} {:<10} {:>8} {:<28} {reason}",
            letter.id,
            printable(letter.header(h::SERVICE), false),
            printable(letter.header(h::ERROR_CLASS), false),
            printable(letter.header(h::ATTEMPTS), false),
            printable(letter.header(h::LAST_FAILURE), false),
        );
    }
}

/// Prints one dead letter in full.
pub fn show(letter: &DeadLetter) {
    println!("id: {}", letter.id);
    if letter.replayed {
        println!("replayed: yes");
    }
    println!(
        "key: {}",
        printable(&String::from_utf8_lossy(&letter.key), false)
    );
    for (name, value) in &letter.headers {
        println!(
            "header {}: {}",
            printable(name, false),
            printable(value, false)
        );
    }
    let payload = serde_json::from_slice::<serde_json::Value>(&letter.payload)
        .ok()
        .and_then(|json| serde_json::to_string_pretty(&json).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(&letter.payload).into_owned());
    println!("payload:\n{}", printable(&payload, true));
}

/// A client with the `KAFKA_CLIENT_*` properties (TLS, SASL…), like the services'.
fn client_config() -> ClientConfig {
    platform::config::client_config_from(
        &platform::config::client_properties_from(std::env::vars()),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{DeadLetter, once_per_origin, original_topic, printable, without_broker_name};

    fn letter(id: &str, origin: Option<(&str, &str, &str)>) -> DeadLetter {
        let mut headers = BTreeMap::new();
        if let Some((topic, partition, offset)) = origin {
            headers.insert("dlq.original.topic".to_owned(), topic.to_owned());
            headers.insert("dlq.original.partition".to_owned(), partition.to_owned());
            headers.insert("dlq.original.offset".to_owned(), offset.to_owned());
        }
        DeadLetter {
            id: id.to_owned(),
            dlq_topic: "orders.dlq".to_owned(),
            key: Vec::new(),
            payload: Vec::new(),
            headers,
            replayed: false,
        }
    }

    #[test]
    fn copies_of_one_message_are_replayed_once() {
        let letters = vec![
            letter("orders.dlq/1/7", Some(("orders", "2", "40"))),
            letter("orders.dlq/0/3", Some(("orders", "2", "40"))),
            letter("orders.dlq/0/4", Some(("orders", "2", "41"))),
            letter("orders.dlq/0/5", None),
            letter("orders.dlq/0/6", None),
        ];
        assert_eq!(
            letters[0].origin().as_deref(),
            Some("orders/2/40"),
            "topic/partition/offset"
        );
        let once: Vec<String> = once_per_origin(letters)
            .into_iter()
            .map(|letter| letter.id)
            .collect();
        assert_eq!(
            once,
            [
                "orders.dlq/0/3",
                "orders.dlq/0/4",
                "orders.dlq/0/5",
                "orders.dlq/0/6"
            ]
        );
    }

    #[test]
    fn letters_go_back_to_their_dead_letter_topic_s_own_topic() {
        assert_eq!(original_topic("payments.dlq"), Some("payments"));
        assert_eq!(original_topic("orders.dlq"), Some("orders"));
        assert_eq!(original_topic("payments"), None);
        assert_eq!(original_topic("secrets.dlq"), None);
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb\r", false), "a\\u{1b}[2Jb\\r");
        assert_eq!(printable("line\nnext", true), "line\nnext");
        assert_eq!(printable("line\nnext", false), "line\\nnext");
    }

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
