//! `order.cancelled` → make sure a cancelled order keeps no money: refund a completed charge, or
//! flag a charge still in flight so that it is refunded the moment it succeeds.
//!
//! On redelivery: the inbox skips the event; another cancellation of the same order finds the
//! payment refunding or flagged already, and starts no second refund.
//!
//! Declined and out-of-stock cancellations find nothing to do (no charge, or already refunded);
//! this matters for timeouts, where the saga may end while the payment is still moving.
//!
//! The payment row is locked while deciding (see [`store::lock_payment`]): the provider's
//! outcome may be applied by another replica at the same moment, and the flag must not land on
//! a payment that has just stopped `charging`.

use events::{Envelope, OrderCancelled};
use platform::db::after_commit;
use platform::inbox;
use platform::kafka::{HandlerError, MessageInfo};

use super::Payments;
use crate::refund;
use crate::store::{self, PaymentStatus};

pub(super) async fn handle(
    payments: &Payments,
    envelope: &Envelope,
    cancelled: OrderCancelled,
    info: &MessageInfo,
) -> Result<(), HandlerError> {
    let refund = inbox::apply_once(&payments.db, envelope.clone(), info, move |tx, envelope| {
        let cause = envelope.meta.id;
        let Some(payment) = store::lock_payment(tx, cancelled.order_id)? else {
            return Ok(None);
        };
        match payment.status {
            PaymentStatus::Charged => Ok(refund::begin(
                tx,
                &payment,
                PaymentStatus::Charged,
                None,
                cancelled.reason,
                Some(cause),
            )?),
            PaymentStatus::Charging => {
                if !store::request_cancellation(
                    tx,
                    cancelled.order_id,
                    cancelled.reason,
                    cause,
                )? {
                    // Not while the row is locked; should it happen anyway, undo everything
                    // and decide again (the retry reads the payment's new state).
                    return Err(HandlerError::Transient(anyhow::anyhow!(
                        "payment of order {} left charging while being cancelled",
                        cancelled.order_id
                    )));
                }
                after_commit(|| {
                    tracing::info!(
                        "Order cancelled while its charge is in flight; it will be refunded if it succeeds."
                    );
                });
                Ok(None)
            }
            PaymentStatus::Failed | PaymentStatus::Refunding | PaymentStatus::Refunded => Ok(None),
        }
    })
    .await?
    .flatten();
    if let Some(refund) = refund {
        payments.requests.spawn_refund(refund).await;
    }
    Ok(())
}
