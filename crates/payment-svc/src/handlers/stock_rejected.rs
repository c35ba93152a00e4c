//! `stock.rejected` → the order cannot be fulfilled after it was paid: refund it (compensation).
//! `payment.refunded` follows when the provider confirms.

use events::{CancellationReason, Envelope, StockRejected};
use platform::db::now_text;
use platform::inbox::{self, Delivery};
use platform::kafka::{HandlerError, MessageInfo};

use super::Payments;
use crate::recovery::submit_refund;
use crate::store::{self, PaymentStatus, Refund};

pub(super) async fn handle(
    payments: &Payments,
    envelope: &Envelope,
    rejection: StockRejected,
    info: &MessageInfo,
) -> Result<(), HandlerError> {
    let envelope = envelope.clone();
    let info = info.clone();
    let refund = payments
        .db
        .transaction(move |tx| {
            if inbox::record(tx, &envelope, &info)? == Delivery::Duplicate {
                tracing::info!("Duplicate stock.rejected ignored.");
                return Ok::<_, HandlerError>(None);
            }
            let Some(payment) = store::payment(tx, rejection.order_id)? else {
                return Err(HandlerError::Permanent(anyhow::anyhow!(
                    "stock.rejected for order {} which has no payment",
                    rejection.order_id
                )));
            };
            let (PaymentStatus::Charged, Some(charge_id)) = (payment.status, payment.charge_id)
            else {
                tracing::info!(
                    status = payment.status.as_str(),
                    "Nothing to refund in this payment state."
                );
                return Ok(None);
            };
            let refund = Refund {
                order_id: payment.order_id,
                amount: payment.amount,
                charge_id,
                reason: CancellationReason::OutOfStock,
            };
            let now = now_text();
            if !store::insert_refund(tx, &refund, &now)? {
                return Ok(None);
            }
            store::transition(
                tx,
                refund.order_id,
                PaymentStatus::Charged,
                PaymentStatus::Refunding,
                None,
                None,
                &now,
            )?;
            Ok(Some(refund))
        })
        .await?;
    if let Some(refund) = refund {
        tracing::info!(amount = %refund.amount, "Refunding.");
        submit_refund(payments, &refund).await;
    }
    Ok(())
}
