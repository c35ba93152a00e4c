//! The invariants of a run, checked from each service's own database (and the `payments`
//! topic) once it has settled: shared by the tests that put the saga under stress (the chaos
//! test, the scale-out test).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result, bail};

use events::CancellationReason;

use saga_tests::{PaymentStatus, RefundStatus, ServiceKind, Stack, Status, Stock, StoredOrder};

/// The books, from each service's own database. Fails (to be retried until the run settles)
/// while any invariant does not hold yet; returns a printable report once all do.
pub(crate) fn check_invariants(stack: &Stack, accepted: &[String]) -> Result<String> {
    // Every accepted order is confirmed or cancelled; none is stuck.
    let status: HashMap<String, StoredOrder> = stack
        .all_orders()?
        .into_iter()
        .map(|order| (order.order_id.clone(), order))
        .collect();
    for id in accepted {
        let order = status
            .get(id)
            .with_context(|| format!("accepted order {id} is missing"))?;
        if !order.status.is_terminal() {
            bail!("order {id} is still {}", order.status.as_str());
        }
    }
    if let Some(order) = status.values().find(|order| !order.status.is_terminal()) {
        bail!(
            "order {} is still {}",
            order.order_id,
            order.status.as_str()
        );
    }
    for (kind, name) in [
        (ServiceKind::OrderApi, "order-api"),
        (ServiceKind::Payment, "payment-svc"),
        (ServiceKind::Inventory, "inventory-svc"),
    ] {
        let backlog = stack.rows_in(kind, "outbox")?;
        if backlog > 0 {
            bail!("{name} still has {backlog} unpublished events");
        }
    }

    // Charges and refunds: at most one of each per order, refunds exactly for charged
    // cancellations, and the money adds up.
    let mut charged: HashMap<String, i64> = HashMap::new();
    for (id, payment) in stack.all_payments()? {
        match payment.status {
            PaymentStatus::Failed => {}
            PaymentStatus::Charging | PaymentStatus::Refunding => {
                bail!("payment of {id} is still {:?}", payment.status)
            }
            PaymentStatus::Charged | PaymentStatus::Refunded => {
                charged.insert(id, payment.amount_minor);
            }
        }
    }
    let mut refunded: HashMap<String, i64> = HashMap::new();
    for (id, refund) in stack.all_refunds()? {
        if refund.status != RefundStatus::Refunded {
            bail!("refund of {id} is still {:?}", refund.status);
        }
        refunded.insert(id, refund.amount_minor);
    }
    let mut confirmed_total = 0;
    let mut by_outcome: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, order) in &status {
        let outcome = order
            .cancellation_reason
            .map_or(order.status.as_str(), CancellationReason::as_str);
        *by_outcome.entry(outcome).or_default() += 1;
        match (
            order.status,
            charged.contains_key(id),
            refunded.contains_key(id),
        ) {
            (Status::Confirmed, true, false) => confirmed_total += order.total_minor,
            (Status::Confirmed, charged, refunded) => {
                bail!("confirmed order {id}: charged {charged}, refunded {refunded}")
            }
            (Status::Cancelled, true, false) => {
                bail!("cancelled order {id} was charged and not refunded")
            }
            (Status::Cancelled, false, true) => bail!("order {id} refunded without a charge"),
            _ => {}
        }
    }
    let charges: i64 = charged.values().sum();
    let refunds: i64 = refunded.values().sum();
    if charges - refunds != confirmed_total {
        bail!("charges {charges} - refunds {refunds} != confirmed totals {confirmed_total}");
    }

    // Stock: never negative, nothing lost, and held exactly by confirmed orders.
    let mut stock_lines = Vec::new();
    for (sku, stock) in stack.all_stock()? {
        let Stock {
            available,
            reserved,
            initial,
        } = stock;
        if available < 0 || available + reserved != initial {
            bail!("{sku}: available {available} + reserved {reserved} != initial {initial}");
        }
        let held = stack.held_by_reservations(&sku)?;
        if held != reserved {
            bail!("{sku}: reserved {reserved} but reservations hold {held}");
        }
        stock_lines.push(format!("{sku} {available}+{reserved}={initial}"));
    }
    let holding = stack.reserved_orders()?;
    let confirmed: HashSet<String> = status
        .iter()
        .filter(|(_, order)| order.status == Status::Confirmed)
        .map(|(id, _)| id.clone())
        .collect();
    if holding != confirmed {
        let extra: Vec<_> = holding.difference(&confirmed).take(3).collect();
        let missing: Vec<_> = confirmed.difference(&holding).take(3).collect();
        bail!(
            "reservations do not match confirmed orders: held but not confirmed {extra:?}, confirmed but not held {missing:?}"
        );
    }

    // At most one charge announced per order, whatever was redelivered (the test's own
    // duplicates are copies of one event: same event id).
    // Each message is parsed once: the topic holds several events per order.
    let mut completed: HashMap<String, HashSet<String>> = HashMap::new();
    for message in stack.kafka()?.read_all("payments")? {
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&message.payload) else {
            continue;
        };
        if doc["type"] != "shop.payment.completed.v1" {
            continue;
        }
        if let (Some(order_id), Some(event_id)) = (doc["subject"].as_str(), doc["id"].as_str()) {
            completed
                .entry(order_id.to_owned())
                .or_default()
                .insert(event_id.to_owned());
        }
    }
    for id in accepted {
        let events = completed.get(id).map_or(0, HashSet::len);
        if events > 1 {
            bail!("{id}: {events} distinct payment.completed events");
        }
    }
    if by_outcome.get("confirmed").copied().unwrap_or(0) == 0 || by_outcome.len() < 3 {
        bail!(
            "the mix did not produce confirmed and several kinds of cancelled orders: {by_outcome:?}"
        );
    }

    Ok(format!(
        "invariants:\n  orders: {} accepted, outcomes {by_outcome:?}\n  money: charged {charges}, refunded {refunds}, confirmed totals {confirmed_total} (minor units)\n  charges per order <= 1, refunds per order <= 1, every charged cancellation refunded\n  stock (available+reserved=initial): {}\n  reservations held exactly by the {} confirmed orders",
        accepted.len(),
        stock_lines.join(", "),
        confirmed.len(),
    ))
}
