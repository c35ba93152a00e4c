//! Sample events for tests and benchmarks (with the `test-util` feature): one place that
//! knows how to make a valid event, so that a change to a payload changes one fixture.

use chrono::Utc;

use crate::{
    Currency, Envelope, Money, OrderCreated, OrderId, PaymentMethod, PricedLineItem, Sku, UserId,
};

/// An `order.created` for `order_id`: one `WIDGET-42` at `unit_price` minor units of USD, paid
/// with the card that always succeeds.
///
/// # Panics
/// Never: its identifiers are valid literals.
pub fn order_created(order_id: OrderId, unit_price: i64) -> OrderCreated {
    let unit_price = Money::new(unit_price, Currency::USD);
    OrderCreated {
        order_id,
        user_id: UserId::parse("usr_test").expect("a valid user id"),
        items: vec![PricedLineItem {
            sku: Sku::parse("WIDGET-42").expect("a valid sku"),
            quantity: 1,
            unit_price,
        }],
        total: unit_price,
        payment_method: PaymentMethod::parse("pm_visa_4242").expect("a valid payment method"),
        created_at: Utc::now(),
    }
}

/// [`order_created`] in its envelope, from the source `/shop/test`.
pub fn order_created_envelope(order_id: OrderId, unit_price: i64) -> Envelope {
    Envelope::new("/shop/test", order_created(order_id, unit_price), None)
}
