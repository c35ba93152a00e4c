//! Starting a refund: shared by every reason to give money back (out of stock, timeout, a charge
//! that succeeded after its order was cancelled).

use events::{CancellationReason, EventId};
use platform::db::after_commit;
use platform::sql::{Conn, Result};

use crate::store::{self, Payment, PaymentStatus, Refund};

/// Moves a payment from `from` to `refunding` and records its refund, asked for by the event
/// `cause` (named as the cause of `payment.refunded`), inside `tx`. Returns the
/// refund to send to the provider after commit, or `None` if the payment has no charge, was no
/// longer in `from` or already has a refund (so a refund is started at most once per order).
///
/// The conditional move out of `from` comes first: it is the claim. Of two replicas starting a
/// refund for the same payment at once (an `order.cancelled` and a `stock.rejected`, say), the
/// second one's update waits for the first one's commit, then finds the payment `refunding`
/// and changes nothing — it records no refund and sends none.
pub(crate) fn begin(
    tx: &Conn<'_>,
    payment: &Payment,
    from: PaymentStatus,
    charge_id: Option<&str>,
    reason: CancellationReason,
    cause: Option<EventId>,
) -> Result<Option<Refund>> {
    let Some(charge_id) = charge_id.or(payment.charge_id.as_deref()) else {
        return Ok(None);
    };
    let refund = Refund {
        order_id: payment.order_id,
        amount: payment.amount,
        charge_id: charge_id.to_owned(),
        reason,
        webhook_url: payment.webhook_url.clone(),
        causation_id: cause,
    };
    if !store::transition(
        tx,
        refund.order_id,
        from,
        PaymentStatus::Refunding,
        Some(charge_id),
        None,
    )? {
        return Ok(None);
    }
    if !store::insert_refund(tx, &refund)? {
        // Every refund is recorded here, after the claim above, so this does not happen; if it
        // did, the existing refund is the one to keep (the recovery sweep sends it).
        tracing::warn!("The payment already had a refund; not starting another.");
        return Ok(None);
    }
    let amount = refund.amount;
    after_commit(move || {
        tracing::info!(amount = %amount, reason = reason.as_str(), "Refunding.");
    });
    Ok(Some(refund))
}
