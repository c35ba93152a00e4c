//! The callbacks' bodies (`OrderConfirmedCallback`, `OrderCancelledCallback` in
//! `schemas/openapi.yaml`), decoded into one typed enum.

use chrono::{DateTime, Utc};
use events::{CancellationReason, OrderId};
use serde::Deserialize;

/// How an order's saga ended, as its callback says.
///
/// Decoding is a tolerant reader: fields order-api may add later are ignored, but the ones the
/// schemas require must be present and agree with each other (`type` and `data.status`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "Wire")]
pub enum OrderCallback {
    /// `order.confirmed`: paid for and stock reserved.
    Confirmed {
        /// The order.
        order_id: OrderId,
        /// When the saga ended.
        timestamp: DateTime<Utc>,
    },
    /// `order.cancelled`: the saga ended without the order; whatever was charged is refunded.
    Cancelled {
        /// The order.
        order_id: OrderId,
        /// Why it was cancelled.
        reason: CancellationReason,
        /// When the saga ended.
        timestamp: DateTime<Utc>,
    },
}

impl OrderCallback {
    /// The order the callback is about.
    pub fn order_id(&self) -> OrderId {
        match self {
            Self::Confirmed { order_id, .. } | Self::Cancelled { order_id, .. } => *order_id,
        }
    }

    /// When the order's saga ended.
    pub fn timestamp(&self) -> DateTime<Utc> {
        match self {
            Self::Confirmed { timestamp, .. } | Self::Cancelled { timestamp, .. } => *timestamp,
        }
    }
}

/// The body as sent: `{type, timestamp, data: {order_id, status, reason}}`.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum Wire {
    #[serde(rename = "order.confirmed")]
    Confirmed {
        timestamp: DateTime<Utc>,
        data: Data<Confirmed, ()>,
    },
    #[serde(rename = "order.cancelled")]
    Cancelled {
        timestamp: DateTime<Utc>,
        data: Data<Cancelled, CancellationReason>,
    },
}

/// `data`: `status` repeats the type, `reason` is `null` for a confirmed order.
#[derive(Deserialize)]
struct Data<Status, Reason> {
    order_id: OrderId,
    #[expect(dead_code, reason = "read only to check it agrees with the type")]
    status: Status,
    reason: Reason,
}

/// The one `status` an `order.confirmed` callback may carry.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Confirmed {
    Confirmed,
}

/// The one `status` an `order.cancelled` callback may carry.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cancelled {
    Cancelled,
}

impl From<Wire> for OrderCallback {
    fn from(wire: Wire) -> Self {
        match wire {
            Wire::Confirmed { timestamp, data } => Self::Confirmed {
                order_id: data.order_id,
                timestamp,
            },
            Wire::Cancelled { timestamp, data } => Self::Cancelled {
                order_id: data.order_id,
                reason: data.reason,
                timestamp,
            },
        }
    }
}
