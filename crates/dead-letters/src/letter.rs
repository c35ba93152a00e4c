//! The model: one dead letter, what its headers say, and the rules that hold for a set of them
//! (one replay per origin; copies of a replayed origin count as replayed).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rdkafka::message::{Headers, Message};

use events::{OrderId, Topic};
use platform::kafka::cloudevents::{CE_TYPE, LEGACY_EVENT_TYPE};
use platform::kafka::dead_letter_headers as h;

/// The header of the marker a replay appends to a dead-letter topic after sending a letter
/// back: the replayed letter's id. Kafka topics are append-only, so this is how a replayed
/// letter leaves the list of those still to handle, for every operator and every later look.
pub const REPLAY_OF: &str = "dlq.replay_of";

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// `<dlq topic>/<partition>/<offset>`: names it on the command line and in URLs, and is
    /// what a replay marker ([`REPLAY_OF`]) points at.
    pub id: String,
    /// The dead-letter topic it is in: decides where it goes back ([`original_topic`]).
    pub dlq_topic: String,
    /// Original key: for the saga's events, the order id.
    pub key: Vec<u8>,
    /// Original payload, untouched.
    pub payload: Vec<u8>,
    /// All headers, original and `dlq.*` (values read as UTF-8, lossily).
    pub headers: BTreeMap<String, String>,
    /// Whether it was sent back already: a marker in its dead-letter topic says so, for it or
    /// for another copy of its origin ([`flag_replayed`]).
    pub replayed: bool,
}

impl DeadLetter {
    /// The header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Where the original message was, `topic/partition/offset`, as the `dlq.original.*`
    /// headers say; `None` when they do not say it all.
    pub fn origin(&self) -> Option<String> {
        let [topic, partition, offset] =
            [h::ORIGINAL_TOPIC, h::ORIGINAL_PARTITION, h::ORIGINAL_OFFSET]
                .map(|name| self.header(name).filter(|value| !value.is_empty()));
        Some(format!("{}/{}/{}", topic?, partition?, offset?))
    }

    /// The service (consumer group) that gave it up.
    pub fn service(&self) -> Option<&str> {
        self.header(h::SERVICE)
    }

    /// `transient`, `permanent`… (`platform::kafka::HandlerError::class`), or `webhook` for
    /// order-api's copies of failed callbacks.
    pub fn error_class(&self) -> Option<&str> {
        self.header(h::ERROR_CLASS)
    }

    /// The last attempt's error.
    pub fn error_message(&self) -> Option<&str> {
        self.header(h::ERROR_MESSAGE)
    }

    /// How many times it was tried before it was given up.
    pub fn attempts(&self) -> Option<u32> {
        self.header(h::ATTEMPTS)?.parse().ok()
    }

    /// When its first attempt failed.
    pub fn first_failure(&self) -> Option<DateTime<Utc>> {
        platform::time::parse(self.header(h::FIRST_FAILURE)?).ok()
    }

    /// When its last attempt failed.
    pub fn last_failure(&self) -> Option<DateTime<Utc>> {
        platform::time::parse(self.header(h::LAST_FAILURE)?).ok()
    }

    /// The event type the original declared (`shop.order.created.v1`): its CloudEvents
    /// `ce_type`, else the private header older producers wrote.
    pub fn event_type(&self) -> Option<&str> {
        self.header(CE_TYPE)
            .or_else(|| self.header(LEGACY_EVENT_TYPE))
            .filter(|kind| !kind.is_empty())
    }

    /// The order it concerns: every saga event, and every copy of a failed callback, is keyed
    /// by its order id (one saga stays in one partition). `None` when the key is no order id.
    pub fn order_id(&self) -> Option<OrderId> {
        OrderId::from_str(std::str::from_utf8(&self.key).ok()?).ok()
    }

    /// The delivery it is the copy of, if it is order-api's copy of a failed callback (see
    /// [`crate::callback`]).
    pub fn delivery_id(&self) -> Option<&str> {
        crate::callback::delivery_id(self)
    }
}

/// The topic a letter of `dlq_topic` goes back to: the dead-letter topic's own saga topic,
/// never what a header says (a header is written by whoever produced the message).
pub fn original_topic(dlq_topic: &str) -> Option<&'static str> {
    Topic::ALL
        .iter()
        .find(|topic| topic.dead_letter_name() == dlq_topic)
        .map(|topic| topic.name())
}

/// `letters` with one letter per origin (the first by id), sorted by id: copies of one
/// message dead-lettered by several consumer groups are sent back once. Letters whose origin
/// is unknown are all kept.
pub fn once_per_origin(letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
    let mut seen = BTreeSet::new();
    let mut sorted = letters;
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted
        .into_iter()
        .filter(|letter| letter.origin().is_none_or(|origin| seen.insert(origin)))
        .collect()
}

/// Sets [`DeadLetter::replayed`] on each of `letters`, given the ids the replay markers of
/// their dead-letter topics name (`replay_of`): a letter is replayed if a marker names it, or
/// names another letter of the set with the same origin — a copy of a message replayed
/// through another copy is replayed too.
pub fn flag_replayed(letters: &mut [DeadLetter], replay_of: &BTreeSet<String>) {
    let rule = Replayed::new(letters.iter(), replay_of);
    for letter in letters.iter_mut() {
        letter.replayed = rule.covers(letter);
    }
}

/// The replayed rule for one set of letters, so that one letter can be judged without
/// flagging (and copying) all of them ([`crate::Tail::get`]).
#[derive(Debug)]
pub(crate) struct Replayed<'a> {
    /// The ids the markers name.
    replay_of: &'a BTreeSet<String>,
    /// The origins of the letters the markers name.
    origins: BTreeSet<String>,
}

impl<'a> Replayed<'a> {
    /// The rule for the set `letters`, given the ids the markers name.
    pub(crate) fn new<'l>(
        letters: impl Iterator<Item = &'l DeadLetter>,
        replay_of: &'a BTreeSet<String>,
    ) -> Self {
        let origins = letters
            .filter(|letter| replay_of.contains(&letter.id))
            .filter_map(DeadLetter::origin)
            .collect();
        Self { replay_of, origins }
    }

    /// Whether `letter` (one of the set) counts as replayed.
    pub(crate) fn covers(&self, letter: &DeadLetter) -> bool {
        self.replay_of.contains(&letter.id)
            || letter
                .origin()
                .is_some_and(|origin| self.origins.contains(&origin))
    }
}

/// What a message of a dead-letter topic is.
#[derive(Debug)]
pub(crate) enum Record {
    /// A dead letter.
    Letter(DeadLetter),
    /// A replay marker naming the letter it says was sent back.
    Marker(String),
}

impl Record {
    /// Reads a message of a dead-letter topic.
    pub(crate) fn from_message(message: &impl Message) -> Self {
        let headers: BTreeMap<String, String> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (
                            header.key.to_owned(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(of) = headers.get(REPLAY_OF) {
            return Record::Marker(of.clone());
        }
        Record::Letter(DeadLetter {
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
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use events::OrderId;

    use super::{DeadLetter, flag_replayed, once_per_origin, original_topic};

    /// A letter of `orders.dlq` with `id` and, if given, the origin `(topic, partition, offset)`.
    pub(crate) fn letter(id: &str, origin: Option<(&str, &str, &str)>) -> DeadLetter {
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
    fn a_copy_of_a_replayed_origin_counts_as_replayed() {
        let mut letters = vec![
            letter("orders.dlq/0/3", Some(("orders", "2", "40"))),
            letter("orders.dlq/1/7", Some(("orders", "2", "40"))),
            letter("orders.dlq/0/4", Some(("orders", "2", "41"))),
            letter("orders.dlq/0/5", None),
            letter("orders.dlq/0/6", None),
        ];
        let markers = BTreeSet::from(["orders.dlq/0/3".to_owned(), "orders.dlq/0/5".to_owned()]);
        flag_replayed(&mut letters, &markers);
        let flags: Vec<bool> = letters.iter().map(|letter| letter.replayed).collect();
        assert_eq!(flags, [true, true, false, true, false]);
    }

    #[test]
    fn letters_go_back_to_their_dead_letter_topic_s_own_topic() {
        assert_eq!(original_topic("payments.dlq"), Some("payments"));
        assert_eq!(original_topic("orders.dlq"), Some("orders"));
        assert_eq!(original_topic("payments"), None);
        assert_eq!(original_topic("secrets.dlq"), None);
    }

    #[test]
    fn the_headers_say_why_when_and_what() {
        let order_id = OrderId::new();
        let mut letter = letter("payments.dlq/0/1", None);
        letter.key = order_id.to_string().into_bytes();
        for (name, value) in [
            ("dlq.attempts", "5"),
            ("dlq.first_failure", "2026-01-01T00:00:01.000000Z"),
            ("dlq.last_failure", "2026-01-01T00:00:09.500000Z"),
            ("dlq.service", "inventory-svc"),
            ("dlq.error.class", "transient"),
            ("ce_type", "shop.payment.completed.v1"),
        ] {
            letter.headers.insert(name.to_owned(), value.to_owned());
        }
        assert_eq!(letter.attempts(), Some(5));
        assert_eq!(letter.service(), Some("inventory-svc"));
        assert_eq!(letter.error_class(), Some("transient"));
        assert_eq!(letter.error_message(), None);
        assert_eq!(letter.event_type(), Some("shop.payment.completed.v1"));
        assert_eq!(letter.order_id(), Some(order_id));
        let (Some(first), Some(last)) = (letter.first_failure(), letter.last_failure()) else {
            panic!("both failure times parse: {letter:?}");
        };
        assert_eq!((last - first).num_milliseconds(), 8_500);

        letter.key = b"not-an-order".to_vec();
        letter
            .headers
            .insert("dlq.attempts".to_owned(), "many".to_owned());
        assert_eq!(letter.order_id(), None);
        assert_eq!(letter.attempts(), None);
    }
}
