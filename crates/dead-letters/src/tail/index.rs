//! The tail's memory: the most recent letters and the replay markers naming them, bounded so
//! that a flood of dead letters cannot exhaust a service that only wants to show them.

use std::collections::{BTreeSet, VecDeque};

use crate::letter::Replayed;
use crate::{DeadLetter, flag_replayed};

/// Letters in the order they were read, and the ids the replay markers name.
#[derive(Debug)]
pub(super) struct Index {
    /// Oldest first; at most `capacity`.
    letters: VecDeque<DeadLetter>,
    /// The ids the replay markers name. A marker may arrive before its letter when a
    /// dead-letter topic has several partitions, so markers are kept whether or not their
    /// letter is here; one whose letter is dropped goes with it.
    replay_of: BTreeSet<String>,
    /// Letters dropped to stay within `capacity`, oldest first.
    dropped: u64,
    /// Most letters kept.
    capacity: usize,
}

impl Index {
    /// An empty index keeping at most `capacity` letters.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            letters: VecDeque::new(),
            replay_of: BTreeSet::new(),
            dropped: 0,
            capacity,
        }
    }

    /// Keeps `letter`, dropping the oldest one if there are too many. A copy whose replayed
    /// twin was dropped then shows as not replayed: the rule only sees the letters kept.
    pub(super) fn insert(&mut self, letter: DeadLetter) {
        self.letters.push_back(letter);
        while self.letters.len() > self.capacity {
            let Some(oldest) = self.letters.pop_front() else {
                break;
            };
            self.replay_of.remove(&oldest.id);
            self.dropped += 1;
        }
    }

    /// Records a marker saying the letter `id` was sent back.
    pub(super) fn mark(&mut self, id: String) {
        self.replay_of.insert(id);
    }

    /// Every letter kept, oldest first, replayed flags set.
    pub(super) fn snapshot(&self) -> Vec<DeadLetter> {
        let mut letters: Vec<DeadLetter> = self.letters.iter().cloned().collect();
        flag_replayed(&mut letters, &self.replay_of);
        letters
    }

    /// The letter `id`, replayed flag set, if it is kept.
    pub(super) fn get(&self, id: &str) -> Option<DeadLetter> {
        let letter = self.letters.iter().find(|letter| letter.id == id)?;
        let rule = Replayed::new(self.letters.iter(), &self.replay_of);
        Some(DeadLetter {
            replayed: rule.covers(letter),
            ..letter.clone()
        })
    }

    /// Letters dropped to stay within the capacity.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::Index;
    use crate::letter::tests::letter;

    #[test]
    fn the_oldest_letters_are_dropped_and_counted() {
        let mut index = Index::new(2);
        for offset in 0..5 {
            index.insert(letter(&format!("orders.dlq/0/{offset}"), None));
        }
        let ids: Vec<String> = index
            .snapshot()
            .into_iter()
            .map(|letter| letter.id)
            .collect();
        assert_eq!(ids, ["orders.dlq/0/3", "orders.dlq/0/4"]);
        assert_eq!(index.dropped(), 3);
        assert!(index.get("orders.dlq/0/0").is_none(), "dropped");
    }

    #[test]
    fn a_marker_flags_its_letter_and_the_copies_of_its_origin() {
        let mut index = Index::new(10);
        // The marker first: in another partition, it may be read before its letter.
        index.mark("orders.dlq/0/1".to_owned());
        index.insert(letter("orders.dlq/0/1", Some(("orders", "3", "9"))));
        index.insert(letter("orders.dlq/1/1", Some(("orders", "3", "9"))));
        index.insert(letter("orders.dlq/0/2", Some(("orders", "3", "10"))));

        let flags: Vec<bool> = index
            .snapshot()
            .iter()
            .map(|letter| letter.replayed)
            .collect();
        assert_eq!(flags, [true, true, false]);
        assert_eq!(
            index.get("orders.dlq/1/1").map(|letter| letter.replayed),
            Some(true),
            "the copy, alone, is flagged by the same rule"
        );
        assert_eq!(
            index.get("orders.dlq/0/2").map(|letter| letter.replayed),
            Some(false)
        );
    }
}
