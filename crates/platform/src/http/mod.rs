//! HTTP pieces every service uses: RFC 9457 problem answers, a JSON extractor whose rejections
//! are problems, health and readiness routes, request ids, and serving with graceful shutdown
//! (and a header timeout and a connection limit, see [`ServeLimits`]).

mod problem;
mod server;

pub use problem::{JsonBody, PROBLEM_JSON, Problem, problem_answers};
pub use server::{DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, ServeLimits, serve_with};

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body::{Frame, SizeHint};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use crate::kafka::EventProducer;
use crate::{Db, telemetry};

/// The request id header, honoured when the client sends a safe one ([`MAX_REQUEST_ID_LEN`]
/// characters of `[A-Za-z0-9._-]` at most) and echoed on every answer.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long the services' HTTP clients (to the payment provider, to payment-svc's webhook, to
/// callback URLs) keep an unused connection (`shop_client::POOL_IDLE_TIMEOUT` is its twin for
/// the shop's clients). A server closes a connection that stays idle too long — these services
/// after [`DEFAULT_HEADER_READ_TIMEOUT`], a Node.js server after 5 s — and a request sent on one
/// just as it closes fails half-sent. Dropping idle connections sooner leaves the closing to the
/// client.
pub const CLIENT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Longest request id kept from a client; a UUID has 36 characters, a ULID 26.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// What `/readyz` checks (the database answers and a broker answers) and what `/metrics`
/// reads from the database at scrape time.
///
/// Both routes answer before authentication, so neither may cost more when called more
/// often: a readiness check runs at most once per [`READINESS_MAX_AGE`] and the gauges' counts
/// at most once per [`GAUGES_MAX_AGE`], however many requests come; callers in between get the
/// last answer (and wait for the one check under way rather than starting their own).
#[derive(Clone, Debug)]
pub struct Readiness {
    /// The service's database.
    pub db: Db,
    /// Any producer of the service, used for a metadata request.
    pub producer: EventProducer,
    /// Gauges computed at scrape time: (metric name, SQL returning one integer).
    pub scrape_gauges: Vec<(&'static str, &'static str)>,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`.
    pub metrics_token: Option<crate::config::Sensitive>,
    /// The last readiness answer and when it was made.
    pub last_check: Arc<tokio::sync::Mutex<Option<(Instant, bool, bool)>>>,
    /// When the gauges were last read from the database.
    pub last_gauges: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl Readiness {
    /// Checks of `db` and `producer`, with `scrape_gauges` read for `/metrics`.
    pub fn new(
        db: Db,
        producer: EventProducer,
        scrape_gauges: Vec<(&'static str, &'static str)>,
        metrics_token: Option<crate::config::Sensitive>,
    ) -> Self {
        Self {
            db,
            producer,
            scrape_gauges,
            metrics_token: metrics_token.filter(|token| !token.is_empty()),
            last_check: Arc::default(),
            last_gauges: Arc::default(),
        }
    }
}

/// How long a readiness answer is reused.
pub const READINESS_MAX_AGE: Duration = Duration::from_secs(1);

/// How long the database gauges of `/metrics` are reused.
pub const GAUGES_MAX_AGE: Duration = Duration::from_secs(5);

/// `GET /healthz` (the process is alive), `GET /readyz` (it can do its work) and
/// `GET /metrics` (Prometheus text format).
pub fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(readiness)
}

async fn metrics_text(State(readiness): State<Readiness>, headers: HeaderMap) -> Response {
    if let Some(token) = &readiness.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        if !token.matches(given) {
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "/metrics needs `Authorization: Bearer <METRICS_TOKEN>`.",
            )
            .into_response();
        }
    }
    let mut last = readiness.last_gauges.lock().await;
    if last.is_none_or(|at| at.elapsed() >= GAUGES_MAX_AGE) {
        refresh_gauges(&readiness).await;
        *last = Some(Instant::now());
    }
    drop(last);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

/// Reads the gauges counted in the database.
async fn refresh_gauges(readiness: &Readiness) {
    let mut gauges = readiness.scrape_gauges.clone();
    gauges.push((
        crate::metrics::OUTBOX_BACKLOG,
        "SELECT COUNT(*) FROM outbox",
    ));
    let values = readiness
        .db
        .read(move |conn| {
            gauges
                .into_iter()
                .map(|(name, sql)| {
                    conn.query_row(sql, &[], |row| row.get::<i64>(0))
                        .map(|value| (name, value))
                })
                .collect::<crate::sql::Result<Vec<_>>>()
        })
        .await;
    match values {
        Ok(values) => {
            for (name, value) in values {
                metrics::gauge!(name).set(value as f64);
            }
        }
        Err(error) => tracing::warn!(%error, "Could not read gauges for /metrics."),
    }
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let mut last = readiness.last_check.lock().await;
    let (database, broker) = match *last {
        Some((at, database, broker)) if at.elapsed() < READINESS_MAX_AGE => (database, broker),
        _ => {
            let database = readiness.db.ping().await;
            let producer = readiness.producer.clone();
            let broker = tokio::task::spawn_blocking(move || {
                producer.broker_reachable(Duration::from_secs(2))
            })
            .await
            .unwrap_or(false);
            *last = Some((Instant::now(), database, broker));
            (database, broker)
        }
    };
    drop(last);
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

/// Adds what every route needs to be observable:
/// - request ids: a client's `X-Request-Id` is kept if it is safe ([`MAX_REQUEST_ID_LEN`]
///   characters of `[A-Za-z0-9._-]` at most), otherwise a UUID is made; either way it is echoed
///   on the answer and recorded on the span (see [`settle_request_id`]);
/// - a `SERVER` span per request named `<METHOD> <route>` (HTTP semantic conventions; `HTTP
///   <route>` for a method outside the standard set), child of the caller's `traceparent` if
///   it sent one, and marked as `service`'s work (which names it in a trace when several
///   services share a process, see [`telemetry`]); status `Error` on a 5xx answer only. It ends
///   when the answer's body has been sent: for an event stream, when the stream ends;
/// - a request-duration histogram by method, route and status — each bounded: the method is one
///   of the standard nine or `_OTHER` ([`method_label`]), the route is the matched route's
///   template or `unmatched` (never the raw path), the status one our handlers chose;
/// - the request's database jobs go ahead of background work (consumers, relays, sweeps), so
///   that an answer someone waits for does not queue behind a consumer's run (see
///   [`crate::db::interactive`]).
///
/// A 5xx answer is also logged (`warn`), as the request's failure; handlers log the cause.
///
/// All of it is one middleware, [`observe_request`], rather than a layer each: every layer costs
/// each request a clone of the route's service and a boxed future (`cargo bench -p platform
/// --bench http`: 3.2 µs per request with a layer each, 1.4 µs as one).
pub fn observe(service: &'static str, router: Router) -> Router {
    crate::metrics::install();
    router.layer(axum::middleware::from_fn_with_state(
        service,
        observe_request,
    ))
}

/// What [`observe`] does for each request, in the order it happens.
async fn observe_request(
    State(service): State<&'static str>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = settle_request_id(request.headers_mut());
    let method = method_label(request.method());
    let route = route_of(&request);
    let span = request_span(service, method, &route, &request, &request_id);
    let started = Instant::now();
    let mut response = crate::db::interactive(next.run(request))
        .instrument(span.clone())
        .await;
    let status = response.status();
    metrics::histogram!(
        crate::metrics::HTTP_REQUEST_DURATION,
        "method" => method,
        "route" => route,
        "status" => status.as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    span.record("http.response.status_code", status.as_u16());
    // A 5xx is the server's failure; a 4xx is the client's, and leaves the server span's status
    // unset (HTTP semantic conventions, §Status).
    if status.is_server_error() {
        span.record("error.type", status.as_str());
        telemetry::mark_error(&span, format_args!("answered {status}"));
        span.in_scope(|| tracing::warn!(status = status.as_u16(), "Answered with a server error."));
    }
    response
        .headers_mut()
        .entry(REQUEST_ID)
        .or_insert(request_id);
    response.map(|body| Body::new(InSpan { body, span }))
}

/// The request's id, left in `headers` as its only `X-Request-Id`: the client's if it sent one
/// safe value, else a fresh UUID. The id is echoed on the answer, written in every log line of
/// the request and exported on its span: unchecked, it would let any client put text of any
/// length and content into all three.
fn settle_request_id(headers: &mut HeaderMap) -> HeaderValue {
    let kept = {
        let mut values = headers.get_all(REQUEST_ID).into_iter();
        match (values.next(), values.next()) {
            (Some(value), None) if is_safe_request_id(value.as_bytes()) => Some(value.clone()),
            _ => None,
        }
    };
    kept.unwrap_or_else(|| {
        let uuid = uuid::Uuid::new_v4();
        let fresh = HeaderValue::from_str(
            uuid.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        )
        .expect("a UUID is a header value");
        // Replaces every value the client sent.
        headers.insert(REQUEST_ID, fresh.clone());
        fresh
    })
}

fn is_safe_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// An answer's body, sent within its request's span: the span ends when the body is done (or
/// dropped), and what the body logs while it streams carries the request's fields.
struct InSpan {
    body: Body,
    span: tracing::Span,
}

impl HttpBody for InSpan {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The method as a metric label and span attribute: the nine methods of RFC 9110 and RFC 5789
/// by name, any other `_OTHER` (OpenTelemetry's HTTP semantic conventions). A client may send
/// any token as a method, before any authentication, and each distinct label value would make
/// a histogram that is never freed.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned())
}

fn request_span(
    service: &'static str,
    method: &'static str,
    route: &str,
    request: &Request,
    request_id: &HeaderValue,
) -> tracing::Span {
    let name_method = if method == "_OTHER" { "HTTP" } else { method };
    let request_id = request_id.to_str().unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{name_method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_description = Empty,
        http.request.method = method,
        http.route = %route,
        // Served over plain HTTP: TLS, where there is any, ends in front of the service.
        url.scheme = "http",
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
        error.type = Empty,
        request_id = %request_id,
        service.name = service,
    );
    telemetry::set_parent_from(&span, &HttpHeaders(request.headers()));
    span
}

/// Reads trace context from HTTP request headers.
struct HttpHeaders<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets in-flight requests finish; with
/// the default [`ServeLimits`] (see [`serve_with`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ServeLimits::default()).await
}

#[cfg(test)]
mod tests;
