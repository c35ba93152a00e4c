//! One service cut off from the broker (a network partition around it) while the others keep
//! running: the broker drops every connection and request carrying the service's `client.id`
//! (`clients/<name>/down`), then lets it back (`clients/<name>/up`).
//!
//! What it proves: nothing accepted waits on the cut-off service's partner, nothing is lost
//! while it is away, and once it is back every order ends with the books balanced.

use std::time::Duration;

use anyhow::{Context, Result, ensure};

use saga_tests::{ServiceKind, Stack, Status};

use crate::invariants::settled;
use crate::load::Placer;

/// Orders placed in each test.
const ORDERS: usize = 30;

/// How long the run may take to settle once the service is back: librdkafka waits up to
/// `reconnect.backoff.max.ms` (10 s) before it connects again, then the group rebalances.
const SETTLE: Duration = Duration::from_secs(40);

async fn stack() -> Result<Stack> {
    Stack::start_with_env(&[("BROKER_CONTROL_ADDR", "127.0.0.1:0")]).await
}

#[tokio::test]
async fn orders_are_accepted_while_payment_svc_is_cut_off_and_all_end_once_it_is_back() -> Result<()>
{
    let stack = stack().await?;
    let placer = Placer::start(&stack, ORDERS);
    placer.answered(ORDERS / 3).await?;

    stack.broker_fault("clients/payment-svc/down").await?;
    let placed = placer.finish().await?;
    ensure!(
        placed.refused == 0,
        "order-api refused {} orders while only payment-svc was cut off",
        placed.refused
    );
    // The last two thirds were placed while payment-svc was away: the newest can only still be
    // waiting for its payment.
    let newest = placed.accepted.last().context("no order accepted")?;
    let waiting = stack.order(newest).await?;
    ensure!(
        waiting.status == Status::Pending,
        "an order placed while payment-svc was cut off is {}",
        waiting.status.as_str()
    );

    stack.broker_fault("clients/payment-svc/up").await?;
    let report = settled(&stack, &placed.accepted, SETTLE).await?;
    eprintln!(
        "cut_off (payment-svc): {} orders accepted\n{report}",
        placed.accepted.len()
    );
    Ok(())
}

#[tokio::test]
async fn order_api_cut_off_keeps_accepting_into_its_outbox_and_loses_nothing() -> Result<()> {
    let stack = stack().await?;
    stack.broker_fault("clients/order-api/down").await?;
    let placer = Placer::start(&stack, ORDERS);
    placer.answered(ORDERS).await?;
    let placed = placer.finish().await?;
    // Below the backlog limit order-api answers 202: the order and its event are committed
    // together, and the event waits in the outbox for the broker.
    ensure!(
        placed.refused == 0 && placed.accepted.len() == ORDERS,
        "order-api cut off from the broker accepted {} and refused {} of {ORDERS} orders",
        placed.accepted.len(),
        placed.refused
    );
    let waiting = stack.rows_in(ServiceKind::OrderApi, "outbox")?;
    ensure!(
        waiting == ORDERS as i64,
        "{waiting} events in order-api's outbox while it was cut off, not {ORDERS}"
    );

    stack.broker_fault("clients/order-api/up").await?;
    let report = settled(&stack, &placed.accepted, SETTLE).await?;
    eprintln!("cut_off (order-api): {ORDERS} orders accepted into the outbox\n{report}");
    Ok(())
}
