//! The invariants of a run, checked from each service's own database (and the `payments`
//! topic) once it has settled: shared by the tests that put the saga under stress (the chaos
//! test, the scale-out test, the fault tests).
//!
//! A failure names the orders that break an invariant and what is wrong with each; once the
//! run has had its time to settle ([`settled`]), it also prints, for the first few of them,
//! everything each service's database holds about the order (its status history, the events
//! each service handled, its payment, refund and reservation), so that it can be debugged from
//! the test's output alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use anyhow::{Result, bail};

use events::CancellationReason;

use saga_tests::{
    PaymentStatus, RefundStatus, ServiceKind, Stack, Status, Stock, StoredOrder, eventually_within,
};

/// Offending orders whose evidence a failure prints.
const EVIDENCE_FOR: usize = 5;

/// The orders that break an invariant, each with what is wrong.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<(String, String)>);

impl Violations {
    fn add(&mut self, order_id: &str, what: impl Into<String>) {
        self.0.push((order_id.to_owned(), what.into()));
    }

    /// Fails with the violations, if there are any.
    fn check(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.into())
        }
    }

    /// The violations, then what each service's database holds about the first few orders.
    fn with_evidence(&self, stack: &Stack) -> String {
        let mut text = self.to_string();
        for (order_id, _) in self.0.iter().take(EVIDENCE_FOR) {
            text.push_str(&format!("\n  {order_id}:\n"));
            match stack.evidence(order_id) {
                Ok(evidence) => text.push_str(&evidence),
                Err(error) => text.push_str(&format!("    (no evidence: {error:#})\n")),
            }
        }
        text
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} order(s) break an invariant:", self.0.len())?;
        for (order_id, what) in self.0.iter().take(EVIDENCE_FOR) {
            write!(f, "\n  {order_id}: {what}")?;
        }
        if self.0.len() > EVIDENCE_FOR {
            write!(f, "\n  … and {} more", self.0.len() - EVIDENCE_FOR)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// Polls [`check_invariants`] until they hold or `within` has passed; then fails with the
/// violations and the evidence of the first few offending orders.
pub(crate) async fn settled(
    stack: &Stack,
    accepted: &[String],
    within: Duration,
) -> Result<String> {
    let polled = eventually_within(within, || {
        std::future::ready(check_invariants(stack, accepted).map_err(|error| format!("{error:#}")))
    })
    .await;
    if let Ok(report) = polled {
        return Ok(report);
    }
    // Once more, to gather the evidence of what is wrong now (the evidence is too costly to
    // gather at every poll).
    let error = match check_invariants(stack, accepted) {
        Ok(report) => return Ok(report),
        Err(error) => error,
    };
    let logs = format!(
        "the services' logs go to {}",
        stack.kept_logs_dir().display()
    );
    match error.downcast_ref::<Violations>() {
        Some(violations) => bail!(
            "the invariants did not hold within {within:?} ({logs}): {}",
            violations.with_evidence(stack)
        ),
        None => bail!("the invariants did not hold within {within:?} ({logs}): {error:#}"),
    }
}

/// The books, from each service's own database. Fails (to be retried until the run settles)
/// while any invariant does not hold yet; returns a printable report once all do. A failure
/// about orders is a [`Violations`].
pub(crate) fn check_invariants(stack: &Stack, accepted: &[String]) -> Result<String> {
    // Every accepted order is confirmed or cancelled; none is stuck.
    let status: HashMap<String, StoredOrder> = stack
        .all_orders()?
        .into_iter()
        .map(|order| (order.order_id.clone(), order))
        .collect();
    let mut open = Violations::default();
    for id in accepted {
        if !status.contains_key(id) {
            open.add(id, "accepted, and missing from order-api's database");
        }
    }
    for order in status.values().filter(|order| !order.status.is_terminal()) {
        open.add(&order.order_id, format!("still {}", order.status.as_str()));
    }
    open.check()?;
    for (kind, name) in [
        (ServiceKind::OrderApi, "order-api"),
        (ServiceKind::Payment, "payment-svc"),
        (ServiceKind::Inventory, "inventory-svc"),
    ] {
        let backlog = stack.outbox_rows(kind)?;
        if !backlog.is_empty() {
            bail!(
                "{name} still has {} unpublished events:\n  {}",
                backlog.len(),
                backlog.join("\n  ")
            );
        }
    }

    // Charges and refunds: at most one of each per order, refunds exactly for charged
    // cancellations, and the money adds up.
    let mut unsettled = Violations::default();
    let mut charged: HashMap<String, i64> = HashMap::new();
    for (id, payment) in stack.all_payments()? {
        match payment.status {
            PaymentStatus::Failed => {}
            PaymentStatus::Charging | PaymentStatus::Refunding => {
                unsettled.add(&id, format!("payment still {:?}", payment.status));
            }
            PaymentStatus::Charged | PaymentStatus::Refunded => {
                charged.insert(id, payment.amount_minor);
            }
        }
    }
    let mut refunded: HashMap<String, i64> = HashMap::new();
    for (id, refund) in stack.all_refunds()? {
        if refund.status != RefundStatus::Refunded {
            unsettled.add(&id, format!("refund still {:?}", refund.status));
        }
        refunded.insert(id, refund.amount_minor);
    }
    unsettled.check()?;
    let mut confirmed_total = 0;
    let mut by_outcome: BTreeMap<&str, usize> = BTreeMap::new();
    let mut money = Violations::default();
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
                money.add(
                    id,
                    format!("confirmed: charged {charged}, refunded {refunded}"),
                );
            }
            (Status::Cancelled, true, false) => {
                money.add(id, "cancelled, charged and not refunded");
            }
            (Status::Cancelled, false, true) => money.add(id, "refunded without a charge"),
            _ => {}
        }
    }
    money.check()?;
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
    let mut held = Violations::default();
    for id in holding.difference(&confirmed) {
        held.add(id, "stock reserved, and the order is not confirmed");
    }
    for id in confirmed.difference(&holding) {
        held.add(id, "confirmed, and no stock reserved for it");
    }
    held.check()?;

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
    let mut twice = Violations::default();
    for id in accepted {
        let events = completed.get(id).map_or(0, HashSet::len);
        if events > 1 {
            twice.add(id, format!("{events} distinct payment.completed events"));
        }
    }
    twice.check()?;
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
