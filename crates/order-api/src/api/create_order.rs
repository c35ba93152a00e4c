//! `POST /api/orders`: validate, price, persist the order and `order.created` in one
//! transaction, answer `202 Accepted` — the saga continues asynchronously.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use events::{Envelope, Money, OrderCreated, OrderId, PaymentMethod, PricedLineItem, Sku, UserId};
use platform::http::JsonBody;
use platform::outbox;
use platform::time::now_text;

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::idempotency::{self, Claim, IdempotencyKey, Prior};
use crate::saga::SOURCE;
use crate::store;

/// Most lines in one order.
const MAX_LINES: usize = 100;
/// Most units of one line.
const MAX_QUANTITY: i64 = 1000;

/// The request body. Unknown fields are rejected so that typos do not pass silently.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrder {
    user_id: UserId,
    items: Vec<RequestedLine>,
    payment_method: PaymentMethod,
    /// Where to announce the saga's end (signed webhook), if the client wants that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    callback_url: Option<String>,
}

/// A requested line. The quantity is a plain integer here so that 0 or -1 get a clear message
/// rather than a type error.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RequestedLine {
    sku: Sku,
    quantity: i64,
}

/// The `202` body.
#[derive(Debug, Serialize)]
struct Accepted {
    order_id: OrderId,
    status: &'static str,
    status_url: String,
    events_url: String,
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateOrder>,
) -> Result<Response, ApiError> {
    state
        .rate_limiter
        .check(&principal.0, std::time::Instant::now())
        .map_err(ApiError::RateLimited)?;
    if state.db.outbox_backlog() > state.outbox_backlog_limit {
        return Err(ApiError::Overloaded);
    }
    let idempotency = headers
        .get(idempotency::HEADER)
        .map(|value| IdempotencyKey::parse(&principal.0, value.as_bytes()))
        .transpose()
        .map_err(ApiError::BadIdempotencyKey)?;
    // The request as parsed, in one canonical form, to tell a retry from a different order.
    let canonical =
        serde_json::to_string(&request).map_err(|error| ApiError::Unexpected(error.into()))?;
    let (items, total) = price(&state, &request.items)?;
    let callback = request
        .callback_url
        .as_deref()
        .map(|url| check_callback(&state, &principal, url))
        .transpose()?;
    let order_id = OrderId::new();
    let created_at = chrono::Utc::now();
    let event = OrderCreated {
        order_id,
        user_id: request.user_id.clone(),
        items: items.clone(),
        total,
        payment_method: request.payment_method.clone(),
        created_at,
    };
    let envelope = Envelope::new(SOURCE, event, None);
    let request_id = headers
        .get(platform::http::REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let deadline = (chrono::Utc::now() + state.saga_timeout)
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let wait =
        super::wait::preferred_wait(headers.get("prefer").and_then(|value| value.to_str().ok()));
    let key_expires = (chrono::Utc::now() + state.idempotency_ttl)
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let principal_name = principal.0.clone();
    let holder = principal.0.clone();
    let outcome = state
        .db
        .transaction(move |tx| {
            let now = now_text();
            if let Some(key) = &idempotency {
                let claim = Claim {
                    order_id,
                    now: &now,
                    expires_at: &key_expires,
                };
                match idempotency::claim(tx, key, &canonical, claim)? {
                    Prior::Replay(original) => return Ok(Created::Replayed(original)),
                    Prior::Conflict => return Err(ApiError::IdempotencyConflict),
                    Prior::New => {}
                }
            }
            let entry = store::insert_order(
                tx,
                &store::NewOrder {
                    order_id,
                    principal: &principal.0,
                    user_id: request.user_id.as_str(),
                    payment_method: request.payment_method.as_str(),
                    items: &items,
                    total,
                    now: &now_text(),
                    deadline: &deadline,
                },
            )?;
            outbox::enqueue(tx, &envelope)?;
            if let Some(url) = &callback {
                crate::webhooks::subscribe(tx, order_id, url, &principal_name)?;
            }
            let trace_id = platform::telemetry::current_trace_id();
            store::timeline::record(tx, &envelope, trace_id)?;
            Ok(Created::New(entry))
        })
        .await?;
    let (order_id, replayed) = match outcome {
        Created::New(entry) => {
            tracing::info!(%order_id, correlation_id = %order_id, %request_id, total = %total, "Order accepted.");
            state.db.note_enqueued(1);
            state.updates.publish([entry]);
            (order_id, false)
        }
        Created::Replayed(original) => {
            tracing::info!(order_id = %original, %request_id, "Idempotent retry answered with the original order.");
            (original, true)
        }
    };
    let status_url = format!("/api/orders/{order_id}");
    let body = Accepted {
        order_id,
        status: "pending",
        events_url: format!("{status_url}/events"),
        status_url: status_url.clone(),
    };
    // Sync when it is fast enough: the final order with `201`, else the usual `202`.
    // A client holding its share of waiting requests gets the `202` at once instead.
    let held = wait.and_then(|_| state.held.try_hold(&holder));
    let wait = wait.filter(|_| held.is_some());
    let finished = match wait {
        Some(limit) => {
            // `until_terminal` looks at the database after subscribing: no end slips past.
            let updates = state.updates.subscribe(order_id);
            super::wait::until_terminal(updates, &state.db, order_id, limit).await
        }
        None => false,
    };
    let mut response = if finished {
        let order = super::get_order::load_view(&state, order_id).await?;
        (
            StatusCode::CREATED,
            [(header::LOCATION, status_url)],
            Json(order),
        )
            .into_response()
    } else {
        (
            StatusCode::ACCEPTED,
            [(header::LOCATION, status_url)],
            Json(body),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Some(limit) = wait
        && let Ok(applied) = header::HeaderValue::from_str(&format!("wait={}", limit.as_secs()))
    {
        headers.insert("preference-applied", applied);
    }
    if replayed {
        headers.insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// What the transaction did.
enum Created {
    /// A new order, with its first history entry.
    New(store::HistoryEntry),
    /// A retry of an earlier request: its order.
    Replayed(OrderId),
}

/// A callback needs an acceptable URL and a signing secret for the client.
fn check_callback(state: &AppState, principal: &Principal, url: &str) -> Result<String, ApiError> {
    let url = crate::webhooks::target::check_url(url, state.webhooks.allow_private)
        .map_err(ApiError::Invalid)?;
    if !state.webhooks.secrets.contains_key(&principal.0) {
        return Err(ApiError::Invalid(
            "callback_url needs a webhook secret for this client (CALLBACK_SECRETS); none is configured.".into(),
        ));
    }
    Ok(url.to_string())
}

/// Checks every line against the catalog and prices it.
fn price(
    state: &AppState,
    lines: &[RequestedLine],
) -> Result<(Vec<PricedLineItem>, Money), ApiError> {
    if lines.is_empty() {
        return Err(ApiError::Invalid(
            "`items` must contain at least one line.".into(),
        ));
    }
    if lines.len() > MAX_LINES {
        return Err(ApiError::Invalid(format!(
            "`items` may contain at most {MAX_LINES} lines."
        )));
    }
    let mut priced: Vec<PricedLineItem> = Vec::with_capacity(lines.len());
    let mut total = Money::zero(state.catalog.currency);
    for (index, line) in lines.iter().enumerate() {
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            return Err(ApiError::Invalid(format!(
                "items[{index}].quantity must be between 1 and {MAX_QUANTITY}, got {}.",
                line.quantity
            )));
        }
        if priced.iter().any(|item| item.sku == line.sku) {
            return Err(ApiError::Invalid(format!(
                "items[{index}].sku {} is listed twice; put the total quantity on one line.",
                line.sku
            )));
        }
        let product = state.catalog.get(&line.sku).ok_or_else(|| {
            ApiError::Invalid(format!(
                "items[{index}].sku {} is not in the catalog.",
                line.sku
            ))
        })?;
        let quantity = u32::try_from(line.quantity).unwrap_or(1);
        let line_total = product
            .unit_price
            .checked_mul(quantity)
            .and_then(|amount| total.checked_add(amount))
            .map_err(|error| ApiError::Invalid(error.to_string()))?;
        total = line_total;
        priced.push(PricedLineItem {
            sku: line.sku.clone(),
            quantity,
            unit_price: product.unit_price,
        });
    }
    Ok((priced, total))
}
