//! The provider's HTTP API: `POST /v1/charges`, `POST /v1/refunds` (both with an
//! `Idempotency-Key`), the simulator's latency knob, health and metrics.
//!
//! Requests are answered at once with the object as it stands (`pending` for a new one); the
//! outcome follows by webhook. A repeated request with the same key and body gets the original
//! object (`200`), the same key with another body a `422`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use platform::http::{JsonBody, Problem, problem_answers};
use psp_contract::{
    CHARGES_PATH, CreateCharge, CreateRefund, IDEMPOTENCY_KEY, LATENCY_PATH, Latency, Object,
    REFUNDS_PATH, WebhookEvent,
};
use serde_json::json;

use crate::body::read_first;
use crate::ledger::{Answer, Ledger};
use crate::notifier::{Delivery, Notifier};

/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LEN: usize = 255;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// Requests and outcomes.
    pub ledger: Ledger,
    /// Sends outcomes.
    pub notifier: Notifier,
    /// Endpoint for requests that name none.
    pub default_webhook_url: Option<String>,
    /// Extra time before answering a charge request, in milliseconds.
    pub charge_latency_ms: AtomicU64,
}

/// The routes; every error answer is a problem document ([`problem_answers`]).
pub fn router(state: Arc<ApiState>) -> Router {
    let routes = Router::new()
        .route(CHARGES_PATH, read_first(post(create_charge)))
        .route(REFUNDS_PATH, read_first(post(create_refund)))
        .route(
            LATENCY_PATH,
            get(latency).merge(read_first(put(set_latency))),
        )
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/readyz",
            get(|| async { Json(json!({"status": "ready"})) }),
        )
        .route("/metrics", get(|| async { platform::metrics::render() }))
        .with_state(state);
    problem_answers(routes)
}

async fn create_charge(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateCharge>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    validate_amount(request.amount_minor)?;
    let currency_ok =
        request.currency.len() == 3 && request.currency.bytes().all(|b| b.is_ascii_uppercase());
    if !currency_ok {
        return Err(Problem::bad_request(
            "`currency` is an ISO 4217 code: three upper-case letters.",
        ));
    }
    if !request.payment_method.starts_with("pm_") {
        return Err(Problem::bad_request("`payment_method` starts with `pm_`."));
    }
    validate_reference(&request.reference)?;
    let url = webhook_url(&state, request.webhook_url.as_deref())?;
    let latency = state.charge_latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let answer = state.ledger.charge(&key, &request);
    Ok(respond(&state, answer, url))
}

async fn create_refund(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateRefund>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    validate_amount(request.amount_minor)?;
    if !request.charge_id.starts_with("ch_") {
        return Err(Problem::bad_request("`charge_id` is a charge id (`ch_…`)."));
    }
    validate_reference(&request.reference)?;
    let url = webhook_url(&state, request.webhook_url.as_deref())?;
    let answer = state.ledger.refund(&key, &request);
    Ok(respond(&state, answer, url))
}

fn respond(state: &ApiState, answer: Answer, url: Option<String>) -> Response {
    match answer {
        Answer::Created {
            view,
            decided,
            delay,
        } => {
            match url {
                Some(url) => state.notifier.schedule(Delivery {
                    url,
                    event: WebhookEvent {
                        id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
                        event_type: decided.event_type(),
                        created_at: (chrono::Utc::now()
                            + chrono::Duration::from_std(delay).unwrap_or_default())
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        data: decided,
                    },
                    after: delay,
                    trace: platform::telemetry::inject(&tracing::Span::current()),
                }),
                None => tracing::info!(
                    id = view.id(),
                    "No webhook endpoint: the merchant has to ask again for the outcome."
                ),
            }
            (StatusCode::ACCEPTED, Json(view)).into_response()
        }
        Answer::Repeated(object) => (StatusCode::OK, Json::<Object>(object)).into_response(),
        Answer::Unavailable { attempt } => {
            let mut response = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider-unavailable",
                "Provider unavailable",
                format!("Simulated outage (attempt {attempt}); retry with the same key."),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Answer::KeyReused => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
            "This Idempotency-Key was used for a different request.",
        )
        .into_response(),
        Answer::NotRefundable => Problem::new(
            StatusCode::CONFLICT,
            "charge-not-refundable",
            "Charge not refundable",
            "The charge did not succeed, so there is nothing to refund.",
        )
        .into_response(),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Problem::bad_request(format!(
            "Send an `Idempotency-Key` header (1 to {MAX_KEY_LEN} characters)."
        )));
    }
    Ok(key.to_owned())
}

fn validate_amount(amount_minor: i64) -> Result<(), Problem> {
    if amount_minor <= 0 {
        return Err(Problem::bad_request("`amount_minor` must be positive."));
    }
    Ok(())
}

fn validate_reference(reference: &str) -> Result<(), Problem> {
    if reference.is_empty() || reference.len() > 200 {
        return Err(Problem::bad_request("`reference` is 1 to 200 characters."));
    }
    Ok(())
}

fn webhook_url(state: &ApiState, requested: Option<&str>) -> Result<Option<String>, Problem> {
    let Some(url) = requested.or(state.default_webhook_url.as_deref()) else {
        return Ok(None);
    };
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(Some(url.to_owned())),
        _ => Err(Problem::bad_request(
            "`webhook_url` is an absolute http(s) URL.",
        )),
    }
}

async fn latency(State(state): State<Arc<ApiState>>) -> Json<Latency> {
    Json(Latency {
        charge_latency_ms: state.charge_latency_ms.load(Ordering::Relaxed),
    })
}

async fn set_latency(
    State(state): State<Arc<ApiState>>,
    JsonBody(latency): JsonBody<Latency>,
) -> Result<Json<Latency>, Problem> {
    if latency.charge_latency_ms > 60_000 {
        return Err(Problem::bad_request(
            "`charge_latency_ms` is at most 60000.",
        ));
    }
    state
        .charge_latency_ms
        .store(latency.charge_latency_ms, Ordering::Relaxed);
    tracing::info!(
        charge_latency_ms = latency.charge_latency_ms,
        "Charge latency changed."
    );
    Ok(Json(latency))
}
