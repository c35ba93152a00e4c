//! order-api's order routes as a client uses them, and the order as its API shows it: typed, so
//! that a test says `order.status == Status::Confirmed`, not `order["status"] == "confirmed"`.

use anyhow::{Context, Result, bail};
use events::{CancellationReason, Currency, Money, OrderId};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::eventually;

/// Where an order is in its saga, as `GET /api/orders/{id}` and the event stream name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted; payment not yet asked for.
    Pending,
    /// payment-svc asked the provider to charge.
    PaymentProcessing,
    /// Charged; stock is being reserved.
    PaymentConfirmed,
    /// Paid and reserved. Terminal.
    Confirmed,
    /// Ended without fulfilment. Terminal.
    Cancelled,
}

impl Status {
    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::PaymentProcessing => "payment_processing",
            Status::PaymentConfirmed => "payment_confirmed",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether the saga is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Confirmed | Status::Cancelled)
    }
}

/// One line of an order, with its prices in major units (`24.99`), as the API shows them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// The catalog price of one, in major units.
    pub unit_price: f64,
    /// `unit_price × quantity`, in major units.
    pub line_total: f64,
}

/// One transition of an order's history.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// Its place in the order's history, from 1.
    pub seq: i64,
    /// The status the order moved to.
    pub status: Status,
    /// When (RFC 3339).
    pub timestamp: String,
    /// Why it was cancelled, on the transition to `cancelled`.
    pub reason: Option<CancellationReason>,
    /// What caused it (an event id or `api`).
    pub cause: String,
}

/// The `data` of a `status_update` on an order's event stream: one transition of the order.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct StatusUpdate {
    /// The order that moved.
    pub order_id: OrderId,
    /// How it moved, as its history shows it (`seq` is also the event's `id`).
    pub transition: Transition,
}

impl TryFrom<Map<String, Value>> for StatusUpdate {
    type Error = serde_json::Error;

    fn try_from(mut fields: Map<String, Value>) -> Result<Self, Self::Error> {
        let order_id = fields
            .remove("order_id")
            .ok_or_else(|| serde::de::Error::missing_field("order_id"))?;
        Ok(Self {
            order_id: serde_json::from_value(order_id)?,
            transition: serde_json::from_value(Value::Object(fields))?,
        })
    }
}

/// An order as `GET /api/orders/{id}` shows it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct Order {
    /// The order (`ord_…`).
    pub id: OrderId,
    /// Who placed it.
    pub user_id: String,
    /// Where its saga is.
    pub status: Status,
    /// What was ordered, priced from the catalog.
    pub items: Vec<Line>,
    /// The total in minor units and its currency (`total_minor`, `currency`).
    pub total: Money,
    /// The total as people read it (`total`: `49.98`).
    pub total_major: f64,
    /// The payment method given with the order.
    pub payment_method: String,
    /// Why it was cancelled, once it is.
    pub cancellation_reason: Option<CancellationReason>,
    /// Every transition so far, oldest first.
    pub history: Vec<Transition>,
    /// The answer as it came: for failure messages, and for the fields a test checks as text
    /// (`created_at`, `updated_at`).
    pub json: Value,
}

impl Order {
    /// The statuses of its history, oldest first.
    pub fn statuses(&self) -> Vec<Status> {
        self.history.iter().map(|entry| entry.status).collect()
    }
}

/// The answer to an accepted `POST /api/orders` (`202`): where to follow the order.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The new order.
    pub order_id: OrderId,
    /// Always `pending`: nothing has happened yet.
    pub status: Status,
    /// Where to read it (also the `Location` header).
    pub status_url: String,
    /// Where to follow its transitions as they happen (Server-Sent Events).
    pub events_url: String,
}

/// The API's field names; [`Order`] gathers the total into [`Money`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    order_id: OrderId,
    user_id: String,
    status: Status,
    items: Vec<Line>,
    total: f64,
    total_minor: i64,
    currency: Currency,
    payment_method: String,
    cancellation_reason: Option<CancellationReason>,
    #[serde(rename = "created_at")]
    _created_at: String,
    #[serde(rename = "updated_at")]
    _updated_at: String,
    history: Vec<Transition>,
}

impl TryFrom<Value> for Order {
    type Error = serde_json::Error;

    fn try_from(json: Value) -> Result<Self, Self::Error> {
        let answer = Answer::deserialize(&json)?;
        Ok(Self {
            id: answer.order_id,
            user_id: answer.user_id,
            status: answer.status,
            items: answer.items,
            total: Money::new(answer.total_minor, answer.currency),
            total_major: answer.total,
            payment_method: answer.payment_method,
            cancellation_reason: answer.cancellation_reason,
            history: answer.history,
            json,
        })
    }
}

impl std::fmt::Display for Order {
    /// The answer as it came, which says more in a failure message than the view.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.json.fmt(f)
    }
}

/// The body of `response`, which must have status `expected`, as `T`; errors name `what` and
/// show the body.
pub(crate) async fn expect_json<T: DeserializeOwned>(
    response: reqwest::Response,
    expected: reqwest::StatusCode,
    what: &str,
) -> Result<T> {
    let status = response.status();
    let body = response.text().await?;
    if status != expected {
        bail!("{what}: {status} {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("{what}: {body}"))
}

/// order-api's order routes, as a client uses them: the same for a [`crate::Stack`] and a
/// [`crate::ShopUp`].
#[derive(Clone, Debug)]
pub struct Orders {
    http: reqwest::Client,
    /// order-api's base URL (`http://127.0.0.1:PORT`).
    base: String,
}

impl Orders {
    /// The routes of the order-api at `base`, called with `http`.
    pub fn new(http: &reqwest::Client, base: String) -> Self {
        Self {
            http: http.clone(),
            base,
        }
    }

    /// Places an order that must be accepted; returns its id.
    pub async fn place_order(
        &self,
        sku: &str,
        quantity: u32,
        payment_method: &str,
    ) -> Result<String> {
        let body = json!({
            "user_id": "usr_test",
            "items": [{"sku": sku, "quantity": quantity}],
            "payment_method": payment_method,
        });
        let response = self
            .http
            .post(format!("{}/api/orders", self.base))
            .json(&body)
            .send()
            .await?;
        let accepted: Accepted =
            expect_json(response, reqwest::StatusCode::ACCEPTED, "placing an order").await?;
        Ok(accepted.order_id.to_string())
    }

    /// `GET /api/orders/{id}`, which must find the order.
    pub async fn order(&self, order_id: &str) -> Result<Order> {
        let response = self
            .http
            .get(format!("{}/api/orders/{order_id}", self.base))
            .send()
            .await?;
        expect_json(
            response,
            reqwest::StatusCode::OK,
            &format!("order {order_id}"),
        )
        .await
    }

    /// Polls the order until its status is terminal (`confirmed` / `cancelled`).
    pub async fn wait_terminal(&self, order_id: &str) -> Result<Order> {
        self.wait_order(order_id, |order| order.status.is_terminal())
            .await
    }

    /// Polls the order until `done` holds, failing after [`crate::DEADLINE`].
    pub async fn wait_order(&self, order_id: &str, done: impl Fn(&Order) -> bool) -> Result<Order> {
        eventually(|| async {
            // Connection errors are expected while order-api restarts.
            match self.order(order_id).await {
                Ok(order) if done(&order) => Ok(order),
                Ok(order) => Err(format!(
                    "order {order_id} did not reach the expected state; last seen: {order}"
                )),
                Err(error) => Err(format!("{error:#}")),
            }
        })
        .await
    }
}
