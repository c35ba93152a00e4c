//! `GET /api/orders/{id}/events`: Server-Sent Events, one `status_update` per transition.
//!
//! The stream first replays what already happened, then follows live changes, and ends after
//! the terminal status. Each event's SSE `id` is the transition's per-order sequence number, so
//! a client that reconnects with `Last-Event-ID` resumes right after what it saw, without gaps
//! or repeats.
//! Live changes arrive through [`crate::status_feed`]; the subscription is taken *before* reading
//! the history, and entries are emitted strictly by sequence number, so nothing committed
//! between the two is missed or sent twice.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use events::OrderId;
use platform::Db;

use super::get_order::{TransitionView, parse_order_id};
use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::rate_limit::Held;
use crate::status_feed::Subscription;
use crate::store::{self, HistoryEntry};

/// The `data` of a `status_update` event.
#[derive(Debug, Serialize)]
struct StatusUpdate {
    order_id: OrderId,
    #[serde(flatten)]
    transition: TransitionView,
}

/// How long a client should wait before reconnecting (the SSE `retry:` field).
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

pub(crate) async fn handle(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    // A reconnecting client says what it saw last; it gets only what came after.
    let resume_after = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let live = state.updates.subscribe(order_id);
    let history = super::read_owned(&state, &principal, order_id, move |conn| {
        store::history_after(conn, order_id, 0)
    })
    .await?;
    let Some(latest) = history.last() else {
        return Err(ApiError::OrderNotFound);
    };
    let resume_after = resume_after.min(latest.seq);
    let finished = latest.status.is_terminal() && resume_after == latest.seq;
    let backlog: Vec<HistoryEntry> = history
        .into_iter()
        .filter(|entry| entry.seq > resume_after)
        .collect();
    // Bounded per client, then in all: past a limit a client is told to come back later
    // instead of piling up open streams (one client cannot take every slot).
    let held = state
        .held
        .try_hold(&principal.0)
        .ok_or(ApiError::TooManyHeld)?;
    let Ok(permit) = Arc::clone(&state.sse_streams).try_acquire_owned() else {
        return Err(ApiError::TooManyStreams);
    };
    let follow = Follow {
        order_id,
        live,
        db: state.db.clone(),
        stopping: state.shutdown.clone(),
        max_idle: state.sse_max_idle,
        last_seq: resume_after,
        pending: backlog.into(),
        finished,
        _held: held,
        _permit: permit,
    };
    // The stream itself follows the order, so that what is already there is ready at the first
    // poll: its events leave with the response's head, in one write. When the client goes, the
    // stream is dropped, and its subscription and permits with it.
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        let event = follow.next_event().await?;
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.sse_keep_alive)))
}

/// One client's following of one order: what it has sent, what is waiting, and where changes
/// come from.
struct Follow {
    order_id: OrderId,
    live: Subscription,
    db: Db,
    stopping: CancellationToken,
    /// After this long without a change the stream ends; the client resumes with
    /// `Last-Event-ID`.
    max_idle: Duration,
    /// The sequence number of the last transition sent.
    last_seq: i64,
    /// Transitions read or received, not yet sent.
    pending: VecDeque<HistoryEntry>,
    /// The terminal transition was sent: the stream ends.
    finished: bool,
    _held: Held,
    _permit: OwnedSemaphorePermit,
}

impl Follow {
    /// The next transition's event, strictly by sequence number; `None` once the terminal one
    /// was sent, or when the stream should end.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if self.finished {
                return None;
            }
            while let Some(entry) = self.pending.pop_front() {
                if entry.seq != self.last_seq + 1 {
                    continue;
                }
                self.last_seq = entry.seq;
                self.finished = entry.status.is_terminal();
                return Some(to_event(&entry));
            }
            // Wait for the next change of this order; on lag or a gap, reload from the database.
            if self.wait_for_change().await? {
                let (order_id, after) = (self.order_id, self.last_seq);
                match self
                    .db
                    .read(move |conn| store::history_after(conn, order_id, after))
                    .await
                {
                    Ok(entries) => self.pending = entries.into(),
                    Err(error) => {
                        tracing::warn!(%error, %order_id, "Could not reload history for an SSE stream.");
                        return None;
                    }
                }
            }
        }
    }

    /// Waits until the next transition is pending (`Some(false)`) or must be reloaded
    /// (`Some(true)`); `None` when the stream should end instead.
    async fn wait_for_change(&mut self) -> Option<bool> {
        let idle_until = tokio::time::Instant::now() + self.max_idle;
        loop {
            let received = tokio::select! {
                // Nothing happened for a long time: end; the client resumes with Last-Event-ID.
                () = tokio::time::sleep_until(idle_until) => return None,
                // The service is stopping: end the stream; clients reconnect elsewhere.
                () = self.stopping.cancelled() => return None,
                received = self.live.recv() => received,
            };
            match received {
                Ok(entry) if entry.order_id != self.order_id || entry.seq <= self.last_seq => {}
                Ok(entry) if entry.seq == self.last_seq + 1 => {
                    self.pending.push_back(entry);
                    return Some(false);
                }
                Ok(_) | Err(RecvError::Lagged(_)) => return Some(true),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn to_event(entry: &HistoryEntry) -> Event {
    let update = StatusUpdate {
        order_id: entry.order_id,
        transition: TransitionView::from(entry),
    };
    Event::default()
        .event("status_update")
        .id(entry.seq.to_string())
        .retry(RECONNECT_AFTER)
        .json_data(&update)
        .unwrap_or_else(|_| Event::default().comment("unserialisable update"))
}
