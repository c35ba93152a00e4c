//! `POST /webhooks/payments`: the provider's signed notifications.
//!
//! The order of checks matters, because anyone on the internet can call this endpoint:
//! - the headers first, before a byte of the body is read: a missing or oversized header, too
//!   many signatures or a stale timestamp is answered `401` at once, so a forged request costs
//!   neither the upload of its body nor any hashing;
//! - then the body, read up to `MAX_BODY_BYTES` (`413` beyond, found while reading), and its
//!   signature, with one HMAC however many signatures the message lists (`401` if none
//!   matches) — an unsigned body is never parsed;
//! - a signed message is applied at most once by its `webhook-id` (the provider retries until it
//!   gets a `2xx`, so a repeat is answered `204` like the first).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform::http::Problem;
use platform::webhook::{Secret, SignedHeaders, VerifyError};

use crate::provider::{Requests, notification_of};

/// Webhooks refused {reason = signature | body | unavailable}.
pub const WEBHOOKS_REFUSED: &str = "payment_webhooks_refused_total";
/// Webhooks accepted (applied or recognised as repeats).
pub const WEBHOOKS_ACCEPTED: &str = "payment_webhooks_accepted_total";

/// Provider notifications are small; the limit holds while the body is read, whatever
/// `Content-Length` says (the route's `DefaultBodyLimit`).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// A webhook that cannot be recorded in this time is answered `408`; the provider retries.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What the endpoint needs.
#[derive(Debug)]
pub(crate) struct WebhookState {
    /// The secret shared with the provider.
    pub(crate) secret: Secret,
    /// Accepted distance between a message's timestamp and now, in seconds.
    pub(crate) tolerance_s: i64,
    /// Where outcomes are applied.
    pub(crate) requests: Requests,
}

/// `POST /webhooks/payments`, behind the limits the router sets: [`MAX_BODY_BYTES`] and
/// [`REQUEST_TIMEOUT`].
pub(crate) async fn receive(State(state): State<Arc<WebhookState>>, request: Request) -> Response {
    let now = chrono::Utc::now().timestamp();
    let signed = match SignedHeaders::check(request.headers(), now, state.tolerance_s) {
        Ok(signed) => signed,
        Err(error) => return refused(&error),
    };
    // Reads at most `MAX_BODY_BYTES` (the route's `DefaultBodyLimit`), then stops.
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => return unreadable(&rejection),
    };
    if let Err(error) = state.secret.verify_body(&signed, &body) {
        return refused(&error);
    }
    let webhook_id = signed.id();
    let notification = match notification_of(webhook_id, &body) {
        Ok(notification) => notification,
        Err(error) => {
            metrics::counter!(WEBHOOKS_REFUSED, "reason" => "body").increment(1);
            tracing::warn!(%error, webhook_id, "Refused a signed provider webhook.");
            return Problem::bad_request(error.to_string()).into_response();
        }
    };
    let order_id = notification.order_id;
    match state.requests.apply(notification).await {
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

/// `401`: the message is not shown to come from the provider.
fn refused(error: &VerifyError) -> Response {
    metrics::counter!(WEBHOOKS_REFUSED, "reason" => "signature").increment(1);
    tracing::warn!(%error, "Refused a provider webhook.");
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid-webhook-signature",
        "Invalid webhook signature",
        error.to_string(),
    )
    .into_response()
}

/// `413` for a body over the limit, `400` for one that could not be read.
fn unreadable(rejection: &BytesRejection) -> Response {
    metrics::counter!(WEBHOOKS_REFUSED, "reason" => "body").increment(1);
    let status = rejection.status();
    tracing::warn!(%status, error = %rejection.body_text(), "Refused a provider webhook's body.");
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            status,
            "body-too-large",
            "Request body too large",
            format!("A provider notification holds at most {MAX_BODY_BYTES} bytes."),
        )
        .into_response()
    } else {
        Problem::bad_request(format!(
            "The body could not be read: {}",
            rejection.body_text()
        ))
        .into_response()
    }
}

#[cfg(test)]
mod tests;
