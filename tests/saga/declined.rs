use anyhow::{Context, Result};
use events::CancellationReason;

use saga_tests::{PaymentStatus, ReservationStatus, Stack, Status};

#[tokio::test]
async fn a_declined_card_cancels_the_order_without_touching_stock() -> Result<()> {
    let stack = Stack::start().await?;
    let initial = stack.stock("WIDGET-42")?;

    let order_id = stack
        .place_order("WIDGET-42", 2, "pm_card_declined")
        .await?;
    let order = stack.wait_terminal(&order_id).await?;

    assert_eq!(order.status, Status::Cancelled);
    assert_eq!(
        order.cancellation_reason,
        Some(CancellationReason::PaymentDeclined)
    );
    assert_eq!(
        order.statuses(),
        [
            Status::Pending,
            Status::PaymentProcessing,
            Status::Cancelled
        ]
    );
    let payment = stack.payment_for(&order_id)?.context("no payment")?;
    assert_eq!(payment.status, PaymentStatus::Failed);
    assert_eq!(stack.refund_for(&order_id)?, None);
    let reservation = stack.reservation_for(&order_id)?;
    assert!(
        !reservation.is_some_and(|r| matches!(
            r.status,
            ReservationStatus::Reserved | ReservationStatus::Released
        )),
        "{reservation:?}"
    );
    assert_eq!(stack.stock("WIDGET-42")?, initial);
    // The saga's end is announced for other consumers.
    stack.kafka()?.find("orders", |m| {
        saga_tests::is_event(m, "shop.order.cancelled.v1", &order_id)
    })?;
    Ok(())
}
