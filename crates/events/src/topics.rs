//! Topic names. Topics are named by the producing domain; each has a dead-letter twin.

use std::fmt;

/// A topic of the saga. Every saga event is keyed by its order id, so one order's events stay
/// in one partition and are seen in the order they were written.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Topic {
    /// Events produced by order-api: `order.created`, `order.confirmed`, `order.cancelled`.
    Orders,
    /// Events produced by payment-svc.
    Payments,
    /// Events produced by inventory-svc.
    Inventory,
}

impl Topic {
    /// Every saga topic.
    pub const ALL: [Topic; 3] = [Topic::Orders, Topic::Payments, Topic::Inventory];

    /// The Kafka topic name.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Orders => "orders",
            Topic::Payments => "payments",
            Topic::Inventory => "inventory",
        }
    }

    /// Where messages of this topic that cannot be processed are parked, with the reason.
    pub fn dead_letter_name(self) -> &'static str {
        match self {
            Topic::Orders => "orders.dlq",
            Topic::Payments => "payments.dlq",
            Topic::Inventory => "inventory.dlq",
        }
    }

    /// The saga topic with this Kafka name, if any.
    pub fn from_name(name: &str) -> Option<Topic> {
        Self::ALL.into_iter().find(|topic| topic.name() == name)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
