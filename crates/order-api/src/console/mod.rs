//! The operator console at `/console`: every saga with its counts and the stuck ones, the
//! dead letters of every topic and the callbacks that failed for good, replayed from the
//! browser; live while the page is open.
//!
//! | Route                                        | Module                    |
//! |----------------------------------------------|---------------------------|
//! | `GET /console` (page)                        | [`pages`]                 |
//! | `GET /console/dead-letters` (page)           | [`pages`]                 |
//! | `GET /console/orders/{id}` (timeline page)   | [`pages`]                 |
//! | `GET|POST /console/login`, `POST …/logout`   | [`login`]                 |
//! | `GET /console/api/orders`, `…/summary`       | [`sagas`]                 |
//! | `GET /console/api/orders/{id}/timeline`      | [`sagas`]                 |
//! | `GET /console/api/live` (SSE)                | [`live`]                  |
//! | `GET /console/api/dead-letters`              | [`dead_letters`]          |
//! | `POST /console/api/dead-letters/replay`      | [`dead_letters`]          |
//! | `POST /console/api/callbacks/{id}/resend`    | [`dead_letters`]          |
//! | `GET /console/assets/…` (script, style)      | [`pages`]                 |
//!
//! Everything but the sign-in form and the two assets is behind [`auth::require_operator`]
//! (see [`auth`] for who is an operator and how a browser proves it).

pub(crate) mod auth;
pub mod dead_letters;
mod live;
mod login;
mod pages;
mod sagas;
mod sessions;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use chrono::TimeDelta;

pub use auth::OperatorKeys;
pub use dead_letters::Desk;
pub(crate) use sessions::MIGRATION as SESSIONS_MIGRATION;

use crate::api::AppState;
use crate::auth::ApiKeys;

/// What the console needs besides the rest of the application's state.
#[derive(Clone, Debug)]
pub struct Console {
    /// Who may sign in.
    pub operators: Arc<OperatorKeys>,
    /// The customers' keys, to refuse them by name (`403`).
    pub customers: Arc<ApiKeys>,
    /// Local development: browsers on loopback are the operator `dev` (`ALLOW_ANONYMOUS`).
    pub allow_loopback: bool,
    /// The CSRF token of the `dev` operator's pages (random per process).
    pub dev_csrf_token: Arc<str>,
    /// A saga open longer than this is shown as stuck.
    pub stuck_after: TimeDelta,
    /// Session cookies are `Secure` even without a proxy saying HTTPS.
    pub secure_cookies: bool,
    /// The dead-letter topics and how to replay them; `None` until the service runs (and in
    /// tests without a broker).
    pub dead_letters: Option<Arc<Desk>>,
    /// The last summary counted, and when: shared by every open console (see
    /// [`sagas::read_summary`]).
    summary: Arc<tokio::sync::Mutex<Option<(std::time::Instant, sagas::Summary)>>>,
}

impl Console {
    /// A console for `operators`, refusing `customers`' keys by name.
    pub fn new(operators: OperatorKeys, customers: Arc<ApiKeys>, allow_loopback: bool) -> Self {
        Self {
            operators: Arc::new(operators),
            customers,
            allow_loopback,
            dev_csrf_token: sessions::random_token().into(),
            stuck_after: TimeDelta::seconds(10),
            secure_cookies: false,
            dead_letters: None,
            summary: Arc::default(),
        }
    }
}

/// The console's routes (see the module documentation).
pub(crate) fn router(state: AppState) -> Router {
    let guarded = Router::new()
        .route("/console", get(pages::sagas))
        .route("/console/dead-letters", get(pages::dead_letters))
        .route("/console/orders/{order_id}", get(pages::order))
        .route("/console/logout", post(login::logout))
        .route("/console/api/orders", get(sagas::list))
        .route("/console/api/summary", get(sagas::summary))
        .route(
            "/console/api/orders/{order_id}/timeline",
            get(sagas::timeline),
        )
        .route("/console/api/live", get(live::stream))
        .route("/console/api/dead-letters", get(dead_letters::list))
        .route(
            "/console/api/dead-letters/replay",
            post(dead_letters::replay),
        )
        .route(
            "/console/api/callbacks/{delivery_id}/resend",
            post(dead_letters::resend),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_operator,
        ));
    Router::new()
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/assets/console.css", get(pages::style))
        .route("/console/assets/console.js", get(pages::script))
        .merge(guarded)
        .with_state(state)
}
