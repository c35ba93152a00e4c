//! Dead letters of the saga topics: what they are, how to read them, how to follow them live
//! and how to send them back.
//!
//! A dead letter is the original message, untouched, plus `dlq.*` headers saying why it failed
//! (see `platform::kafka::dead_letter_headers`). Sending it back produces the original key,
//! payload and headers to the original topic, with `dlq.replayed_from` added. That is
//! idempotent: the event keeps its id, so a consumer that already handled it (or a second
//! replay) changes nothing — its inbox drops the repeat.
//!
//! One message can be dead-lettered more than once: a poison message on a topic two services
//! consume is given up by each of their groups. The copies share their origin (original topic,
//! partition and offset, [`DeadLetter::origin`]); a replay sends each origin once
//! ([`once_per_origin`]), and a letter counts as replayed once any copy of its origin was
//! ([`flag_replayed`]).
//!
//! Two ways to look, one model: [`read`] takes a snapshot up to the current end, for a command
//! that prints and exits (`shopctl dlq`); [`Tail`] follows every dead-letter topic for a
//! long-running service (order-api's operator console). [`Replayer`] sends letters back for
//! both. order-api's copies of failed callbacks are dead letters too, whose original was an
//! HTTP request rather than a message ([`callback`]); only order-api can send those again.
//!
//! The library never reads the environment: callers pass a `rdkafka::ClientConfig` with the
//! bootstrap servers and their `KAFKA_CLIENT_*` properties already set, so that a command and a
//! service can each configure it their way.

pub mod callback;
mod error;
mod letter;
mod read;
mod replay;
mod tail;

pub use error::Error;
pub use letter::{DeadLetter, REPLAY_OF, flag_replayed, once_per_origin, original_topic};
pub use read::{Quiet, Unreachable, read};
pub use replay::{REPLAYED_FROM, REPLAYED_TO, ReplayError, Replayer};
pub use tail::{CAPACITY, Tail};
