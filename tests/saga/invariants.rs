//! The invariants of a run, checked from each service's own database (and the `payments`
//! topic) once it has settled: shared by the tests that put the saga under stress (the chaos
//! test, the scale-out test).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result, bail};

use saga_tests::{ServiceKind, Stack, is_event};

/// The books, from each service's own database. Fails (to be retried until the run settles)
/// while any invariant does not hold yet; returns a printable report once all do.
pub(crate) fn check_invariants(stack: &Stack, accepted: &[String]) -> Result<String> {
    // Every accepted order is confirmed or cancelled; none is stuck.
    let orders: Vec<(String, String, Option<String>, i64)> =
        stack.with_db(ServiceKind::OrderApi, |conn| {
            Ok(conn.query_map(
                "SELECT order_id, status, cancellation_reason, total_minor FROM orders",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?)
        })?;
    let status: HashMap<String, (String, Option<String>, i64)> = orders
        .into_iter()
        .map(|(id, s, reason, total)| (id, (s, reason, total)))
        .collect();
    for id in accepted {
        let (s, _, _) = status
            .get(id)
            .with_context(|| format!("accepted order {id} is missing"))?;
        if s != "confirmed" && s != "cancelled" {
            bail!("order {id} is still {s}");
        }
    }
    if let Some((id, (s, _, _))) = status
        .iter()
        .find(|(_, (s, _, _))| s != "confirmed" && s != "cancelled")
    {
        bail!("order {id} is still {s}");
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
    let (payments, refunds) = stack.with_db(ServiceKind::Payment, |conn| {
        let rows = |sql: &str| -> Result<Vec<(String, i64, String)>> {
            Ok(conn.query_map(sql, &[], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
        };
        Ok((
            rows("SELECT order_id, amount_minor, status FROM payments WHERE status IN ('charging', 'charged', 'refunding', 'refunded')")?,
            rows("SELECT order_id, amount_minor, status FROM refunds")?,
        ))
    })?;
    let mut charged: HashMap<String, i64> = HashMap::new();
    for (id, amount, s) in payments {
        match s.as_str() {
            "charging" | "refunding" => bail!("payment of {id} is still {s}"),
            _ => {
                charged.insert(id, amount);
            }
        }
    }
    let mut refunded: HashMap<String, i64> = HashMap::new();
    for (id, amount, s) in refunds {
        if s != "refunded" {
            bail!("refund of {id} is still {s}");
        }
        refunded.insert(id, amount);
    }
    let mut confirmed_total = 0;
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for (id, (s, reason, total)) in &status {
        *by_outcome
            .entry(reason.clone().unwrap_or_else(|| s.clone()))
            .or_default() += 1;
        match (
            s.as_str(),
            charged.contains_key(id),
            refunded.contains_key(id),
        ) {
            ("confirmed", true, false) => confirmed_total += total,
            ("confirmed", charged, refunded) => {
                bail!("confirmed order {id}: charged {charged}, refunded {refunded}")
            }
            ("cancelled", true, false) => {
                bail!("cancelled order {id} was charged and not refunded")
            }
            ("cancelled", false, true) => bail!("order {id} refunded without a charge"),
            _ => {}
        }
    }
    let charges: i64 = charged.values().sum();
    let refunds: i64 = refunded.values().sum();
    if charges - refunds != confirmed_total {
        bail!("charges {charges} - refunds {refunds} != confirmed totals {confirmed_total}");
    }

    // Stock: never negative, nothing lost, and held exactly by confirmed orders.
    type StockLine = (String, i64, i64, i64, i64);
    let (stock, holding): (Vec<StockLine>, HashSet<String>) =
        stack.with_db(ServiceKind::Inventory, |conn| {
            let lines: Vec<(String, i64, i64, i64)> = conn.query_map(
                "SELECT sku, available, reserved, initial FROM stock",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            let mut stock = Vec::with_capacity(lines.len());
            for (sku, available, reserved, initial) in lines {
                let held: i64 = conn.query_row(
                    "SELECT COALESCE(SUM(i.quantity), 0) FROM reservation_items i JOIN reservations r ON r.order_id = i.order_id
                     WHERE r.status = 'reserved' AND i.sku = ?1",
                    &[&sku],
                    |r| r.get(0),
                )?;
                stock.push((sku, available, reserved, initial, held));
            }
            let holding: Vec<String> = conn.query_map(
                "SELECT order_id FROM reservations WHERE status = 'reserved'",
                &[],
                |r| r.get(0),
            )?;
            Ok((stock, holding.into_iter().collect()))
        })?;
    let mut stock_lines = Vec::new();
    for (sku, available, reserved, initial, held) in stock {
        if available < 0 || available + reserved != initial {
            bail!("{sku}: available {available} + reserved {reserved} != initial {initial}");
        }
        if held != reserved {
            bail!("{sku}: reserved {reserved} but reservations hold {held}");
        }
        stock_lines.push(format!("{sku} {available}+{reserved}={initial}"));
    }
    let confirmed: HashSet<String> = status
        .iter()
        .filter(|(_, (s, _, _))| s == "confirmed")
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
    let announced = stack.kafka()?.read_all("payments")?;
    for id in accepted {
        let events: HashSet<String> = announced
            .iter()
            .filter(|m| is_event(m, "shop.payment.completed.v1", id))
            .filter_map(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).ok())
            .filter_map(|doc| doc["id"].as_str().map(str::to_owned))
            .collect();
        if events.len() > 1 {
            bail!("{id}: {} distinct payment.completed events", events.len());
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
