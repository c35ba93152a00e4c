//! `POST /admin/deliveries/{delivery_id}/retry`: sends a callback that failed for good (and was
//! dead-lettered) again, with a fresh budget of attempts, the same `webhook-id` and the same
//! signing secret, so a receiver that got it after all drops the repeat.
//!
//! Idempotent: a delivery that is pending or delivered already is left as it is, and the answer
//! says so (`requeued: false`).

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::api::{ApiError, AppState};
use crate::webhooks::{self, Retried};

/// The answer: the delivery's status now, and whether this request changed it.
#[derive(Debug, Serialize)]
pub(crate) struct RetryAnswer {
    id: String,
    /// `pending` (to be sent again, or still being tried) or `delivered`.
    status: &'static str,
    /// `true` if this request moved the delivery from `failed` back to `pending`.
    pub(crate) requeued: bool,
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    Path(delivery_id): Path<String>,
) -> Result<Json<RetryAnswer>, ApiError> {
    Ok(Json(retry(&state, delivery_id).await?))
}

/// Sends the delivery `delivery_id` again if it failed for good (also the console's re-send).
pub(crate) async fn retry(state: &AppState, delivery_id: String) -> Result<RetryAnswer, ApiError> {
    let id = delivery_id.clone();
    let retried = state
        .db
        .transaction(move |tx| webhooks::retry(tx, &id))
        .await?;
    let status = retried.status().ok_or(ApiError::DeliveryNotFound)?;
    let requeued = retried == Retried::Requeued;
    if requeued {
        tracing::info!(delivery = %delivery_id, "Failed webhook requeued by an operator.");
    }
    Ok(RetryAnswer {
        id: delivery_id,
        status,
        requeued,
    })
}
