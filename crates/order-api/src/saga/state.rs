//! The order state machine: which statuses exist, which transitions are allowed, and what each
//! reply event does to an order. Pure functions, no I/O — the coordinator applies the decision.
//!
//! ```text
//! pending ─► payment_processing ─► payment_confirmed ─► confirmed
//!    │               │                     │
//!    └───────────────┴─────────────────────┴──────────► cancelled (reason)
//! ```
//!
//! Replies come from two topics (`payments`, `inventory`), and Kafka orders messages only within
//! a partition of one topic. So `stock.reserved` can reach order-api before the
//! `payment.completed` that caused it. Such an event is proof of the steps before it (inventory
//! reserves only after payment), so the decision fills those steps in; the late event then finds
//! the order already past it and is ignored.

use std::fmt;

use events::{CancellationReason, Event};

/// Where an order is in its saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Accepted; `order.created` is on its way to payment-svc.
    Pending,
    /// payment-svc asked the provider to charge.
    PaymentProcessing,
    /// The customer was charged; stock is being reserved.
    PaymentConfirmed,
    /// Paid and reserved. Terminal.
    Confirmed,
    /// Ended without fulfilment; see the reason. Terminal.
    Cancelled,
}

impl OrderStatus {
    /// Every status, in saga order.
    pub const ALL: [Self; 5] = [
        OrderStatus::Pending,
        OrderStatus::PaymentProcessing,
        OrderStatus::PaymentConfirmed,
        OrderStatus::Confirmed,
        OrderStatus::Cancelled,
    ];

    /// The status as it appears in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::PaymentProcessing => "payment_processing",
            OrderStatus::PaymentConfirmed => "payment_confirmed",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// The status with this text form.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether the saga is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Confirmed | OrderStatus::Cancelled)
    }

    /// The next status on the happy path, if any.
    fn next(self) -> Option<Self> {
        match self {
            OrderStatus::Pending => Some(OrderStatus::PaymentProcessing),
            OrderStatus::PaymentProcessing => Some(OrderStatus::PaymentConfirmed),
            OrderStatus::PaymentConfirmed => Some(OrderStatus::Confirmed),
            OrderStatus::Confirmed | OrderStatus::Cancelled => None,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The allowed transitions, and nothing else.
pub fn can_transition(from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus::*;
    matches!(
        (from, to),
        (Pending, PaymentProcessing)
            | (PaymentProcessing, PaymentConfirmed)
            | (PaymentConfirmed, Confirmed)
            | (Pending | PaymentProcessing | PaymentConfirmed, Cancelled)
    )
}

/// One step an order takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The new status.
    pub status: OrderStatus,
    /// Why, when the new status is `cancelled`.
    pub reason: Option<CancellationReason>,
}

/// What to do with a reply event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Take these steps, in order (more than one when the event proves missed steps).
    Advance(Vec<Step>),
    /// Record the event, change nothing: the saga waits for compensation to finish.
    Wait,
    /// Nothing to do; the text says why, for the log.
    Ignore(&'static str),
}

/// Decides what `event` does to an order in `current` status.
pub fn decide(current: OrderStatus, event: &Event) -> Decision {
    use OrderStatus::*;
    match event {
        Event::PaymentInitiated(_) => advance_to(current, PaymentProcessing, None),
        Event::PaymentCompleted(_) => advance_to(current, PaymentConfirmed, None),
        Event::StockReserved(_) => advance_to(current, Confirmed, None),
        Event::PaymentFailed(_) => match current {
            Pending | PaymentProcessing => cancel(CancellationReason::PaymentDeclined),
            PaymentConfirmed => Decision::Ignore("payment failed after it had completed"),
            Confirmed | Cancelled => Decision::Ignore("the saga has already ended"),
        },
        // Nothing was reserved; payment-svc refunds, and `payment.refunded` ends the saga.
        Event::StockRejected(_) => match advance_to(current, PaymentConfirmed, None) {
            Decision::Ignore(_) if current == PaymentConfirmed => Decision::Wait,
            decision => decision,
        },
        Event::PaymentRefunded(refund) => match current {
            Confirmed => Decision::Ignore("a confirmed order was refunded"),
            Cancelled => Decision::Ignore("the saga has already ended"),
            // The refund proves the payment completed first.
            _ => {
                let mut steps = match advance_to(current, PaymentConfirmed, None) {
                    Decision::Advance(steps) => steps,
                    _ => Vec::new(),
                };
                steps.push(Step {
                    status: Cancelled,
                    reason: Some(refund.reason),
                });
                Decision::Advance(steps)
            }
        },
        // Compensation after the saga ended; the order already says `cancelled`.
        Event::StockReleased(_) => Decision::Ignore("stock released for a cancelled order"),
        Event::OrderCreated(_) | Event::OrderConfirmed(_) | Event::OrderCancelled(_) => {
            Decision::Ignore("order-api's own events are not replies")
        }
    }
}

/// The happy-path steps from `current` up to `target`, or `Ignore` if the order is already
/// there or past it.
fn advance_to(
    current: OrderStatus,
    target: OrderStatus,
    reason: Option<CancellationReason>,
) -> Decision {
    if current.is_terminal() {
        return Decision::Ignore("the saga has already ended");
    }
    let mut steps = Vec::new();
    let mut at = current;
    while at != target {
        match at.next() {
            Some(next) if can_transition(at, next) => {
                steps.push(Step {
                    status: next,
                    reason,
                });
                at = next;
            }
            _ => return Decision::Ignore("the order is already past this step"),
        }
    }
    if steps.is_empty() {
        Decision::Ignore("the order is already at this step")
    } else {
        Decision::Advance(steps)
    }
}

fn cancel(reason: CancellationReason) -> Decision {
    Decision::Advance(vec![Step {
        status: OrderStatus::Cancelled,
        reason: Some(reason),
    }])
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;
    use events::{
        Currency, Money, OrderId, PaymentCompleted, PaymentFailed, PaymentFailureReason,
        PaymentInitiated, PaymentRefunded, StockRejected, StockRejectionReason, StockReserved,
    };

    fn statuses(decision: Decision) -> Vec<OrderStatus> {
        match decision {
            Decision::Advance(steps) => steps.into_iter().map(|step| step.status).collect(),
            _ => Vec::new(),
        }
    }

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::USD)
    }

    fn initiated() -> Event {
        PaymentInitiated {
            order_id: OrderId::new(),
            amount: usd(100),
        }
        .into()
    }
    fn completed() -> Event {
        PaymentCompleted {
            order_id: OrderId::new(),
            payment_id: "ch_1".into(),
            amount: usd(100),
            items: vec![],
        }
        .into()
    }
    fn failed() -> Event {
        PaymentFailed {
            order_id: OrderId::new(),
            reason: PaymentFailureReason::Declined,
            detail: String::new(),
        }
        .into()
    }
    fn reserved() -> Event {
        StockReserved {
            order_id: OrderId::new(),
            items: vec![],
        }
        .into()
    }
    fn rejected() -> Event {
        StockRejected {
            order_id: OrderId::new(),
            reason: StockRejectionReason::OutOfStock,
            shortages: vec![],
        }
        .into()
    }
    fn refunded() -> Event {
        PaymentRefunded {
            order_id: OrderId::new(),
            payment_id: "ch_1".into(),
            refund_id: "re_1".into(),
            amount: usd(100),
            reason: CancellationReason::OutOfStock,
        }
        .into()
    }

    #[test]
    fn happy_path_in_order() {
        assert_eq!(statuses(decide(Pending, &initiated())), [PaymentProcessing]);
        assert_eq!(
            statuses(decide(PaymentProcessing, &completed())),
            [PaymentConfirmed]
        );
        assert_eq!(statuses(decide(PaymentConfirmed, &reserved())), [Confirmed]);
    }

    #[test]
    fn an_early_reply_fills_in_the_steps_it_proves() {
        assert_eq!(
            statuses(decide(PaymentProcessing, &reserved())),
            [PaymentConfirmed, Confirmed]
        );
        // …and the late `payment.completed` is then ignored.
        assert!(matches!(
            decide(Confirmed, &completed()),
            Decision::Ignore(_)
        ));
    }

    #[test]
    fn declined_payment_cancels() {
        let Decision::Advance(steps) = decide(PaymentProcessing, &failed()) else {
            panic!("expected a cancellation");
        };
        assert_eq!(
            steps,
            [Step {
                status: Cancelled,
                reason: Some(CancellationReason::PaymentDeclined)
            }]
        );
    }

    #[test]
    fn out_of_stock_waits_for_the_refund_then_cancels() {
        assert_eq!(decide(PaymentConfirmed, &rejected()), Decision::Wait);
        let Decision::Advance(steps) = decide(PaymentConfirmed, &refunded()) else {
            panic!("expected a cancellation");
        };
        assert_eq!(
            steps,
            [Step {
                status: Cancelled,
                reason: Some(CancellationReason::OutOfStock)
            }]
        );
    }

    #[test]
    fn duplicates_and_contradictions_are_ignored() {
        assert!(matches!(
            decide(PaymentProcessing, &initiated()),
            Decision::Ignore(_)
        ));
        assert!(matches!(
            decide(PaymentConfirmed, &failed()),
            Decision::Ignore(_)
        ));
        assert!(matches!(
            decide(Confirmed, &refunded()),
            Decision::Ignore(_)
        ));
        assert!(matches!(
            decide(Cancelled, &reserved()),
            Decision::Ignore(_)
        ));
    }

    #[test]
    fn every_advance_uses_allowed_transitions_only() {
        let all = [
            Pending,
            PaymentProcessing,
            PaymentConfirmed,
            Confirmed,
            Cancelled,
        ];
        let events = [
            initiated(),
            completed(),
            failed(),
            reserved(),
            rejected(),
            refunded(),
        ];
        for from in all {
            for event in &events {
                if let Decision::Advance(steps) = decide(from, event) {
                    let mut at = from;
                    for step in steps {
                        assert!(
                            can_transition(at, step.status),
                            "{at} -> {} on {:?}",
                            step.status,
                            event.kind()
                        );
                        at = step.status;
                    }
                }
            }
        }
    }
}
