//! `POST /api/orders`, the HTTP side: rate limit, back-pressure and `Idempotency-Key`; the
//! order and `order.created` stored in one transaction; the answer — `202 Accepted` at once (the
//! saga continues asynchronously), or `201 Created` with the final order under `Prefer: wait`.
//! What makes a valid order, and its price, is [`crate::placement`]'s.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use events::OrderId;
use platform::http::JsonBody;
use platform::outbox;
use platform::sql::Conn;

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::idempotency::{self, Claim, IdempotencyKey, Prior};
use crate::placement::{self, InvalidOrder, OrderRequest, Placement};
use crate::store;

/// The `202` body.
#[derive(Debug, Serialize)]
struct Accepted {
    order_id: OrderId,
    status: &'static str,
    status_url: String,
    events_url: String,
}

impl From<InvalidOrder> for ApiError {
    fn from(invalid: InvalidOrder) -> Self {
        ApiError::Invalid(invalid.0)
    }
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<OrderRequest>,
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
    let placement = placement::place(&state.catalog, &request, platform::time::now())?;
    let callback = request
        .callback_url
        .as_deref()
        .map(|url| check_callback(&state, &principal, url))
        .transpose()?;
    let request_id = headers
        .get(platform::http::REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (order_id, total) = (placement.order_id, placement.total);
    let waiting = Waiting::start(&state, &principal, &headers, order_id);
    let storing = Storing {
        placement,
        request,
        principal: principal.0.clone(),
        callback,
        idempotency: idempotency.map(|key| (key, canonical)),
        saga_timeout: state.saga_timeout,
        idempotency_ttl: state.idempotency_ttl,
    };
    let outcome = state.db.transaction(move |tx| storing.store(tx)).await?;
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
    answer(&state, waiting, order_id, replayed).await
}

/// A client's wait for the saga's end (`Prefer: wait=N`), granted if it holds less than its
/// share of waiting requests (otherwise it gets the `202` at once).
///
/// It subscribes to the new order's updates before the order is stored: no update can come
/// before the subscription, and the new order need not be read again to know it is not over.
struct Waiting {
    /// How long to wait, as asked (capped).
    limit: std::time::Duration,
    updates: crate::status_feed::Subscription,
    /// Its place among the client's waiting requests, given back when the answer is sent.
    _held: crate::rate_limit::Held,
}

impl Waiting {
    fn start(
        state: &AppState,
        principal: &Principal,
        headers: &HeaderMap,
        order: OrderId,
    ) -> Option<Self> {
        let prefer = headers.get("prefer").and_then(|value| value.to_str().ok());
        let limit = super::wait::preferred_wait(prefer)?;
        Some(Self {
            limit,
            _held: state.held.try_hold(&principal.0)?,
            updates: state.updates.subscribe(order),
        })
    }
}

/// What the transaction stores: the order, its event and, if asked for, its callback and its
/// idempotency key.
struct Storing {
    /// The checked and priced order with its `order.created`.
    placement: Placement,
    /// The request, for the fields the order keeps as they came (user, payment method).
    request: OrderRequest,
    /// Who places the order: only they may see it, and their secret signs its callback.
    principal: String,
    /// The checked callback URL.
    callback: Option<String>,
    /// The key and the canonical request it is claimed for.
    idempotency: Option<(IdempotencyKey, String)>,
    /// How long the saga may take: its deadline is this after the transaction's time.
    saga_timeout: chrono::TimeDelta,
    /// How long the key is remembered after the transaction's time.
    idempotency_ttl: chrono::TimeDelta,
}

impl Storing {
    /// Claims the idempotency key (a retry is answered with its original order), then stores the
    /// order, `order.created` in the outbox and on the timeline, and the callback.
    fn store(&self, tx: &Conn<'_>) -> Result<Created, ApiError> {
        let Storing {
            placement,
            request,
            principal,
            callback,
            idempotency,
            saga_timeout,
            idempotency_ttl,
        } = self;
        let order_id = placement.order_id;
        let now = tx.now();
        if let Some((key, canonical)) = &idempotency {
            let claim = Claim {
                order_id,
                now,
                expires_at: now + *idempotency_ttl,
            };
            match idempotency::claim(tx, key, canonical, claim)? {
                Prior::Replay(original) => return Ok(Created::Replayed(original)),
                Prior::Conflict => return Err(ApiError::IdempotencyConflict),
                Prior::New => {}
            }
        }
        let entry = store::insert_order(
            tx,
            &store::NewOrder {
                order_id,
                principal,
                user_id: &request.user_id,
                payment_method: &request.payment_method,
                items: &placement.items,
                total: placement.total,
                deadline: now + *saga_timeout,
            },
        )?;
        outbox::enqueue(tx, &placement.created)?;
        if let Some(url) = &callback {
            crate::webhooks::subscribe(tx, order_id, url, principal)?;
        }
        let trace_id = platform::telemetry::current_trace_id();
        store::timeline::record(tx, &placement.created, trace_id)?;
        Ok(Created::New(entry))
    }
}

/// The answer: `201` with the final order if the client asked to wait and the saga ended in
/// time, else `202` with where to follow it.
async fn answer(
    state: &AppState,
    waiting: Option<Waiting>,
    order_id: OrderId,
    replayed: bool,
) -> Result<Response, ApiError> {
    let status_url = format!("/api/orders/{order_id}");
    let wait = waiting.as_ref().map(|waiting| waiting.limit);
    let finished = match waiting {
        Some(waiting) if replayed => {
            // An earlier order, which may be over: `until_terminal` looks at the database
            // after subscribing, so no end slips past.
            let updates = state.updates.subscribe(order_id);
            super::wait::until_terminal(updates, &state.db, order_id, waiting.limit).await
        }
        Some(waiting) => {
            super::wait::until_ended(waiting.updates, &state.db, order_id, waiting.limit).await
        }
        None => false,
    };
    let mut response = if finished {
        let order = super::get_order::load_view(state, order_id).await?;
        (
            StatusCode::CREATED,
            [(header::LOCATION, status_url)],
            Json(order),
        )
            .into_response()
    } else {
        let body = Accepted {
            order_id,
            status: "pending",
            events_url: format!("{status_url}/events"),
            status_url: status_url.clone(),
        };
        (
            StatusCode::ACCEPTED,
            [(header::LOCATION, status_url)],
            Json(body),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Some(limit) = wait
        && let Ok(applied) = HeaderValue::from_str(&format!("wait={}", limit.as_secs()))
    {
        headers.insert("preference-applied", applied);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
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
