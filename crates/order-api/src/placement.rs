//! Placing an order, the domain step of `POST /api/orders`: check the request, price it from
//! the catalog, and build the order with its `order.created` event — no HTTP and no database,
//! so every rule is tested on its own. `api::create_order` stores the result and answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use events::{
    Catalog, Envelope, Money, OrderCreated, OrderId, PaymentMethod, PricedLineItem, Sku, UserId,
};

use crate::saga::SOURCE;

/// Most lines in one order.
const MAX_LINES: usize = 100;
/// Most units of one line.
const MAX_QUANTITY: i64 = 1000;

/// An order as a client asks for it (the body of `POST /api/orders`). Unknown fields are
/// rejected so that typos do not pass silently.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderRequest {
    pub(crate) user_id: UserId,
    pub(crate) items: Vec<RequestedLine>,
    pub(crate) payment_method: PaymentMethod,
    /// Where to announce the saga's end (signed webhook), if the client wants that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) callback_url: Option<String>,
}

/// A requested line. The quantity is a plain integer here so that 0 or -1 get a clear message
/// rather than a type error.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestedLine {
    pub(crate) sku: Sku,
    pub(crate) quantity: i64,
}

/// Why a request cannot become an order; the text tells the client which field to fix.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidOrder(pub(crate) String);

/// A checked and priced order, ready to be stored with its event.
#[derive(Debug)]
pub(crate) struct Placement {
    /// The new order's id.
    pub(crate) order_id: OrderId,
    /// The priced lines, in the request's order.
    pub(crate) items: Vec<PricedLineItem>,
    /// The sum of the lines, in the catalog's currency.
    pub(crate) total: Money,
    /// `order.created`, which starts the saga once the outbox publishes it.
    pub(crate) created: Envelope,
}

/// Checks `request` against the catalog and builds the order it places, accepted at `now`.
pub(crate) fn place(
    catalog: &Catalog,
    request: &OrderRequest,
    now: DateTime<Utc>,
) -> Result<Placement, InvalidOrder> {
    let (items, total) = price(catalog, &request.items)?;
    let order_id = OrderId::new();
    let event = OrderCreated {
        order_id,
        user_id: request.user_id.clone(),
        items: items.clone(),
        total,
        payment_method: request.payment_method.clone(),
        created_at: now,
    };
    Ok(Placement {
        order_id,
        items,
        total,
        created: Envelope::new(SOURCE, event, None),
    })
}

/// Checks every line against the catalog and prices it.
fn price(
    catalog: &Catalog,
    lines: &[RequestedLine],
) -> Result<(Vec<PricedLineItem>, Money), InvalidOrder> {
    if lines.is_empty() {
        return Err(InvalidOrder(
            "`items` must contain at least one line.".into(),
        ));
    }
    if lines.len() > MAX_LINES {
        return Err(InvalidOrder(format!(
            "`items` may contain at most {MAX_LINES} lines."
        )));
    }
    let mut priced: Vec<PricedLineItem> = Vec::with_capacity(lines.len());
    let mut total = Money::zero(catalog.currency);
    for (index, line) in lines.iter().enumerate() {
        let quantity = u32::try_from(line.quantity)
            .ok()
            .filter(|quantity| (1..=MAX_QUANTITY).contains(&i64::from(*quantity)))
            .ok_or_else(|| {
                InvalidOrder(format!(
                    "items[{index}].quantity must be between 1 and {MAX_QUANTITY}, got {}.",
                    line.quantity
                ))
            })?;
        if priced.iter().any(|item| item.sku == line.sku) {
            return Err(InvalidOrder(format!(
                "items[{index}].sku {} is listed twice; put the total quantity on one line.",
                line.sku
            )));
        }
        let product = catalog.get(&line.sku).ok_or_else(|| {
            InvalidOrder(format!(
                "items[{index}].sku {} is not in the catalog.",
                line.sku
            ))
        })?;
        total = product
            .unit_price
            .checked_mul(quantity)
            .and_then(|amount| total.checked_add(amount))
            .map_err(|error| InvalidOrder(error.to_string()))?;
        priced.push(PricedLineItem {
            sku: line.sku.clone(),
            quantity,
            unit_price: product.unit_price,
        });
    }
    Ok((priced, total))
}

#[cfg(test)]
mod tests {
    use events::{Currency, Event};

    use super::*;

    fn catalog() -> Catalog {
        Catalog::parse(
            r#"{"currency": "USD", "products": [
                {"sku": "MUG", "name": "Mug", "unit_price": "12.50", "initial_stock": 10},
                {"sku": "TEE", "name": "Tee", "unit_price": "20.00", "initial_stock": 10}
            ]}"#,
        )
        .expect("a valid catalog")
    }

    fn request(lines: &[(&str, i64)]) -> OrderRequest {
        OrderRequest {
            user_id: UserId::parse("u-1").expect("a valid user id"),
            items: lines
                .iter()
                .map(|(sku, quantity)| RequestedLine {
                    sku: Sku::parse(*sku).expect("a valid sku"),
                    quantity: *quantity,
                })
                .collect(),
            payment_method: PaymentMethod::parse("pm_card").expect("a valid payment method"),
            callback_url: None,
        }
    }

    #[test]
    fn an_order_is_priced_from_the_catalog_and_announced_as_created() {
        let now = Utc::now();
        let placement =
            place(&catalog(), &request(&[("MUG", 2), ("TEE", 1)]), now).expect("a valid order");
        assert_eq!(placement.total, Money::new(4500, Currency::USD));
        let quantities: Vec<u32> = placement.items.iter().map(|item| item.quantity).collect();
        assert_eq!(quantities, [2, 1]);
        let Event::OrderCreated(created) = &placement.created.event else {
            panic!("expected order.created, got {:?}", placement.created.kind());
        };
        assert_eq!(created.order_id, placement.order_id);
        assert_eq!(created.total, placement.total);
        assert_eq!(created.items, placement.items);
        assert_eq!(created.created_at, now);
    }

    #[test]
    fn invalid_lines_are_refused_with_the_field_to_fix() {
        let too_many: Vec<(&str, i64)> = vec![("MUG", 1); MAX_LINES + 1];
        for (lines, says) in [
            (&[][..], "at least one line"),
            (&too_many[..], "at most 100 lines"),
            (
                &[("MUG", 0)][..],
                "items[0].quantity must be between 1 and 1000, got 0",
            ),
            (&[("MUG", -1)][..], "got -1"),
            (&[("MUG", 1001)][..], "got 1001"),
            (
                &[("MUG", 1), ("MUG", 2)][..],
                "items[1].sku MUG is listed twice",
            ),
            (
                &[("MUG", 1), ("HAT", 1)][..],
                "items[1].sku HAT is not in the catalog",
            ),
        ] {
            let refused = place(&catalog(), &request(lines), Utc::now());
            let detail = refused.map(|_| ()).expect_err("an invalid order").0;
            assert!(detail.contains(says), "{detail:?} should say {says:?}");
        }
    }
}
