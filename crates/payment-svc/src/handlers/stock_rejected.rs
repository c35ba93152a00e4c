//! `stock.rejected` → the order cannot be fulfilled after it was paid: refund it (compensation).
//! `payment.refunded` follows when the provider confirms.
//!
//! On redelivery: the inbox skips the event; another rejection of the same order finds the
//! payment no longer `charged`, and starts no second refund.
//!
//! The payment row is locked while deciding, and the move to `refunding` is conditional on
//! `charged` (see [`refund::begin`]): a cancellation handled by another replica at the same
//! time starts the one refund, or this does, never both.

use events::{CancellationReason, Envelope, StockRejected};
use platform::db::after_commit;
use platform::inbox;
use platform::kafka::{HandlerError, MessageInfo};

use super::Payments;
use crate::refund;
use crate::store::{self, PaymentStatus};

pub(super) async fn handle(
    payments: &Payments,
    envelope: &Envelope,
    rejection: StockRejected,
    info: &MessageInfo,
) -> Result<(), HandlerError> {
    let refund = inbox::apply_once(&payments.db, envelope.clone(), info, move |tx, envelope| {
        let Some(payment) = store::lock_payment(tx, rejection.order_id)? else {
            return Err(HandlerError::Permanent(anyhow::anyhow!(
                "stock.rejected for order {} which has no payment",
                rejection.order_id
            )));
        };
        if payment.status != PaymentStatus::Charged {
            let status = payment.status.as_str();
            after_commit(move || {
                tracing::info!(status, "Nothing to refund in this payment state.");
            });
            return Ok(None);
        }
        Ok(refund::begin(
            tx,
            &payment,
            PaymentStatus::Charged,
            None,
            CancellationReason::OutOfStock,
            Some(envelope.meta.id),
        )?)
    })
    .await?
    .flatten();
    if let Some(refund) = refund {
        payments.requests.spawn_refund(refund).await;
    }
    Ok(())
}
