use anyhow::{Context, Result};
use events::CancellationReason;
use serde_json::{Value, json};

use saga_tests::{PaymentStatus, RefundStatus, ReservationStatus, Stack, Status};

#[tokio::test]
async fn out_of_stock_after_payment_is_refunded_exactly_once() -> Result<()> {
    let stack = Stack::start().await?;

    let order_id = stack.place_order("GIZMO-9", 1, "pm_visa_4242").await?;
    let order = stack.wait_terminal(&order_id).await?;

    assert_eq!(order.status, Status::Cancelled);
    assert_eq!(
        order.cancellation_reason,
        Some(CancellationReason::OutOfStock)
    );
    assert_eq!(
        order.statuses(),
        [
            Status::Pending,
            Status::PaymentProcessing,
            Status::PaymentConfirmed,
            Status::Cancelled
        ]
    );
    let payment = stack.payment_for(&order_id)?.context("no payment")?;
    assert!(payment.charge_id.is_some(), "{payment:?}");
    assert_eq!(payment.status, PaymentStatus::Refunded);
    let refund = stack.refund_for(&order_id)?.context("no refund")?;
    assert_eq!(refund.status, RefundStatus::Refunded);
    let reservation = stack
        .reservation_for(&order_id)?
        .context("no reservation")?;
    assert_eq!(reservation.status, ReservationStatus::Rejected);
    let payments = stack.kafka()?.read_all("payments")?;
    let count = |event_type: &str| {
        payments
            .iter()
            .filter(|m| saga_tests::is_event(m, event_type, &order_id))
            .count()
    };
    assert_eq!(count("shop.payment.completed.v1"), 1, "one charge");
    assert_eq!(count("shop.payment.refunded.v1"), 1, "one refund");
    Ok(())
}

#[tokio::test]
async fn reservation_is_all_or_nothing() -> Result<()> {
    let stack = Stack::start().await?;
    let widgets = stack.stock("WIDGET-42")?.available;

    // One line in stock, one not: nothing may be reserved.
    let response = stack
        .post_order(&json!({
            "user_id": "usr_test",
            "items": [{"sku": "WIDGET-42", "quantity": 1}, {"sku": "GIZMO-9", "quantity": 1}],
            "payment_method": "pm_visa_4242",
        }))
        .await?;
    let order_id = response.json::<Value>().await?["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let order = stack.wait_terminal(&order_id).await?;
    assert_eq!(
        order.cancellation_reason,
        Some(CancellationReason::OutOfStock)
    );
    assert_eq!(stack.stock("WIDGET-42")?.available, widgets);

    // A limited item sells out: 5 units, orders of 3 then 3.
    let first = stack.place_order("LIMITED-1", 3, "pm_visa_4242").await?;
    assert_eq!(stack.wait_terminal(&first).await?.status, Status::Confirmed);
    let second = stack.place_order("LIMITED-1", 3, "pm_visa_4242").await?;
    assert_eq!(
        stack.wait_terminal(&second).await?.cancellation_reason,
        Some(CancellationReason::OutOfStock)
    );
    assert_eq!(stack.stock("LIMITED-1")?.available, 2);
    Ok(())
}
