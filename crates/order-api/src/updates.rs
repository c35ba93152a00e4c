//! In-process fan-out of status changes to SSE subscribers.
//!
//! A change is published here after its transaction committed. Subscribers treat this channel
//! as a hint: the database is the truth, so a subscriber that lags or sees a gap in sequence
//! numbers reloads from it and never misses or repeats a transition.

use tokio::sync::broadcast;

use crate::store::HistoryEntry;

/// Fan-out of committed history entries.
#[derive(Clone, Debug)]
pub struct StatusUpdates {
    sender: broadcast::Sender<HistoryEntry>,
}

impl StatusUpdates {
    /// A hub buffering up to `capacity` entries for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }

    /// Announces committed entries; returns how many subscribers were listening.
    pub fn publish(&self, entries: impl IntoIterator<Item = HistoryEntry>) -> usize {
        let mut listeners = 0;
        for entry in entries {
            // An error only means there is no subscriber right now.
            listeners = self.sender.send(entry).unwrap_or(0);
        }
        listeners
    }

    /// Subscribes to every entry published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HistoryEntry> {
        self.sender.subscribe()
    }
}
