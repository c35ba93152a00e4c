//! A lane's run: the messages it handles side by side.
//!
//! Handled one at a time, each message of a lane's queue would wait for the one before it to be
//! committed, though the messages of different orders have nothing to wait for: only the events
//! of one order (one message key) must be handled in the order they were published. So a lane
//! takes, with the message it waits for, the messages already queued behind it, up to
//! the first one whose key is already among them, and handles them together. Their database
//! transactions then reach the writer at once and share a commit, and the lane is woken once
//! for them all instead of once per message. The offsets are stored afterwards, in order, and
//! only up to the first message that was not done (shutdown came first): a message is never
//! marked consumed before every message before it in its partition.

use rdkafka::message::Message;
use tokio::sync::mpsc::Receiver;

use super::Work;

/// Most messages a lane handles at once.
pub const RUN_LIMIT: usize = 32;

impl Work {
    /// The message's key, which orders it against the others: `None` for a message passed
    /// over, whose only duty is to have its offset stored in its turn.
    fn key(&self) -> Option<Key<'_>> {
        match self {
            Work::Handle(message) => Some(Key(message.key())),
            Work::PassOver { .. } => None,
        }
    }

    /// Where the message is: its topic, partition and offset.
    fn place(&self) -> (&str, i32, i64) {
        match self {
            Work::Handle(message) => (message.topic(), message.partition(), message.offset()),
            Work::PassOver {
                topic,
                partition,
                offset,
                ..
            } => (topic, *partition, *offset),
        }
    }
}

/// A message key; messages without one (a poison message, say) count as one key among
/// themselves, so they never run side by side.
#[derive(PartialEq, Eq)]
struct Key<'a>(Option<&'a [u8]>);

/// The run that starts with `first`: it and the messages queued in `queue` behind it, up to
/// [`RUN_LIMIT`] and not past a message whose key is already in the run. That message, if any,
/// is returned too, to start the next run.
pub(super) fn gather(first: Work, queue: &mut Receiver<Work>) -> (Vec<Work>, Option<Work>) {
    let mut run = vec![first];
    while run.len() < RUN_LIMIT {
        let Ok(work) = queue.try_recv() else { break };
        let taken = work
            .key()
            .is_some_and(|key| run.iter().any(|queued| queued.key().as_ref() == Some(&key)));
        if taken {
            return (run, Some(work));
        }
        run.push(work);
    }
    (run, None)
}

/// The places (topic, partition, offset) of the messages of a run whose offsets may be
/// stored, given which of them were `done`: in order, and none from the first that was not
/// (shutdown came first). Its offset must not be committed over, or it would never be consumed
/// again; the messages after it that were handled are consumed again, and the inbox makes that
/// harmless.
pub(super) fn finished<'a>(
    run: &'a [Work],
    done: &'a [bool],
) -> impl Iterator<Item = (&'a str, i32, i64)> {
    run.iter()
        .zip(done)
        .take_while(|(_, done)| **done)
        .map(|(work, _)| work.place())
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;
    use tokio::sync::mpsc;

    use super::*;
    use events::EventKind;

    fn message(key: Option<&str>, offset: i64) -> Work {
        Work::Handle(OwnedMessage::new(
            Some(b"{}".to_vec()),
            key.map(|key| key.as_bytes().to_vec()),
            "orders".to_owned(),
            Timestamp::NotAvailable,
            0,
            offset,
            None,
        ))
    }

    fn pass_over(offset: i64) -> Work {
        Work::PassOver {
            topic: "orders".to_owned(),
            partition: 0,
            offset,
            kind: EventKind::OrderConfirmed,
        }
    }

    fn offsets(run: &[Work]) -> Vec<i64> {
        run.iter().map(|work| work.place().2).collect()
    }

    fn queue(works: Vec<Work>) -> Receiver<Work> {
        let (sender, receiver) = mpsc::channel(RUN_LIMIT * 2);
        for work in works {
            assert!(sender.try_send(work).is_ok(), "room in the queue");
        }
        receiver
    }

    #[test]
    fn a_run_takes_what_is_queued_up_to_a_key_it_already_has() {
        let mut queued = queue(vec![
            message(Some("b"), 1),
            pass_over(2),
            message(Some("c"), 3),
            message(Some("a"), 4),
            message(Some("d"), 5),
        ]);
        let (run, next) = gather(message(Some("a"), 0), &mut queued);
        assert_eq!(offsets(&run), [0, 1, 2, 3]);
        let next = next.expect("the second message of order a starts the next run");
        assert_eq!(offsets(&[next]), [4]);
        let (rest, none) = gather(message(Some("x"), 9), &mut queued);
        assert_eq!(offsets(&rest), [9, 5]);
        assert!(none.is_none());
    }

    #[test]
    fn passed_over_messages_never_end_a_run() {
        let mut queued = queue(vec![pass_over(1), pass_over(2), message(Some("b"), 3)]);
        let (run, next) = gather(pass_over(0), &mut queued);
        assert_eq!(offsets(&run), [0, 1, 2, 3]);
        assert!(next.is_none());
    }

    #[test]
    fn messages_without_a_key_run_one_after_the_other() {
        let mut queued = queue(vec![message(Some("a"), 1), message(None, 2)]);
        let (run, next) = gather(message(None, 0), &mut queued);
        assert_eq!(offsets(&run), [0, 1]);
        assert_eq!(offsets(&[next.expect("the second keyless message")]), [2]);
    }

    #[test]
    fn offsets_are_stored_up_to_the_first_message_not_done() {
        let run = [
            message(Some("a"), 0),
            pass_over(1),
            message(Some("b"), 2),
            message(Some("c"), 3),
        ];
        let stored = |done: &[bool]| -> Vec<i64> {
            finished(&run, done).map(|(_, _, offset)| offset).collect()
        };
        assert_eq!(stored(&[true, true, true, true]), [0, 1, 2, 3]);
        assert_eq!(stored(&[true, true, false, true]), [0, 1]);
        assert_eq!(stored(&[false, true, true, true]), Vec::<i64>::new());
    }

    #[test]
    fn a_run_stops_at_its_limit() {
        let keys: Vec<String> = (0..RUN_LIMIT + 5).map(|n| format!("order-{n}")).collect();
        let mut queued = queue(
            keys.iter()
                .enumerate()
                .map(|(offset, key)| message(Some(key), offset as i64 + 1))
                .collect(),
        );
        let (run, next) = gather(message(Some("first"), 0), &mut queued);
        assert_eq!(run.len(), RUN_LIMIT);
        assert!(next.is_none(), "the limit leaves the rest in the queue");
        let (rest, _) = gather(message(Some("later"), 100), &mut queued);
        assert_eq!(rest.len(), 1 + 6, "the new message and the six left");
    }
}
