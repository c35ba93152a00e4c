//! Sagas end by their deadline, and whatever was done before it is compensated.

use std::time::Duration;

use anyhow::{Context, Result};
use events::CancellationReason;

use saga_tests::{
    PaymentStatus, RefundStatus, ReservationStatus, ServiceKind, Stack, Status, is_event, wait_for,
};

/// Whether the order's refund was made, for the timeout.
fn refunded_for_timeout(refund: &Option<saga_tests::Refund>) -> bool {
    refund.as_ref().is_some_and(|refund| {
        refund.status == RefundStatus::Refunded && refund.reason == CancellationReason::Timeout
    })
}

/// Waits until the wall clock is past the order's stored deadline: time passing, not an
/// outcome, so one sleep for the time left.
async fn wait_past_deadline(stack: &Stack, order_id: &str) -> Result<()> {
    let deadline = stack.saga_deadline(order_id)?;
    let left = (deadline.to_utc() - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(1)).await;
    Ok(())
}

#[tokio::test]
async fn a_timed_out_order_is_cancelled_and_its_late_charge_refunded_even_across_a_restart()
-> Result<()> {
    let mut stack = Stack::start_with_env(&[
        ("SAGA_TIMEOUT_MS", "1500"),
        ("SAGA_REAPER_INTERVAL_MS", "100"),
        ("PSP_SIM_SLOW_MS", "5000"),
        ("PAYMENT_RESUBMIT_AFTER_MS", "60000"),
    ])
    .await?;
    let initial = stack.stock("WIDGET-42")?.available;

    // The provider takes 5 s; the saga may take 1.5 s. order-api is down when the deadline
    // passes: the timer is in its database, so it fires when order-api is back.
    let order_id = stack.place_order("WIDGET-42", 1, "pm_slow_3s").await?;
    stack
        .wait_order(&order_id, |o| o.status == Status::PaymentProcessing)
        .await?;
    stack.order_api.kill()?;
    wait_past_deadline(&stack, &order_id).await?;
    stack.restart(ServiceKind::OrderApi).await?;

    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(order.status, Status::Cancelled, "{order}");
    assert_eq!(order.cancellation_reason, Some(CancellationReason::Timeout));
    assert_eq!(
        order.statuses(),
        [
            Status::Pending,
            Status::PaymentProcessing,
            Status::Cancelled
        ]
    );

    // The charge succeeds after the cancellation: it is refunded, once, for the timeout.
    wait_for(|| stack.refund_for(&order_id), refunded_for_timeout).await?;
    let payment = stack.payment_for(&order_id)?.context("no payment")?;
    assert_eq!(payment.status, PaymentStatus::Refunded);
    // The refund row is committed with payment.refunded in the outbox, published after it.
    let kafka = stack.kafka()?;
    kafka.find("payments", |m| {
        is_event(m, "shop.payment.refunded.v1", &order_id)
    })?;
    let payments = kafka.read_all("payments")?;
    let count = |t: &str| {
        payments
            .iter()
            .filter(|m| is_event(m, t, &order_id))
            .count()
    };
    assert_eq!(count("shop.payment.refunded.v1"), 1);
    assert_eq!(
        count("shop.payment.completed.v1"),
        0,
        "a cancelled order's charge must not move on"
    );
    // Nothing was reserved, and nothing will be.
    assert_eq!(stack.stock("WIDGET-42")?.available, initial);
    // Late replies do not reopen the order.
    assert_eq!(stack.order(&order_id).await?.history, order.history);
    Ok(())
}

#[tokio::test]
async fn stock_reserved_for_a_timed_out_order_is_released_once() -> Result<()> {
    let mut stack = Stack::start_with_env(&[
        ("SAGA_TIMEOUT_MS", "1500"),
        ("SAGA_REAPER_INTERVAL_MS", "100"),
    ])
    .await?;
    let initial = stack.stock("GADGET-7")?.available;

    // inventory-svc is down: the payment completes, the saga times out, the charge is refunded.
    stack.inventory.kill()?;
    let order_id = stack.place_order("GADGET-7", 4, "pm_visa_4242").await?;
    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(
        order.cancellation_reason,
        Some(CancellationReason::Timeout),
        "{order}"
    );
    wait_for(|| stack.refund_for(&order_id), refunded_for_timeout).await?;

    // inventory-svc comes back to payment.completed and order.cancelled: whichever it applies
    // first, the stock ends where it started and the order holds no reservation.
    stack.restart(ServiceKind::Inventory).await?;
    let reservation = wait_for(
        || stack.reservation_for(&order_id),
        |reservation| {
            reservation.as_ref().is_some_and(|r| {
                matches!(
                    r.status,
                    ReservationStatus::Released | ReservationStatus::Cancelled
                )
            })
        },
    )
    .await?
    .context("no reservation")?;
    let stock = stack.stock("GADGET-7")?;
    assert_eq!(stock.available, initial);
    assert_eq!(stock.reserved, 0);
    if reservation.status == ReservationStatus::Released {
        let kafka = stack.kafka()?;
        kafka.find("inventory", |m| {
            is_event(m, "shop.stock.released.v1", &order_id)
        })?;
        let inventory = kafka.read_all("inventory")?;
        let count = inventory
            .iter()
            .filter(|m| is_event(m, "shop.stock.released.v1", &order_id))
            .count();
        assert_eq!(count, 1, "stock.released announced once");
    }
    Ok(())
}
