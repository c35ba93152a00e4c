//! Sync when it is fast enough: `Prefer: wait=N` on `POST /api/orders` (RFC 7240) and
//! `?wait=N` on `GET /api/orders/{id}` hold the answer until the saga ends, for at most N
//! seconds (capped).
//!
//! Waiting is a subscription to the in-process status updates: no thread and no database
//! connection is held while the request waits.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use events::OrderId;
use platform::Db;

use crate::status_feed::Subscription;
use crate::store;

/// The longest any request may wait.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(10);

/// The `wait=N` preference of a `Prefer` header, capped at [`MAX_WAIT`].
pub(crate) fn preferred_wait(prefer: Option<&str>) -> Option<Duration> {
    prefer?
        .split([',', ';'])
        .filter_map(|token| token.trim().split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("wait"))
        .and_then(|(_, value)| value.trim().trim_matches('"').parse::<u64>().ok())
        .map(|seconds| Duration::from_secs(seconds).min(MAX_WAIT))
}

/// Waits until `order_id` is terminal or `limit` passes; `true` if it is terminal.
///
/// `updates` must be subscribed before the caller last looked at the order, so that no change
/// falls between the look and the wait.
pub(crate) async fn until_terminal(
    updates: Subscription,
    db: &Db,
    order_id: OrderId,
    limit: Duration,
) -> bool {
    if is_terminal(db, order_id).await {
        return true;
    }
    until_ended(updates, db, order_id, limit).await
}

/// Waits until `order_id` is terminal or `limit` passes, for an order known not to be
/// terminal when `updates` was subscribed; `true` if it is terminal.
pub(crate) async fn until_ended(
    mut updates: Subscription,
    db: &Db,
    order_id: OrderId,
    limit: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let received = tokio::select! {
            () = tokio::time::sleep_until(deadline) => return false,
            received = updates.recv() => received,
        };
        match received {
            Ok(entry) if entry.order_id == order_id && entry.status.is_terminal() => return true,
            Ok(_) => {}
            // Missed some updates: the database knows.
            Err(RecvError::Lagged(_)) => {
                if is_terminal(db, order_id).await {
                    return true;
                }
            }
            Err(RecvError::Closed) => return false,
        }
    }
}

async fn is_terminal(db: &Db, order_id: OrderId) -> bool {
    db.read(move |conn| store::history_after(conn, order_id, 0))
        .await
        .ok()
        .and_then(|history| history.last().map(|entry| entry.status.is_terminal()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wait_preference() {
        assert_eq!(preferred_wait(Some("wait=5")), Some(Duration::from_secs(5)));
        assert_eq!(
            preferred_wait(Some("respond-async, wait=2")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            preferred_wait(Some("return=minimal; WAIT=3")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(preferred_wait(Some("wait=600")), Some(MAX_WAIT));
        assert_eq!(preferred_wait(Some("respond-async")), None);
        assert_eq!(preferred_wait(Some("wait=soon")), None);
        assert_eq!(preferred_wait(None), None);
    }
}
