//! Starting a refund: shared by every reason to give money back (out of stock, timeout, a charge
//! that succeeded after its order was cancelled).

use events::CancellationReason;
use platform::db::now_text;

use crate::store::{self, Payment, PaymentStatus, Refund};

/// Moves a payment from `from` to `refunding` and records its refund, inside `tx`. Returns the
/// refund to send to the provider after commit, or `None` if the payment has no charge or
/// already has a refund (so a refund is started at most once per order).
pub(crate) fn begin(
    tx: &rusqlite::Transaction<'_>,
    payment: &Payment,
    from: PaymentStatus,
    charge_id: Option<&str>,
    reason: CancellationReason,
) -> rusqlite::Result<Option<Refund>> {
    let Some(charge_id) = charge_id.or(payment.charge_id.as_deref()) else {
        return Ok(None);
    };
    let refund = Refund {
        order_id: payment.order_id,
        amount: payment.amount,
        charge_id: charge_id.to_owned(),
        reason,
    };
    let now = now_text();
    if !store::insert_refund(tx, &refund, &now)? {
        return Ok(None);
    }
    if !store::transition(
        tx,
        refund.order_id,
        from,
        PaymentStatus::Refunding,
        Some(charge_id),
        None,
        &now,
    )? {
        return Ok(None);
    }
    tracing::info!(amount = %refund.amount, reason = reason.as_str(), "Refunding.");
    Ok(Some(refund))
}
