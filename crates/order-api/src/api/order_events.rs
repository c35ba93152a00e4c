//! `GET /api/orders/{id}/events`: Server-Sent Events, one `status_update` per transition.
//!
//! The stream first replays what already happened, then follows live changes, and ends after
//! the terminal status. Each event's SSE `id` is the transition's per-order sequence number, so
//! a client that reconnects with `Last-Event-ID` resumes right after what it saw, without gaps
//! or repeats.
//! Live changes arrive through [`crate::status_feed`]; the subscription is taken *before* reading
//! the history, and entries are emitted strictly by sequence number, so nothing committed
//! between the two is missed or sent twice.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use events::OrderId;

use super::get_order::{TransitionView, parse_order_id};
use super::{ApiError, AppState};
use crate::auth::Principal;
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
    let mut live = state.updates.subscribe(order_id);
    let db = state.db.clone();
    let stopping = state.shutdown.clone();
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
    // instead of piling up tasks (one client cannot take every slot).
    let held = state
        .held
        .try_hold(&principal.0)
        .ok_or(ApiError::TooManyHeld)?;
    let Ok(permit) = Arc::clone(&state.sse_streams).try_acquire_owned() else {
        return Err(ApiError::TooManyStreams);
    };
    let max_idle = state.sse_max_idle;
    let stream = async_stream(move |emit| async move {
        let _permit = permit;
        let _held = held;
        if finished {
            return;
        }
        let mut last_seq = resume_after;
        let mut pending = backlog;
        loop {
            for entry in pending.drain(..) {
                if entry.seq != last_seq + 1 {
                    continue;
                }
                last_seq = entry.seq;
                let terminal = entry.status.is_terminal();
                if emit.send(to_event(&entry)).await.is_err() || terminal {
                    return;
                }
            }
            // Wait for the next change of this order; on lag or a gap, reload from the database.
            let idle_until = tokio::time::Instant::now() + max_idle;
            let reload = loop {
                let received = tokio::select! {
                    () = emit.closed() => return,
                    // Nothing happened for a long time: end; the client resumes with Last-Event-ID.
                    () = tokio::time::sleep_until(idle_until) => return,
                    // The service is stopping: end the stream; clients reconnect elsewhere.
                    () = stopping.cancelled() => return,
                    received = live.recv() => received,
                };
                match received {
                    Ok(entry) if entry.order_id != order_id || entry.seq <= last_seq => {}
                    Ok(entry) if entry.seq == last_seq + 1 => {
                        pending.push(entry);
                        break false;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => break true,
                    Err(RecvError::Closed) => return,
                }
            };
            if reload {
                let after = last_seq;
                match db
                    .read(move |conn| store::history_after(conn, order_id, after))
                    .await
                {
                    Ok(entries) => pending = entries,
                    Err(error) => {
                        tracing::warn!(%error, %order_id, "Could not reload history for an SSE stream.");
                        return;
                    }
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.sse_keep_alive)))
}

fn to_event(entry: &HistoryEntry) -> Result<Event, Infallible> {
    let update = StatusUpdate {
        order_id: entry.order_id,
        transition: TransitionView::from(entry),
    };
    Ok(Event::default()
        .event("status_update")
        .id(entry.seq.to_string())
        .retry(RECONNECT_AFTER)
        .json_data(&update)
        .unwrap_or_else(|_| Event::default().comment("unserialisable update")))
}

/// A stream fed by a task through a small channel: the task ends (and the stream with it) when
/// the client disconnects, because `send` then fails.
fn async_stream<F, Fut>(producer: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(producer(sender));
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}
