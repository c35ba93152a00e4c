//! Transitions from an order's history, for when there is no stream to deliver them.
//!
//! A long-polled order carries its whole history; what the watcher has not yet reported is every
//! entry after the last `seq` it reported. Deriving transitions this way is what lets a watch
//! switch from the stream to polling (or fill a gap) without losing or repeating one.

use events::OrderId;

use super::Transition;
use crate::order::{HistoryEntry, OrderStatus};

/// Where a watcher is: the last transition it reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Position {
    /// Its `seq`; 0 before the first.
    pub(crate) seq: u64,
    /// The status it moved to.
    pub(crate) status: Option<OrderStatus>,
}

impl Position {
    /// The transition `entry` makes from here, if it is the next one; moves past it.
    pub(crate) fn advance(
        &mut self,
        order_id: OrderId,
        entry: &HistoryEntry,
    ) -> Option<Transition> {
        if entry.seq <= self.seq {
            return None;
        }
        let transition = Transition {
            order_id,
            seq: entry.seq,
            from: self.status,
            to: entry.status,
            at: entry.timestamp,
            reason: entry.reason,
            cause: entry.cause.clone(),
        };
        *self = Position {
            seq: entry.seq,
            status: Some(entry.status),
        };
        Some(transition)
    }

    /// The transitions of `history` after this position, oldest first; moves past them.
    pub(crate) fn catch_up(
        &mut self,
        order_id: OrderId,
        history: &[HistoryEntry],
    ) -> Vec<Transition> {
        let mut entries: Vec<&HistoryEntry> = history.iter().collect();
        entries.sort_by_key(|entry| entry.seq);
        entries
            .into_iter()
            .filter_map(|entry| self.advance(order_id, entry))
            .collect()
    }

    /// Whether the last transition reported ended the saga.
    pub(crate) fn is_terminal(&self) -> bool {
        self.status.is_some_and(OrderStatus::is_terminal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, status: OrderStatus) -> HistoryEntry {
        HistoryEntry {
            seq,
            status,
            timestamp: chrono::DateTime::UNIX_EPOCH,
            reason: None,
            cause: format!("cause {seq}"),
        }
    }

    #[test]
    fn catching_up_reports_each_transition_once_in_order() {
        use OrderStatus::*;
        let order_id = OrderId::new();
        let mut position = Position::default();
        let first = position.catch_up(order_id, &[entry(2, PaymentProcessing), entry(1, Pending)]);
        let moves: Vec<_> = first.iter().map(|t| (t.seq, t.from, t.to)).collect();
        assert_eq!(
            moves,
            [(1, None, Pending), (2, Some(Pending), PaymentProcessing)]
        );
        assert!(!position.is_terminal());

        // The next poll returns the whole history again: only what is new is reported.
        let history = [
            entry(1, Pending),
            entry(2, PaymentProcessing),
            entry(3, PaymentConfirmed),
            entry(4, Confirmed),
        ];
        let next = position.catch_up(order_id, &history);
        let moves: Vec<_> = next.iter().map(|t| (t.seq, t.from, t.to)).collect();
        assert_eq!(
            moves,
            [
                (3, Some(PaymentProcessing), PaymentConfirmed),
                (4, Some(PaymentConfirmed), Confirmed)
            ]
        );
        assert!(position.is_terminal());
        assert!(position.catch_up(order_id, &history).is_empty());
    }

    #[test]
    fn an_entry_already_reported_is_not_reported_again() {
        let order_id = OrderId::new();
        let mut position = Position::default();
        assert!(
            position
                .advance(order_id, &entry(1, OrderStatus::Pending))
                .is_some()
        );
        assert!(
            position
                .advance(order_id, &entry(1, OrderStatus::Pending))
                .is_none()
        );
        assert_eq!(position.seq, 1);
    }
}
