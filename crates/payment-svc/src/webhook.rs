//! `POST /webhooks/payments`: the provider's signed notifications.
//!
//! The order of checks matters: the signature and timestamp are verified on the raw body before
//! anything is parsed (an unsigned body is never interpreted), a forged or stale message gets
//! `401` and changes nothing; a signed message is applied at most once by its `webhook-id`
//! (the provider retries until it gets a `2xx`, so a repeat is answered `204` like the first).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use platform::http::Problem;
use platform::webhook::{self, Secret};
use tower_http::timeout::TimeoutLayer;

use crate::handlers::Payments;
use crate::provider::notification_of;
use crate::recovery;

/// Webhooks refused {reason = signature | body | unavailable}.
pub const WEBHOOKS_REFUSED: &str = "payment_webhooks_refused_total";
/// Webhooks accepted (applied or recognised as repeats).
pub const WEBHOOKS_ACCEPTED: &str = "payment_webhooks_accepted_total";

/// Provider notifications are small.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// A webhook that cannot be recorded in this time is answered `408`; the provider retries.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What the endpoint needs.
#[derive(Debug)]
pub(crate) struct WebhookState {
    /// The secret shared with the provider.
    pub(crate) secret: Secret,
    /// Accepted distance between a message's timestamp and now, in seconds.
    pub(crate) tolerance_s: i64,
    /// Where outcomes are applied.
    pub(crate) payments: Payments,
}

/// The route.
pub(crate) fn routes(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/webhooks/payments", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

async fn receive(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = chrono::Utc::now().timestamp();
    if let Err(error) = state.secret.verify(&headers, &body, now, state.tolerance_s) {
        metrics::counter!(WEBHOOKS_REFUSED, "reason" => "signature").increment(1);
        tracing::warn!(%error, "Refused a provider webhook.");
        return Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-webhook-signature",
            "Invalid webhook signature",
            error.to_string(),
        )
        .into_response();
    }
    // Verified, so the header is present.
    let webhook_id =
        platform::webhook::HeaderSource::get(&headers, webhook::ID).unwrap_or_default();
    let notification = match notification_of(webhook_id, &body) {
        Ok(notification) => notification,
        Err(error) => {
            metrics::counter!(WEBHOOKS_REFUSED, "reason" => "body").increment(1);
            tracing::warn!(%error, webhook_id, "Refused a signed provider webhook.");
            return Problem::bad_request(error.to_string()).into_response();
        }
    };
    let order_id = notification.order_id;
    match recovery::apply(&state.payments, notification).await {
        Ok(()) => {
            metrics::counter!(WEBHOOKS_ACCEPTED).increment(1);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => {
            // The provider retries; nothing was recorded.
            metrics::counter!(WEBHOOKS_REFUSED, "reason" => "unavailable").increment(1);
            tracing::warn!(%error, %order_id, "Could not apply a provider webhook.");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
                "The notification could not be recorded; deliver it again.",
            )
            .into_response()
        }
    }
}
