//! `GET /api/orders/{id}/deliveries`: the webhooks sent for an order, with every attempt.

use axum::Json;
use axum::extract::{Extension, Path, State};

use super::get_order::parse_order_id;
use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::webhooks::{self, DeliveryView};

pub(crate) async fn handle(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    super::authorize(&state, &principal, order_id).await?;
    let deliveries = state
        .db
        .read(move |conn| webhooks::deliveries(conn, order_id))
        .await?;
    Ok(Json(deliveries))
}
