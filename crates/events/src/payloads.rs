//! Event types and their payloads. Names are past tense: each states a fact that happened.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{EventError, Money, OrderId, PaymentMethod, Sku, Topic, UserId};

/// A SKU and how many of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    /// What is ordered.
    pub sku: Sku,
    /// How many; at least 1.
    pub quantity: u32,
}

/// A line of an order with the price it was sold at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricedLineItem {
    /// What is ordered.
    pub sku: Sku,
    /// How many; at least 1.
    pub quantity: u32,
    /// The catalog price of one unit when the order was placed.
    pub unit_price: Money,
}

/// An order was accepted and its saga begins. Carries everything the participants need, so
/// that none of them has to call back into order-api.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderCreated {
    /// The order.
    pub order_id: OrderId,
    /// Who placed it.
    pub user_id: UserId,
    /// The priced lines.
    pub items: Vec<PricedLineItem>,
    /// Sum of the lines.
    pub total: Money,
    /// How the customer pays.
    pub payment_method: PaymentMethod,
    /// When order-api accepted it.
    pub created_at: DateTime<Utc>,
}

/// payment-svc asked the payment provider to charge the order; the outcome comes later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentInitiated {
    /// The order being paid.
    pub order_id: OrderId,
    /// The amount asked for.
    pub amount: Money,
}

/// The provider charged the customer.
///
/// Carries the order lines so that inventory-svc can reserve without having seen
/// `order.created` first: events on different topics may arrive in any order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentCompleted {
    /// The order paid for.
    pub order_id: OrderId,
    /// The provider's id of the charge.
    pub payment_id: String,
    /// The amount charged.
    pub amount: Money,
    /// What was paid for.
    pub items: Vec<LineItem>,
}

/// Why a charge did not go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentFailureReason {
    /// The issuer declined the card.
    Declined,
    /// Not enough funds.
    InsufficientFunds,
    /// The provider does not know the payment method.
    InvalidPaymentMethod,
}

/// The charge failed; nothing was taken from the customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentFailed {
    /// The order whose payment failed.
    pub order_id: OrderId,
    /// Machine-readable reason.
    pub reason: PaymentFailureReason,
    /// The provider's explanation, for humans.
    pub detail: String,
}

/// Why a saga ended in `cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    /// The payment was declined or failed.
    PaymentDeclined,
    /// Stock could not be reserved after payment; the payment is refunded.
    OutOfStock,
    /// The saga passed its deadline; whatever was done is compensated.
    Timeout,
}

impl CancellationReason {
    /// Every reason.
    pub const ALL: [Self; 3] = [Self::PaymentDeclined, Self::OutOfStock, Self::Timeout];

    /// The reason as it appears in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CancellationReason::PaymentDeclined => "payment_declined",
            CancellationReason::OutOfStock => "out_of_stock",
            CancellationReason::Timeout => "timeout",
        }
    }

    /// The reason with this text form, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

/// A completed charge was given back to the customer (compensation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRefunded {
    /// The order refunded.
    pub order_id: OrderId,
    /// The provider's id of the original charge.
    pub payment_id: String,
    /// The provider's id of the refund.
    pub refund_id: String,
    /// The amount given back.
    pub amount: Money,
    /// Why the saga is being compensated.
    pub reason: CancellationReason,
}

/// Stock for every line of the order is set aside.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockReserved {
    /// The order.
    pub order_id: OrderId,
    /// What was reserved.
    pub items: Vec<LineItem>,
}

/// Why stock could not be reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockRejectionReason {
    /// At least one SKU has fewer units available than ordered.
    OutOfStock,
    /// At least one SKU is not stocked at all.
    UnknownSku,
}

/// One SKU that could not be reserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockShortage {
    /// The SKU.
    pub sku: Sku,
    /// How many the order asked for.
    pub requested: u32,
    /// How many were available.
    pub available: u32,
}

/// Nothing was reserved (all or nothing): the order cannot be fulfilled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockRejected {
    /// The order.
    pub order_id: OrderId,
    /// Machine-readable reason.
    pub reason: StockRejectionReason,
    /// The lines that fell short.
    pub shortages: Vec<StockShortage>,
}

/// A reservation was given back because its order was cancelled (compensation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockReleased {
    /// The order.
    pub order_id: OrderId,
    /// What went back to stock.
    pub items: Vec<LineItem>,
    /// Why the order was cancelled.
    pub reason: CancellationReason,
}

/// The saga ended well: paid and reserved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: OrderId,
    /// What the customer paid.
    pub total: Money,
}

/// The saga ended in cancellation; any compensation has already happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: OrderId,
    /// Why.
    pub reason: CancellationReason,
}

/// Declares [`EventKind`] and [`Event`] from one table, so that the type name, the topic and the
/// payload of an event type are written down exactly once.
macro_rules! events {
    ($($variant:ident($payload:ident) => $type_name:literal on $topic:ident;)+) => {
        /// The kind of an event, without its payload.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $(
                #[doc = concat!("`", $type_name, "`")]
                $variant,
            )+
        }

        impl EventKind {
            /// Every event kind.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),+];

            /// The CloudEvents `type`, versioned: a breaking change gets a new type.
            pub fn type_name(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $type_name,)+
                }
            }

            /// The topic events of this kind are published on.
            pub fn topic(self) -> Topic {
                match self {
                    $(EventKind::$variant => Topic::$topic,)+
                }
            }

            /// The kind with this CloudEvents `type`, if known.
            pub fn from_type_name(name: &str) -> Option<EventKind> {
                match name {
                    $($type_name => Some(EventKind::$variant),)+
                    _ => None,
                }
            }
        }

        /// An event with its payload.
        #[derive(Clone, Debug, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Event {
            $(
                #[doc = concat!("`", $type_name, "`")]
                $variant($payload),
            )+
        }

        impl Event {
            /// The kind of this event.
            pub fn kind(&self) -> EventKind {
                match self {
                    $(Event::$variant(_) => EventKind::$variant,)+
                }
            }

            /// The order (saga) this event belongs to.
            pub fn order_id(&self) -> OrderId {
                match self {
                    $(Event::$variant(payload) => payload.order_id,)+
                }
            }

            /// Decodes `data` as the payload of `kind`.
            pub(crate) fn decode_data(kind: EventKind, data: &RawValue) -> Result<Event, EventError> {
                let invalid = |source| EventError::InvalidData { event_type: kind.type_name(), source };
                match kind {
                    $(EventKind::$variant => serde_json::from_str(data.get()).map(Event::$variant).map_err(invalid),)+
                }
            }
        }

        $(
            impl From<$payload> for Event {
                fn from(payload: $payload) -> Event {
                    Event::$variant(payload)
                }
            }
        )+
    };
}

events! {
    OrderCreated(OrderCreated) => "shop.order.created.v1" on Orders;
    OrderConfirmed(OrderConfirmed) => "shop.order.confirmed.v1" on Orders;
    OrderCancelled(OrderCancelled) => "shop.order.cancelled.v1" on Orders;
    PaymentInitiated(PaymentInitiated) => "shop.payment.initiated.v1" on Payments;
    PaymentCompleted(PaymentCompleted) => "shop.payment.completed.v1" on Payments;
    PaymentFailed(PaymentFailed) => "shop.payment.failed.v1" on Payments;
    PaymentRefunded(PaymentRefunded) => "shop.payment.refunded.v1" on Payments;
    StockReserved(StockReserved) => "shop.stock.reserved.v1" on Inventory;
    StockRejected(StockRejected) => "shop.stock.rejected.v1" on Inventory;
    StockReleased(StockReleased) => "shop.stock.released.v1" on Inventory;
}

impl EventKind {
    /// The short name used in logs, metrics and schema file names, e.g. `payment.completed`.
    pub fn short_name(self) -> &'static str {
        let name = self.type_name();
        let name = name.strip_prefix("shop.").unwrap_or(name);
        name.strip_suffix(".v1").unwrap_or(name)
    }
}
