//! HTTP pieces every service uses: RFC 9457 problem answers, a JSON extractor whose rejections
//! are problems, health and readiness routes, request ids, and serving with graceful shutdown.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::Db;
use crate::kafka::EventProducer;

/// The request id header, honoured when the client sends one and echoed on every answer.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An RFC 9457 problem document, answered as `application/problem+json`.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` means "see the status code".
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary, the same for every occurrence of the type.
    pub title: String,
    /// HTTP status code, repeated for clients that only read the body.
    pub status: u16,
    /// What went wrong this time, for the person who made the request.
    pub detail: String,
}

impl Problem {
    /// A problem of `status` with a title derived from the slug and a specific `detail`.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("https://shop.example/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    /// 400: the request is not acceptable as sent.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    /// 404: nothing (visible to you) has this id.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 500: our fault; the detail must not leak internals.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "The request could not be completed; it is safe to retry.",
        )
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// Like [`axum::Json`], but a body that cannot be read or parsed is answered with a [`Problem`]
/// saying exactly what is wrong (size, content type, syntax, or which field).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let status = rejection.status();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            status,
            "unsupported-media-type",
            "Unsupported media type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        JsonRejection::JsonSyntaxError(_) => Problem::new(
            status,
            "malformed-json",
            "Malformed JSON",
            rejection.body_text(),
        ),
        JsonRejection::JsonDataError(_) => Problem::new(
            status,
            "invalid-body",
            "Invalid request body",
            rejection.body_text(),
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            status,
            "body-too-large",
            "Request body too large",
            "The request body exceeds the size limit of this endpoint.",
        ),
        _ => Problem::new(
            status,
            "invalid-body",
            "Invalid request body",
            rejection.body_text(),
        ),
    }
}

/// What `/readyz` checks: the database answers and a broker answers.
#[derive(Clone, Debug)]
pub struct Readiness {
    /// The service's database.
    pub db: Db,
    /// Any producer of the service, used for a metadata request.
    pub producer: EventProducer,
}

/// `GET /healthz` (the process is alive) and `GET /readyz` (it can do its work).
pub fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let database = readiness.db.ping().await;
    let producer = readiness.producer.clone();
    let broker =
        tokio::task::spawn_blocking(move || producer.broker_reachable(Duration::from_secs(2)))
            .await
            .unwrap_or(false);
    let status = if database && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "checks": { "database": database, "broker": broker },
    });
    (status, Json(body)).into_response()
}

/// Adds request ids: a client's `X-Request-Id` is kept, otherwise a UUID is made; either way it
/// is echoed on the answer and available to handlers and logs.
pub fn with_request_id(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Serves `router` on `listener` until `shutdown`, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
