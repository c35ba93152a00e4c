//! The HTTP API: one module per route.

mod create_order;
mod get_order;
mod order_events;
mod timeline;
mod timeline_page;
mod wait;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use platform::Db;
use platform::catalog::Catalog;
use platform::http::{Problem, Readiness, health_routes, observe};

use crate::updates::StatusUpdates;

/// Largest accepted request body. An order of 100 lines is ~6 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler may use.
#[derive(Clone, Debug)]
pub struct AppState {
    /// order-api's database.
    pub db: Db,
    /// Prices.
    pub catalog: Arc<Catalog>,
    /// Status changes, for SSE.
    pub updates: StatusUpdates,
    /// How often an idle SSE stream sends a keep-alive comment.
    pub sse_keep_alive: Duration,
    /// Cancelled when the service stops: open SSE streams end so that shutdown is not held up.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: chrono::TimeDelta,
    /// Outbox rows beyond which new orders are refused with `503` (back-pressure).
    pub outbox_backlog_limit: i64,
    /// How long a saga may take before the deadline reaper cancels it.
    pub saga_timeout: chrono::TimeDelta,
    /// Base URL of the trace viewer the timeline page links traces to, if any.
    pub jaeger_ui_url: Option<String>,
}

/// The whole HTTP application; testable without a socket.
pub fn router(state: AppState, readiness: Readiness) -> Router {
    let api = Router::new()
        .route("/api/orders", post(create_order::handle))
        .route("/api/orders/{order_id}", get(get_order::handle))
        .route("/api/orders/{order_id}/events", get(order_events::handle))
        .merge(timeline::routes())
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async { Problem::not_found("No such route.") });
    observe(
        api.merge(health_routes(readiness))
            // SSE streams are long-lived by design; the timeout bounds how long a request waits
            // for its answer to start, which is what protects the server.
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(10),
            )),
    )
}

/// What can go wrong in a handler, mapped to problems in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is well-formed JSON but asks for something invalid.
    #[error("{0}")]
    Invalid(String),
    /// The path names an order that does not exist.
    #[error("order not found")]
    OrderNotFound,
    /// The path's order id is not an order id.
    #[error("{0}")]
    BadOrderId(String),
    /// The `Idempotency-Key` header is malformed.
    #[error("{0}")]
    BadIdempotencyKey(String),
    /// The `Idempotency-Key` was used before with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyConflict,
    /// Too much accepted work is not yet published; the client should come back shortly.
    #[error("overloaded")]
    Overloaded,
    /// Our fault.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for ApiError {
    fn from(error: rusqlite::Error) -> Self {
        ApiError::Unexpected(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            ApiError::Invalid(detail) => Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-order",
                "Invalid order",
                detail.clone(),
            ),
            ApiError::OrderNotFound => Problem::not_found("No order has this id."),
            ApiError::BadOrderId(detail) => Problem::not_found(detail.clone()),
            ApiError::BadIdempotencyKey(detail) => Problem::bad_request(detail.clone()),
            ApiError::IdempotencyConflict => Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                "This Idempotency-Key was already used with a different request body; use a new key for a new order.",
            ),
            ApiError::Overloaded => {
                let problem = Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "Overloaded",
                    "Too many accepted orders are waiting to be published; retry shortly.",
                );
                return ([(axum::http::header::RETRY_AFTER, "1")], problem).into_response();
            }
            ApiError::Unexpected(error) => {
                tracing::error!(error = format!("{error:#}"), "Request failed.");
                Problem::internal()
            }
        };
        problem.into_response()
    }
}
