//! `GET /console/api/live`: the console's counts as Server-Sent Events, so that an open page
//! follows the shop without reloading.
//!
//! The stream sends a `summary` event (the JSON of `GET /console/api/summary`) at once and then
//! whenever it changes. It looks again when this replica commits a status change or a dead
//! letter arrives — at most once per [`MIN_GAP`], so a burst of orders costs one count, not one
//! per order — and at least every [`MAX_GAP`], which also catches other replicas' changes and
//! sagas becoming stuck by age alone. The page reloads its list when the counts move.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use super::sagas::{Summary, read_summary};
use crate::api::{ApiError, AppState};

/// The shortest time between two looks.
const MIN_GAP: Duration = Duration::from_millis(500);
/// The longest time between two looks.
const MAX_GAP: Duration = Duration::from_secs(2);

/// `GET /console/api/live`.
pub(crate) async fn stream(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // A console holds an SSE slot like a customer's stream: the server's limit counts it.
    let permit = std::sync::Arc::clone(&state.sse_streams)
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams)?;
    let first = read_summary(&state).await?;
    let keep_alive = state.sse_keep_alive;
    let stream = futures::stream::unfold(
        (state, Some(first), None::<Summary>, permit),
        |(state, pending, mut last, permit)| async move {
            let mut pending = pending;
            loop {
                if let Some(summary) = pending.take()
                    && last.as_ref() != Some(&summary)
                {
                    let event = Event::default()
                        .event("summary")
                        .json_data(&summary)
                        .unwrap_or_else(|_| Event::default().comment("unencodable summary"));
                    last = Some(summary);
                    return Some((Ok(event), (state, None, last, permit)));
                }
                if !wait_for_change(&state).await {
                    return None;
                }
                match read_summary(&state).await {
                    Ok(summary) => pending = Some(summary),
                    Err(error) => {
                        tracing::warn!(%error, "The console's live counts could not be read.");
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(keep_alive)))
}

/// Waits until there may be something new (see the module documentation); `false` once the
/// service stops.
async fn wait_for_change(state: &AppState) -> bool {
    let mut orders = state.updates.changes();
    let mut letters = super::dead_letters::changes(state);
    let started = tokio::time::Instant::now();
    tokio::select! {
        () = state.shutdown.cancelled() => return false,
        _ = orders.changed() => {}
        () = async {
            match letters.as_mut() {
                Some(letters) => { let _ = letters.changed().await; }
                None => std::future::pending().await,
            }
        } => {}
        () = tokio::time::sleep(MAX_GAP) => {}
    }
    let spent = started.elapsed();
    if spent < MIN_GAP {
        tokio::select! {
            () = state.shutdown.cancelled() => return false,
            () = tokio::time::sleep(MIN_GAP - spent) => {}
        }
    }
    true
}
