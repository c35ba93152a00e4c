//! Orders as the API speaks of them: what a client sends, and what it reads back.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::{CancellationReason, Currency, Money, OrderId, PaymentMethod, Sku, UserId};
use serde::{Deserialize, Serialize};

use crate::IdempotencyKey;

/// An order to place (`POST /api/orders`).
///
/// ```
/// use shop_client::{NewLine, NewOrder};
///
/// let order = NewOrder::new("usr_8a3f".parse()?, "pm_visa_4242".parse()?)
///     .line("WIDGET-42".parse()?, 2);
/// assert_eq!(order.items.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewOrder {
    /// Who orders, as the client names them.
    pub user_id: UserId,
    /// What, at least one line; each SKU once.
    pub items: Vec<NewLine>,
    /// How the customer pays; the payment provider decides whether it is honoured.
    pub payment_method: PaymentMethod,
    /// Where the signed webhook goes when the saga ends (needs a callback secret on the
    /// server); `None` to observe the order by other means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

impl NewOrder {
    /// An order without lines yet; add them with [`NewOrder::line`].
    pub fn new(user_id: UserId, payment_method: PaymentMethod) -> Self {
        Self {
            user_id,
            items: Vec::new(),
            payment_method,
            callback_url: None,
        }
    }

    /// Adds `quantity` of `sku`.
    #[must_use]
    pub fn line(mut self, sku: Sku, quantity: u32) -> Self {
        self.items.push(NewLine { sku, quantity });
        self
    }

    /// Asks for a webhook to `url` when the saga ends.
    #[must_use]
    pub fn callback_url(mut self, url: impl Into<String>) -> Self {
        self.callback_url = Some(url.into());
        self
    }
}

/// One line of a [`NewOrder`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewLine {
    /// The product.
    pub sku: Sku,
    /// How many, 1 to 1000.
    pub quantity: u32,
}

/// How to place an order.
///
/// ```
/// use std::time::Duration;
/// use shop_client::{IdempotencyKey, PlaceOptions};
///
/// let options = PlaceOptions::default()
///     .wait(Duration::from_secs(5))
///     .idempotency_key(IdempotencyKey::new("cart-8a3f")?);
/// # Ok::<(), shop_client::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaceOptions {
    /// The key every attempt carries. `None`: the client generates one per call, which makes
    /// its own retries safe; give one of your own (a cart id…) to also make *your* retries
    /// safe, e.g. after your process restarted.
    pub idempotency_key: Option<IdempotencyKey>,
    /// `Prefer: wait=N`: let the server hold the answer until the saga ends, at most this
    /// long (the server caps it at 10 s; whole seconds, rounded up). `None`: `202` at once.
    pub wait: Option<Duration>,
}

impl PlaceOptions {
    /// Sends `key` with every attempt.
    #[must_use]
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Asks the server to wait up to `wait` for the saga's end.
    #[must_use]
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }
}

/// What placing an order gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Placed {
    /// `201 Created`: the saga ended while the server waited (`Prefer: wait`); the final order.
    Finished(Box<Order>),
    /// `202 Accepted`: the saga runs on; follow it with [`Client::watch`](crate::Client::watch)
    /// or [`Client::wait_for_outcome`](crate::Client::wait_for_outcome).
    Accepted {
        /// The new order.
        order_id: OrderId,
        /// Where its status is (`GET`), absolute.
        status_url: reqwest::Url,
        /// Where its transitions stream (Server-Sent Events), absolute.
        events_url: reqwest::Url,
        /// `true` when the server answered a retry of a request it had already taken: the
        /// order is the one that request placed (`Idempotent-Replayed: true`).
        replayed: bool,
    },
}

impl Placed {
    /// The order placed, either way.
    pub fn order_id(&self) -> OrderId {
        match self {
            Placed::Finished(order) => order.order_id,
            Placed::Accepted { order_id, .. } => *order_id,
        }
    }
}

/// Where an order's saga is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted; the saga has not started paying yet.
    Pending,
    /// The payment provider has the charge.
    PaymentProcessing,
    /// Paid; stock is being reserved.
    PaymentConfirmed,
    /// Paid and reserved: done. Terminal.
    Confirmed,
    /// Ended without a sale; see the reason. Terminal.
    Cancelled,
}

impl OrderStatus {
    /// Whether the saga has ended: nothing follows this status.
    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Confirmed | OrderStatus::Cancelled)
    }

    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::PaymentProcessing => "payment_processing",
            OrderStatus::PaymentConfirmed => "payment_confirmed",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order as `GET /api/orders/{id}` shows it. It serialises back to the same JSON, for tools
/// that print what they read (`--json`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(from = "WireOrder", into = "WireOrder")]
pub struct Order {
    /// The order.
    pub order_id: OrderId,
    /// Who placed it.
    pub user_id: UserId,
    /// Where its saga is now.
    pub status: OrderStatus,
    /// What was ordered, priced from the catalog.
    pub items: Vec<OrderLine>,
    /// What it costs, exactly (from `total_minor` and `currency`).
    pub total: Money,
    /// The payment method given.
    pub payment_method: String,
    /// Why it was cancelled, once it is.
    pub cancellation_reason: Option<CancellationReason>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Every transition so far, oldest first, `seq` 1, 2, 3…
    pub history: Vec<HistoryEntry>,
}

impl Order {
    /// Whether its saga has ended.
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

/// One line of an [`Order`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLine {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// The price of one.
    pub unit_price: Money,
    /// `unit_price × quantity`.
    pub line_total: Money,
}

/// One transition of an order's history: the order moved to `status`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct HistoryEntry {
    /// Its place in the history, from 1, without gaps; also its event id on the stream.
    pub seq: u64,
    /// The status the order moved to.
    pub status: OrderStatus,
    /// When.
    pub timestamp: DateTime<Utc>,
    /// Why it was cancelled, on the move to `cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CancellationReason>,
    /// What moved it: `api` first, then the short event type (`payment.completed`) or
    /// `deadline`.
    pub cause: String,
}

/// The JSON of an order: amounts in major units, which [`Order`] turns into [`Money`].
#[derive(Deserialize, Serialize)]
struct WireOrder {
    order_id: OrderId,
    user_id: UserId,
    status: OrderStatus,
    items: Vec<WireLine>,
    /// The same as `total_minor`, in major units; read, but `total_minor` is the exact one.
    #[serde(default)]
    total: f64,
    total_minor: i64,
    currency: Currency,
    payment_method: String,
    cancellation_reason: Option<CancellationReason>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    history: Vec<HistoryEntry>,
}

#[derive(Deserialize, Serialize)]
struct WireLine {
    sku: String,
    quantity: u32,
    unit_price: f64,
    line_total: f64,
}

impl From<WireOrder> for Order {
    fn from(wire: WireOrder) -> Self {
        let currency = wire.currency;
        // The API writes line amounts in major units with at most two decimals (the catalog's
        // precision); the nearest cent is exact.
        let money = |major: f64| Money::new((major * 100.0).round() as i64, currency);
        Self {
            order_id: wire.order_id,
            user_id: wire.user_id,
            status: wire.status,
            items: wire
                .items
                .into_iter()
                .map(|line| OrderLine {
                    sku: line.sku,
                    quantity: line.quantity,
                    unit_price: money(line.unit_price),
                    line_total: money(line.line_total),
                })
                .collect(),
            total: Money::new(wire.total_minor, currency),
            payment_method: wire.payment_method,
            cancellation_reason: wire.cancellation_reason,
            created_at: wire.created_at,
            updated_at: wire.updated_at,
            history: wire.history,
        }
    }
}

impl From<Order> for WireOrder {
    fn from(order: Order) -> Self {
        Self {
            order_id: order.order_id,
            user_id: order.user_id,
            status: order.status,
            items: order
                .items
                .into_iter()
                .map(|line| WireLine {
                    sku: line.sku,
                    quantity: line.quantity,
                    unit_price: line.unit_price.to_major(),
                    line_total: line.line_total.to_major(),
                })
                .collect(),
            total: order.total.to_major(),
            total_minor: order.total.amount_minor,
            currency: order.total.currency,
            payment_method: order.payment_method,
            cancellation_reason: order.cancellation_reason,
            created_at: order.created_at,
            updated_at: order.updated_at,
            history: order.history,
        }
    }
}

/// The `202` body.
#[derive(Deserialize)]
pub(crate) struct AcceptedBody {
    pub(crate) order_id: OrderId,
    pub(crate) status_url: String,
    pub(crate) events_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_order_as_the_api_writes_it() {
        let json = r#"{"order_id":"ord_0190aaaa000070008000000000000000","user_id":"usr_1",
            "status":"cancelled","items":[{"sku":"WIDGET-42","quantity":2,"unit_price":24.99,
            "line_total":49.98}],"total":49.98,"total_minor":4998,"currency":"EUR",
            "payment_method":"pm_card_declined","cancellation_reason":"payment_declined",
            "created_at":"2026-01-01T00:00:00.000000Z","updated_at":"2026-01-01T00:00:00.100000Z",
            "history":[{"seq":1,"status":"pending","timestamp":"2026-01-01T00:00:00Z","cause":"api"},
            {"seq":2,"status":"cancelled","timestamp":"2026-01-01T00:00:00.1Z",
            "reason":"payment_declined","cause":"payment.failed"}]}"#;
        let order: Order = serde_json::from_str(json).expect("an order");
        assert!(order.is_terminal());
        assert_eq!(order.total.amount_minor, 4998);
        assert_eq!(order.items[0].unit_price.amount_minor, 2499);
        assert_eq!(order.items[0].line_total.amount_minor, 4998);
        assert_eq!(
            order.history[1].reason,
            Some(CancellationReason::PaymentDeclined)
        );
        // Serialised, it is the API's JSON again.
        let again: serde_json::Value = serde_json::to_value(&order).expect("serialisable");
        let original: serde_json::Value = serde_json::from_str(json).expect("JSON");
        assert_eq!(again["total"], original["total"]);
        assert_eq!(again["items"], original["items"]);
        assert_eq!(
            again["cancellation_reason"],
            original["cancellation_reason"]
        );
        assert_eq!(
            serde_json::from_value::<Order>(again).expect("an order"),
            order
        );
    }

    #[test]
    fn a_new_order_serialises_to_the_create_order_body() -> Result<(), Box<dyn std::error::Error>> {
        let order =
            NewOrder::new("usr_1".parse()?, "pm_visa_4242".parse()?).line("WIDGET-42".parse()?, 2);
        assert_eq!(
            serde_json::to_value(&order)?,
            serde_json::json!({"user_id": "usr_1", "payment_method": "pm_visa_4242",
                "items": [{"sku": "WIDGET-42", "quantity": 2}]})
        );
        Ok(())
    }
}
