//! The HTTP API: one module per route, and [`router`], the table of every route the service
//! answers.

pub(crate) mod admin;
mod create_order;
mod deliveries;
pub(crate) mod get_order;
pub(crate) mod list_orders;
mod order_events;
pub(crate) mod timeline;
pub(crate) mod timeline_page;
mod wait;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use events::Catalog;
use platform::Db;
use platform::http::{Problem, Readiness, health_routes, observe, problem_answers};
use platform::sql::{ErrorKind, SqlError};

use crate::auth::{self, ApiKeys, Principal};
use crate::status_feed::StatusFeed;

/// Largest accepted request body. An order of 100 lines is ~6 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler may use: [`Shared`] behind one reference count, as every request
/// clones it (axum's `State`), some of them several times (middleware).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state holding `shared`.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Shared {
    /// order-api's database.
    pub db: Db,
    /// Prices.
    pub catalog: Arc<Catalog>,
    /// Status changes, for SSE.
    pub updates: StatusFeed,
    /// How often an idle SSE stream sends a keep-alive comment.
    pub sse_keep_alive: Duration,
    /// Open SSE streams allowed at once (permits).
    pub sse_streams: Arc<tokio::sync::Semaphore>,
    /// How long a stream may wait without any change before it ends (clients resume).
    pub sse_max_idle: Duration,
    /// Cancelled when the service stops: open SSE streams end so that shutdown is not held up.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: chrono::TimeDelta,
    /// Outbox rows beyond which new orders are refused with `503` (back-pressure).
    pub outbox_backlog_limit: i64,
    /// How long a saga may take before the deadline reaper cancels it.
    pub saga_timeout: chrono::TimeDelta,
    /// Webhook signing secrets and delivery policy.
    pub webhooks: crate::webhooks::deliverer::DelivererConfig,
    /// Orders per second per principal.
    pub rate_limiter: Arc<crate::rate_limit::RateLimiter>,
    /// Reads per second per principal (ten times the orders' budget).
    pub read_limiter: Arc<crate::rate_limit::RateLimiter>,
    /// Event streams and waiting requests each principal holds open.
    pub held: Arc<crate::rate_limit::HeldPerPrincipal>,
    /// The trace viewer's URL for one trace (`{trace_id}` to fill in), if there is one: the
    /// timeline page links the order's trace there.
    pub trace_url: Option<String>,
    /// The operator's token (`ADMIN_TOKEN`), if set: without it the operator endpoints are off.
    pub admin_token: Option<platform::config::Sensitive>,
    /// The operator console (`/console`).
    pub console: crate::console::Console,
}

/// The whole HTTP application; testable without a socket.
///
/// Every route is listed here, so that this table is the map of the API: the order routes
/// behind authentication and the read budget, the operator routes behind the operator's token
/// (never an API key), then the platform's `/healthz`, `/readyz` and `/metrics` (see
/// [`health_routes`]), which answer before any authentication.
pub fn router(state: AppState, keys: Arc<ApiKeys>, readiness: Readiness) -> Router {
    let state_for_console = state.clone();
    let api = Router::new()
        .route(
            "/api/orders",
            post(create_order::handle).get(list_orders::handle),
        )
        .route("/api/orders/{order_id}", get(get_order::handle))
        .route("/api/orders/{order_id}/events", get(order_events::handle))
        .route("/api/orders/{order_id}/timeline", get(timeline::handle))
        .route("/api/orders/{order_id}/deliveries", get(deliveries::handle))
        // The page for people that draws the timeline.
        .route("/orders/{order_id}", get(timeline_page::handle))
        // Inside the authentication layer: it runs once the principal is known.
        .layer(middleware::from_fn_with_state(state.clone(), limit_reads))
        .layer(middleware::from_fn_with_state(
            keys,
            auth::require_principal,
        ))
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let operator = Router::new()
        .route(
            "/admin/deliveries/{delivery_id}/retry",
            post(admin::retry_delivery::handle),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            admin::require_operator,
        ))
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let gauges = TimeGauges {
        db: readiness.db.clone(),
        last: Arc::default(),
    };
    let health =
        health_routes(readiness).layer(middleware::from_fn_with_state(gauges, time_gauges));
    platform::metrics::describe(crate::metrics::DESCRIPTIONS);
    let routes = api
        .merge(operator)
        .merge(crate::console::router(state_for_console))
        .merge(health)
        // SSE streams are long-lived by design; the timeout bounds how long a request waits
        // for its answer to start, which is what protects the server.
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            // Above the longest `Prefer: wait`, so a waiting request answers itself.
            Duration::from_secs(15),
        ));
    // Unknown routes, other methods, extractor rejections and the timeout: problems too.
    observe(crate::Config::SERVICE, problem_answers(routes))
}

/// How long a saga may stay open before `sagas_open_longer_than_10s` counts it.
const LONG_OPEN: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// Limits a principal's reads (`GET`) like its orders, with a budget ten times larger: reads are
/// cheap, but not free, and one client polling in a tight loop must not take the database from
/// the others. Over it, `429` with `Retry-After`.
async fn limit_reads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() == axum::http::Method::GET
        && let Some(principal) = request.extensions().get::<crate::auth::Principal>()
        && let Err(retry_after) = state
            .read_limiter
            .check(&principal.0, std::time::Instant::now())
    {
        return ApiError::RateLimited(retry_after).into_response();
    }
    next.run(request).await
}

/// What [`time_gauges`] reads, and when it last did.
#[derive(Clone, Debug)]
struct TimeGauges {
    db: Db,
    last: Arc<tokio::sync::Mutex<Option<std::time::Instant>>>,
}

/// Sets the gauges that compare with the current time just before `/metrics` renders, at most
/// every [`platform::http::GAUGES_MAX_AGE`] (scrapes come before any authentication).
///
/// The platform's scrape gauges are fixed SQL without parameters, and the time would have to be
/// the database's own (`strftime`, `now()`), which SQLite and Postgres spell and format
/// differently; here the cut-off is computed in Rust and bound.
async fn time_gauges(State(gauges): State<TimeGauges>, request: Request, next: Next) -> Response {
    // Only a scrape takes the lock: `/healthz` and `/readyz` never wait behind a count.
    if request.uri().path() == "/metrics" {
        let mut last = gauges.last.lock().await;
        if last.is_none_or(|at| at.elapsed() >= platform::http::GAUGES_MAX_AGE) {
            *last = Some(std::time::Instant::now());
            let before = platform::time::now() - LONG_OPEN;
            match gauges
                .db
                .read(move |conn| crate::store::count_open_accepted_before(conn, before))
                .await
            {
                #[allow(clippy::cast_precision_loss)]
                Ok(count) => {
                    metrics::gauge!(crate::metrics::SAGAS_OPEN_LONGER_THAN_10S).set(count as f64)
                }
                Err(error) => {
                    tracing::warn!(%error, "Could not count long-open sagas for /metrics.");
                }
            }
        }
    }
    next.run(request).await
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
    /// The path names a callback delivery that does not exist (operator endpoints).
    #[error("delivery not found")]
    DeliveryNotFound,
    /// The path's order id is not an order id.
    #[error("{0}")]
    BadOrderId(String),
    /// A query parameter is malformed (`GET /api/orders`' `status`, `limit` or `cursor`).
    #[error("{0}")]
    BadQuery(String),
    /// The `Idempotency-Key` header is malformed.
    #[error("{0}")]
    BadIdempotencyKey(String),
    /// The `Idempotency-Key` was used before with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyConflict,
    /// The principal placed orders faster than its rate limit; retry after the duration.
    #[error("rate limited")]
    RateLimited(Duration),
    /// Every SSE stream slot is taken.
    #[error("too many open streams")]
    TooManyStreams,
    /// This principal holds as many streams and waiting requests as it may.
    #[error("too many open streams for this client")]
    TooManyHeld,
    /// Too much accepted work is not yet published; the client should come back shortly.
    #[error("overloaded")]
    Overloaded,
    /// The database failed in a way that may pass (a lost connection, a server restarting, a
    /// lock or serialization conflict, a full disk): the client should come back shortly.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(SqlError),
    /// Our fault.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A transient database failure is the server's condition, not a bug: `503` with
/// `Retry-After`, as for any other load the server cannot take now, so that clients retry it.
/// Anything else stays a `500`.
impl From<SqlError> for ApiError {
    fn from(error: SqlError) -> Self {
        if matches!(error.kind(), ErrorKind::Transient | ErrorKind::Unavailable) {
            ApiError::DatabaseUnavailable(error)
        } else {
            ApiError::Unexpected(error.into())
        }
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
            ApiError::DeliveryNotFound => Problem::not_found("No callback delivery has this id."),
            ApiError::BadOrderId(detail) => Problem::not_found(detail.clone()),
            ApiError::BadQuery(detail) | ApiError::BadIdempotencyKey(detail) => {
                Problem::bad_request(detail.clone())
            }
            ApiError::IdempotencyConflict => Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                "This Idempotency-Key was already used with a different request body; use a new key for a new order.",
            ),
            ApiError::RateLimited(retry_after) => {
                let seconds = retry_after.as_secs_f64().ceil().max(1.0).to_string();
                let problem = Problem::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                    format!("Too many orders from this client; retry after {seconds} s."),
                );
                return ([(axum::http::header::RETRY_AFTER, seconds)], problem).into_response();
            }
            ApiError::TooManyHeld => {
                let problem = Problem::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "too-many-streams-for-client",
                    "Too many open streams",
                    "This client follows as many orders at once as it may; close a stream or retry shortly.",
                );
                return ([(axum::http::header::RETRY_AFTER, "2")], problem).into_response();
            }
            ApiError::TooManyStreams => {
                let problem = Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "too-many-streams",
                    "Too many open streams",
                    "The server follows as many orders as it allows at once; poll the order or retry shortly.",
                );
                return ([(axum::http::header::RETRY_AFTER, "2")], problem).into_response();
            }
            ApiError::Overloaded => {
                let problem = Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "Overloaded",
                    "Too many accepted orders are waiting to be published; retry shortly.",
                );
                return ([(axum::http::header::RETRY_AFTER, "1")], problem).into_response();
            }
            ApiError::DatabaseUnavailable(error) => {
                tracing::warn!(%error, "Request refused: the database is unavailable.");
                // A write whose connection died at `COMMIT` may have been committed: only a
                // retry under the same `Idempotency-Key` is sure to make no second order.
                let problem = Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "database-unavailable",
                    "Database unavailable",
                    "The order store is unavailable for a moment; retry shortly, with the same Idempotency-Key.",
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

/// Answers `404` unless `principal` placed `order_id`: someone else's order looks exactly like
/// one that does not exist.
pub(crate) async fn authorize(
    state: &AppState,
    principal: &Principal,
    order_id: events::OrderId,
) -> Result<(), ApiError> {
    read_owned(state, principal, order_id, |_| Ok(())).await
}

/// Runs `read` if `principal` placed `order_id`, the ownership checked in the same trip to the
/// reader thread (a request reading one order pays one hand-off, not two); `404` otherwise, as
/// for [`authorize`].
pub(crate) async fn read_owned<T, F>(
    state: &AppState,
    principal: &Principal,
    order_id: events::OrderId,
    read: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&platform::sql::Conn<'_>) -> Result<T, SqlError> + Send + 'static,
{
    let principal = principal.0.clone();
    state
        .db
        .read(move |conn| match crate::store::owner_of(conn, order_id)? {
            Some(owner) if owner == principal => read(conn).map(Some),
            _ => Ok(None),
        })
        .await?
        .ok_or(ApiError::OrderNotFound)
}
