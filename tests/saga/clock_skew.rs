//! The payment provider's clock is off by more than payment-svc's webhook tolerance
//! (`PSP_WEBHOOK_TOLERANCE_S`, 300 s): psp-sim signs every notification with a timestamp 15
//! minutes ahead (`PSP_SIM_CLOCK_SKEW_S`), so payment-svc refuses every one as a possible
//! replay (401, counted).
//!
//! What it proves: a provider whose webhooks never arrive does not stall the saga. payment-svc's
//! recovery sweep asks the provider about every charge and refund left without an answer, and
//! each order ends as it would have, with one charge at most.

use std::time::Duration;

use anyhow::{Result, ensure};

use saga_tests::{Stack, metric_total};

use crate::invariants::settled;
use crate::load::Placer;

/// Orders placed.
const ORDERS: usize = 18;

#[tokio::test]
async fn every_order_ends_through_the_recovery_sweep_when_every_webhook_is_refused() -> Result<()> {
    let started = std::time::Instant::now();
    let stack = Stack::start_with_env(&[
        ("PSP_SIM_CLOCK_SKEW_S", "900"),
        // Every attempt is refused alike: two show it, more only add load.
        ("PSP_SIM_WEBHOOK_ATTEMPTS", "2"),
        // Ask the provider about a charge one second after it went unanswered.
        ("PAYMENT_RESUBMIT_AFTER_MS", "1000"),
        ("PAYMENT_SWEEP_INTERVAL_MS", "200"),
    ])
    .await?;
    eprintln!("clock_skew: stack up in {:?}", started.elapsed());
    let placed = Placer::start(&stack, ORDERS).finish().await?;
    eprintln!("clock_skew: orders placed at {:?}", started.elapsed());
    ensure!(placed.refused == 0, "{} orders refused", placed.refused);

    let report = settled(&stack, &placed.accepted, Duration::from_secs(45)).await?;

    // Every outcome came through the sweep: not one webhook was taken, every charge's was refused.
    let metrics = stack.metrics(&stack.payment).await?;
    let taken = metric_total(&metrics, "payment_webhooks_accepted_total", &[]);
    let refused = metric_total(
        &metrics,
        "payment_webhooks_refused_total",
        &["reason=\"signature\""],
    );
    ensure!(
        taken == 0.0,
        "payment-svc took {taken} webhooks signed 15 minutes ahead"
    );
    ensure!(
        refused >= ORDERS as f64,
        "payment-svc refused only {refused} webhooks for {ORDERS} charges"
    );
    eprintln!(
        "clock_skew: {refused} webhooks refused, every outcome fetched by the sweep; settled at {:?}\n{report}",
        started.elapsed()
    );
    Ok(())
}
