//! The status feed: each order's committed status changes, fanned out in this process to the
//! SSE streams (`GET /api/orders/{id}/events`) and waiting requests (`Prefer: wait`, `?wait=`)
//! that follow that order.
//!
//! A change is published here after its transaction committed. Subscribers treat the feed as a
//! hint: the database is the truth, so a subscriber that lags or sees a gap in sequence
//! numbers reloads from it and never misses or repeats a transition.
//!
//! Each order has its own channel, created by its first subscriber and dropped with its last,
//! so a change wakes only the streams of that order: with one shared channel, every change of
//! every order would wake every open stream, and the cost would grow with streams × changes.
//! Changes committed by other replicas reach the feed through [`follow_other_replicas`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use events::OrderId;

use platform::Db;
use platform::db::notify::{self, Notice};

use crate::store::{self, HistoryEntry};

/// Changes of one order a slow subscriber may fall behind by before it reloads.
const PER_ORDER_CAPACITY: usize = 16;

type Channels = Arc<Mutex<HashMap<OrderId, broadcast::Sender<HistoryEntry>>>>;

/// Fan-out of committed history entries, per order.
#[derive(Clone, Debug, Default)]
pub struct StatusFeed {
    /// The channels of the orders someone is listening to.
    channels: Channels,
    /// A count of publications, for those that follow every order at once (the operator
    /// console's live counts): they wake on a change without a channel per order.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl StatusFeed {
    /// A feed with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces committed entries; returns how many subscribers were listening.
    pub fn publish(&self, entries: impl IntoIterator<Item = HistoryEntry>) -> usize {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
        let channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let mut listeners = 0;
        for entry in entries {
            if let Some(sender) = channels.get(&entry.order_id) {
                // An error only means the last subscriber is leaving right now.
                listeners = sender.send(entry).unwrap_or(0);
            }
        }
        listeners
    }

    /// Subscribes to the entries of `order_id` published from now on.
    pub fn subscribe(&self, order_id: OrderId) -> Subscription {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let receiver = channels
            .entry(order_id)
            .or_insert_with(|| broadcast::channel(PER_ORDER_CAPACITY).0)
            .subscribe();
        Subscription {
            receiver,
            order_id,
            channels: Arc::clone(&self.channels),
        }
    }

    /// Wakes on every publication from now on (never with the entries: readers count from the
    /// database).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Whether anyone here listens to `order_id`.
    pub fn is_watched(&self, order_id: OrderId) -> bool {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&order_id)
    }

    /// The orders someone here listens to.
    pub fn watched(&self) -> Vec<OrderId> {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    /// Orders with at least one subscriber (for tests and metrics).
    pub fn orders_watched(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A subscription to one order's changes; leaving drops the order's channel if it was the last.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<HistoryEntry>,
    order_id: OrderId,
    channels: Channels,
}

impl Subscription {
    /// The next change of the order (see [`broadcast::Receiver::recv`] for lag and closing).
    pub async fn recv(&mut self) -> Result<HistoryEntry, RecvError> {
        self.receiver.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        // Counted under the lock, where subscribers are added: this receiver is the last one
        // exactly when the count is 1 (it is still alive here).
        if channels
            .get(&self.order_id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            channels.remove(&self.order_id);
        }
    }
}

/// Publishes here the entries other replicas commit (Postgres notifications), for the orders
/// someone here listens to, until `shutdown`; returns at once on SQLite (one process).
///
/// A notification names an entry; the entry itself is read from the database, so what is
/// published is what was committed. After the listener (re)connects, when notifications may
/// have been missed, the latest entry of every watched order is published: a subscriber that
/// sees a gap reloads.
pub(crate) async fn follow_other_replicas(
    db: Db,
    updates: StatusFeed,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let Some(mut notices) = notify::listen(&db, crate::store::HISTORY_CHANNEL) else {
        return;
    };
    loop {
        let notice = tokio::select! {
            () = shutdown.cancelled() => return,
            notice = notices.recv() => notice,
        };
        let wanted: Vec<(OrderId, i64)> = match notice {
            None => return,
            Some(Notice::Changed(payload)) => payload
                .split_once(':')
                .and_then(|(id, seq)| Some((id.parse().ok()?, seq.parse().ok()?)))
                .filter(|(order_id, _)| updates.is_watched(*order_id))
                .into_iter()
                .collect(),
            Some(Notice::MayHaveMissed) => updates
                .watched()
                .into_iter()
                .map(|order_id| (order_id, 0))
                .collect(),
        };
        for (order_id, seq) in wanted {
            let after = (seq - 1).max(0);
            match db
                .read(move |conn| store::history_after(conn, order_id, after))
                .await
            {
                Ok(entries) => {
                    updates.publish(entries.into_iter().last());
                }
                Err(error) => {
                    tracing::warn!(%error, %order_id, "Could not read another replica's change.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::OrderStatus;

    fn entry(order_id: OrderId, seq: i64) -> HistoryEntry {
        HistoryEntry {
            order_id,
            seq,
            status: OrderStatus::PaymentProcessing,
            reason: None,
            cause: "test".to_owned(),
            event_id: None,
            at: platform::time::now(),
        }
    }

    #[tokio::test]
    async fn subscribers_hear_only_their_order_and_channels_go_with_the_last() {
        let hub = StatusFeed::new();
        let (mine, other) = (OrderId::new(), OrderId::new());
        let mut first = hub.subscribe(mine);
        let second = hub.subscribe(mine);
        assert_eq!(
            hub.publish([entry(other, 2)]),
            0,
            "nobody listens to the other order"
        );
        assert_eq!(hub.publish([entry(mine, 2)]), 2);
        assert_eq!(first.recv().await.map(|e| e.seq), Ok(2));
        drop(second);
        assert_eq!(hub.orders_watched(), 1);
        drop(first);
        assert_eq!(
            hub.orders_watched(),
            0,
            "the last subscriber took the channel along"
        );
    }
}
