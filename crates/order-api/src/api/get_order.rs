//! `GET /api/orders/{id}`: the order as it is now, with the history of its transitions.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use serde::Serialize;

use events::{Currency, OrderId, PaymentMethod, Sku, UserId};

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::store::{self, HistoryEntry, OrderRecord};

/// One line of the answer; amounts in major units (`24.99`), as people read them.
#[derive(Debug, Serialize)]
struct LineView {
    sku: Sku,
    quantity: u32,
    unit_price: f64,
    line_total: f64,
}

/// One transition of the answer's history.
#[derive(Debug, Serialize)]
pub(crate) struct TransitionView {
    pub(crate) seq: i64,
    pub(crate) status: &'static str,
    pub(crate) timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<&'static str>,
    pub(crate) cause: String,
}

impl From<&HistoryEntry> for TransitionView {
    fn from(entry: &HistoryEntry) -> Self {
        Self {
            seq: entry.seq,
            status: entry.status.as_str(),
            timestamp: platform::time::format(entry.at),
            reason: entry.reason.map(|reason| reason.as_str()),
            cause: entry.cause.clone(),
        }
    }
}

/// The answer.
#[derive(Debug, Serialize)]
pub(crate) struct OrderView {
    order_id: OrderId,
    user_id: UserId,
    status: &'static str,
    items: Vec<LineView>,
    total: f64,
    total_minor: i64,
    currency: Currency,
    payment_method: PaymentMethod,
    cancellation_reason: Option<&'static str>,
    created_at: String,
    updated_at: String,
    history: Vec<TransitionView>,
}

impl From<OrderRecord> for OrderView {
    fn from(order: OrderRecord) -> Self {
        Self {
            order_id: order.order_id,
            user_id: order.user_id,
            status: order.status.as_str(),
            items: order
                .items
                .iter()
                .map(|item| LineView {
                    sku: item.sku.clone(),
                    quantity: item.quantity,
                    unit_price: item.unit_price.to_major(),
                    line_total: item
                        .unit_price
                        .checked_mul(item.quantity)
                        .map(events::Money::to_major)
                        .unwrap_or_default(),
                })
                .collect(),
            total: order.total.to_major(),
            total_minor: order.total.amount_minor,
            currency: order.total.currency,
            payment_method: order.payment_method,
            cancellation_reason: order.cancellation_reason.map(|reason| reason.as_str()),
            created_at: platform::time::format(order.created_at),
            updated_at: platform::time::format(order.updated_at),
            history: order.history.iter().map(TransitionView::from).collect(),
        }
    }
}

/// Parses the path's order id; a malformed id cannot name an order, hence 404.
pub(crate) fn parse_order_id(text: &str) -> Result<OrderId, ApiError> {
    text.parse().map_err(|_| {
        ApiError::BadOrderId(format!(
            "{text:?} is not an order id (expected \"ord_\" and 32 hex digits)."
        ))
    })
}

/// `?wait=N`: long poll until the saga ends (at most N seconds, capped).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct GetParams {
    wait: Option<u64>,
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<GetParams>,
) -> Result<Json<impl Serialize>, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    let Some(seconds) = params.wait.filter(|seconds| *seconds > 0) else {
        // The order at once: its ownership and its row in one read.
        let order = super::read_owned(&state, &principal, order_id, move |conn| {
            store::load_order(conn, order_id)
        })
        .await?
        .ok_or(ApiError::OrderNotFound)?;
        return Ok(Json(OrderView::from(order)));
    };
    super::authorize(&state, &principal, order_id).await?;
    // A client holding its share of waiting requests gets the order at once instead.
    if let Some(_held) = state.held.try_hold(&principal.0) {
        let limit = std::time::Duration::from_secs(seconds).min(super::wait::MAX_WAIT);
        let updates = state.updates.subscribe(order_id);
        super::wait::until_terminal(updates, &state.db, order_id, limit).await;
    }
    load_view(&state, order_id).await.map(Json)
}

/// The order as the API shows it.
pub(crate) async fn load_view(state: &AppState, order_id: OrderId) -> Result<OrderView, ApiError> {
    let order = state
        .db
        .read(move |conn| store::load_order(conn, order_id))
        .await?
        .ok_or(ApiError::OrderNotFound)?;
    Ok(OrderView::from(order))
}
